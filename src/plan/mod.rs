//! The memory model and the choice of quant and offload. Pure functions over plain data
//! (a [`ModelSummary`] per file, a [`PlanRequest`], a [`Budget`]); architecture invariant:
//! nothing here calls llama.cpp, so every policy is table-tested and `plan` answers in
//! milliseconds for models that do not fit this machine.
//!
//! # API for the server
//!
//! ```no_run
//! use gguf_serve::plan::{self, BandwidthSource, Budget, ContextParams, GpuLayers, HostSpeed};
//! use gguf_serve::plan::{Margin, PlanRequest, Prefer, SplitRequest};
//! use gguf_serve::source;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let candidates = source::resolve(std::path::Path::new("models/"), None)?; // `--quant auto`
//! let request = PlanRequest {
//!     context: ContextParams { n_ctx: 32768, n_seq: 4, ..ContextParams::default() },
//!     n_gpu_layers: GpuLayers::Auto, // `-ngl auto`
//!     n_cpu_moe: None,               // `--n-cpu-moe`
//!     prefer: Prefer::Balanced,      // `--prefer`
//!     cache_ram_mib: 8192,           // `--cache-ram`
//!     split: SplitRequest::default(), // `--split-mode`, `--main-gpu`, `--tensor-split`
//!     ctx_checkpoints: 32,           // `--ctx-checkpoints`
//!     ubatch_auto: true,             // no `-ub`: the planner may raise it
//! };
//! // Free memory and bandwidth as `hardware::budget` detects them; margins by the default rule.
//! let host = HostSpeed::bandwidth_only(20e9, BandwidthSource::Measured);
//! let budget = Budget::new(vec![], 32 << 30, Margin::Default, host);
//! let decision = plan::choose(&candidates, &request, &budget)?;
//! // Load decision.file with -ngl decision.n_gpu_layers --n-cpu-moe decision.n_cpu_moe
//! // -ub decision.n_ubatch --cache-ram decision.prompt_cache.mib() (and no GPU device at all
//! // if !decision.use_gpu),
//! // with several GPUs -ts from decision.split (its tensor_split, and memory per device);
//! for reason in &decision.reasons { println!("{reason}"); }
//! # Ok(()) }
//! ```
//!
//! # Policy
//!
//! For each file, [`plan_file`] predicts memory ([`memory`] documents the formulas and where in
//! llama.cpp they come from) and finds the most GPU use that fits: every layer; else, for MoE
//! models, every layer with the experts of the first N layers on the CPU (`--n-cpu-moe N`); else
//! the most layers (`-ngl N`), down to 0 (llama.cpp still puts the compute buffers on the GPU);
//! if the GPU cannot hold even those, the file runs without it ([`Decision::use_gpu`] false).
//! The offload is fitted at the ubatch asked for (llama-server's 512 without `-ub`); a model
//! wholly on the GPU then gets [`GPU_UBATCH`] when its larger buffers fit too, never at the cost
//! of a layer. It also predicts the file's decode speed at that offload ([`speed`]). [`choose`]
//! then picks by [`Prefer`]: `balanced` (the default) takes the highest-quality quant (rank in
//! `quant-profiles/quants.toml`) predicted to decode at least [`BALANCED_SHARE`] as fast as
//! the fastest quant that fits; `speed` the fastest; `quality` the highest-quality quant that
//! fits entirely on the GPU, else the one with the largest share of its weights on the GPU,
//! else (no GPU) the highest-quality quant that fits in host memory. If nothing fits anywhere,
//! [`PlanError::NothingFits`] says what the smallest file needs and at which context it fits.
//! With several GPUs, an offload fits when [`split::place`] can lay its layers, KV cache and
//! compute buffers out over the devices with each one's usable memory (whole layers, the output
//! layer on the last device, as llama.cpp's layer split); the placement gives `-ts`. With
//! `--split-mode none` only `--main-gpu` counts. Each device keeps a margin free ([`Margin`]).
//!
//! Known gaps: on CPUs with AMX or where llama.cpp repacks weights (`CPU_REPACK`), it keeps a
//! second, repacked copy of supported weights in host memory (214 MiB for the demo model on this
//! machine's AMX CPU); this is not predicted. Compute buffers are an estimate (see [`memory`]);
//! the decode speed reads several GPUs as one pool; recurrent states are modelled for the
//! architectures whose every layer is recurrent (Mamba, Mamba-2, RWKV) and for LFM2, not for the
//! other hybrids (Jamba, Qwen3-Next, Granite 4, Nemotron-H...), and MLA caches are not modelled.

