//! Quantizing GGUF models through llama.cpp's quantizer (`llama_model_quantize`), one file or a
//! ladder of quants. The one module with raw `llama-cpp-sys-2` calls: llama-cpp-2 does not wrap
//! the quantizer. The input is checked with our GGUF reader first, so a bad file gets our error
//! message rather than llama.cpp's.

use crate::gguf::{GgufError, GgufFile, ModelSummary, QuantProfile, TensorInfo, ggml_type, quants};
use std::ffi::CString;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("{path}: path is not valid UTF-8 without NUL bytes, which llama.cpp needs")]
    BadPath { path: PathBuf },
    #[error("{input}: llama.cpp failed to quantize to {quant} (see its log above)")]
    Failed { input: PathBuf, quant: String },
    #[error("{output}: is the input file; choose another output")]
    SameFile { output: PathBuf },
    #[error("{output}: {source}")]
    Io {
        output: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a quantization did.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeReport {
    pub output: PathBuf,
    pub quant: String,
    pub output_size: u64,
    /// The input's quant when it was already quantized (llama.cpp requantized it: quality lost
    /// in the input cannot come back).
    pub requantized_from: Option<String>,
}

/// The quants of `gguf-serve quantize --ladder`, best first (`ladder = true` in
/// quant-profiles/quants.toml).
pub fn ladder() -> Vec<&'static QuantProfile> {
    quants().into_iter().filter(|q| q.ladder).collect()
}

/// What in the input is already quantized, if anything: its quant (anything but f32, f16,
/// bf16), or the quantized tensor types of a file that is F16 overall (gpt-oss ships its MoE
/// experts as MXFP4 beside F16 or BF16 tensors). llama.cpp's quantizer refuses either unless
/// asked to requantize.
fn quantized_input(input: &ModelSummary, tensors: &[TensorInfo]) -> Option<String> {
    let overall = input
        .quant
        .as_ref()
        .filter(|q| !matches!(q.name.as_str(), "f32" | "f16" | "bf16"))
        .map(QuantProfile::display_name);
    overall.or_else(|| {
        let mut types: Vec<&str> = tensors
            .iter()
            .filter_map(|t| ggml_type(t.ggml_type))
            .filter(|t| t.block_size > 1)
            .map(|t| t.name.as_str())
            .collect();
        types.sort_unstable();
        types.dedup();
        (!types.is_empty()).then(|| format!("{} tensors", types.join(", ").to_uppercase()))
    })
}

/// The file name of `quant` in a ladder made from `input`: its name with the quant replaced or
/// appended (`gemma-3-270m-q4_k_m.gguf` → `gemma-3-270m-Q8_0.gguf`).
pub fn ladder_file_name(input: &Path, quant: &QuantProfile) -> String {
    let stem = input
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    let lower = stem.to_ascii_lowercase();
    let base = quants()
        .into_iter()
        .filter_map(|q| {
            lower
                .rfind(&q.name)
                .filter(|i| i + q.name.len() == lower.len())
        })
        .min()
        .map_or(stem.as_str(), |i| {
            stem[..i].trim_end_matches(['-', '_', '.'])
        });
    format!("{base}-{}.gguf", quant.display_name())
}

/// Quantizes `input` to `quant` into `output` with `n_threads` threads (≤ 0: all cores).
/// Already-quantized input is requantized (llama.cpp's `--allow-requantize`) and the report says
/// so. Blocks until done: seconds for small models, minutes for large ones.
pub fn quantize(
    input: &Path,
    output: &Path,
    quant: &QuantProfile,
    n_threads: i32,
) -> Result<QuantizeReport, QuantizeError> {
    let summary = ModelSummary::from_path(input)?;
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if summary.files.iter().any(|f| same(f, output)) {
        return Err(QuantizeError::SameFile {
            output: output.to_owned(),
        });
    }
    let tensors = GgufFile::read(&summary.path)?.tensors;
    let requantized_from = quantized_input(&summary, &tensors);
    let c_path = |p: &Path| {
        p.to_str()
            .and_then(|s| CString::new(s).ok())
            .ok_or_else(|| QuantizeError::BadPath { path: p.to_owned() })
    };
    let (c_in, c_out) = (c_path(&summary.path)?, c_path(output)?);
    // llama.cpp's quantizer needs ggml initialised; an already-initialised backend is fine.
    let _backend = llama_cpp_2::llama_backend::LlamaBackend::init().ok();

    // SAFETY: returns a plain struct by value; no pointers or preconditions.
    let mut params = unsafe { llama_cpp_sys_2::llama_model_quantize_default_params() };
    params.nthread = n_threads;
    params.ftype = quant.ftype as _;
    params.allow_requantize = requantized_from.is_some();
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call; `params` is a
    // fully initialised struct from llama_model_quantize_default_params whose pointer fields we
    // leave null (no imatrix, overrides or pruning), which llama.cpp accepts.
    let rc =
        unsafe { llama_cpp_sys_2::llama_model_quantize(c_in.as_ptr(), c_out.as_ptr(), &params) };
    if rc != 0 {
        return Err(QuantizeError::Failed {
            input: input.to_owned(),
            quant: quant.display_name(),
        });
    }
    let output_size = std::fs::metadata(output)
        .map_err(|source| QuantizeError::Io {
            output: output.to_owned(),
            source,
        })?
        .len();
    Ok(QuantizeReport {
        output: output.to_owned(),
        quant: quant.display_name(),
        output_size,
        requantized_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::quant_by_name;

    #[test]
    fn ladder_names() {
        let q8 = quant_by_name("q8_0").unwrap();
        let cases = [
            ("models/gemma-3-270m-q4_k_m.gguf", "gemma-3-270m-Q8_0.gguf"),
            ("model.F16.gguf", "model-Q8_0.gguf"),
            ("plain.gguf", "plain-Q8_0.gguf"),
        ];
        for (input, want) in cases {
            assert_eq!(ladder_file_name(Path::new(input), q8), want, "{input}");
        }
        let names: Vec<_> = ladder().iter().map(|q| q.name.as_str()).collect();
        assert_eq!(
            names,
            ["q8_0", "q6_k", "q5_k_m", "q4_k_m", "q3_k_m", "q2_k"]
        );
    }
}
