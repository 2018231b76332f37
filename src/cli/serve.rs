//! `gguf-serve [serve] --model …`: the flags that start the server. Their names are llama-server's
//! long ones; `llama_flags.rs` maps every llama-server spelling and environment variable onto
//! them and adds those to each flag's help.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use llama_cpp_2::context::params::KvCacheType;

use super::chat::ChatArgs;
use super::control_vector::ControlVectorArgs;
use super::embed::EmbedArgs;
use super::http::{HttpArgs, sorted_set};
use super::hub::{HfArgs, Remote, log_tracing};
use super::load::LoadArgs;
use super::log::LogArgs;
use super::lora::LoraArgs;
use super::memory::{FlashAttn, GpuLayers, MemoryArgs};
use super::sampling::SamplingArgs;
use super::slots::SlotArgs;
use super::threads::ThreadArgs;
use crate::engine::{CheckpointLimits, ContextConfig, EngineConfig, ModelParams};
use crate::plan::Decision;
use crate::server::ServerConfig;
use crate::source;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Model: a GGUF file, a folder of quants of one model, or the first file of a split GGUF.
    #[arg(short = 'm', long, value_name = "PATH")]
    pub model: Option<PathBuf>,

    /// Which quant to serve when --model or --hf-repo holds several: `auto` picks the best one
    /// that fits, or a llama.cpp name such as q4_k_m.
    #[arg(long, default_value = "auto", value_name = "auto|NAME")]
    pub quant: String,

    /// A model from Hugging Face instead of --model.
    #[command(flatten)]
    pub hf: HfArgs,

    /// Context, batch, KV cache and offload: the flags that decide memory (shared with `plan`).
    #[command(flatten)]
    pub memory: MemoryArgs,

    /// Devices, splits, overrides, file loading, RoPE: how the model is loaded and placed.
    #[command(flatten)]
    pub load: LoadArgs,

    /// Threads and how they are scheduled.
    #[command(flatten)]
    pub threads: ThreadArgs,

    /// Requests' defaults: sampling, -n, --keep, stop strings.
    #[command(flatten)]
    pub sampling_defaults: SamplingArgs,

    /// Chat templates and reasoning.
    #[command(flatten)]
    pub chat: ChatArgs,

    /// Addresses, names, keys, endpoints, CORS, timeouts.
    #[command(flatten)]
    pub http: HttpArgs,

    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,

    /// /infill's prompt order and the folder of slot files.
    #[command(flatten)]
    pub slots: SlotArgs,
    /// LoRA adapters.
    #[command(flatten)]
    pub lora: LoraArgs,
    /// Control vectors.
    #[command(flatten)]
    pub control_vectors: ControlVectorArgs,
    /// Embeddings and reranking.
    #[command(flatten)]
    pub embed: EmbedArgs,

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

    /// Reuse a slot's cached prompt only if the common prefix covers at least this fraction of
    /// the new prompt (0 disables the check).
    #[arg(
        long = "slot-prompt-similarity",
        default_value_t = 0.1,
        value_name = "SIMILARITY"
    )]
    pub slot_prompt_similarity: f32,

    /// When a request starts, save the idle slots to the prompt cache and, with a unified KV
    /// cache, clear them from it, so that attention spans only the slots at work; an idle
    /// engine saves them beforehand, keeping their cells.
    #[arg(long = "cache-idle-slots", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub cache_idle_slots: bool,

    /// With --cache-idle-slots: how long a slot stays idle, while other slots work, before it
    /// is parked, in milliseconds (default 0: at once, as llama-server parks every idle slot
    /// when a request starts). A conversation that comes back sooner finds its slot in place,
    /// with no save and restore, but until then attention spans its cells: on an H200 chat
    /// workload 1000 raised throughput by a fifth and doubled time to first token.
    #[arg(long = "cache-idle-after", default_value_t = 0, value_name = "MS")]
    pub cache_idle_after: u64,

    /// The least spacing in tokens between a slot's context checkpoints of earlier requests,
    /// when the list is full (0: no minimum).
    #[arg(long = "checkpoint-min-step", default_value_t = 8192, value_name = "N")]
    pub checkpoint_min_step: u32,

    /// Show special tokens in generated text.
    #[arg(long)]
    pub special: bool,

    /// When a slot's context fills during generation, drop the oldest tokens after --keep and
    /// go on (default off: generation stops).
    #[arg(long = "context-shift", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub context_shift: bool,

    /// Expose Prometheus metrics on /metrics.
    #[arg(long)]
    pub metrics: bool,

    /// List the models in the Hugging Face cache and exit (as `gguf-serve list`).
    #[arg(long = "cache-list")]
    pub cache_list: bool,

    /// Several models from one folder (`--models-dir`, without --model).
    #[command(flatten)]
    pub router: super::router::RouterArgs,

    /// The flags given, as gguf-serve's own, less the router's: what the router hands to each
    /// model's server.
    #[arg(skip)]
    pub given: Vec<std::ffi::OsString>,
}

