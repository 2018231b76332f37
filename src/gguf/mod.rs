//! GGUF header inspection: metadata and tensor layout of a model file, read without loading
//! weights, and a small writer so tests can make tiny models of any architecture.
//!
//! Why hand-written rather than llama.cpp's gguf API: the planner must never call llama.cpp
//! (architecture invariant, see `plan`), and llama-cpp-2's `GgufContext` only exposes scalar and
//! string values and the tensor count: no arrays (per-layer `head_count_kv`, the SWA pattern, the
//! vocabulary size), no tensor types, shapes or offsets, and no error detail (`from_file` returns
//! `Option`). The format is small (a header, key/value pairs, tensor infos), so a reader that
//! seeks past big arrays costs a few hundred lines and answers in microseconds.
//!
//! Entry points: [`GgufFile::read`] for one file, [`ModelSummary::from_path`] for a model (split
//! files `-00001-of-0000N.gguf` read as one), [`GgufWriter`] to make files.

mod read;
mod summary;
mod types;
mod validate;
mod value;
mod vocab;
mod write;

pub use read::{GgufFile, Prefix, TensorInfo};
pub use summary::{LayerTensors, ModelSummary, TensorGroup, TypeBytes, read_parts, split_name};
pub use types::{
    GgmlType, QuantProfile, ggml_type, ggml_type_by_name, quant_by_ftype, quant_by_name, quants,
};
pub use value::{Value, ValueType};
pub use vocab::VocabScan;
pub use write::GgufWriter;

use std::path::PathBuf;

/// What can go wrong reading or writing a GGUF file; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a GGUF file (bad magic {magic})")]
    BadMagic { path: PathBuf, magic: String },
    #[error("{path}: unsupported GGUF version {version} (supported: 2 and 3)")]
    UnsupportedVersion { path: PathBuf, version: u32 },
    #[error("{path}: truncated GGUF file (ends inside {what}, at byte {offset})")]
    Truncated {
        path: PathBuf,
        what: String,
        offset: u64,
    },
    #[error("{path}: corrupt GGUF header: {problem}")]
    Corrupt { path: PathBuf, problem: String },
    #[error("{path}: split model part {part} of {count} is missing ({missing})")]
    MissingSplit {
        path: PathBuf,
        part: u32,
        count: u32,
        missing: PathBuf,
    },
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
}
