//! How to load the model, size the context and run the CPU threads: plain data built by the CLI,
//! named as llama.cpp's `llama_model_params`, `llama_context_params` and `common_cpu_params`,
//! with llama-server's defaults. The parsers of llama-server's value syntaxes (CPU masks and
//! ranges, tensor overrides, metadata overrides) live here too, as plain functions.

use std::path::PathBuf;

use llama_cpp_2::context::params::KvCacheType;

use super::CheckpointLimits;

/// Everything the engine thread needs to start.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub model_path: PathBuf,
    pub model: ModelParams,
    pub context: ContextConfig,
    /// Threads for generation (`-t`, `-C`, `--prio`, `--poll`, …).
    pub cpu: CpuParams,
    /// Threads for prompt processing (`-tb`, `-Cb`, …).
    pub cpu_batch: CpuParams,
    /// Forward llama.cpp's own log lines to tracing.
    pub verbose: bool,
    /// Run each request's sampler chain inside the decode graph when all its samplers can
    /// (llama-server's `--backend-sampling`); other requests sample on the host.
    pub backend_sampling: bool,
    /// Decode one token at start, as llama-server's warm-up does (`--no-warmup` skips it).
    pub warmup: bool,
    /// Reuse a slot's cache only if the common prefix covers at least this fraction of the
    /// prompt (`--slot-prompt-similarity`; 0 disables the check).
    pub slot_prompt_similarity: f32,
    /// The host prompt cache's limit in MiB (`--cache-ram`; -1: none, 0: no cache).
    pub cache_ram_mib: i64,
    /// Save idle slots to the prompt cache and, with a unified KV cache, clear them from it
    /// (`--cache-idle-slots`).
    pub cache_idle_slots: bool,
    /// How long a slot is idle while others work before it is parked (`--cache-idle-after`;
    /// zero: at once, as llama-server parks every idle slot when a request starts).
    pub cache_idle_after: std::time::Duration,
    /// Context checkpoints per slot and their least spacing in tokens (`--ctx-checkpoints`,
    /// `--checkpoint-min-step`), taken on sliding-window models without `--swa-full`.
    pub checkpoints: CheckpointLimits,
    /// When a slot's context fills during generation, drop old tokens and go on
    /// (`--context-shift`), instead of stopping.
    pub context_shift: bool,
    /// Render special tokens in generated text (`--special`).
    pub special: bool,
    /// `--numa`.
    pub numa: Numa,
    /// LoRA adapters to load, in order (`--lora`, `--lora-scaled`); their ids are their
    /// places in this list.
    pub lora: Vec<super::lora::LoraAdapterConfig>,
    /// Control vectors added to every decode (`--control-vector…`).
    pub control_vectors: Option<super::control_vector::ControlVectors>,
}

/// `--numa`: how llama.cpp spreads work over NUMA nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numa {
    Disabled,
    Distribute,
    Isolate,
    Numactl,
}

/// `llama_model_params`: where and how the weights are loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelParams {
    pub n_gpu_layers: u32,
    pub split_mode: SplitMode,
    pub main_gpu: i32,
    /// Proportions per device (`-ts 3,1`); empty: llama.cpp's split by free memory.
    pub tensor_split: Vec<f32>,
    /// Backend devices to offload to, by name (`--device CUDA0,CUDA1`); `None`: llama.cpp's
    /// default (every GPU), `Some([])`: none.
    pub devices: Option<Vec<String>>,
    pub load_mode: LoadMode,
    pub lazy_mode: LazyMode,
    pub check_tensors: bool,
    /// Extra buffer types, i.e. weight repacking (`--repack`, default on).
    pub use_extra_bufts: bool,
    /// Bypass the host buffer (`--no-host`).
    pub no_host: bool,
    /// `--override-kv`.
    pub kv_overrides: Vec<KvOverride>,
    /// `-ot PATTERN=BUFFER_TYPE`, in order, before the MoE and FFN overrides below.
    pub tensor_overrides: Vec<TensorOverride>,
    /// Keep every MoE expert tensor in host memory (`--cpu-moe`).
    pub cpu_moe: bool,
    /// Keep the MoE experts of the first N layers in host memory (`--n-cpu-moe N`).
    pub n_cpu_moe: u32,
    /// Keep the dense FFN weights of the first N layers in host memory (`--n-cpu-ffn N`).
    pub n_cpu_ffn: u32,
}