/// Checks the model file, builds the engine and server settings, and serves until stopped.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.load.list_devices {
        return super::devices::run(super::DevicesArgs {
            json: false,
            rpc: args.load.rpc.clone(),
        });
    }
    if args.cache_list {
        return super::store::list(&super::store::ListArgs { json: false });
    }
    args.log.init()?;
    if let Some(source) = super::router::wanted(&args) {
        let config = super::router::config(&args, source)?;
        http_runtime(&args)?.block_on(crate::router::run(config))?;
        return Ok(());
    }
    if let Some(dir) = &args.router.models_dir {
        tracing::warn!(
            "--models-dir {} is ignored: a model is given, so it alone is served",
            dir.display()
        );
    }
    let (server, engine) = configs(&args)?;
    http_runtime(&args)?.block_on(crate::server::run(server, engine))?;
    Ok(())
}

/// The server's and the engine's settings: the model chosen and planned (`run` serves it too).
pub(super) fn configs(args: &ServeArgs) -> anyhow::Result<(ServerConfig, EngineConfig)> {
    args.load.rpc.add()?;
    let decision = choose_model(args)?;
    let engine = engine_config(args, &decision)?;
    let server = server_config(args, &decision)?;
    Ok((server, engine))
}

/// The HTTP threads (`--threads-http`; one per core by default).
pub(super) fn http_runtime(args: &ServeArgs) -> anyhow::Result<tokio::runtime::Runtime> {
    let threads = match args.http.threads_http {
        n if n > 0 => n as usize,
        _ => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(threads)
        .thread_name("http")
        .build()?)
}

/// The HTTP side's settings for the model `decision` chose.
fn server_config(args: &ServeArgs, decision: &Decision) -> anyhow::Result<ServerConfig> {
    Ok(ServerConfig {
        // The path given, or the file fetched from Hugging Face.
        model_arg: args
            .model
            .as_deref()
            .filter(|p| p.exists())
            .unwrap_or(&decision.file)
            .display()
            .to_string(),
        predicted: Some(decision.predicted),
        predicted_devices: decision
            .split
            .as_ref()
            .map(|s| s.devices.clone())
            .unwrap_or_default(),
        planned: Some(crate::server::Planned {
            quant: decision.quant.clone(),
            n_gpu_layers: decision.n_gpu_layers,
            n_cpu_moe: decision.n_cpu_moe,
        }),
        prompt_cache: decision.prompt_cache,
        checkpoints_limit: decision.checkpoints,
        ..server_config_of(args)?
    })
}

