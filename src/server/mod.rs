//! The HTTP server: llama-server's native and OpenAI-compatible routes over axum.
//!
//! Handlers validate at the edge: they parse JSON into typed engine requests (every field
//! checked, the prompt tokenized and measured against the context) before anything reaches the
//! engine, and turn every failure into llama-server's error JSON ([`ApiError`]). The server
//! listens before the model is loaded, answering 503 until it is, as llama-server does.

mod error;
mod fields;
mod generate;
mod memory;
mod native;
mod openai;
mod params;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use error::{ApiError, ErrorType};

use crate::chat::{ChatError, ChatTemplate, ReasoningFormat, SpecialTokens};
use crate::engine::{Engine, EngineConfig, EngineError, LoadedModel};
use crate::plan::MemoryEstimate;
use memory::memory_report;

/// Settings of the HTTP side (a plain struct built by the CLI).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub api_key: Option<String>,
    /// Name reported for the model; default: the file name.
    pub alias: Option<String>,
    /// A Jinja template overriding the model's.
    pub chat_template: Option<String>,
    pub max_queue: usize,
    /// Default `n_predict` for requests that set none (-1: no limit).
    pub n_predict: i32,
    /// `--reasoning-format`.
    pub reasoning_format: ReasoningFormat,
    /// What the planner predicted the model would allocate, to report against what it did.
    pub predicted: Option<MemoryEstimate>,
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
}

/// Shared by every handler.
#[derive(Debug)]
pub struct AppState {
    pub engine: Engine,
    pub config: ServerConfig,
    model: OnceLock<Arc<LoadedModel>>,
    template: OnceLock<ChatTemplate>,
    next_id: AtomicU64,
    model_path: PathBuf,
}

impl AppState {
    /// The loaded model; handlers behind the readiness layer can rely on it.
    pub fn model(&self) -> Result<&Arc<LoadedModel>, ApiError> {
        self.model.get().ok_or_else(loading)
    }

    /// The chat template (the model's, `--chat-template-file`, or ChatML).
    pub fn template(&self) -> Result<&ChatTemplate, ApiError> {
        self.template.get().ok_or_else(loading)
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The model name clients see (`--alias`, else the file name).
    pub fn model_name(&self) -> String {
        self.config.alias.clone().unwrap_or_else(|| {
            self.model_path.file_name().map_or_else(
                || self.model_path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        })
    }
}

fn loading() -> ApiError {
    ApiError::new(ErrorType::Unavailable, "Loading model")
}

/// Builds the router over a state (used by `run` and by tests that bind their own listener).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(native::health))
        .route("/v1/health", get(native::health))
        .route("/props", get(native::props))
        .route("/slots", get(native::slots))
        .route("/models", get(openai::models))
        .route("/v1/models", get(openai::models))
        .route("/completion", post(native::completion))
        .route("/completions", post(native::completion))
        .route("/v1/completions", post(openai::completions))
        .route("/chat/completions", post(openai::chat_completions))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/tokenize", post(native::tokenize))
        .route("/detokenize", post(native::detokenize))
        .route("/apply-template", post(openai::apply_template))
        .fallback(|| async { ApiError::new(ErrorType::NotFound, "File Not Found") })
        .layer(middleware::from_fn_with_state(Arc::clone(&state), guard))
        .with_state(state)
}

/// llama-server's pre-routing checks: the API key (except on /health), then readiness.
async fn guard(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let public = path == "/health" || path == "/v1/health";
    if let Some(key) = &state.config.api_key {
        let sent = request
            .headers()
            .get(AUTHORIZATION)
            .or_else(|| request.headers().get("x-api-key"))
            .and_then(|v| v.to_str().ok())
            .map(|v| v.strip_prefix("Bearer ").unwrap_or(v));
        if !public && sent != Some(key.as_str()) {
            tracing::warn!(path, "unauthorized: Invalid API Key");
            return ApiError::new(ErrorType::Authentication, "Invalid API Key").into_response();
        }
    }
    if state.model.get().is_none() {
        return loading().into_response();
    }
    next.run(request).await
}

/// Listens, loads the model on the engine thread, and serves until Ctrl-C/SIGTERM or until
/// loading fails (then returns the load error).
pub async fn run(config: ServerConfig, engine_config: EngineConfig) -> Result<(), ServerError> {
    let addr = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let local: SocketAddr = listener.local_addr()?;
    let model_path = engine_config.model_path.clone();
    let (engine, ready, engine_thread) = Engine::spawn(engine_config, config.max_queue);
    let state = Arc::new(AppState {
        engine: engine.clone(),
        config,
        model: OnceLock::new(),
        template: OnceLock::new(),
        next_id: AtomicU64::new(0),
        model_path,
    });
    tracing::info!("HTTP server listening on http://{local} (loading model)");

    let (load_failed_tx, load_failed_rx) = tokio::sync::oneshot::channel::<ServerError>();
    let loader_state = Arc::clone(&state);
    tokio::spawn(async move {
        match ready.await {
            Ok(Ok(model)) => {
                let template = match chat_template(&loader_state.config, &model) {
                    Ok(t) => t,
                    Err(e) => {
                        let _ = load_failed_tx.send(e);
                        return;
                    }
                };
                let _ = loader_state.template.set(template);
                for line in memory_report(loader_state.config.predicted.as_ref(), &model.memory) {
                    tracing::info!("memory: {line}");
                }
                tracing::info!(
                    n_ctx = model.n_ctx,
                    n_slots = model.n_slots,
                    "model loaded: {}; server is ready on http://{local}",
                    model.path.display()
                );
                let _ = loader_state.model.set(model);
            }
            Ok(Err(e)) => {
                let _ = load_failed_tx.send(e.into());
            }
            Err(_) => {
                let _ = load_failed_tx.send(EngineError::Stopped.into());
            }
        }
    });

    let load_error = Arc::new(std::sync::Mutex::new(None));
    let load_error_slot = Arc::clone(&load_error);
    let shutdown = async move {
        tokio::select! {
            _ = shutdown_signal() => tracing::info!("shutting down"),
            Ok(e) = load_failed_rx => { *load_error_slot.lock().expect("not poisoned") = Some(e); }
        }
    };
    axum::serve(listener, router(Arc::clone(&state)))
        .with_graceful_shutdown(shutdown)
        .await?;
    engine.shutdown();
    let _ = tokio::task::spawn_blocking(move || engine_thread.join()).await;
    match load_error.lock().expect("not poisoned").take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The template chats are rendered with: `--chat-template-file`, else the model's, else
/// ChatML (llama-server's fallback), with a warning.
fn chat_template(config: &ServerConfig, model: &LoadedModel) -> Result<ChatTemplate, ServerError> {
    let tokens = SpecialTokens {
        bos: model.bos_token.clone(),
        eos: model.eos_token.clone(),
        add_bos: model.add_bos,
        add_eos: model.add_eos,
    };
    let source = config
        .chat_template
        .as_deref()
        .or(model.chat_template.as_deref());
    let template = ChatTemplate::new(source, tokens).map_err(|source| ServerError::Template {
        path: model.path.display().to_string(),
        source,
    })?;
    if template.is_fallback() {
        tracing::warn!("the model has no chat template: chats are rendered with ChatML");
    }
    tracing::info!(format = template.format().name(), "chat template ready");
    Ok(template)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
