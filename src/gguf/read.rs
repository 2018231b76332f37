//! The GGUF reader: header, key/value metadata and tensor infos, never the tensor data. Big
//! arrays (a vocabulary of 256k tokens) are skipped with seeks, keeping only their length.

use super::GgufError;
use super::types::{GgmlType, ggml_type};
use super::value::{Value, ValueType};
use super::vocab::{MAX_VOCAB, VOCAB_KEY, VocabScan};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"GGUF";
/// Arrays longer than this are skipped (their length kept): vocabularies, merges, scores.
const MAX_KEPT_ARRAY: u64 = 4096;
/// The longest string read (keys, values, tensor names): real ones are at most a chat
/// template of some hundred KB; a longer one is a corrupt or hostile header.
const MAX_STRING: u64 = 16 << 20;
/// The fewest bytes a key/value pair takes (key length, a one-letter key, type, a one-byte
/// value) and a tensor info (name length, n_dims, type, offset): counts are bounded by what the
/// rest of the file can hold.
const MIN_KV_BYTES: u64 = 8 + 1 + 4 + 1;
const MIN_TENSOR_BYTES: u64 = 8 + 1 + 4 + 4 + 8;
/// Entries reserved up front; more grow the vector as they are read.
const RESERVE: u64 = 1024;
/// The most key/value pairs, tensors and array items a header may announce. Real models have
/// some hundred keys, some thousand tensors and vocabularies under a million tokens; the caps
/// bound the work a sparse file of zeros (which passes every size check) can ask for, and what
/// llama.cpp's own reader would allocate for the file after ours accepts it.
const MAX_KV: u64 = 1 << 16;
const MAX_TENSORS: u64 = 1 << 20;
const MAX_ARRAY: u64 = 1 << 24;
/// Arrays of strings are read string by string, so fewer: a sparse file's zeros read as 2^21
/// empty strings in about 0.3 s. Real ones are vocabularies and merges of some 100k items.
const MAX_STRING_ARRAY: u64 = 1 << 21;
/// ggml's `GGML_MAX_NAME`: a tensor name takes at most 63 bytes.
const MAX_TENSOR_NAME: usize = 63;
const DEFAULT_ALIGNMENT: u64 = 32;

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

/// The header of one GGUF file.
#[derive(Debug, Clone)]
pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub file_size: u64,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    /// Where the tensor data section starts.
    pub data_offset: u64,
    /// What llama.cpp's tokenizer needs of `tokenizer.ggml.tokens`, if the file has it.
    pub vocab: Option<VocabScan>,
}

impl GgufFile {
    /// Reads the header of `path`; never reads tensor data.
    pub fn read(path: &Path) -> Result<GgufFile, GgufError> {
        let io = |source| GgufError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let file_size = file.metadata().map_err(io)?.len();
        let mut reader = Reader {
            inner: BufReader::with_capacity(1 << 16, file),
            pos: 0,
            len: file_size,
            path,
        };
        reader.read_file()
    }