impl Default for ModelParams {
    fn default() -> Self {
        Self {
            n_gpu_layers: 0,
            split_mode: SplitMode::Layer,
            main_gpu: 0,
            tensor_split: Vec::new(),
            devices: None,
            load_mode: LoadMode::Auto,
            lazy_mode: LazyMode::Auto,
            check_tensors: false,
            use_extra_bufts: true,
            no_host: false,
            kv_overrides: Vec::new(),
            tensor_overrides: Vec::new(),
            cpu_moe: false,
            n_cpu_moe: 0,
            n_cpu_ffn: 0,
        }
    }
}

impl ModelParams {
    /// Every tensor override, in the order llama.cpp tries them: `-ot` first, then the MoE
    /// experts and dense FFN weights kept on the CPU.
    pub fn all_tensor_overrides(&self) -> Vec<TensorOverride> {
        let cpu = |pattern: String| TensorOverride {
            pattern,
            buffer_type: "CPU".into(),
        };
        let mut all = self.tensor_overrides.clone();
        if self.cpu_moe {
            all.push(cpu(r"\.ffn_(up|down|gate|gate_up)_(ch|)exps".into()));
        } else {
            all.extend(
                (0..self.n_cpu_moe)
                    .map(|i| cpu(format!(r"blk\.{i}\.ffn_(up|down|gate|gate_up)_(ch|)exps"))),
            );
        }
        all.extend((0..self.n_cpu_ffn).map(|i| cpu(format!(r"blk\.{i}\.ffn_(up|down|gate)\."))));
        all
    }
}

/// `-sm`: how a model spreads over several GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitMode {
    None,
    Layer,
    Row,
    Tensor,
}

/// `-lm`: how the model file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    Auto,
    None,
    Mmap,
    Mlock,
    MmapMlock,
    DirectIo,
}

/// `-lzm`: tensors read from disk on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LazyMode {
    Off,
    Auto,
    On,
}

/// One `--override-kv KEY=TYPE:VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct KvOverride {
    pub key: String,
    pub value: KvValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum KvValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
}

/// One `-ot PATTERN=BUFFER_TYPE`: tensors whose name the regular expression finds go to the
/// named buffer type (`CPU`, `CUDA0`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorOverride {
    pub pattern: String,
    pub buffer_type: String,
}

/// `llama_context_params`: the context and its KV cache.
#[derive(Debug, Clone)]
pub struct ContextConfig {
    /// Total context (KV cells) of all slots; 0 = the model's training context.
    pub n_ctx: u32,
    pub n_batch: u32,
    pub n_ubatch: u32,
    /// Slots (`n_seq_max`).
    pub n_parallel: u32,
    /// One KV cache shared by all slots (`-kvu`): each slot may use the whole context;
    /// otherwise each has its own n_ctx / n_parallel cells.
    pub kv_unified: bool,
    /// Cap on a slot's context (`--kv-unified-per-slot`).
    pub n_ctx_slot_max: Option<u32>,
    pub swa_full: bool,
    /// `Some(true)` on, `Some(false)` off, `None` auto.
    pub flash_attn: Option<bool>,
    pub type_k: KvCacheType,
    pub type_v: KvCacheType,
    /// KV cache and attention on the GPU (`-kvo`, default on).
    pub offload_kqv: bool,
    /// Large-batch host operations offloaded to the GPU (`--op-offload`, default on).
    pub op_offload: bool,
    /// llama.cpp's performance counters off (default; `--perf` turns them on).
    pub no_perf: bool,
    pub rope: RopeParams,
    /// Embeddings on (`--embedding`): the context keeps room for an output per batch token
    /// and pools with `pooling`; each batch turns them on or off for what its tasks need.
    pub embeddings: bool,
    /// `--pooling` (unspecified: the model's own).
    pub pooling: super::Pooling,
}