/// The HTTP side's settings that come from the flags alone (the router's too).
pub(super) fn server_config_of(args: &ServeArgs) -> anyhow::Result<ServerConfig> {
    let http = &args.http;
    Ok(ServerConfig {
        hosts: http.hosts()?,
        port: http.port,
        reuse_port: http.reuse_port,
        api_keys: http.api_keys()?,
        aliases: sorted_set(&http.alias),
        tags: sorted_set(&http.tags),
        model_arg: String::new(),
        template: args.chat.template()?,
        chat: args.chat.options()?,
        defaults: args.sampling_defaults.defaults(http.sse_ping_interval)?,
        max_queue: http.max_queue,
        max_connections: http.max_connections,
        special: args.special,
        endpoint_slots: http.slots,
        endpoint_props: http.props,
        endpoint_metrics: args.metrics,
        cors: http.cors(),
        tls: http.tls()?,
        api_prefix: http.api_prefix.trim_end_matches('/').to_string(),
        static_path: http.path.clone(),
        ui: http.ui,
        stop_on_signal: true,
        timeout_secs: http.timeout,
        shutdown_timeout_secs: http.shutdown_timeout,
        predicted: None,
        predicted_devices: Vec::new(),
        planned: None,
        prompt_cache: crate::plan::prompt_cache::CacheRam::Off,
        checkpoints_limit: 0,
        infill: crate::server::InfillConfig {
            spm: args.slots.spm_infill,
            n_batch: args.memory.batch_size,
        },
        slot_save_path: args.slots.slot_save_path()?,
        embeddings: crate::server::EmbeddingOptions {
            enabled: args.embed.enabled(),
            reranking: args.embed.enabled() && args.embed.pooling() == crate::engine::Pooling::Rank,
            embd_normalize: args.embed.embd_normalize,
        },
    })
}

/// The engine's settings: the planner's file and offload, and every flag of llama.cpp's model,
/// context and CPU parameters.
fn engine_config(args: &ServeArgs, decision: &Decision) -> anyhow::Result<EngineConfig> {
    let memory = &args.memory;
    let load = &args.load;
    let (cpu, cpu_batch) = args.threads.cpu_params()?;
    let n_gpu_layers = match (load.fit()?, memory.n_gpu_layers) {
        (_, _) if !decision.use_gpu => 0,
        // `--fit off`: -ngl as given, auto meaning every layer (as llama.cpp without fitting).
        (false, GpuLayers::Auto | GpuLayers::All) => u32::MAX,
        (false, GpuLayers::Count(n)) => n,
        (true, _) => decision.n_gpu_layers,
    };
    // The planner's ubatch goes with its offload.
    let n_ubatch = if load.fit()? {
        decision.n_ubatch
    } else {
        memory.ubatch_asked()
    };
    Ok(EngineConfig {
        model_path: decision.file.clone(),
        model: ModelParams {
            n_gpu_layers,
            split_mode: memory.split_mode()?,
            main_gpu: memory.main_gpu,
            tensor_split: tensor_split(
                memory,
                load,
                decision.split.as_ref().map(|s| s.tensor_split.as_slice()),
            )?,
            // A GPU too small for even the compute buffers is left out (`--device none`).
            devices: if decision.use_gpu {
                load.devices()
            } else {
                Some(Vec::new())
            },
            load_mode: load.load_mode()?,
            lazy_mode: load.lazy_mode()?,
            check_tensors: load.check_tensors,
            use_extra_bufts: load.repack,
            no_host: load.no_host,
            kv_overrides: load.kv_overrides()?,
            tensor_overrides: load.tensor_overrides()?,
            cpu_moe: memory.cpu_moe,
            n_cpu_moe: decision.n_cpu_moe,
            n_cpu_ffn: load.n_cpu_ffn,
        },
        context: ContextConfig {
            n_ctx: memory.ctx_size,
            n_batch: args.embed.n_batch(memory.batch_size, n_ubatch),
            n_ubatch,
            n_parallel: memory.n_parallel()?,
            kv_unified: memory.kv_unified(),
            n_ctx_slot_max: memory.kv_unified_per_slot,
            swa_full: memory.swa_full,
            flash_attn: match memory.flash_attn {
                FlashAttn::On => Some(true),
                FlashAttn::Off => Some(false),
                FlashAttn::Auto => None,
            },
            type_k: cache_type(&memory.cache_type_k).context("--cache-type-k")?,
            type_v: cache_type(&memory.cache_type_v).context("--cache-type-v")?,
            offload_kqv: memory.kv_offload,
            op_offload: load.op_offload,
            no_perf: !load.perf,
            rope: load.rope()?,
            embeddings: args.embed.enabled(),
            pooling: args.embed.pooling(),
        },
        cpu,
        cpu_batch,
        verbose: args.log.verbose,
        backend_sampling: backend_sampling(args),
        warmup: load.warmup,
        slot_prompt_similarity: args.slot_prompt_similarity,
        cache_ram_mib: decision.prompt_cache.mib(),
        cache_idle_slots: args.cache_idle_slots,
        cache_idle_after: std::time::Duration::from_millis(args.cache_idle_after),
        checkpoints: CheckpointLimits {
            max: args.memory.ctx_checkpoints as usize,
            min_step: args.checkpoint_min_step as usize,
            tail: memory.ubatch_asked() as usize,
        },
        context_shift: args.context_shift,
        special: args.special,
        numa: load.numa()?,
        lora: args.lora.adapters()?,
        control_vectors: args.control_vectors.load()?,
    })
}

