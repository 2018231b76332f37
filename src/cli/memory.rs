//! The flags that decide memory — context, slots, batch sizes, KV cache, GPU offload and the
//! split over several GPUs — shared by
//! `serve` and `plan`, so that `plan` predicts what `serve` with the same flags will do. Names
//! and defaults are llama-server's.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use crate::engine::SplitMode;
use crate::gguf::ggml_type_by_name;
use crate::plan::{self, ContextParams, PlanRequest};

/// Slots when `-np` is left to llama-server's auto (-1).
const AUTO_SLOTS: u32 = 4;

#[derive(Debug, Clone, Args)]
pub struct MemoryArgs {
    /// Context size in tokens, all slots together; 0 uses the model's training context.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 0, value_name = "N")]
    pub ctx_size: u32,

    /// Layers to offload to the GPU: auto, all, or a number.
    #[arg(
        long = "n-gpu-layers",
        default_value = "auto",
        value_name = "auto|all|N"
    )]
    pub n_gpu_layers: GpuLayers,

    /// Number of slots (requests decoded together); -1 (auto) is 4 slots sharing one KV cache,
    /// as llama-server. An explicit count gives each slot n_ctx / N of the context unless
    /// --kv-unified.
    #[arg(long, default_value_t = -1, value_name = "N", allow_negative_numbers = true)]
    pub parallel: i32,

    /// One KV cache shared by all slots, so that one slot may use the whole context; default:
    /// on when the slot count is auto.
    #[arg(long = "kv-unified", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub kv_unified: Option<bool>,

    /// The host prompt cache's limit in MiB: the KV states of idle slots kept in host memory,
    /// so that a returning conversation is restored instead of computed again (-1: no limit,
    /// 0: no cache). The planner caps it to the host memory left after the model.
    #[arg(
        long = "cache-ram",
        default_value_t = 8192,
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub cache_ram: i64,

    /// Context checkpoints each slot keeps (0: none). On sliding-window models (gpt-oss,
    /// Gemma 3) the window's state is saved near the end of each prompt, so that a next prompt
    /// that departs from the cache within the window's reach (a chat's re-rendered last answer)
    /// restores it instead of computing the whole prompt again. They take host memory, which
    /// the plan counts.
    #[arg(long = "ctx-checkpoints", default_value_t = 32, value_name = "N")]
    pub ctx_checkpoints: u32,

    /// The most context one slot may use; without -c the context is sized to N per slot.
    #[arg(long = "kv-unified-per-slot", value_name = "N")]
    pub kv_unified_per_slot: Option<u32>,

    /// Logical batch size: the most tokens one decode step takes.
    #[arg(
        short = 'b',
        long = "batch-size",
        default_value_t = 2048,
        value_name = "N"
    )]
    pub batch_size: u32,

    /// Physical batch size; default 512, raised to 2048 (at most -b) when the whole model is on
    /// the GPU and the larger compute buffers fit beside it, for faster prompt processing.
    #[arg(long = "ubatch-size", value_name = "N")]
    pub ubatch_size: Option<u32>,

    /// Flash attention: on, off or auto.
    #[arg(
        long = "flash-attn",
        default_value = "auto",
        value_name = "on|off|auto"
    )]
    pub flash_attn: FlashAttn,

    /// KV cache type for K: f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1.
    #[arg(long = "cache-type-k", default_value = "f16", value_name = "TYPE")]
    pub cache_type_k: String,

    /// KV cache type for V.
    #[arg(long = "cache-type-v", default_value = "f16", value_name = "TYPE")]
    pub cache_type_v: String,

    /// Full-size KV cache for sliding-window layers (more memory, prompts reusable further
    /// back).
    #[arg(long = "swa-full")]
    pub swa_full: bool,

    /// Keep the KV cache of offloaded layers on the GPU (default); false keeps it in host
    /// memory.
    #[arg(long = "kv-offload", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub kv_offload: bool,

    /// Keep all MoE expert weights in host memory.
    #[arg(long = "cpu-moe")]
    pub cpu_moe: bool,

    /// Keep the MoE experts of the first N layers in host memory.
    #[arg(long = "n-cpu-moe", value_name = "N")]
    pub n_cpu_moe: Option<u32>,

    /// Memory to leave free on each device when fitting, in MiB (one value, or one per device:
    /// the largest is kept free on every device). Default: min(1024 MiB, 1/8 of the device's
    /// free memory), llama-server's 1024 MiB on devices with 8 GiB free or more.
    #[arg(long = "fit-target", alias = "fit-margin", value_name = "MiB,…")]
    pub fit_target: Option<String>,

    /// How `--quant auto` trades quality for decode speed among the quants that fit: quality
    /// (the best quant that fits, preferring the GPU), speed (the fastest predicted decode) or
    /// balanced (the best quant predicted to decode at least 60% as fast as the fastest).
    #[arg(
        long,
        value_enum,
        default_value = "balanced",
        value_name = "quality|speed|balanced"
    )]
    pub prefer: Prefer,

    /// How to split the model over several GPUs: none, layer, row or tensor.
    #[arg(long = "split-mode", default_value = "layer", value_name = "MODE")]
    pub split_mode: String,

    /// Share of the model for each GPU, comma-separated proportions (`3,1`).
    #[arg(long = "tensor-split", value_name = "N0,N1,…")]
    pub tensor_split: Option<String>,

    /// The GPU for the whole model (split mode none) or for intermediate results (row).
    #[arg(long = "main-gpu", default_value_t = 0, value_name = "INDEX")]
    pub main_gpu: i32,
}