pub mod choose;
pub mod memory;
pub mod prompt_cache;
pub mod speed;
pub mod split;

pub use choose::{choose, context_warning, plan_file};
pub use memory::{
    ContextParams, MemoryEstimate, Offload, checkpoint_bytes, estimate, estimate_cpu_only,
};
pub use speed::{KV_FILL, NODES_PER_LAYER, SpeedEstimate, decode_speed};
pub use split::{DevicePlan, Split, SplitMode, SplitRequest};

use serde::Serialize;
use std::path::PathBuf;

/// `-ngl`: how many layers go to the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum GpuLayers {
    /// As many as fit (llama-server's `-ngl auto`).
    Auto,
    /// Every layer and the output layer (`-ngl all`).
    All,
    Count(u32),
}

/// `--prefer`: how [`choose`] trades quality for decode speed among the quants that fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Prefer {
    /// The highest-quality quant that fits entirely on the GPU, else the one with the most of
    /// its weights on the GPU, else the highest-quality one that fits in host memory.
    Quality,
    /// The fastest predicted decode.
    Speed,
    /// The highest-quality quant predicted to decode at least [`BALANCED_SHARE`] as fast as the
    /// fastest quant that fits.
    #[default]
    Balanced,
}

/// `--prefer balanced`: the share of the fastest candidate's predicted speed a higher-quality
/// quant must keep. At 0.6, on hardware where decoding is bound by memory bandwidth, an 8B
/// model's ladder (Q8_0 8.5 GB … Q2_K 3.2 GB) gives Q4_K_M (4.9 GB, 65% of Q2_K's speed), the
/// quant llama.cpp's quantize calls "balanced quality - recommended".
pub const BALANCED_SHARE: f64 = 0.6;

/// What the user asked for: context parameters, any fixed offload, and the policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRequest {
    pub context: ContextParams,
    pub n_gpu_layers: GpuLayers,
    /// `--n-cpu-moe N`; `None` lets the planner choose.
    pub n_cpu_moe: Option<u32>,
    pub prefer: Prefer,
    /// `--cache-ram`: the host prompt cache's limit in MiB (-1: none, 0: off), capped to the
    /// host memory left after the chosen model.
    pub cache_ram_mib: i64,
    /// `--split-mode`, `--main-gpu` and `--tensor-split`: how several GPUs share the model.
    pub split: SplitRequest,
    /// `--ctx-checkpoints`: context checkpoints each slot keeps, in host memory.
    pub ctx_checkpoints: u32,
    /// No `-ub`: `context.n_ubatch` is a floor, which [`plan_file`] raises to [`GPU_UBATCH`] (at
    /// most `n_batch`) when the whole model is on the GPU and the larger compute buffers fit.
    pub ubatch_auto: bool,
}

impl Default for PlanRequest {
    fn default() -> Self {
        PlanRequest {
            context: ContextParams::default(),
            n_gpu_layers: GpuLayers::Auto,
            n_cpu_moe: None,
            prefer: Prefer::default(),
            cache_ram_mib: 8192,
            split: SplitRequest::default(),
            ctx_checkpoints: 32,
            ubatch_auto: true,
        }
    }
}

/// llama-server's physical batch (`-ub`) when the command line gives none.
pub const DEFAULT_UBATCH: u32 = 512;

/// The physical batch the planner gives a model that is wholly on the GPU, where room allows:
/// a GPU reads each weight once per ubatch, so four times the rows per read computes a prompt
/// faster (llama.cpp's guides give gpt-oss `-ub 2048`); its cost is compute buffers and
/// sliding-window cells that grow with it.
pub const GPU_UBATCH: u32 = 2048;

/// How much memory to leave free on each device (llama-server's `--fit-target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Margin {
    /// min(1 GiB, 1/8 of the device's free memory): llama-server's 1024 MiB on devices with
    /// 8 GiB free or more, and still most of a small device left usable.
    Default,
    /// `--fit-target`, in bytes, used as given on every device.
    Explicit(u64),
}