impl Default for ContextConfig {
    fn default() -> Self {
        Self {
            n_ctx: 0,
            n_batch: 2048,
            n_ubatch: 512,
            n_parallel: 4,
            kv_unified: true,
            n_ctx_slot_max: None,
            swa_full: false,
            flash_attn: None,
            type_k: KvCacheType::F16,
            type_v: KvCacheType::F16,
            offload_kqv: true,
            op_offload: true,
            no_perf: true,
            rope: RopeParams::default(),
            embeddings: false,
            pooling: super::Pooling::Unspecified,
        }
    }
}

/// RoPE and YaRN settings; the defaults leave the model's own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeParams {
    /// `--rope-scaling`: `None` keeps the model's.
    pub scaling: Option<RopeScaling>,
    /// 0: from the model.
    pub freq_base: f32,
    /// 0: from the model.
    pub freq_scale: f32,
    pub yarn_orig_ctx: u32,
    /// Negative: from the model.
    pub yarn_ext_factor: f32,
    pub yarn_attn_factor: f32,
    pub yarn_beta_slow: f32,
    pub yarn_beta_fast: f32,
}

impl Default for RopeParams {
    fn default() -> Self {
        Self {
            scaling: None,
            freq_base: 0.0,
            freq_scale: 0.0,
            yarn_orig_ctx: 0,
            yarn_ext_factor: -1.0,
            yarn_attn_factor: -1.0,
            yarn_beta_slow: -1.0,
            yarn_beta_fast: -1.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeScaling {
    None,
    Linear,
    Yarn,
}

/// `common_cpu_params`: one thread pool's threads and how they are scheduled.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuParams {
    pub n_threads: i32,
    /// CPUs the threads may run on (`-C`/`-Cr`); `None`: any.
    pub cpumask: Option<Vec<bool>>,
    /// Pin each thread to one CPU of the mask (`--cpu-strict 1`).
    pub strict: bool,
    /// Thread priority: -1 low, 0 normal, 1 medium, 2 high, 3 realtime (`--prio`).
    pub priority: i32,
    /// Busy-wait level while waiting for work, 0..100 (`--poll`).
    pub poll: u32,
}

impl CpuParams {
    /// llama.cpp's defaults for `n_threads` threads.
    pub fn new(n_threads: i32) -> Self {
        Self {
            n_threads,
            cpumask: None,
            strict: false,
            priority: 0,
            poll: 50,
        }
    }
}

/// The most CPUs a mask can name (ggml's `GGML_MAX_N_THREADS`).
pub const MAX_CPUS: usize = 512;

/// Adds the CPUs of a hex mask (`-C 0xff`, any length; bit i is CPU i) to `mask`.
pub fn parse_cpu_mask(text: &str, mask: &mut Vec<bool>) -> Result<(), String> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    let digits = &digits[..digits.len().min(MAX_CPUS / 4)];
    mask.resize(MAX_CPUS, false);
    for (i, c) in digits.chars().rev().enumerate() {
        let v = c
            .to_digit(16)
            .ok_or_else(|| format!("invalid hex character {c:?} in CPU mask {text:?}"))?;
        for bit in 0..4 {
            if v & (1 << bit) != 0 {
                mask[i * 4 + bit] = true;
            }
        }
    }
    Ok(())
}

/// Adds the CPUs of a range (`-Cr 0-7`; either end may be left out) to `mask`.
pub fn parse_cpu_range(text: &str, mask: &mut Vec<bool>) -> Result<(), String> {
    let (lo, hi) = text
        .split_once('-')
        .ok_or_else(|| format!("CPU range {text:?}: expected [START]-[END]"))?;
    let bound = |s: &str, default: usize| -> Result<usize, String> {
        if s.is_empty() {
            return Ok(default);
        }
        let n: usize = s
            .parse()
            .map_err(|_| format!("CPU range {text:?}: {s:?} is not a number"))?;
        if n >= MAX_CPUS {
            return Err(format!("CPU range {text:?}: {n} is out of bounds"));
        }
        Ok(n)
    };
    let (lo, hi) = (bound(lo, 0)?, bound(hi, MAX_CPUS - 1)?);
    mask.resize(MAX_CPUS, false);
    mask[lo..=hi].fill(true);
    Ok(())
}

/// Parses `-ot`'s `PATTERN=BUFFER_TYPE,…`.
pub fn parse_tensor_overrides(text: &str) -> Result<Vec<TensorOverride>, String> {
    text.split(',')
        .map(|item| {
            let (pattern, buffer_type) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?}: expected <tensor name pattern>=<buffer type>"))?;
            Ok(TensorOverride {
                pattern: pattern.to_string(),
                buffer_type: buffer_type.to_string(),
            })
        })
        .collect()
}

