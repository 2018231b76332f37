//! The HTTP server: llama-server's native and OpenAI-compatible routes over axum.
//!
//! Every request goes one way: the edge (`edge.rs`: request id and span, CORS, readiness, API
//! key, llama-server's error JSON for axum's rejections) → a route adapter that parses its body
//! into the one typed request (`request.rs`, llama-server's schema and wording, over the server's
//! defaults) → the pipeline (`pipeline.rs`), which runs it on the engine and hands results back
//! to the adapter for its protocol's JSON. The server listens before the model is loaded,
//! answering 503 until it is, as llama-server does.

mod anthropic;
mod chat;
mod connections;
mod dialect;
mod edge;
mod embeddings;
mod error;
mod fields;
mod infill;
mod info;
mod listen;
mod lora;
mod memory;
mod native;
mod ollama;
mod openai;
mod pipeline;
mod request;
mod rerank;
mod responses;
mod settings;
mod slots;
mod tls;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};

pub(crate) use dialect::in_protocol_shape;
pub use edge::Cors;
pub(crate) use edge::{Gate, RawBody, RequestCtx, admit, not_found, observe, panicked, random_id};
pub use embeddings::EmbeddingOptions;
pub use error::{ApiError, ErrorType};
pub(crate) use listen::{Listeners, exit_on_second_signal, shutdown_signal};
pub use listen::{free_loopback_port, run};
pub(crate) use ollama::{ModelFile, now as ollama_now, version as ollama_version};
pub use request::Defaults;
pub use tls::{TlsError, TlsFiles};

use crate::chat::{ChatError, ChatOptions, ChatTemplate};
use crate::engine::{Engine, EngineError, LoadedModel};
use crate::plan::MemoryEstimate;

/// Bodies up to this size are read (llama-server's httplib limit).
pub(crate) const BODY_LIMIT: usize = 100 << 20;

/// Which chat template the server renders with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateChoice {
    /// The model's own (`tokenizer.chat_template`), ChatML if it has none.
    Model,
    /// A Jinja template given with `--chat-template` or `--chat-template-file`.
    Jinja(String),
    /// One of llama.cpp's built-in templates by name (`--chat-template gemma`).
    Builtin(String),
}

/// Settings of the HTTP side (a plain struct built by the CLI).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Addresses to listen on (`--host a,b`; a path ending in `.sock` is a Unix socket).
    pub hosts: Vec<String>,
    pub port: u16,
    /// `SO_REUSEPORT` on the listening sockets.
    pub reuse_port: bool,
    /// Keys clients must send (`--api-key a,b`, `--api-key-file`); empty: none.
    pub api_keys: Vec<String>,
    /// Model names (`--alias a,b`), sorted and deduplicated; the first is the name clients see.
    pub aliases: Vec<String>,
    /// `--tags`, sorted and deduplicated.
    pub tags: Vec<String>,
    /// `-m` as it was given: the model's name when there is no alias.
    pub model_arg: String,
    pub template: TemplateChoice,
    pub chat: ChatOptions,
    /// Requests' defaults (sampling flags, `-n`, `--keep`, `-r`, …).
    pub defaults: Defaults,
    pub max_queue: usize,
    /// `--max-connections` (0: as many as the open-file limit allows).
    pub max_connections: usize,
    /// `--special`: special tokens in generated text and token pieces.
    pub special: bool,
    pub endpoint_slots: bool,
    pub endpoint_props: bool,
    pub endpoint_metrics: bool,
    pub cors: Cors,
    /// `--api-prefix`: every route under this path.
    pub api_prefix: String,
    /// `--path`: static files served for other GET paths.
    pub static_path: Option<PathBuf>,
    /// Serve the chat page at `/` (unless `static_path` serves a folder there).
    pub ui: bool,
    /// Ctrl-C and SIGTERM stop the server (not `run`'s, where Ctrl-C stops an answer).
    pub stop_on_signal: bool,
    /// `--timeout`: seconds a connection may stay silent while reading or writing.
    pub timeout_secs: u64,
    /// `--shutdown-timeout`: seconds requests in flight may run on after a stop signal.
    pub shutdown_timeout_secs: u64,
    /// What the planner predicted the model would allocate, to report against what it did.
    pub predicted: Option<MemoryEstimate>,
    /// The planner's memory per GPU, when it split the model over several.
    pub predicted_devices: Vec<crate::plan::DevicePlan>,
    /// The planner's pick, for `/metrics`.
    pub planned: Option<Planned>,
    /// The host prompt cache's planned limit, for `/props`.
    pub prompt_cache: crate::plan::prompt_cache::CacheRam,
    /// The most host memory the slots' context checkpoints were planned to take, for `/props`.
    pub checkpoints_limit: u64,
    /// `/infill`: the prompt's layout and the room it takes.
    pub infill: InfillConfig,
    /// `--slot-save-path`: the folder slot files are saved in and restored from (none: slot
    /// actions are refused).
    pub slot_save_path: Option<PathBuf>,
    /// `--embedding`, `--reranking`, `--embd-normalize`.
    pub embeddings: EmbeddingOptions,
    /// `--ssl-cert-file` and `--ssl-key-file`: HTTPS on the TCP addresses.
    pub tls: Option<TlsFiles>,
}

