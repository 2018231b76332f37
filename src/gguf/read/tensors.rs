//! Tensor infos: a tensor's name, shape, ggml type and offset, read and checked (ggml's name
//! and dimension limits, an element count ggml can hold, whole blocks per row), and its size in
//! bytes from the type's block size.

use super::MAX_TENSOR_NAME;
use super::reader::{Reader, Source};
use crate::gguf::GgufError;
use crate::gguf::types::{GgmlType, ggml_type};

/// One tensor's header entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml type id (`enum ggml_type`).
    pub ggml_type: u32,
    /// Dimensions, innermost first (ggml's `ne`).
    pub shape: Vec<u64>,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    /// Bytes of the data, from the type's block size.
    pub n_bytes: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.shape.iter().product()
    }
}

impl<S: Source> Reader<'_, S> {
    pub(super) fn tensor_info(&mut self, index: u64) -> Result<TensorInfo, GgufError> {
        let at = self.pos;
        let name = self.string(&format!("the name of tensor #{index}"))?;
        if name.len() > MAX_TENSOR_NAME {
            return Err(self.corrupt(format!(
                "the name of tensor #{index} at byte {at} is {} bytes long (ggml's limit is {MAX_TENSOR_NAME})",
                name.len()
            )));
        }
        let what = format!("the info of tensor {name}");
        let n_dims = self.u32(&what)?;
        if n_dims > 4 {
            return Err(self.corrupt(format!("tensor {name} has {n_dims} dimensions (max 4)")));
        }
        let mut shape = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            shape.push(self.u64(&what)?);
        }
        // ggml keeps dimensions and the element count as i64.
        let elements = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| {
                i64::try_from(n).is_ok() && shape.iter().all(|&d| i64::try_from(d).is_ok())
            });
        if elements.is_none() {
            return Err(self.corrupt(format!(
                "tensor {name} (at byte {at}) has shape {shape:?}, more elements than ggml can count"
            )));
        }
        let ggml_type_id = self.u32(&what)?;
        let offset = self.u64(&what)?;
        let ty = ggml_type(ggml_type_id).ok_or_else(|| {
            self.corrupt(format!(
                "tensor {name} has unknown ggml type {ggml_type_id}"
            ))
        })?;
        let n_bytes = tensor_bytes(ty, &shape)
            .ok_or_else(|| self.corrupt(format!("tensor {name} has a bad shape {shape:?}")))?;
        Ok(TensorInfo {
            name,
            ggml_type: ggml_type_id,
            shape,
            offset,
            n_bytes,
        })
    }
}

/// Bytes of a tensor of this type and shape; `None` on overflow or a row not made of whole blocks.
pub(crate) fn tensor_bytes(ty: &GgmlType, shape: &[u64]) -> Option<u64> {
    let (&ne0, rest) = shape.split_first()?;
    if ne0 % ty.block_size != 0 {
        return None;
    }
    let rows = rest.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))?;
    (ne0 / ty.block_size)
        .checked_mul(ty.type_size)?
        .checked_mul(rows)
}