impl Margin {
    /// llama-server's default `--fit-target`.
    pub const DEFAULT_MAX: u64 = 1 << 30;
    /// The share of a device's free memory the default margin never exceeds.
    pub const DEFAULT_SHARE: u64 = 8;

    /// The margin for a device with `free` bytes free.
    pub fn for_free(self, free: u64) -> u64 {
        match self {
            Margin::Default => Self::DEFAULT_MAX.min(free / Self::DEFAULT_SHARE),
            Margin::Explicit(bytes) => bytes,
        }
    }

    /// Where the margin comes from, for the plan's header.
    pub fn describe(self) -> String {
        match self {
            Margin::Default => {
                "default margin: min(1 GiB, 1/8 of free); --fit-target sets it".into()
            }
            Margin::Explicit(bytes) => format!("margin {} from --fit-target", fmt_bytes(bytes)),
        }
    }
}

/// Where a bandwidth figure comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BandwidthSource {
    /// Measured on this machine.
    Measured,
    /// Given on the command line (`--host-bandwidth`, `--gpu-bandwidth`).
    Given,
    /// Looked up by device name in `quant-profiles/bandwidth.toml`.
    Table,
    /// Not known: an assumed value, said in the plan's header.
    Assumed,
}

/// One GPU's free memory and memory bandwidth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuBudget {
    pub name: String,
    pub free: u64,
    /// Kept free on this GPU ([`Margin::for_free`]).
    pub margin: u64,
    /// Memory read bandwidth, bytes per second.
    pub bandwidth: f64,
    pub bandwidth_source: BandwidthSource,
    /// Another machine's device, through llama.cpp's RPC backend: every token crosses the
    /// network to it, so a model one local device holds stays local.
    pub remote: bool,
}

impl GpuBudget {
    pub fn usable(&self) -> u64 {
        self.free.saturating_sub(self.margin)
    }
}

/// The host's decode speed: memory bandwidth, and what llama.cpp's CPU kernels can compute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostSpeed {
    /// Memory read bandwidth with the decode threads, bytes per second.
    pub bandwidth: f64,
    pub bandwidth_source: BandwidthSource,
    /// Weight bytes per second the CPU's matrix-vector kernels process per ggml type with the
    /// decode threads, when they read from cache (compute-bound). Types without a rate cost
    /// their reading only.
    pub type_rates: Vec<TypeRate>,
    /// Seconds each operation of the decode graph costs beyond its arithmetic (the threads'
    /// barrier), measured with the decode threads.
    pub node_seconds: f64,
}

/// One ggml type's compute-bound matrix-vector rate on the host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypeRate {
    pub ggml_type: u32,
    /// Weight bytes per second.
    pub bytes_per_second: f64,
}

impl HostSpeed {
    /// A host of this bandwidth whose arithmetic costs nothing.
    pub fn bandwidth_only(bandwidth: f64, source: BandwidthSource) -> Self {
        HostSpeed {
            bandwidth,
            bandwidth_source: source,
            type_rates: Vec::new(),
            node_seconds: 0.0,
        }
    }
}

/// Memory the model may use and how fast each place reads it: per-GPU free memory and
/// bandwidth, host memory and speed, each device less its margin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Budget {
    pub gpus: Vec<GpuBudget>,
    pub host_free: u64,
    /// Kept free in host memory ([`Margin::for_free`] of `host_free`).
    pub host_margin: u64,
    /// The rule the margins come from.
    pub margin_rule: Margin,
    pub host: HostSpeed,
}

impl Budget {
    /// A budget whose margins follow `margin_rule`; GPUs as (name, free, bandwidth, source).
    pub fn new(
        gpus: Vec<(String, u64, f64, BandwidthSource)>,
        host_free: u64,
        margin_rule: Margin,
        host: HostSpeed,
    ) -> Budget {
        Budget {
            gpus: gpus
                .into_iter()
                .map(|(name, free, bandwidth, bandwidth_source)| GpuBudget {
                    name,
                    free,
                    margin: margin_rule.for_free(free),
                    bandwidth,
                    bandwidth_source,
                    remote: false,
                })
                .collect(),
            host_free,
            host_margin: margin_rule.for_free(host_free),
            margin_rule,
            host,
        }
    }

