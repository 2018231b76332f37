//! The flags that decide memory — context, batch sizes, KV cache types, GPU offload — shared by
//! `serve` and `plan`, so that `plan` predicts what `serve` with the same flags will do. Names
//! and defaults are llama-server's.

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::gguf::ggml_type_by_name;
use crate::plan::{self, ContextParams, PlanRequest};

#[derive(Debug, Clone, Args)]
pub struct MemoryArgs {
    /// Context size in tokens shared by all slots; 0 uses the model's training context.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 0, value_name = "N")]
    pub ctx_size: u32,

    /// Layers to offload to the GPU: auto, all, or a number.
    #[arg(
        long = "n-gpu-layers",
        default_value = "auto",
        value_name = "auto|all|N"
    )]
    pub n_gpu_layers: GpuLayers,

    /// Number of slots (requests decoded together); default 4 with a unified KV cache, as
    /// llama-server's auto.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub parallel: u32,

    /// Logical batch size: the most tokens one decode step takes.
    #[arg(
        short = 'b',
        long = "batch-size",
        default_value_t = 2048,
        value_name = "N"
    )]
    pub batch_size: u32,

    /// Physical batch size.
    #[arg(long = "ubatch-size", default_value_t = 512, value_name = "N")]
    pub ubatch_size: u32,

    /// Flash attention: on, off or auto.
    #[arg(long = "flash-attn", default_value = "auto")]
    pub flash_attn: FlashAttn,

    /// KV cache type for K: f16, bf16, q8_0, q4_0, ….
    #[arg(long = "cache-type-k", default_value = "f16")]
    pub cache_type_k: String,

    /// KV cache type for V.
    #[arg(long = "cache-type-v", default_value = "f16")]
    pub cache_type_v: String,

    /// Keep all MoE expert weights in host memory.
    #[arg(long = "cpu-moe")]
    pub cpu_moe: bool,

    /// Keep the MoE experts of the first N layers in host memory.
    #[arg(long = "n-cpu-moe", value_name = "N")]
    pub n_cpu_moe: Option<u32>,

    /// Memory to leave free on each GPU when fitting, in MiB.
    #[arg(long = "fit-margin", default_value_t = 1024, value_name = "MiB")]
    pub fit_margin_mib: u64,
}

impl MemoryArgs {
    /// The planner's request for these flags.
    pub fn plan_request(&self, swa_full: bool) -> anyhow::Result<PlanRequest> {
        let cache_type = |name: &str, flag: &str| {
            ggml_type_by_name(name)
                .map(|t| t.id)
                .with_context(|| format!("{flag} {name}: unknown cache type (f16, q8_0, q4_0, …)"))
        };
        Ok(PlanRequest {
            context: ContextParams {
                n_ctx: self.ctx_size,
                n_seq: self.parallel.max(1),
                n_batch: self.batch_size.max(1),
                n_ubatch: self.ubatch_size.max(1),
                // The engine asks for one output row per sequence, as llama-server does.
                n_outputs_max: self.parallel.max(1),
                type_k: cache_type(&self.cache_type_k, "--cache-type-k")?,
                type_v: cache_type(&self.cache_type_v, "--cache-type-v")?,
                flash_attn: self.flash_attn != FlashAttn::Off,
                swa_full,
                kv_unified: true,
            },
            n_gpu_layers: match self.n_gpu_layers {
                GpuLayers::Auto => plan::GpuLayers::Auto,
                GpuLayers::All => plan::GpuLayers::All,
                GpuLayers::Count(n) => plan::GpuLayers::Count(n),
            },
            n_cpu_moe: if self.cpu_moe {
                Some(u32::MAX)
            } else {
                self.n_cpu_moe
            },
        })
    }

    /// `--fit-margin` in bytes.
    pub fn fit_margin(&self) -> u64 {
        self.fit_margin_mib << 20
    }
}

/// `-ngl`: how many layers go to the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuLayers {
    /// Let the planner decide from free GPU memory.
    Auto,
    /// Every layer.
    All,
    /// Exactly this many.
    Count(u32),
}

impl std::str::FromStr for GpuLayers {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "all" => Ok(Self::All),
            // llama-server: -1 is auto, <= -2 is all.
            "-1" => Ok(Self::Auto),
            n => match n.parse::<i64>() {
                Ok(n) if n <= -2 => Ok(Self::All),
                Ok(n) if n >= 0 => Ok(Self::Count(n.min(u32::MAX as i64) as u32)),
                _ => Err(format!(
                    "expected auto, all or a number of layers, got {n:?}"
                )),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlashAttn {
    On,
    Off,
    Auto,
}