/// Parses `--override-kv`'s `KEY=TYPE:VALUE,…` (types int, float, bool, str).
pub fn parse_kv_overrides(text: &str) -> Result<Vec<KvOverride>, String> {
    text.split(',')
        .map(|item| {
            let bad = || format!("{item:?}: expected KEY=TYPE:VALUE (int, float, bool or str)");
            let (key, typed) = item.split_once('=').ok_or_else(bad)?;
            let (kind, value) = typed.split_once(':').ok_or_else(bad)?;
            if key.len() >= 128 {
                return Err(format!("{key:?}: keys are at most 127 bytes"));
            }
            let value = match kind {
                "int" => KvValue::Int(value.parse().map_err(|_| bad())?),
                "float" => KvValue::Float(value.parse().map_err(|_| bad())?),
                "bool" => KvValue::Bool(match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad()),
                }),
                "str" if value.len() < 128 => KvValue::Str(value.to_string()),
                "str" => return Err(format!("{item:?}: strings are at most 127 bytes")),
                _ => return Err(bad()),
            };
            Ok(KvOverride {
                key: key.to_string(),
                value,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpus(mask: &[bool]) -> Vec<usize> {
        mask.iter()
            .enumerate()
            .filter_map(|(i, &on)| on.then_some(i))
            .collect()
    }

    #[test]
    fn cpu_masks_and_ranges_as_llama_cpp_reads_them() {
        let cases: &[(&str, &[usize])] = &[
            ("0x1", &[0]),
            ("3", &[0, 1]),
            ("0xf0", &[4, 5, 6, 7]),
            ("A", &[1, 3]),
            ("100", &[8]),
        ];
        for &(text, want) in cases {
            let mut mask = Vec::new();
            parse_cpu_mask(text, &mut mask).unwrap();
            assert_eq!(cpus(&mask), want, "{text}");
        }
        assert!(parse_cpu_mask("0xfg", &mut Vec::new()).is_err());
        let mut mask = Vec::new();
        parse_cpu_range("2-4", &mut mask).unwrap();
        parse_cpu_mask("1", &mut mask).unwrap();
        assert_eq!(cpus(&mask), [0, 2, 3, 4]);
        let mut mask = Vec::new();
        parse_cpu_range("510-", &mut mask).unwrap();
        assert_eq!(cpus(&mask), [510, 511]);
        assert!(parse_cpu_range("7", &mut Vec::new()).is_err());
        assert!(parse_cpu_range("0-512", &mut Vec::new()).is_err());
    }

    #[test]
    fn overrides_parse_and_keep_their_order() {
        let ot = parse_tensor_overrides(r"blk\.0\.=CPU,exps=CUDA0").unwrap();
        assert_eq!(ot[0].pattern, r"blk\.0\.");
        assert_eq!(ot[1].buffer_type, "CUDA0");
        assert!(parse_tensor_overrides("nobuffer").is_err());
        let kv = parse_kv_overrides("a.b=int:3,c=bool:false,d=str:x,e=float:0.5").unwrap();
        assert_eq!(kv[0].value, KvValue::Int(3));
        assert_eq!(kv[1].value, KvValue::Bool(false));
        assert_eq!(kv[2].value, KvValue::Str("x".into()));
        assert_eq!(kv[3].value, KvValue::Float(0.5));
        assert!(parse_kv_overrides("a=int:x").is_err());
        assert!(parse_kv_overrides("a=uint:1").is_err());
        let params = ModelParams {
            tensor_overrides: ot,
            n_cpu_moe: 2,
            n_cpu_ffn: 1,
            ..ModelParams::default()
        };
        let all: Vec<String> = params
            .all_tensor_overrides()
            .into_iter()
            .map(|o| o.pattern)
            .collect();
        assert_eq!(all.len(), 5);
        assert_eq!(all[2], r"blk\.0\.ffn_(up|down|gate|gate_up)_(ch|)exps");
        assert_eq!(all[4], r"blk\.0\.ffn_(up|down|gate)\.");
    }
}
