//! The router's HTTP side: llama-server's router routes (`/models`, `/models/load`,
//! `/models/unload`, the router's `/props` and `/health`) and every other route forwarded to
//! the model the request names, behind the same edge as a model's server (request id and
//! access line, CORS, API keys, error shapes per protocol).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::instance::State as InstanceState;
use super::{Router, RouterConfig, model_flags};
use crate::server::{
    ApiError, ErrorType, Gate, Listeners, RawBody, ServerError, admit, exit_on_second_signal,
    in_protocol_shape, not_found, observe, panicked, shutdown_signal,
};

/// Serves the router until Ctrl-C or SIGTERM, then stops every model's server.
pub async fn run(config: RouterConfig) -> Result<(), ServerError> {
    let listeners = Listeners::bind(&config.server)?;
    let router = Arc::new(Router::new(config));
    let config = &router.config;
    for url in &listeners.urls {
        tracing::info!(
            "router listening on {url}: {} models from {} (at most {} loaded at once)",
            config.catalog.len(),
            config.models_dir.display(),
            match config.max_models {
                0 => "any number".to_string(),
                n => n.to_string(),
            }
        );
    }
    for entry in &config.catalog {
        match router.plan(entry) {
            Ok(planned) => tracing::info!(model = %entry.id, "{}", planned.summary),
            Err(why) => tracing::warn!(model = %entry.id, "cannot be loaded here: {why}"),
        }
    }
    let expiring = tokio::spawn({
        let router = Arc::clone(&router);
        async move { router.unload_expired().await }
    });
    let serving = listeners.serve(app(Arc::clone(&router)), &config.server);
    let on_signal = config.server.stop_on_signal;
    shutdown_signal(on_signal).await;
    tracing::info!("shutting down");
    exit_on_second_signal(on_signal);
    let grace = std::time::Duration::from_secs(config.server.shutdown_timeout_secs);
    let _ = tokio::time::timeout(grace, serving.stop()).await;
    expiring.abort();
    router.shutdown().await;
    Ok(())
}

fn app(router: Arc<Router>) -> axum::Router {
    // Routes at their full paths (not nested), so that a forwarded request keeps its prefix.
    let prefix = router.config.server.api_prefix.clone();
    let at = |path: &str| format!("{prefix}{path}");
    let app = axum::Router::new()
        .route(&at("/health"), get(health))
        .route(&at("/v1/health"), get(health))
        .route(&at("/models"), get(models))
        .route(&at("/v1/models"), get(models))
        .route(&at("/models/load"), post(load))
        .route(&at("/models/unload"), post(unload))
        .route(&at("/api/version"), get(crate::server::ollama_version))
        .route(&at("/api/tags"), get(ollama_tags))
        .route(&at("/api/ps"), get(ollama_ps));
    // The chat page, which offers the folder's models.
    let app = if router.config.server.ui {
        let app = app
            .route(&at("/"), get(crate::ui::index))
            .route(&at("/index.html"), get(crate::ui::index));
        if prefix.is_empty() {
            app
        } else {
            let to = at("/");
            app.route(
                &prefix,
                get(move || async move { axum::response::Redirect::permanent(&to) }),
            )
        }
    } else {
        app
    };
    app.fallback(forward)
        .method_not_allowed_fallback(not_found)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(middleware::from_fn_with_state(Arc::clone(&router), gate))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&router),
            protocol_errors,
        ))
        .layer(middleware::from_fn(observe))
        .with_state(router)
}

async fn gate(State(router): State<Arc<Router>>, request: Request, next: Next) -> Response {
    admit(Gate::of(&router.config.server), None, request, next).await
}

