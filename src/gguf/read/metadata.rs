//! Metadata values: scalars, strings and arrays (no nested arrays; long ones skipped with only
//! their length kept), each count checked against its cap before anything is allocated, and
//! the vocabulary, whose tokens are all read and scanned for what llama.cpp's tokenizer needs.

use super::reader::{Reader, Source};
use super::{MAX_ARRAY, MAX_KEPT_ARRAY, MAX_STRING_ARRAY};
use crate::gguf::GgufError;
use crate::gguf::value::{Value, ValueType};
use crate::gguf::vocab::{MAX_VOCAB, VOCAB_KEY, VocabScan};

impl<S: Source> Reader<'_, S> {
    pub(super) fn value(&mut self, ty: ValueType, key: &str) -> Result<Value, GgufError> {
        let what = format!("the value of {key}");
        Ok(match ty {
            ValueType::U8 => Value::U8(self.bytes::<1>(&what)?[0]),
            ValueType::I8 => Value::I8(self.bytes::<1>(&what)?[0] as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.bytes(&what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.bytes(&what)?)),
            ValueType::U32 => Value::U32(self.u32(&what)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.bytes(&what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.bytes(&what)?)),
            ValueType::Bool => Value::Bool(self.bytes::<1>(&what)?[0] != 0),
            ValueType::String => Value::String(self.string(&what)?),
            ValueType::U64 => Value::U64(self.u64(&what)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.bytes(&what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.bytes(&what)?)),
            ValueType::Array => self.array(key)?,
        })
    }

    fn array(&mut self, key: &str) -> Result<Value, GgufError> {
        let (item_type, len) = self.array_header(key)?;
        if len > MAX_KEPT_ARRAY {
            self.skip_items(item_type, len, key)?;
            return Ok(Value::Array {
                item_type,
                len,
                items: None,
            });
        }
        let mut items = Vec::with_capacity(len as usize);
        for _ in 0..len {
            items.push(self.value(item_type, key)?);
        }
        Ok(Value::Array {
            item_type,
            len,
            items: Some(items),
        })
    }

    /// An array's item type and length, checked: no nested arrays (llama.cpp reads none), no
    /// more than [`MAX_ARRAY`] items.
    fn array_header(&mut self, key: &str) -> Result<(ValueType, u64), GgufError> {
        let what = format!("the array {key}");
        let at = self.pos;
        let type_id = self.u32(&what)?;
        let item_type = match ValueType::from_id(type_id) {
            Some(ValueType::Array) => {
                return Err(self.corrupt(format!(
                    "{key} is an array of arrays (at byte {at}), which GGUF readers refuse"
                )));
            }
            Some(t) => t,
            None => {
                return Err(self.corrupt(format!(
                    "{key} has unknown item type {type_id} (at byte {at})"
                )));
            }
        };
        let at = self.pos;
        let len = self.u64(&what)?;
        let max = match item_type {
            ValueType::String => MAX_STRING_ARRAY,
            _ => MAX_ARRAY,
        };
        if len > max {
            return Err(self.corrupt(format!(
                "{key} at byte {at} claims {len} items (the limit for {item_type:?} items is {max})"
            )));
        }
        Ok((item_type, len))
    }

    /// `tokenizer.ggml.tokens`: every token read (not kept past [`MAX_KEPT_ARRAY`]) and
    /// scanned for what llama.cpp's tokenizer needs ([`VocabScan`]).
    pub(super) fn vocabulary(&mut self, scan: &mut Option<VocabScan>) -> Result<Value, GgufError> {
        let (item_type, len) = self.array_header(VOCAB_KEY)?;
        if item_type != ValueType::String {
            self.skip_items(item_type, len, VOCAB_KEY)?;
            return Ok(Value::Array {
                item_type,
                len,
                items: None,
            });
        }
        if len > MAX_VOCAB {
            return Err(self.corrupt(format!(
                "{VOCAB_KEY} has {len} tokens (the limit is {MAX_VOCAB})"
            )));
        }
        if len > (self.len - self.pos) / 8 {
            return Err(self.truncated(&format!("the array {VOCAB_KEY}")));
        }
        let mut found = VocabScan::default();
        let mut items = Vec::with_capacity(len.min(MAX_KEPT_ARRAY) as usize);
        let what = format!("a token of {VOCAB_KEY}");
        let mut token = Vec::new();
        for i in 0..len {
            self.string_into(&mut token, &what)?;
            found.push(i, &token);
            if len <= MAX_KEPT_ARRAY {
                let text = String::from_utf8(token.clone())
                    .map_err(|_| self.corrupt(format!("token #{i} of {VOCAB_KEY} is not UTF-8")))?;
                items.push(Value::String(text));
            }
        }
        found.finish();
        *scan = Some(found);
        Ok(Value::Array {
            item_type,
            len,
            items: (len <= MAX_KEPT_ARRAY).then_some(items),
        })
    }

    /// Skips `len` items of `item_type` (not an array).
    fn skip_items(&mut self, item_type: ValueType, len: u64, key: &str) -> Result<(), GgufError> {
        let what = format!("the array {key}");
        match item_type.fixed_size() {
            Some(size) => {
                let bytes = len.checked_mul(size).ok_or_else(|| self.truncated(&what))?;
                self.skip(bytes, &what)
            }
            None => {
                // Strings: each has its own length; a string takes at least 8 bytes.
                if len > (self.len - self.pos) / 8 {
                    return Err(self.truncated(&what));
                }
                for _ in 0..len {
                    self.skip_string(&what)?;
                }
                Ok(())
            }
        }
    }
}