/// `-ts` for llama.cpp: the user's, else the planner's layer counts when it split the model
/// over several GPUs (not with `--fit off`, which leaves llama.cpp's split by free memory).
fn tensor_split(
    memory: &super::memory::MemoryArgs,
    load: &super::load::LoadArgs,
    planned: Option<&[u32]>,
) -> anyhow::Result<Vec<f32>> {
    let given = memory.tensor_split()?;
    if !given.is_empty() || !load.fit()? {
        return Ok(given);
    }
    Ok(planned
        .unwrap_or_default()
        .iter()
        .map(|&n| n as f32)
        .collect())
}

/// Reads the headers of the model file(s) and picks the file and offload that fit (`--quant`,
/// `-ngl`, `--n-cpu-moe`), saying why. A missing, non-GGUF or truncated header fails here,
/// with the file named, before the server starts listening. A Hugging Face repo is planned from
/// its headers and only the pick downloaded.
fn choose_model(args: &ServeArgs) -> anyhow::Result<Decision> {
    let request = plan_request(args)?;
    if let Some(repo) = hub_repo(args)? {
        let remote = Remote::open(
            &args.hf.file,
            &repo,
            Some(&args.quant),
            args.http.offline,
            log_tracing,
        )?;
        let mut decision =
            plan(args, &remote.summaries(), &request).with_context(|| repo.clone())?;
        decision.file = remote.fetch(&decision.file)?;
        return Ok(decision);
    }
    let path = args
        .model
        .as_deref()
        .context("--model is required (a GGUF file, or a folder of quants of one model), or --hf-repo ORG/REPO, or --models-dir DIR to serve every model of a folder (without any, the models `gguf-serve pull` cached)")?;
    let resolved = source::resolve(path, Some(&args.quant))?;
    for skipped in &resolved.skipped {
        tracing::warn!("skipped {skipped}");
    }
    plan(args, &resolved, &request).with_context(|| path.display().to_string())
}

/// What the planner is asked, from the memory flags.
fn plan_request(args: &ServeArgs) -> anyhow::Result<crate::plan::PlanRequest> {
    let mut request = args.memory.plan_request()?;
    // An embedding server's ubatch is the longest input it reads: llama-server's, unraised.
    request.ubatch_auto &= !args.embed.enabled();
    Ok(request)
}

/// The planner's choice for the model (a file or a folder) at `path` on `budget`, as a
/// model's server would choose it with these flags (the router plans with it).
pub(super) fn plan_on(
    args: &ServeArgs,
    budget: &crate::plan::Budget,
    path: &Path,
) -> anyhow::Result<Decision> {
    let resolved = source::resolve(path, Some(&args.quant))?;
    Ok(crate::plan::choose(
        &resolved,
        &plan_request(args)?,
        budget,
    )?)
}

