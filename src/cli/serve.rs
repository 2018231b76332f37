//! `gguf-serve [serve] --model …`: the flags that start the server. Names and short forms follow
//! llama-server's (`-c`, `-ngl`, `-np`, `-t`, …) so that a llama-server command line mostly works
//! unchanged; each doc line names the llama-server flag it mirrors.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Model: a GGUF file, a folder of quants of one model, or the first file of a split GGUF
    /// (llama-server: -m/--model).
    #[arg(short = 'm', long, value_name = "PATH", required = true)]
    pub model: Option<PathBuf>,

    /// Which quant to serve when --model holds several: `auto` picks the best one that fits,
    /// or a llama.cpp name such as q4_k_m.
    #[arg(long, default_value = "auto", value_name = "auto|NAME")]
    pub quant: String,

    /// Model name reported by /v1/models and in responses (llama-server: -a/--alias).
    #[arg(short = 'a', long)]
    pub alias: Option<String>,

    /// Address to listen on (llama-server: --host).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on (llama-server: --port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,

    /// Context size in tokens shared by all slots; 0 uses the model's training context
    /// (llama-server: -c/--ctx-size).
    #[arg(short = 'c', long = "ctx-size", default_value_t = 0, value_name = "N")]
    pub ctx_size: u32,

    /// Layers to offload to the GPU: auto, all, or a number (llama-server: -ngl/--n-gpu-layers).
    #[arg(
        long = "n-gpu-layers",
        default_value = "auto",
        value_name = "auto|all|N"
    )]
    pub n_gpu_layers: GpuLayers,

    /// Threads for generation; default: the number of physical cores, as llama-server
    /// (llama-server: -t/--threads).
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<i32>,

    /// Threads for prompt processing; default: same as --threads (llama-server: -tb/--threads-batch).
    #[arg(long = "threads-batch", value_name = "N")]
    pub threads_batch: Option<i32>,

    /// Number of slots (requests decoded together); default 4 with a unified KV cache, as
    /// llama-server's auto (llama-server: -np/--parallel).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub parallel: u32,

    /// Logical batch size: the most tokens one decode step takes (llama-server: -b/--batch-size).
    #[arg(
        short = 'b',
        long = "batch-size",
        default_value_t = 2048,
        value_name = "N"
    )]
    pub batch_size: u32,

    /// Physical batch size (llama-server: -ub/--ubatch-size).
    #[arg(long = "ubatch-size", default_value_t = 512, value_name = "N")]
    pub ubatch_size: u32,

    /// Flash attention: on, off or auto (llama-server: -fa/--flash-attn).
    #[arg(long = "flash-attn", default_value = "auto")]
    pub flash_attn: FlashAttn,

    /// KV cache type for K: f16, bf16, q8_0, q4_0, … (llama-server: -ctk/--cache-type-k).
    #[arg(long = "cache-type-k", default_value = "f16")]
    pub cache_type_k: String,

    /// KV cache type for V (llama-server: -ctv/--cache-type-v).
    #[arg(long = "cache-type-v", default_value = "f16")]
    pub cache_type_v: String,

    /// Keep all MoE expert weights in host memory (llama-server: -cmoe/--cpu-moe).
    #[arg(long = "cpu-moe")]
    pub cpu_moe: bool,

    /// Keep the MoE experts of the first N layers in host memory (llama-server: -ncmoe/--n-cpu-moe).
    #[arg(long = "n-cpu-moe", value_name = "N")]
    pub n_cpu_moe: Option<u32>,

    /// Memory to leave free on each GPU when fitting, in MiB (llama-server: -fitt/--fit-target).
    #[arg(long = "fit-margin", default_value_t = 1024, value_name = "MiB")]
    pub fit_margin_mib: u64,

    /// Default number of tokens to predict when a request sets none; -1 means until the context
    /// is full (llama-server: -n/--n-predict).
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, value_name = "N")]
    pub n_predict: i32,

    /// Requests waiting for a free slot beyond which new ones get 503 (0: no bound).
    #[arg(long = "max-queue", default_value_t = 256, value_name = "N")]
    pub max_queue: usize,

    /// Where sampling runs: on the host, in the GPU graph (backend), or auto
    /// (llama-server: -bs/--backend-sampling means backend).
    #[arg(long, default_value = "auto")]
    pub sampling: SamplingPlace,

    /// Same as `--sampling backend` (llama-server: -bs/--backend-sampling).
    #[arg(long = "backend-sampling")]
    pub backend_sampling: bool,

    /// API key clients must send as `Authorization: Bearer KEY` (llama-server: --api-key).
    #[arg(long = "api-key", env = "LLAMA_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Jinja chat template file overriding the model's (llama-server: --chat-template-file).
    #[arg(long = "chat-template-file", value_name = "FILE")]
    pub chat_template_file: Option<PathBuf>,

    /// How reasoning is returned: none (left in content), auto or deepseek (in
    /// reasoning_content) (llama-server: --reasoning-format).
    #[arg(long = "reasoning-format", default_value = "auto")]
    pub reasoning_format: String,

    /// Accepted for llama-server compatibility: Jinja templates are always used.
    #[arg(long, hide = true)]
    pub jinja: bool,

    /// Directory of run-time loadable backends (dynamic-backends builds); default: `backends/`
    /// beside the binary.
    #[arg(long = "backends-dir", value_name = "DIR")]
    pub backends_dir: Option<PathBuf>,

    /// Log llama.cpp's own messages too.
    #[arg(short = 'v', long)]
    pub verbose: bool,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SamplingPlace {
    Host,
    Backend,
    Auto,
}

pub fn run(_args: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("serving is not implemented yet")
}
