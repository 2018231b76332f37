//! The GGUF writer: builds a complete file (metadata, tensor infos, aligned tensor data) so tests
//! can make tiny models of architectures we have no download for, and llama.cpp can load them.

use super::GgufError;
use super::read::tensor_bytes;
use super::types::ggml_type;
use super::value::{Value, ValueType};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

const ALIGNMENT: u64 = 32;

/// Collects metadata and tensors, then writes a GGUF v3 file.
///
/// ```no_run
/// # use gguf_serve::gguf::{GgufWriter, Value};
/// let mut w = GgufWriter::new();
/// w.kv("general.architecture", Value::String("llama".into()));
/// w.tensor_f32("output_norm.weight", &[4], &[1.0; 4]);
/// w.write(std::path::Path::new("tiny.gguf")).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    tensors: Vec<PendingTensor>,
}

#[derive(Debug)]
struct PendingTensor {
    name: String,
    ggml_type: u32,
    shape: Vec<u64>,
    /// `None`: zeros, left as a hole in a sparse file.
    data: Option<Vec<u8>>,
}

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a metadata key.
    pub fn kv(&mut self, key: &str, value: Value) -> &mut Self {
        self.metadata.retain(|(k, _)| k != key);
        self.metadata.push((key.to_owned(), value));
        self
    }

    /// Adds an array value of the given items (all of one type).
    pub fn kv_array(&mut self, key: &str, items: Vec<Value>) -> &mut Self {
        let item_type = items.first().map_or(ValueType::U32, Value::value_type);
        let len = items.len() as u64;
        self.kv(
            key,
            Value::Array {
                item_type,
                len,
                items: Some(items),
            },
        )
    }

    /// Adds a tensor of raw data already in ggml type `ggml_type`'s layout; `shape` innermost first.
    pub fn tensor(
        &mut self,
        name: &str,
        ggml_type: u32,
        shape: &[u64],
        data: Vec<u8>,
    ) -> &mut Self {
        self.tensors.push(PendingTensor {
            name: name.to_owned(),
            ggml_type,
            shape: shape.to_vec(),
            data: Some(data),
        });
        self
    }

    /// Adds a tensor of zeros without holding its data: the file gets a hole there (sparse on
    /// most filesystems), so tests can make headers of 100 GB models in no time and no disk.
    pub fn tensor_zeros(&mut self, name: &str, ggml_type: u32, shape: &[u64]) -> &mut Self {
        self.tensors.push(PendingTensor {
            name: name.to_owned(),
            ggml_type,
            shape: shape.to_vec(),
            data: None,
        });
        self
    }

    /// Adds an F32 tensor.
    pub fn tensor_f32(&mut self, name: &str, shape: &[u64], values: &[f32]) -> &mut Self {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, 0, shape, data)
    }

    /// Adds an F16 tensor from f32 values (rounded to nearest).
    pub fn tensor_f16(&mut self, name: &str, shape: &[u64], values: &[f32]) -> &mut Self {
        let data = values
            .iter()
            .flat_map(|v| f32_to_f16(*v).to_le_bytes())
            .collect();
        self.tensor(name, 1, shape, data)
    }

    /// Writes the file. Fails if a tensor's data does not match its type and shape.
    pub fn write(&self, path: &Path) -> Result<(), GgufError> {
        let invalid = |problem: String| GgufError::Invalid {
            path: path.to_owned(),
            problem,
        };
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_string(&mut out, key);
            out.extend_from_slice(&value.value_type().id().to_le_bytes());
            put_value(&mut out, value).map_err(|p| invalid(format!("{key}: {p}")))?;
        }
        let mut offset = 0u64;
        let mut placed = Vec::with_capacity(self.tensors.len());
        for PendingTensor {
            name,
            ggml_type: ty,
            shape,
            data,
        } in &self.tensors
        {
            let gt = ggml_type(*ty).ok_or_else(|| invalid(format!("{name}: unknown type {ty}")))?;
            let expected = tensor_bytes(gt, shape)
                .ok_or_else(|| invalid(format!("{name}: bad shape {shape:?}")))?;
            if let Some(data) = data.as_ref().filter(|d| d.len() as u64 != expected) {
                return Err(invalid(format!(
                    "{name}: {} bytes of data for a {} tensor of shape {shape:?} ({expected} bytes)",
                    data.len(),
                    gt.name
                )));
            }
            put_string(&mut out, name);
            out.extend_from_slice(&(shape.len() as u32).to_le_bytes());
            for d in shape {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            placed.push((offset, data));
            offset = (offset + expected).next_multiple_of(ALIGNMENT);
        }
        pad(&mut out);
        let data_start = out.len() as u64;
        let io = |source| GgufError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = std::fs::File::create(path).map_err(io)?;
        file.write_all(&out).map_err(io)?;
        for (tensor_offset, data) in placed {
            if let Some(data) = data {
                file.seek(SeekFrom::Start(data_start + tensor_offset))
                    .map_err(io)?;
                file.write_all(data).map_err(io)?;
            }
        }
        // Zero tensors and the final padding: extend without writing (a hole).
        file.set_len(data_start + offset).map_err(io)
    }
}

fn pad(out: &mut Vec<u8>) {
    let len = (out.len() as u64).next_multiple_of(ALIGNMENT);
    out.resize(len as usize, 0);
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, value: &Value) -> Result<(), String> {
    match value {
        Value::U8(v) => out.push(*v),
        Value::I8(v) => out.push(*v as u8),
        Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Bool(v) => out.push(u8::from(*v)),
        Value::String(s) => put_string(out, s),
        Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Array {
            item_type, items, ..
        } => {
            let items = items
                .as_ref()
                .ok_or("an array read without its items cannot be written")?;
            out.extend_from_slice(&item_type.id().to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                if item.value_type() != *item_type {
                    return Err(format!(
                        "array mixes {item_type:?} and {:?}",
                        item.value_type()
                    ));
                }
                put_value(out, item)?;
            }
        }
    }
    Ok(())
}

/// IEEE 754 half precision, round to nearest even (enough for test weights).
fn f32_to_f16(value: f32) -> u16 {
    let bits = value.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let mant = bits & 0x007f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = (mant | 0x0080_0000) >> (1 - e);
        let half = m >> 13;
        let rest = m & 0x1fff;
        let round = u32::from(rest > 0x1000 || (rest == 0x1000 && half & 1 == 1));
        return sign | (half + round) as u16;
    }
    let half = ((e as u32) << 10) | (mant >> 13);
    let rest = mant & 0x1fff;
    let round = u32::from(rest > 0x1000 || (rest == 0x1000 && half & 1 == 1));
    sign | (half + round) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion() {
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        assert_eq!(f32_to_f16(-2.0), 0xc000);
        assert_eq!(f32_to_f16(0.0), 0);
        assert_eq!(f32_to_f16(65504.0), 0x7bff);
        assert_eq!(f32_to_f16(1e6), 0x7c00);
        assert_eq!(f32_to_f16(0.5), 0x3800);
    }
}
