//! `gguf-serve [serve] --model …`: the flags that start the server. Their names are llama-server's
//! long ones; `llama_flags.rs` maps every llama-server spelling and environment variable onto
//! them and adds those to each flag's help.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use llama_cpp_2::context::params::KvCacheType;

use super::memory::{FlashAttn, MemoryArgs};
use crate::chat::ReasoningFormat;
use crate::engine::EngineConfig;
use crate::plan::{Budget, Decision};
use crate::server::ServerConfig;
use crate::source;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Model: a GGUF file, a folder of quants of one model, or the first file of a split GGUF.
    #[arg(short = 'm', long, value_name = "PATH", required = true)]
    pub model: Option<PathBuf>,

    /// Which quant to serve when --model holds several: `auto` picks the best one that fits,
    /// or a llama.cpp name such as q4_k_m.
    #[arg(long, default_value = "auto", value_name = "auto|NAME")]
    pub quant: String,

    /// Model name reported by /v1/models and in responses.
    #[arg(short = 'a', long)]
    pub alias: Option<String>,

    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,

    /// Context, batch, KV cache and offload: the flags that decide memory (shared with `plan`).
    #[command(flatten)]
    pub memory: MemoryArgs,

    /// Threads for generation; default: the number of physical cores, as llama-server.
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<i32>,

    /// Threads for prompt processing; default: same as --threads.
    #[arg(long = "threads-batch", value_name = "N")]
    pub threads_batch: Option<i32>,

    /// Default number of tokens to predict when a request sets none; -1 means until the context
    /// is full.
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, value_name = "N")]
    pub n_predict: i32,

    /// Where tokens are sampled: `host` (on the CPU, from the logits, several slots at once)
    /// or `backend` (inside the decode graph, on the device that holds the output layer;
    /// requests whose samplers cannot run there, such as grammars or n_probs, still sample on
    /// the host). On an H100 with gpt-oss, host sampling decodes 16 streams about 10% faster,
    /// backend sampling one sampled stream about 4% faster.
    #[arg(long, value_enum, default_value = "host", value_name = "host|backend")]
    pub sampling: SamplingMode,

    /// Same as `--sampling backend`.
    #[arg(long = "backend-sampling")]
    pub backend_sampling: bool,

    /// Requests waiting for a free slot beyond which new ones get 503 (0: no bound).
    #[arg(long = "max-queue", default_value_t = 256, value_name = "N")]
    pub max_queue: usize,

    /// API key clients must send as `Authorization: Bearer KEY`.
    #[arg(long = "api-key")]
    pub api_key: Option<String>,

    /// Jinja chat template file overriding the model's.
    #[arg(long = "chat-template-file", value_name = "FILE")]
    pub chat_template_file: Option<PathBuf>,

    /// How reasoning is returned: none (left in content), auto or deepseek (in
    /// reasoning_content).
    #[arg(long = "reasoning-format", default_value = "auto")]
    pub reasoning_format: String,

    /// Render chats with the Jinja chat template (llama-server's default); `--no-jinja` is not
    /// supported yet.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub jinja: bool,

    /// Log llama.cpp's own messages too.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

/// Checks the model file, builds the engine and server settings, and serves until stopped.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.verbose);
    anyhow::ensure!(args.jinja, "--no-jinja: not supported yet");
    let decision = choose_model(&args)?;
    let threads = args.threads.unwrap_or_else(crate::hardware::math_threads);
    let engine = EngineConfig {
        model_path: decision.file.clone(),
        n_ctx: args.memory.ctx_size,
        n_batch: args.memory.batch_size,
        n_ubatch: args.memory.ubatch_size,
        n_parallel: args.memory.parallel.max(1),
        n_threads: threads,
        n_threads_batch: args.threads_batch.unwrap_or(threads),
        n_gpu_layers: if decision.use_gpu {
            decision.n_gpu_layers
        } else {
            0
        },
        flash_attn: match args.memory.flash_attn {
            FlashAttn::On => Some(true),
            FlashAttn::Off => Some(false),
            FlashAttn::Auto => None,
        },
        cache_type_k: cache_type(&args.memory.cache_type_k).context("--cache-type-k")?,
        cache_type_v: cache_type(&args.memory.cache_type_v).context("--cache-type-v")?,
        cpu_moe: args.memory.cpu_moe,
        n_cpu_moe: decision.n_cpu_moe,
        n_predict: args.n_predict,
        verbose: args.verbose,
        backend_sampling: backend_sampling(&args),
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
        predicted: Some(decision.predicted),
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
    let request = args.memory.plan_request(false)?;
    let budget = Budget::detected(args.memory.fit_margin());
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

/// `--sampling`: where tokens are sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SamplingMode {
    Host,
    Backend,
}

/// Whether to sample in the decode graph (`-bs` wins over `--sampling`).
fn backend_sampling(args: &ServeArgs) -> bool {
    let on = args.backend_sampling || args.sampling == SamplingMode::Backend;
    tracing::info!(backend = on, "sampling");
    on
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
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_on_the_host_unless_backend_is_asked() {
        let cases: &[(&[&str], bool)] = &[
            (&[], false),
            (&["--sampling", "host"], false),
            (&["--sampling", "backend"], true),
            (&["-bs"], true),
            (&["--backend-sampling"], true),
        ];
        for &(flags, want) in cases {
            let argv = ["gguf-serve", "-m", "model.gguf"].iter().chain(flags);
            let cli = crate::cli::Cli::parse_with_env(argv.map(Into::into), &|_| None).unwrap();
            assert_eq!(backend_sampling(&cli.serve), want, "{flags:?}");
        }
    }
}