/// `--prefer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Prefer {
    Quality,
    Speed,
    Balanced,
}

impl MemoryArgs {
    /// Slots: the count asked for, or llama-server's 4 for auto (-1).
    pub fn n_parallel(&self) -> anyhow::Result<u32> {
        match self.parallel {
            -1 => Ok(AUTO_SLOTS),
            n if n > 0 => Ok(n as u32),
            n => anyhow::bail!("--parallel {n}: expected -1 (auto) or a positive count"),
        }
    }

    /// Whether the slots share one KV cache: asked, else when the slot count is auto (as
    /// llama-server, which forces it on for auto slots whatever was asked).
    pub fn kv_unified(&self) -> bool {
        self.parallel == -1 || self.kv_unified.unwrap_or(false)
    }

    /// The physical batch the command line asks for: `-ub`, else llama-server's 512 (which the
    /// planner may raise, see [`PlanRequest::ubatch_auto`]).
    pub fn ubatch_asked(&self) -> u32 {
        self.ubatch_size.unwrap_or(plan::DEFAULT_UBATCH).max(1)
    }

    /// The planner's request for these flags.
    pub fn plan_request(&self) -> anyhow::Result<PlanRequest> {
        let cache_type = |name: &str, flag: &str| {
            ggml_type_by_name(name)
                .map(|t| t.id)
                .with_context(|| format!("{flag} {name}: unknown cache type (f16, q8_0, q4_0, …)"))
        };
        let n_seq = self.n_parallel()?;
        let n_ctx = match (self.ctx_size, self.kv_unified_per_slot) {
            (0, Some(per_slot)) => per_slot.saturating_mul(n_seq),
            (n, _) => n,
        };
        Ok(PlanRequest {
            context: ContextParams {
                n_ctx,
                n_seq,
                n_batch: self.batch_size.max(1),
                n_ubatch: self.ubatch_asked(),
                // The engine asks for one output row per sequence, as llama-server does.
                n_outputs_max: n_seq,
                type_k: cache_type(&self.cache_type_k, "--cache-type-k")?,
                type_v: cache_type(&self.cache_type_v, "--cache-type-v")?,
                flash_attn: self.flash_attn != FlashAttn::Off,
                swa_full: self.swa_full,
                kv_unified: self.kv_unified(),
                offload_kqv: self.kv_offload,
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
            cache_ram_mib: self.cache_ram,
            ctx_checkpoints: self.ctx_checkpoints,
            ubatch_auto: self.ubatch_size.is_none(),
            split: self.split_request()?,
            prefer: match self.prefer {
                Prefer::Quality => plan::Prefer::Quality,
                Prefer::Speed => plan::Prefer::Speed,
                Prefer::Balanced => plan::Prefer::Balanced,
            },
        })
    }

    pub fn split_mode(&self) -> anyhow::Result<SplitMode> {
        Ok(match self.split_mode.as_str() {
            "none" => SplitMode::None,
            "layer" => SplitMode::Layer,
            "row" => SplitMode::Row,
            "tensor" => SplitMode::Tensor,
            other => bail!("--split-mode {other}: expected none, layer, row or tensor"),
        })
    }

    /// `-ts 3,1` (also `3/1`, as llama.cpp reads it).
    pub fn tensor_split(&self) -> anyhow::Result<Vec<f32>> {
        let Some(text) = &self.tensor_split else {
            return Ok(Vec::new());
        };
        text.split([',', '/'])
            .map(|v| {
                v.trim()
                    .parse::<f32>()
                    .with_context(|| format!("--tensor-split {text}: expected N0,N1,…"))
            })
            .collect()
    }

    /// `--main-gpu` against the number of GPUs, where llama.cpp uses it (`--split-mode none` and
    /// `row`), with llama.cpp's wording.
    pub fn check_main_gpu(&self, n_gpus: usize) -> anyhow::Result<()> {
        let uses_it = !matches!(self.split_mode()?, SplitMode::Layer);
        if uses_it && n_gpus > 0 && self.main_gpu >= n_gpus as i32 {
            bail!(
                "--main-gpu {0}: invalid value for main_gpu: {0} (available devices: {n_gpus})",
                self.main_gpu
            );
        }
        Ok(())
    }

    /// `--split-mode`, `--main-gpu` and `--tensor-split` for the planner.
    pub fn split_request(&self) -> anyhow::Result<plan::SplitRequest> {
        Ok(plan::SplitRequest {
            mode: match self.split_mode()? {
                SplitMode::None => plan::SplitMode::None,
                SplitMode::Layer => plan::SplitMode::Layer,
                SplitMode::Row | SplitMode::Tensor => plan::SplitMode::Row,
            },
            main_gpu: self.main_gpu,
            tensor_split: self.tensor_split()?,
        })
    }

    /// `--fit-target`: the largest of the values, in bytes, or the default rule.
    pub fn fit_margin(&self) -> anyhow::Result<plan::Margin> {
        let Some(text) = &self.fit_target else {
            return Ok(plan::Margin::Default);
        };
        text.split(',')
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map(|mib| mib << 20)
                    .with_context(|| format!("--fit-target {text}: expected MiB,…"))
            })
            .try_fold(0, |max, v| v.map(|v| v.max(max)))
            .map(plan::Margin::Explicit)
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

/// `-fa`: llama-server's values and their synonyms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlashAttn {
    #[value(alias = "enabled", alias = "true", alias = "1")]
    On,
    #[value(alias = "disabled", alias = "false", alias = "0")]
    Off,
    #[value(alias = "-1")]
    Auto,
}