    /// GPU bytes the model may use, all GPUs together.
    pub fn gpu_usable(&self) -> u64 {
        self.gpus.iter().map(GpuBudget::usable).sum()
    }

    /// Host bytes the model may use.
    pub fn host_usable(&self) -> u64 {
        self.host_free.saturating_sub(self.host_margin)
    }

    /// The GPUs' bandwidth as one pool (layers are split across them by free memory, and read
    /// one GPU after the other): the free-memory-weighted harmonic mean.
    pub fn gpu_bandwidth(&self) -> f64 {
        let free: f64 = self.gpus.iter().map(|g| g.usable() as f64).sum();
        let seconds_per_byte: f64 = self
            .gpus
            .iter()
            .map(|g| g.usable() as f64 / free / g.bandwidth.max(1.0))
            .sum();
        if free > 0.0 && seconds_per_byte > 0.0 {
            1.0 / seconds_per_byte
        } else {
            self.gpus.first().map_or(0.0, |g| g.bandwidth)
        }
    }
}

/// How a file fits the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    /// Every layer, the output layer and the KV cache on the GPU.
    FullGpu,
    /// Some layers or experts on the CPU.
    PartialGpu,
    /// Everything on the CPU (no GPU, or nothing fits on it).
    Cpu,
    None,
}

/// The plan for one file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilePlan {
    pub file: PathBuf,
    pub quant: String,
    pub quality_rank: u32,
    pub file_size: u64,
    /// The context llama.cpp will allocate (padded).
    pub n_ctx: u64,
    pub fit: Fit,
    pub offload: Offload,
    /// The physical batch: the one asked for, or [`GPU_UBATCH`] where the planner raised it.
    pub n_ubatch: u32,
    /// Whether to load with the GPU at all (false: it cannot hold even the compute buffers).
    pub use_gpu: bool,
    /// Share of the weight bytes on the GPU.
    pub gpu_fraction: f64,
    pub predicted: MemoryEstimate,
    /// Predicted decode speed at this offload.
    pub speed: SpeedEstimate,
    /// The placement over the GPUs, when there are several.
    pub split: Option<Split>,
    pub reason: String,
}

/// The chosen file and offload, with the reasons and every file's plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub file: PathBuf,
    pub quant: String,
    pub n_gpu_layers: u32,
    pub n_cpu_moe: u32,
    /// `-ub`: the physical batch (see [`FilePlan::n_ubatch`]).
    pub n_ubatch: u32,
    /// False when the model should be loaded without the GPU (no device): with a GPU,
    /// llama.cpp puts the compute buffers there even at `-ngl 0`.
    pub use_gpu: bool,
    pub predicted: MemoryEstimate,
    pub speed: SpeedEstimate,
    /// The placement over the GPUs, when there are several: `-ts`, and memory per device.
    pub split: Option<Split>,
    /// The host prompt cache's limit next to this model and its checkpoints.
    pub prompt_cache: prompt_cache::CacheRam,
    /// The most host memory the slots' context checkpoints take (`--ctx-checkpoints` per slot,
    /// [`memory::checkpoint_bytes`] each); outside `predicted`, which is llama.cpp's allocation.
    pub checkpoints: u64,
    pub reasons: Vec<String>,
    /// What the user should know about the request (a context past the model's training
    /// context); `serve` logs them as warnings.
    pub warnings: Vec<String>,
    pub plans: Vec<FilePlan>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("no model files to choose from")]
    NoCandidates,
    #[error(
        "nothing fits: the smallest, {quant}, needs {} at n_ctx {n_ctx} but {} is available; {hint}",
        fmt_bytes(*needed),
        fmt_bytes(*available)
    )]
    NothingFits {
        quant: String,
        needed: u64,
        available: u64,
        n_ctx: u64,
        hint: String,
    },
}

/// Bytes as llama.cpp prints them: MiB below 1 GiB, else GiB.
pub fn fmt_bytes(bytes: u64) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    if bytes < 1 << 30 {
        format!("{:.1} MiB", bytes as f64 / MIB)
    } else {
        format!("{:.2} GiB", bytes as f64 / (MIB * 1024.0))
    }
}

#[cfg(test)]
mod tests;