/// What `/infill` needs of the server's flags (llama-server sizes the prompt's parts by them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfillConfig {
    /// `--spm-infill`: suffix, prefix, middle (instead of prefix, suffix, middle).
    pub spm: bool,
    /// `-b`: the logical batch size as given.
    pub n_batch: u32,
}

impl Default for InfillConfig {
    fn default() -> Self {
        Self {
            spm: false,
            n_batch: 2048,
        }
    }
}

/// The quant and offload the planner chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub quant: String,
    pub n_gpu_layers: u32,
    pub n_cpu_moe: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            hosts: vec!["127.0.0.1".into()],
            port: 8080,
            reuse_port: false,
            api_keys: Vec::new(),
            aliases: Vec::new(),
            tags: Vec::new(),
            model_arg: String::new(),
            template: TemplateChoice::Model,
            chat: ChatOptions::default(),
            defaults: Defaults::default(),
            max_queue: 256,
            max_connections: 0,
            special: false,
            endpoint_slots: true,
            endpoint_props: false,
            endpoint_metrics: false,
            cors: Cors::default(),
            api_prefix: String::new(),
            static_path: None,
            ui: true,
            stop_on_signal: true,
            timeout_secs: 3600,
            shutdown_timeout_secs: 5,
            predicted: None,
            predicted_devices: Vec::new(),
            planned: None,
            prompt_cache: crate::plan::prompt_cache::CacheRam::Off,
            checkpoints_limit: 0,
            infill: InfillConfig::default(),
            slot_save_path: None,
            embeddings: EmbeddingOptions::default(),
            tls: None,
        }
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{path}: {source}")]
    Template { path: String, source: ChatError },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Shared by every handler.
#[derive(Debug)]
pub struct AppState {
    pub engine: Engine,
    pub config: ServerConfig,
    model: OnceLock<Arc<LoadedModel>>,
    template: OnceLock<ChatTemplate>,
    next_id: AtomicU64,
    started: std::time::Instant,
    /// Seconds from start until the model was ready.
    load_seconds: OnceLock<f64>,
    /// The served model's header, as Ollama's listings show it (read at the first).
    model_file: tokio::sync::OnceCell<Arc<ollama::ModelFile>>,
}

impl AppState {
    pub fn new(engine: Engine, config: ServerConfig) -> Self {
        Self {
            engine,
            config,
            model: OnceLock::new(),
            template: OnceLock::new(),
            next_id: AtomicU64::new(0),
            started: std::time::Instant::now(),
            load_seconds: OnceLock::new(),
            model_file: tokio::sync::OnceCell::new(),
        }
    }

    /// Seconds the model took to load (0 until it is ready).
    pub fn load_seconds(&self) -> f64 {
        self.load_seconds.get().copied().unwrap_or(0.0)
    }

    /// The loaded model; handlers behind the readiness check can rely on it.
    pub fn model(&self) -> Result<&Arc<LoadedModel>, ApiError> {
        self.model.get().ok_or_else(loading)
    }

    /// The chat template (see [`TemplateChoice`]).
    pub fn template(&self) -> Result<&ChatTemplate, ApiError> {
        self.template.get().ok_or_else(loading)
    }