async fn protocol_errors(
    State(router): State<Arc<Router>>,
    request: Request,
    next: Next,
) -> Response {
    in_protocol_shape(&router.config.server.api_prefix, request, next).await
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Every model of the folder with its status, its server's command line and its plan.
async fn models(State(router): State<Arc<Router>>) -> Json<Value> {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut data = Vec::new();
    for entry in &router.config.catalog {
        let instance = router.listed(&entry.id).await;
        let mut status = match &instance {
            Some(i) => {
                let value = match i.state() {
                    InstanceState::Loading => "loading",
                    InstanceState::Loaded => "loaded",
                    InstanceState::Stopped | InstanceState::Failed { .. } => "unloaded",
                };
                json!({ "value": value, "args": i.args })
            }
            None => {
                let args = router.config.launch.command_line(&model_flags(entry, 0));
                json!({ "value": "unloaded", "args": args })
            }
        };
        if let Some(InstanceState::Failed { exit_code, message }) =
            instance.as_ref().map(|i| i.state())
        {
            status["failed"] = json!(true);
            status["exit_code"] = json!(exit_code);
            status["message"] = json!(message);
        }
        let plan = match router.plan(entry) {
            Ok(planned) => json!({
                "summary": planned.summary,
                "memory": { "gpus": planned.memory.gpus, "host": planned.memory.host },
            }),
            Err(error) => json!({ "error": error }),
        };
        let mut model = json!({
            "id": entry.id,
            "aliases": [],
            "tags": [],
            "object": "model",
            "owned_by": "llamacpp",
            "created": created,
            "path": entry.path,
            "status": status,
            "architecture": { "input_modalities": ["text"], "output_modalities": ["text"] },
            "source": entry.source,
            "can_remove": false,
            "plan": plan,
        });
        // A loaded model's own listing adds what its server knows (`meta`).
        if let (Some(info), Some(fields)) = (
            instance.as_ref().and_then(|i| i.info()),
            model.as_object_mut(),
        ) {
            for (key, value) in info {
                fields.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        data.push(model);
    }
    Json(json!({ "data": data, "object": "list" }))
}

/// A request's body as JSON (`null` when it is not JSON, as a GET's empty body).
fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_default()
}

/// The `"model"` of a JSON body (or `"name"`, which older Ollama clients send), or `""`.
fn model_field(body: &Value) -> String {
    ["model", "name"]
        .iter()
        .find_map(|key| body.get(key)?.as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Ollama's `/api/tags`: every model of the folder that can be served here, from the header of
/// the file its server would load (a folder's chosen quant), read once.
async fn ollama_tags(State(router): State<Arc<Router>>) -> Json<Value> {
    let mut models = Vec::new();
    for entry in &router.config.catalog {
        models.extend(router.ollama_tag(entry).await);
    }
    Json(json!({ "models": models }))
}

/// Ollama's `/api/ps`: the loaded models, as their servers describe themselves.
async fn ollama_ps(State(router): State<Arc<Router>>) -> Json<Value> {
    let mut models = Vec::new();
    for entry in &router.config.catalog {
        let Some(instance) = router.instance(&entry.id).await else {
            continue;
        };
        if instance.state() != InstanceState::Loaded {
            continue;
        }
        if let Some(ps) = instance.get_json(&router.client, "/api/ps").await
            && let Some(listed) = ps["models"].as_array()
        {
            models.extend(listed.iter().cloned());
        }
    }
    Json(json!({ "models": models }))
}

/// `POST /models/load`: starts loading the model and answers at once.
async fn load(
    State(router): State<Arc<Router>>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let id = model_field(&json_of(&body));
    if router.entry(&id).is_none() {
        return Err(ApiError::new(ErrorType::NotFound, "model is not found"));
    }
    if router
        .instance(&id)
        .await
        .is_some_and(|i| i.state().is_running())
    {
        return Err(ApiError::invalid("model is already running"));
    }
    router.load(&id).await?;
    Ok(Json(json!({ "success": true })))
}

/// `POST /models/unload`: stops the model's server.
async fn unload(
    State(router): State<Arc<Router>>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let id = model_field(&json_of(&body));
    if router.entry(&id).is_none() {
        return Err(ApiError::invalid("model is not found"));
    }
    router.unload(&id).await?;
    Ok(Json(json!({ "success": true })))
}

/// Every other route: forwarded to the model named by the body's `"model"` (by `?model=` for
/// a request without a body), loaded first unless `--no-models-autoload` or `?autoload=false`
/// say not to. `GET /props` without a model describes the router.
async fn forward(
    State(router): State<Arc<Router>>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Result<Response, ApiError> {
    let request_id = request
        .extensions()
        .get::<crate::server::RequestCtx>()
        .map(|ctx| ctx.id.to_string());
    let (parts, body) = request.into_parts();
    // Under --api-prefix, only the paths below it are the API.
    let Some(path) = parts
        .uri
        .path()
        .strip_prefix(router.config.server.api_prefix.as_str())
        .filter(|p| p.starts_with('/'))
    else {
        return Err(not_found().await);
    };
    let body = axum::body::to_bytes(body, crate::server::BODY_LIMIT)
        .await
        .map_err(|e| ApiError::new(ErrorType::TooLarge, e.to_string()))?;
    // Read once: the name, and on Ollama's routes `keep_alive`.
    let json = json_of(&body);
    let name = match query.get("model") {
        Some(name) if body.is_empty() => name.clone(),
        _ => model_field(&json),
    };
    if name.is_empty() && path == "/props" && parts.method == axum::http::Method::GET {
        return Ok(props(&router).into_response());
    }
    let keep_alive = match (path, &parts.method) {
        ("/api/generate" | "/api/chat", &axum::http::Method::POST) => {
            let keep_alive = super::keep_alive::of(&json).map_err(ApiError::invalid)?;
            if keep_alive == Some(Some(std::time::Duration::ZERO)) && nothing_to_generate(&json) {
                return unload_now(&router, &name, path).await;
            }
            keep_alive
        }
        _ => None,
    };
    let autoload = query
        .get("autoload")
        .map_or(router.config.autoload, |v| v == "true" || v == "1");
    let instance = router.ready(&name, autoload).await?;
    instance.requested(keep_alive);
    super::proxy::forward(
        &router.client,
        &instance,
        router.tick(),
        &router.config.launch.key,
        request_id.as_deref(),
        parts,
        body,
    )
    .await
}

/// An Ollama request without a prompt (or without messages): it only loads or unloads.
fn nothing_to_generate(body: &Value) -> bool {
    let prompt = body
        .get("prompt")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let messages = body.get("messages").and_then(Value::as_array);
    prompt.is_empty() && messages.is_none_or(Vec::is_empty)
}

/// Ollama's `keep_alive: 0` with nothing to generate: the model is unloaded (if it was
/// loaded), and the answer says so (`done_reason: unload`).
async fn unload_now(router: &Router, name: &str, path: &str) -> Result<Response, ApiError> {
    if router.entry(name).is_none() {
        return Err(ApiError::invalid(format!("model '{name}' not found")));
    }
    // Its only error, "not running" (never loaded, or stopped meanwhile), is what was asked.
    let _not_running = router.unload(name).await;
    let mut answer = json!({
        "model": name,
        "created_at": crate::server::ollama_now(),
        "done": true,
        "done_reason": "unload",
    });
    if path == "/api/chat" {
        answer["message"] = json!({ "role": "assistant", "content": "" });
    } else {
        answer["response"] = "".into();
    }
    Ok(Json(answer).into_response())
}

/// The router's own `/props`, in llama-server's shape (a placeholder model for the web UI).
fn props(router: &Router) -> Json<Value> {
    Json(json!({
        "role": "router",
        "max_instances": router.config.max_models,
        "models_autoload": router.config.autoload,
        "model_alias": "gguf-serve",
        "model_path": "none",
        "default_generation_settings": { "params": null, "n_ctx": 0 },
        "ui_settings": {},
        "build_info": format!("gguf-serve {}", crate::build_info::LONG_VERSION),
        "cors_proxy_enabled": false,
    }))
}
