//! The memory model and the choice of quant and offload. Pure functions over plain data
//! (a [`ModelSummary`] per file, a [`PlanRequest`], a [`Budget`]); architecture invariant:
//! nothing here calls llama.cpp, so every policy is table-tested and `plan` answers in
//! milliseconds for models that do not fit this machine.
//!
//! # API for the server
//!
//! ```no_run
//! use gguf_serve::plan::{self, Budget, ContextParams, GpuLayers, PlanRequest};
//! use gguf_serve::source;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let candidates = source::resolve(std::path::Path::new("models/"), None)?; // `--quant auto`
//! let request = PlanRequest {
//!     context: ContextParams { n_ctx: 32768, n_seq: 4, ..ContextParams::default() },
//!     n_gpu_layers: GpuLayers::Auto, // `-ngl auto`
//!     n_cpu_moe: None,               // `--n-cpu-moe`
//! };
//! // Free memory as `hardware::budget` detects it, less a 1024 MiB margin per device.
//! let budget = Budget { gpus: vec![], host_free: 32 << 30, margin: 1024 << 20 };
//! let decision = plan::choose(&candidates, &request, &budget)?;
//! // Load decision.file with -ngl decision.n_gpu_layers --n-cpu-moe decision.n_cpu_moe
//! // (and no GPU device at all if !decision.use_gpu);
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
//! [`choose`] then takes the highest-quality quant (rank in
//! `quant-profiles/quants.toml`) that fits entirely on the GPU; if none does, the one with the
//! largest share of its weights on the GPU (the best predicted speed), saying so; with no GPU,
//! the highest-quality quant that fits in host memory; if nothing fits anywhere,
//! [`PlanError::NothingFits`] says what the smallest file needs and at which context it fits.
//! Several GPUs are treated as one pool of their summed free memory (llama.cpp splits layers
//! across them by free memory).
//!
//! Known gaps: on CPUs with AMX or where llama.cpp repacks weights (`CPU_REPACK`), it keeps a
//! second, repacked copy of supported weights in host memory (214 MiB for the demo model on this
//! machine's AMX CPU); this is not predicted. Compute buffers are an estimate (see [`memory`]);
//! several GPUs are not checked one by one; recurrent and MLA caches are not modelled.

pub mod choose;
pub mod memory;

pub use choose::{choose, plan_file};
pub use memory::{ContextParams, MemoryEstimate, Offload, estimate, estimate_cpu_only};

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

/// What the user asked for: context parameters and any fixed offload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRequest {
    pub context: ContextParams,
    pub n_gpu_layers: GpuLayers,
    /// `--n-cpu-moe N`; `None` lets the planner choose.
    pub n_cpu_moe: Option<u32>,
}

impl Default for PlanRequest {
    fn default() -> Self {
        PlanRequest {
            context: ContextParams::default(),
            n_gpu_layers: GpuLayers::Auto,
            n_cpu_moe: None,
        }
    }
}

/// One GPU's free memory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuBudget {
    pub name: String,
    pub free: u64,
}

/// Memory the model may use: per-GPU free memory and host memory, each less `margin`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Budget {
    pub gpus: Vec<GpuBudget>,
    pub host_free: u64,
    /// Kept free on every device (llama-server's `--fit-margin`).
    pub margin: u64,
}

impl Budget {
    /// GPU bytes the model may use, all GPUs together.
    pub fn gpu_usable(&self) -> u64 {
        self.gpus
            .iter()
            .map(|g| g.free.saturating_sub(self.margin))
            .sum()
    }

    /// Host bytes the model may use.
    pub fn host_usable(&self) -> u64 {
        self.host_free.saturating_sub(self.margin)
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
    /// Whether to load with the GPU at all (false: it cannot hold even the compute buffers).
    pub use_gpu: bool,
    /// Share of the weight bytes on the GPU.
    pub gpu_fraction: f64,
    pub predicted: MemoryEstimate,
    pub reason: String,
}

/// The chosen file and offload, with the reasons and every file's plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub file: PathBuf,
    pub quant: String,
    pub n_gpu_layers: u32,
    pub n_cpu_moe: u32,
    /// False when the model should be loaded without the GPU (no device): with a GPU,
    /// llama.cpp puts the compute buffers there even at `-ngl 0`.
    pub use_gpu: bool,
    pub predicted: MemoryEstimate,
    pub reasons: Vec<String>,
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
