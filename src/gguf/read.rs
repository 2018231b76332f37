//! The GGUF reader: header, key/value metadata and tensor infos, never the tensor data. Big
//! arrays (a vocabulary of 256k tokens) are skipped with seeks, keeping only their length.

mod metadata;
mod reader;
mod tensors;

use super::GgufError;
use super::value::{Value, ValueType};
use super::vocab::{VOCAB_KEY, VocabScan};
use reader::{Reader, Source};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Cursor};
use std::path::{Path, PathBuf};

pub use tensors::TensorInfo;
pub(crate) use tensors::tensor_bytes;

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

impl<S: Source> Reader<'_, S> {
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
}
