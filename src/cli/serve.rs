//! `gguf-serve [serve] --model …`: the flags that start the server. Names and short forms follow
//! llama-server's (`-c`, `-ngl`, `-np`, `-t`, …) so that a llama-server command line mostly works
//! unchanged; each doc line names the llama-server flag it mirrors.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use llama_cpp_2::context::params::KvCacheType;

use super::plan::{MemoryFlags, plan_request};
use crate::chat::ReasoningFormat;
use crate::engine::EngineConfig;
use crate::plan::{Budget, Decision};
use crate::server::ServerConfig;
use crate::source;

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

/// Checks the model file, builds the engine and server settings, and serves until stopped.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.verbose);
    let decision = choose_model(&args)?;
    let threads = args.threads.unwrap_or_else(crate::hardware::math_threads);
    let engine = EngineConfig {
        model_path: decision.file.clone(),
        n_ctx: args.ctx_size,
        n_batch: args.batch_size,
        n_ubatch: args.ubatch_size,
        n_parallel: args.parallel.max(1),
        n_threads: threads,
        n_threads_batch: args.threads_batch.unwrap_or(threads),
        n_gpu_layers: if decision.use_gpu {
            decision.n_gpu_layers
        } else {
            0
        },
        flash_attn: match args.flash_attn {
            FlashAttn::On => Some(true),
            FlashAttn::Off => Some(false),
            FlashAttn::Auto => None,
        },
        cache_type_k: cache_type(&args.cache_type_k).context("--cache-type-k")?,
        cache_type_v: cache_type(&args.cache_type_v).context("--cache-type-v")?,
        cpu_moe: args.cpu_moe,
        n_cpu_moe: decision.n_cpu_moe,
        n_predict: args.n_predict,
        verbose: args.verbose,
    };
    let chat_template = match &args.chat_template_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot read the chat template", path.display()))?,
        ),
        None => None,
    };
    let server = ServerConfig {
        host: args.host,
        port: args.port,
        api_key: args.api_key,
        alias: args.alias,
        chat_template,
        max_queue: args.max_queue,
        n_predict: args.n_predict,
        reasoning_format: ReasoningFormat::parse(&args.reasoning_format).map_err(|_| {
            anyhow::anyhow!(
                "--reasoning-format: expected none, auto or deepseek, got {:?}",
                args.reasoning_format
            )
        })?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .thread_name("http")
        .build()?;
    runtime.block_on(crate::server::run(server, engine))?;
    Ok(())
}

/// Reads the headers of the model file(s) and picks the file and offload that fit (`--quant`,
/// `-ngl`, `--n-cpu-moe`), saying why. A missing, non-GGUF or truncated header fails here,
/// with the file named, before the server starts listening.
fn choose_model(args: &ServeArgs) -> anyhow::Result<Decision> {
    let path = args.model.as_deref().context("--model is required")?;
    let candidates = source::resolve(path, Some(&args.quant))?;
    let request = plan_request(&MemoryFlags {
        ctx_size: args.ctx_size,
        parallel: args.parallel,
        batch_size: args.batch_size,
        ubatch_size: args.ubatch_size,
        cache_type_k: &args.cache_type_k,
        cache_type_v: &args.cache_type_v,
        flash_attn: args.flash_attn,
        swa_full: false,
        n_gpu_layers: args.n_gpu_layers,
        n_cpu_moe: if args.cpu_moe {
            Some(u32::MAX)
        } else {
            args.n_cpu_moe
        },
    })?;
    let budget = Budget::detected(args.fit_margin_mib << 20);
    let decision = crate::plan::choose(&candidates, &request, &budget)
        .with_context(|| path.display().to_string())?;
    tracing::info!(
        file = %decision.file.display(),
        quant = %decision.quant,
        n_gpu_layers = decision.n_gpu_layers,
        n_cpu_moe = decision.n_cpu_moe,
        "model chosen"
    );
    for reason in &decision.reasons {
        tracing::info!("plan: {reason}");
    }
    Ok(decision)
}

/// llama.cpp's KV cache type names.
fn cache_type(name: &str) -> anyhow::Result<KvCacheType> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "f32" => KvCacheType::F32,
        "f16" => KvCacheType::F16,
        "bf16" => KvCacheType::BF16,
        "q8_0" => KvCacheType::Q8_0,
        "q4_0" => KvCacheType::Q4_0,
        "q4_1" => KvCacheType::Q4_1,
        "iq4_nl" => KvCacheType::IQ4_NL,
        "q5_0" => KvCacheType::Q5_0,
        "q5_1" => KvCacheType::Q5_1,
        other => anyhow::bail!(
            "unknown cache type {other:?} (f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1)"
        ),
    })
}

fn init_logging(verbose: bool) {
    let default = if verbose { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