    /// Reads the header of a file of `file_size` bytes from its first bytes, `prefix` (a range
    /// request's answer): [`Prefix::TooShort`] when the header goes on past them.
    pub fn from_prefix(prefix: &[u8], file_size: u64, path: &Path) -> Prefix {
        let mut reader = Reader {
            inner: Cursor::new(prefix),
            pos: 0,
            len: file_size,
            path,
        };
        match reader.read_file() {
            Ok(file) => Prefix::Header(Box::new(file)),
            Err(GgufError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::UnexpectedEof
                    && (prefix.len() as u64) < file_size =>
            {
                Prefix::TooShort
            }
            Err(e) => Prefix::Error(e),
        }
    }

    /// The value of a metadata key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

/// What a file's first bytes tell of its header ([`GgufFile::from_prefix`]).
#[derive(Debug)]
pub enum Prefix {
    Header(Box<GgufFile>),
    /// The header goes on past these bytes: read more.
    TooShort,
    Error(GgufError),
}

/// Where the reader's bytes come from: a buffered file, or the first bytes of a remote one. A
/// skip past the end of a prefix is allowed; the next read reports it.
trait Source: Read {
    fn skip(&mut self, n: i64) -> std::io::Result<()>;
}

impl Source for BufReader<File> {
    fn skip(&mut self, n: i64) -> std::io::Result<()> {
        self.seek_relative(n)
    }
}

impl Source for Cursor<&[u8]> {
    fn skip(&mut self, n: i64) -> std::io::Result<()> {
        self.set_position(self.position().saturating_add_signed(n));
        Ok(())
    }
}

struct Reader<'a, S> {
    inner: S,
    pos: u64,
    len: u64,
    path: &'a Path,
}

impl<S: Source> Reader<'_, S> {
    fn truncated(&self, what: &str) -> GgufError {
        GgufError::Truncated {
            path: self.path.to_owned(),
            what: what.to_owned(),
            offset: self.len,
        }
    }

    fn corrupt(&self, problem: String) -> GgufError {
        GgufError::Corrupt {
            path: self.path.to_owned(),
            problem,
        }
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let mut buf = [0u8; N];
        self.exact(&mut buf, what)?;
        Ok(buf)
    }

    fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), GgufError> {
        if self.pos + buf.len() as u64 > self.len {
            return Err(self.truncated(what));
        }
        self.inner.read_exact(buf).map_err(|source| GgufError::Io {
            path: self.path.to_owned(),
            source,
        })?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), GgufError> {
        if n > self.len - self.pos {
            return Err(self.truncated(what));
        }
        let n = i64::try_from(n).map_err(|_| self.truncated(what))?;
        self.inner.skip(n).map_err(|source| GgufError::Io {
            path: self.path.to_owned(),
            source,
        })?;
        self.pos += n as u64;
        Ok(())
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let buf = self.string_bytes(what)?;
        String::from_utf8(buf).map_err(|_| self.corrupt(format!("{what} is not UTF-8")))
    }

    /// A string's bytes, UTF-8 or not.
    fn string_bytes(&mut self, what: &str) -> Result<Vec<u8>, GgufError> {
        let mut buf = Vec::new();
        self.string_into(&mut buf, what)?;
        Ok(buf)
    }

    /// A string's bytes into `buf` (replacing what it held): a vocabulary's tokens reuse one
    /// buffer.
    fn string_into(&mut self, buf: &mut Vec<u8>, what: &str) -> Result<(), GgufError> {
        let at = self.pos;
        let len = self.u64(what)?;
        if len > MAX_STRING {
            return Err(self.corrupt(format!(
                "{what} at byte {at} claims {len} bytes (the limit is {MAX_STRING})"
            )));
        }
        if len > self.len - self.pos {
            return Err(self.truncated(what));
        }
        buf.clear();
        buf.resize(len as usize, 0);
        self.exact(buf, what)
    }

    fn skip_string(&mut self, what: &str) -> Result<(), GgufError> {
        let at = self.pos;
        let len = self.u64(what)?;
        if len > MAX_STRING {
            return Err(self.corrupt(format!(
                "{what} at byte {at} claims {len} bytes (the limit is {MAX_STRING})"
            )));
        }
        self.skip(len, what)
    }

    fn read_file(&mut self) -> Result<GgufFile, GgufError> {
        let mut magic = vec![0u8; self.len.min(4) as usize];
        self.exact(&mut magic, "the magic")?;
        if magic != MAGIC {
            return Err(GgufError::BadMagic {
                path: self.path.to_owned(),
                magic: format!("\"{}\"", magic.escape_ascii()),
            });
        }
        let version = self.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion {
                path: self.path.to_owned(),
                version,
            });
        }
        let mut vocab = None;
        let n_tensors = self.u64("the tensor count")?;
        let n_kv = self.u64("the metadata count")?;
        if n_tensors > MAX_TENSORS {
            return Err(self.corrupt(format!(
                "the tensor count at byte 8 is {n_tensors} (the limit is {MAX_TENSORS})"
            )));
        }
        if n_kv > MAX_KV {
            return Err(self.corrupt(format!(
                "the metadata count at byte 16 is {n_kv} (the limit is {MAX_KV})"
            )));
        }
        // A count the rest of the file cannot hold is a corrupt file; and no count reserves
        // more than a few entries before they are read.
        let remaining = self.len - self.pos;
        if n_tensors > remaining / MIN_TENSOR_BYTES || n_kv > remaining / MIN_KV_BYTES {
            return Err(self.truncated(&format!(
                "the header ({n_tensors} tensors, {n_kv} metadata keys announced)"
            )));
        }

        let mut metadata = Vec::with_capacity(n_kv.min(RESERVE) as usize);
        let mut keys = HashSet::new();
        for i in 0..n_kv {
            let at = self.pos;
            let key = self.string(&format!("metadata key #{i}"))?;
            // llama.cpp refuses both; a sparse file's zeros read as empty keys forever.
            if key.is_empty() {
                return Err(self.corrupt(format!("metadata key #{i} at byte {at} is empty")));
            }
            if !keys.insert(key.clone()) {
                return Err(self.corrupt(format!("metadata key {key} at byte {at} is repeated")));
            }
            let at = self.pos;
            let type_id = self.u32(&format!("the type of {key}"))?;
            let ty = ValueType::from_id(type_id).ok_or_else(|| {
                self.corrupt(format!(
                    "{key} has unknown value type {type_id} (at byte {at})"
                ))
            })?;
            let value = if key == VOCAB_KEY && ty == ValueType::Array {
                self.vocabulary(&mut vocab)?
            } else {
                self.value(ty, &key)?
            };
            metadata.push((key, value));
        }

        let mut tensors = Vec::with_capacity(n_tensors.min(RESERVE) as usize);
        let mut names = HashSet::new();
        for i in 0..n_tensors {
            let at = self.pos;
            let tensor = self.tensor_info(i)?;
            if !names.insert(tensor.name.clone()) {
                return Err(
                    self.corrupt(format!("tensor {} at byte {at} is repeated", tensor.name))
                );
            }
            tensors.push(tensor);
        }

        // llama.cpp takes the alignment only as a u32.
        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some((_, Value::U32(a))) => u64::from(*a),
            Some((_, v)) => {
                return Err(self.corrupt(format!(
                    "general.alignment is a {:?}, not a U32",
                    v.value_type()
                )));
            }
        };
        if alignment == 0 || !alignment.is_power_of_two() {
            return Err(self.corrupt(format!(
                "general.alignment {alignment} is not a power of two"
            )));
        }
        let data_offset = self.pos.next_multiple_of(alignment);
        for t in &tensors {
            if !t.offset.is_multiple_of(alignment) {
                return Err(self.corrupt(format!(
                    "tensor {} has offset {}, not a multiple of the alignment {alignment}",
                    t.name, t.offset
                )));
            }
            let end = data_offset
                .saturating_add(t.offset)
                .saturating_add(t.n_bytes);
            if end > self.len {
                return Err(GgufError::Truncated {
                    path: self.path.to_owned(),
                    what: format!("the data of tensor {} (needs {end} bytes)", t.name),
                    offset: self.len,
                });
            }
        }
        Ok(GgufFile {
            path: self.path.to_owned(),
            version,
            file_size: self.len,
            metadata,
            tensors,
            data_offset,
            vocab,
        })
    }

    fn value(&mut self, ty: ValueType, key: &str) -> Result<Value, GgufError> {
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
    fn vocabulary(&mut self, scan: &mut Option<VocabScan>) -> Result<Value, GgufError> {
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

    fn tensor_info(&mut self, index: u64) -> Result<TensorInfo, GgufError> {
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