    /// Whether the model is loaded and requests are served.
    pub fn is_ready(&self) -> bool {
        self.model.get().is_some()
    }

    /// A new task id (`id_task` in `/slots`).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The model name clients see: the first alias, else `-m` as given.
    pub fn model_name(&self) -> String {
        self.config
            .aliases
            .first()
            .cloned()
            .unwrap_or_else(|| self.config.model_arg.clone())
    }
}

fn loading() -> ApiError {
    ApiError::new(ErrorType::Unavailable, "Loading model")
}

/// Builds the router over a state (used by `run` and by tests that bind their own listener).
pub fn router(state: Arc<AppState>) -> Router {
    let routes = Router::new()
        .route("/health", get(info::health))
        .route("/v1/health", get(info::health))
        .route("/props", get(info::props).post(info::set_props))
        .route("/slots", get(info::slots))
        .route("/metrics", get(info::metrics))
        .route("/models", get(info::models))
        .route("/v1/models", get(info::models))
        .route("/completion", post(native::completion))
        .route("/completions", post(native::completion))
        .route("/infill", post(infill::infill))
        .route("/slots/{id_slot}", post(slots::action))
        .route("/v1/completions", post(openai::completions))
        .route("/chat/completions", post(chat::chat_completions))
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/tokenize", post(native::tokenize))
        .route("/detokenize", post(native::detokenize))
        .route("/apply-template", post(chat::apply_template))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/responses", post(responses::responses))
        .route("/v1/responses", post(responses::responses))
        .route(
            "/responses/input_tokens",
            post(responses::responses_input_tokens),
        )
        .route(
            "/v1/responses/input_tokens",
            post(responses::responses_input_tokens),
        )
        .route(
            "/chat/completions/input_tokens",
            post(responses::chat_input_tokens),
        )
        .route(
            "/v1/chat/completions/input_tokens",
            post(responses::chat_input_tokens),
        )
        .route(
            "/lora-adapters",
            get(lora::adapters).post(lora::set_adapters),
        )
        .route("/embedding", post(embeddings::native))
        .route("/embeddings", post(embeddings::native))
        .route("/v1/embeddings", post(embeddings::openai))
        .route("/rerank", post(rerank::rerank))
        .route("/reranking", post(rerank::rerank))
        .route("/v1/rerank", post(rerank::rerank))
        .route("/v1/reranking", post(rerank::rerank))
        .route("/api/version", get(ollama::version))
        .route("/api/tags", get(ollama::tags))
        .route("/api/ps", get(ollama::ps))
        .route("/api/show", post(ollama::show))
        .route("/api/chat", post(ollama::chat))
        .route("/api/generate", post(ollama::generate))
        .route("/api/embed", post(ollama::embed))
        .route("/api/embeddings", post(ollama::embeddings_legacy));
    let prefix = state.config.api_prefix.clone();
    let mut app = if prefix.is_empty() {
        routes
    } else {
        Router::new().nest(&prefix, routes)
    };
    if let Some(dir) = &state.config.static_path {
        // A missing file, a path leaving the folder (`..`, absolute) and a method other than
        // GET/HEAD get the same 404 error JSON as an unknown route.
        use axum::handler::HandlerWithoutStateExt;
        let files = tower_http::services::ServeDir::new(dir)
            .fallback(edge::not_found.into_service())
            .call_fallback_on_method_not_allowed(true);
        app = app.fallback_service(files);
    } else {
        if state.config.ui {
            // At the prefix with its slash, so that the page finds the API beside it.
            app = app
                .route(&format!("{prefix}/"), get(crate::ui::index))
                .route(&format!("{prefix}/index.html"), get(crate::ui::index));
            if !prefix.is_empty() {
                let to = format!("{prefix}/");
                app = app.route(
                    &prefix,
                    get(move || async move { axum::response::Redirect::permanent(&to) }),
                );
            }
        }
        app = app.fallback(edge::not_found);
    }
    app.method_not_allowed_fallback(edge::not_found)
        // Innermost, so that a panic's 500 passes the edge like any error (the access line,
        // Anthropic's error shape).
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            edge::panicked,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            edge::guard,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            dialect::protocol_errors,
        ))
        .layer(middleware::from_fn(edge::observe))
        .with_state(state)
}