/// The Hugging Face repo to serve: `--hf-repo`, or `--model hf://ORG/REPO`. A `--model` that
/// is neither a file nor a folder but reads as a repo or a URL is refused with what to use.
fn hub_repo(args: &ServeArgs) -> anyhow::Result<Option<String>> {
    if let Some(repo) = &args.hf.hf_repo {
        return Ok(Some(repo.clone()));
    }
    if let Some(file) = &args.hf.file.hf_file {
        anyhow::bail!(
            "--hf-file {file}: names a file of a Hugging Face repo; give the repo with -hf ORG/REPO"
        );
    }
    let Some(model) = args.model.as_deref().and_then(|p| p.to_str()) else {
        return Ok(None);
    };
    if let Some(repo) = model.strip_prefix("hf://") {
        return Ok(Some(repo.to_owned()));
    }
    if Path::new(model).exists() {
        return Ok(None);
    }
    if model.starts_with("http://") || model.starts_with("https://") {
        anyhow::bail!(
            "{model}: downloading a model from a URL is not supported; for a Hugging Face repo use -hf ORG/REPO[:QUANT]"
        );
    }
    if model.parse::<crate::hub::RepoRef>().is_ok() {
        anyhow::bail!(
            "{model}: no such file or folder; to fetch it from Hugging Face use -hf {model}"
        );
    }
    Ok(None)
}

/// Picks among `models` for this machine's devices, memory and speed, logging why.
fn plan(
    args: &ServeArgs,
    models: &[crate::gguf::ModelSummary],
    request: &crate::plan::PlanRequest,
) -> anyhow::Result<Decision> {
    let budget = detected_budget(args, models)?;
    let decision = crate::plan::choose(models, request, &budget)?;
    for warning in &decision.warnings {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        file = %decision.file.display(),
        quant = %decision.quant,
        n_gpu_layers = decision.n_gpu_layers,
        n_cpu_moe = decision.n_cpu_moe,
        n_ubatch = decision.n_ubatch,
        "model chosen"
    );
    for reason in &decision.reasons {
        tracing::info!("plan: {reason}");
    }
    Ok(decision)
}

/// This machine's memory and speed for the planner, as the flags limit them (devices,
/// margin); the host's speed is measured only to rank several `models`.
pub(super) fn detected_budget(
    args: &ServeArgs,
    models: &[crate::gguf::ModelSummary],
) -> anyhow::Result<crate::plan::Budget> {
    let devices = args.load.devices();
    let threads = match args.threads.threads {
        Some(n) if n > 0 => n as usize,
        _ => crate::hardware::math_threads().max(1) as usize,
    };
    // Speeds only rank candidates: one file needs none, and measuring costs ~0.3 s.
    let host = if models.len() > 1 {
        crate::hardware::speed::host_speed(threads, None, models)
    } else {
        crate::plan::HostSpeed::bandwidth_only(0.0, crate::plan::BandwidthSource::Assumed)
    };
    let budget = crate::hardware::budget(args.memory.fit_margin()?, devices.as_deref(), host, None);
    args.memory.check_main_gpu(budget.gpus.len())?;
    Ok(budget)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_planned_split_reaches_llama_cpp_unless_the_user_gives_one() {
        let planned: &[u32] = &[25, 8];
        // (flags, the planner's -ts, what llama.cpp gets)
        type Case<'a> = (&'a [&'a str], Option<&'a [u32]>, &'a [f32]);
        let cases: &[Case] = &[
            (&[], Some(planned), &[25.0, 8.0]),
            // One GPU: no split planned, none passed.
            (&[], None, &[]),
            (&["-ts", "3,1"], Some(planned), &[3.0, 1.0]),
            (&["--tensor-split", "1/1"], None, &[1.0, 1.0]),
            // --fit off: llama.cpp's own split by free memory.
            (&["--fit", "off"], Some(planned), &[]),
        ];
        for (extra, planned, want) in cases {
            let argv = ["gguf-serve", "-m", "model.gguf"].iter().chain(*extra);
            let cli = crate::cli::Cli::parse_with_env(argv.map(Into::into), &|_| None).unwrap();
            let got = tensor_split(&cli.serve.memory, &cli.serve.load, *planned).unwrap();
            assert_eq!(got, *want, "{extra:?}");
        }
    }

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
