//! `ModelSummary`: what the planner needs from a model's headers — hyperparameters as llama.cpp
//! derives them (per-layer KV heads, which layers use sliding-window attention) and the bytes of
//! every tensor, grouped per layer.

use super::GgufError;
use super::read::GgufFile;
use super::types::{QuantProfile, quant_by_ftype, quants};
use super::validate;
use super::value::Value;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Tensor bytes of one layer (`blk.N.*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LayerTensors {
    pub index: u32,
    /// All of the layer's tensors, experts included.
    pub bytes: u64,
    /// MoE expert tensors (`ffn_*_exps`), the part `--n-cpu-moe` keeps on the CPU.
    pub expert_bytes: u64,
    /// The same bytes per ggml type, for the planner's decode-speed prediction (CPU kernels
    /// run at different speeds per type).
    pub by_type: Vec<TypeBytes>,
}

/// Bytes of one ggml type in a layer: all of them, and those of MoE experts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TypeBytes {
    pub ggml_type: u32,
    pub bytes: u64,
    pub expert_bytes: u64,
}

/// A tensor outside the layers (`token_embd`, `output`, `output_norm`, …).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorGroup {
    pub name: String,
    pub ggml_type: u32,
    pub bytes: u64,
}

/// The parts of a model's headers that decide its memory use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSummary {
    /// The model's first file; `files` lists every part of a split model.
    pub path: PathBuf,
    pub files: Vec<PathBuf>,
    /// Bytes on disk, all parts together.
    pub file_size: u64,
    pub architecture: String,
    pub name: Option<String>,
    /// `n_layer`.
    pub block_count: u32,
    /// `n_ctx_train`.
    pub context_length: u64,
    /// `n_embd`.
    pub embedding_length: u64,
    /// `n_head` per layer.
    pub head_count: Vec<u32>,
    /// `n_head_kv` per layer.
    pub head_count_kv: Vec<u32>,
    /// `n_embd_head_k`.
    pub key_length: u64,
    /// `n_embd_head_v`.
    pub value_length: u64,
    /// `n_swa`: the window of sliding-window layers, if the model has any.
    pub sliding_window: Option<u64>,
    /// Per layer: does it use sliding-window attention (`hparams.is_swa(il)`).
    pub swa_layers: Vec<bool>,
    /// Per layer: bytes of one sequence's recurrent state (llama.cpp's `n_embd_r` and `n_embd_s`
    /// rows, F32), 0 for attention layers. Known for the architectures whose every layer is
    /// recurrent (Mamba, Mamba-2, RWKV) and for LFM2; empty for the others, the other hybrids
    /// included.
    pub recurrent_state: Vec<u64>,
    /// `n_ff`: the widest layer's feed-forward length (0 if absent).
    pub feed_forward_length: u64,
    /// `n_ff_exp`: each expert's feed-forward length (MoE models).
    pub expert_feed_forward_length: u64,
    pub expert_count: u32,
    pub expert_used_count: u32,
    pub vocab_size: u64,
    /// `general.file_type`, if present.
    pub file_type: Option<u32>,
    /// The quant, from `general.file_type` or else the file name.
    pub quant: Option<QuantProfile>,
    pub layers: Vec<LayerTensors>,
    pub non_layer: Vec<TensorGroup>,
}

/// Architectures whose sliding-window layers llama.cpp lays out by a repeating pattern:
/// (architecture, default pattern, dense layer first), from `load_swa_pattern` calls in
/// llama.cpp's `src/models/*.cpp`. Gemma 3 uses SWA only when the file sets a window.
const SWA_PATTERNS: &[(&str, u32, bool)] = &[
    ("gemma2", 2, false),
    ("gemma3", 6, false),
    ("gemma3n", 5, false),
    ("gemma-embedding", 6, false),
    ("gpt-oss", 2, false),
    ("cohere2", 4, false),
    ("exaone4", 4, false),
    ("olmo2", 4, false),
    ("afmoe", 4, false),
    ("smallthinker", 4, true),
    ("plamo3", 8, false),
];

impl ModelSummary {
    /// Reads a model's headers; for a split model, any part reads all parts.
    pub fn from_path(path: &Path) -> Result<ModelSummary, GgufError> {
        Self::from_files(&read_parts(path)?)
    }

    /// Summarizes already-read headers (the first holds the metadata).
    pub fn from_files(files: &[GgufFile]) -> Result<ModelSummary, GgufError> {
        let first = &files[0];
        let path = first.path.clone();
        let invalid = |problem: String| GgufError::Invalid {
            path: path.clone(),
            problem,
        };
        let arch = first
            .get_str("general.architecture")
            .ok_or_else(|| invalid("no general.architecture key".into()))?
            .to_owned();
        let key = |name: &str| format!("{arch}.{name}");
        let block_count = first
            .get_u64(&key("block_count"))
            .ok_or_else(|| invalid(format!("no {arch}.block_count key")))?;
        // Before anything else: the per-layer vectors below are sized by this count, and llama.cpp
        // aborts on what these checks refuse.
        validate::check(first, &arch).map_err(invalid)?;
        let block_count = block_count as u32;
        let n = block_count as usize;
        let embedding_length = first.get_u64(&key("embedding_length")).unwrap_or(0);
        let head_count = per_layer(first.get(&key("attention.head_count")), n, 0);
        let head_count_kv = match first.get(&key("attention.head_count_kv")) {
            Some(v) => per_layer(Some(v), n, 0),
            None => head_count.clone(),
        };
        let n_head = head_count.first().copied().unwrap_or(0) as u64;
        let key_length = first
            .get_u64(&key("attention.key_length"))
            .unwrap_or(embedding_length.checked_div(n_head).unwrap_or(0));
        let value_length = first
            .get_u64(&key("attention.value_length"))
            .unwrap_or(key_length);
        let (sliding_window, swa_layers) = swa(first, &arch, n);
        let recurrent_state = recurrent_state(first, &arch, &head_count_kv, embedding_length);
        let file_type = first.get_u64("general.file_type").map(|v| v as u32);
        let quant = file_type
            .and_then(quant_by_ftype)
            .or_else(|| quant_from_name(&path))
            .cloned();

        let mut layers: Vec<LayerTensors> = (0..block_count)
            .map(|index| LayerTensors {
                index,
                ..Default::default()
            })
            .collect();
        let mut non_layer = Vec::new();
        for t in files.iter().flat_map(|f| &f.tensors) {
            match layer_of(&t.name) {
                Some(il) if (il as usize) < n => {
                    let layer = &mut layers[il as usize];
                    let expert = t.name.contains("_exps");
                    layer.bytes += t.n_bytes;
                    let i = match layer
                        .by_type
                        .iter()
                        .position(|b| b.ggml_type == t.ggml_type)
                    {
                        Some(i) => i,
                        None => {
                            layer.by_type.push(TypeBytes {
                                ggml_type: t.ggml_type,
                                ..TypeBytes::default()
                            });
                            layer.by_type.len() - 1
                        }
                    };
                    layer.by_type[i].bytes += t.n_bytes;
                    if expert {
                        layer.expert_bytes += t.n_bytes;
                        layer.by_type[i].expert_bytes += t.n_bytes;
                    }
                }
                _ => non_layer.push(TensorGroup {
                    name: t.name.clone(),
                    ggml_type: t.ggml_type,
                    bytes: t.n_bytes,
                }),
            }
        }
        let vocab_size = match first.get("tokenizer.ggml.tokens") {
            Some(Value::Array { len, .. }) => *len,
            _ => files
                .iter()
                .flat_map(|f| &f.tensors)
                .find(|t| t.name == "token_embd.weight")
                .and_then(|t| t.shape.get(1).copied())
                .unwrap_or(0),
        };
        Ok(ModelSummary {
            files: files.iter().map(|f| f.path.clone()).collect(),
            file_size: files.iter().map(|f| f.file_size).sum(),
            name: first.get_str("general.name").map(str::to_owned),
            context_length: first.get_u64(&key("context_length")).unwrap_or(0),
            feed_forward_length: per_layer(first.get(&key("feed_forward_length")), n, 0)
                .into_iter()
                .max()
                .map_or(0, u64::from),
            expert_feed_forward_length: first
                .get_u64(&key("expert_feed_forward_length"))
                .unwrap_or(0),
            expert_count: first.get_u64(&key("expert_count")).unwrap_or(0) as u32,
            expert_used_count: first.get_u64(&key("expert_used_count")).unwrap_or(0) as u32,
            path,
            architecture: arch,
            block_count,
            embedding_length,
            head_count,
            head_count_kv,
            key_length,
            value_length,
            sliding_window,
            swa_layers,
            recurrent_state,
            vocab_size,
            file_type,
            quant,
            layers,
            non_layer,
        })
    }

    /// Bytes of all tensors.
    pub fn tensor_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.bytes).sum::<u64>()
            + self.non_layer.iter().map(|t| t.bytes).sum::<u64>()
    }

    /// `n_embd_k_gqa(il)`: key width of layer `il` in the KV cache.
    pub fn n_embd_k_gqa(&self, il: usize) -> u64 {
        self.key_length * u64::from(self.head_count_kv.get(il).copied().unwrap_or(0))
    }

    /// `n_embd_v_gqa(il)`: value width of layer `il` in the KV cache.
    pub fn n_embd_v_gqa(&self, il: usize) -> u64 {
        self.value_length * u64::from(self.head_count_kv.get(il).copied().unwrap_or(0))
    }

    /// The quant's name as llama.cpp prints it, or `?`.
    pub fn quant_name(&self) -> String {
        self.quant
            .as_ref()
            .map_or_else(|| "?".to_owned(), QuantProfile::display_name)
    }
}

/// A scalar or per-layer array value, expanded to one entry per layer.
fn per_layer(value: Option<&Value>, n: usize, default: u32) -> Vec<u32> {
    match value {
        Some(v) => match v.as_array() {
            Some(items) => (0..n)
                .map(|i| items.get(i).and_then(Value::as_u64).unwrap_or(0) as u32)
                .collect(),
            None => vec![v.as_u64().unwrap_or(u64::from(default)) as u32; n],
        },
        None => vec![default; n],
    }
}

/// Architectures whose window llama.cpp fixes whatever the file says: (architecture, window,
/// default pattern). Llama 4 attends in chunks of 8 192 tokens on three layers of four, unless
/// the file sets its window to 0 (`models/llama4.cpp`); the KV cache sizes those layers as it
/// sizes sliding-window ones.
const FIXED_WINDOWS: &[(&str, u64, u32)] = &[("llama4", 8192, 4)];

/// Per layer, one sequence's recurrent state in bytes, F32 as llama.cpp keeps it: for the
/// architectures llama.cpp builds with recurrent layers only (`llm_arch_is_recurrent`), Mamba's
/// convolution and SSM states (`(d_conv - 1)(d_inner + 2 n_group d_state)` and `d_state d_inner`
/// values) and RWKV's token shifts and WKV state (`token_shift_count n_embd` and `n_embd
/// head_size`); for LFM2, a hybrid, the short convolutions' `n_embd (l_cache - 1)` values on its
/// layers without KV heads. Empty for any other architecture (the other hybrids, whose
/// recurrent layers and states llama.cpp lays out each its own way).
fn recurrent_state(file: &GgufFile, arch: &str, head_count_kv: &[u32], n_embd: u64) -> Vec<u64> {
    let get = |name: &str| file.get_u64(&format!("{arch}.{name}")).unwrap_or(0);
    let n = head_count_kv.len();
    let values = match arch {
        "lfm2" | "lfm2moe" => {
            let conv = 4 * n_embd * get("shortconv.l_cache").saturating_sub(1);
            return head_count_kv
                .iter()
                .map(|&kv| if kv == 0 { conv } else { 0 })
                .collect();
        }
        "mamba" | "mamba2" => {
            let (d_conv, d_inner, d_state) = (
                get("ssm.conv_kernel"),
                get("ssm.inner_size"),
                get("ssm.state_size"),
            );
            let conv = d_conv.saturating_sub(1) * (d_inner + 2 * get("ssm.group_count") * d_state);
            conv + d_state * d_inner
        }
        "rwkv6" | "rwkv6qwen2" | "rwkv7" | "arwkv7" => {
            let shifts = file
                .get_u64(&format!("{arch}.token_shift_count"))
                .unwrap_or(2);
            shifts * n_embd + n_embd * get("wkv.head_size")
        }
        _ => return Vec::new(),
    };
    vec![4 * values; n]
}

/// Sliding window and per-layer SWA flags, as llama.cpp's `load_swa_pattern` sets them.
fn swa(file: &GgufFile, arch: &str, n: usize) -> (Option<u64>, Vec<bool>) {
    let key = file.get_u64(&format!("{arch}.attention.sliding_window"));
    let fixed = FIXED_WINDOWS.iter().find(|(a, _, _)| *a == arch);
    let window = match fixed {
        Some(&(_, window, _)) => Some(window).filter(|_| key != Some(0)),
        None => key.filter(|w| *w > 0),
    };
    let pattern = file.get(&format!("{arch}.attention.sliding_window_pattern"));
    let Some(window) = window else {
        return (None, vec![false; n]);
    };
    // An explicit per-layer array wins (any architecture).
    if let Some(items) = pattern.and_then(Value::as_array) {
        let layers = (0..n)
            .map(|i| items.get(i).and_then(Value::as_u64).unwrap_or(0) != 0)
            .collect();
        return (Some(window), layers);
    }
    let (default, dense_first) = match (SWA_PATTERNS.iter().find(|(a, _, _)| *a == arch), fixed) {
        (Some(&(_, pattern, dense_first)), _) => (pattern, dense_first),
        (None, Some(&(_, _, pattern))) => (pattern, false),
        // llama.cpp ignores the window of architectures it does not build with SWA.
        (None, None) => return (None, vec![false; n]),
    };
    let n_pattern = pattern
        .and_then(Value::as_u64)
        .unwrap_or(u64::from(default)) as usize;
    let layers = (0..n)
        .map(|il| {
            n_pattern == 0
                || if dense_first {
                    il % n_pattern != 0
                } else {
                    il % n_pattern < n_pattern - 1
                }
        })
        .collect();
    (Some(window), layers)
}

/// `blk.N.…` → N.
fn layer_of(name: &str) -> Option<u32> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

/// The quant named in a file name (`model-Q4_K_M.gguf`), longest name first so `q4_k_m` wins
/// over `q4_k`.
pub(crate) fn quant_from_name(path: &Path) -> Option<&'static QuantProfile> {
    let stem = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    let mut all = quants();
    all.sort_by_key(|q| std::cmp::Reverse(q.name.len()));
    all.into_iter().find(|q| {
        stem.match_indices(q.name.as_str()).any(|(i, m)| {
            let before = stem[..i].chars().next_back();
            let after = stem[i + m.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_alphanumeric())
                && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    })
}

/// `x-00002-of-00003.gguf` → (prefix `x`, 2, 3).
pub fn split_name(path: &Path) -> Option<(String, u32, u32)> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".gguf")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, part) = rest.rsplit_once('-')?;
    if part.len() != 5 || count.len() != 5 {
        return None;
    }
    Some((prefix.to_owned(), part.parse().ok()?, count.parse().ok()?))
}

/// The headers of every part of the model `path` belongs to, in order.
pub fn read_parts(path: &Path) -> Result<Vec<GgufFile>, GgufError> {
    split_parts(path)?
        .iter()
        .map(|p| GgufFile::read(p))
        .collect()
}

/// Every part of the model `path` belongs to, in order (just `path` if it is not split).
pub(crate) fn split_parts(path: &Path) -> Result<Vec<PathBuf>, GgufError> {
    let Some((prefix, _, count)) = split_name(path) else {
        return Ok(vec![path.to_owned()]);
    };
    let dir = path.parent().unwrap_or(Path::new(""));
    (1..=count)
        .map(|part| {
            let p = dir.join(format!("{prefix}-{part:05}-of-{count:05}.gguf"));
            if p.is_file() {
                Ok(p)
            } else {
                Err(GgufError::MissingSplit {
                    path: path.to_owned(),
                    part,
                    count,
                    missing: p,
                })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quant_from_file_names() {
        let cases = [
            ("gemma-3-270m-Q4_K_M.gguf", Some("q4_k_m")),
            ("model.q8_0.gguf", Some("q8_0")),
            ("Qwen3-8B-IQ4_XS.gguf", Some("iq4_xs")),
            ("model-f16-00001-of-00002.gguf", Some("f16")),
            ("model-q4_k.gguf", None),
            ("model.gguf", None),
        ];
        for (name, want) in cases {
            let got = quant_from_name(Path::new(name)).map(|q| q.name.as_str());
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn split_names() {
        assert_eq!(
            split_name(Path::new("dir/m-Q8_0-00002-of-00003.gguf")),
            Some(("m-Q8_0".into(), 2, 3))
        );
        assert_eq!(split_name(Path::new("m-Q8_0.gguf")), None);
    }

    #[test]
    fn layer_names() {
        assert_eq!(layer_of("blk.12.ffn_up.weight"), Some(12));
        assert_eq!(layer_of("token_embd.weight"), None);
        assert_eq!(layer_of("blk.x.attn"), None);
    }
}
