//! Ollama's API on the same server (`/api/chat`, `/api/generate`, `/api/embed`,
//! `/api/embeddings`, `/api/tags`, `/api/show`, `/api/ps`, `/api/version`), which the `ollama`
//! clients and the tools built for Ollama speak: a thin adapter over the pipeline the OpenAI
//! routes run. A request is mapped onto the chat route's body (`request.rs`), prepared and run
//! as `/v1/chat/completions` runs it (`chat::prepare`, `pipeline::respond`), and written as
//! Ollama's answer, streamed by default as newline-delimited JSON (`response.rs`). The served
//! model answers to any model name, as the OpenAI routes do; errors are `{"error": "…"}`.

mod models;
mod request;
mod response;

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use llama_cpp_2::token::LlamaToken;
use serde_json::{Value, json};

use super::AppState;
use super::chat;
use super::edge::{RawBody, RequestCtx};
use super::embeddings;
use super::error::ApiError;
use super::fields::{Body, type_error};
use super::pipeline;
use super::request::Generation;
use crate::engine::{LoadedModel, TaskKind};
pub use models::ModelFile;
use request::Route;
use response::{Answer, Kind};

/// Whether a path (after `--api-prefix`) is under Ollama's `/api/`.
pub fn is_api_path(path: &str) -> bool {
    path.starts_with("/api/")
}

/// The status and body of an error on Ollama's routes: `{"error": "…"}`.
pub fn error_response(error: &ApiError, _request_id: Option<&str>) -> (StatusCode, Value) {
    (error.kind.status(), json!({ "error": error.message }))
}

/// `GET /api/version`: this server's version.
pub async fn version() -> Json<Value> {
    Json(json!({ "version": env!("CARGO_PKG_VERSION") }))
}

/// `GET /api/tags`: the served model.
pub async fn tags(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let file = model_file(&state).await?;
    Ok(Json(models::tags(&state, &file)))
}

/// `GET /api/ps`: the served model, loaded.
pub async fn ps(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let file = model_file(&state).await?;
    Ok(Json(models::ps(&state, state.model()?, &file)))
}

/// `POST /api/show`: the served model's details, metadata and template.
pub async fn show(
    State(state): State<Arc<AppState>>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    // Every model name is this model; the body is still checked.
    Body::parse(&body)?;
    let model = state.model()?;
    let file = model_file(&state).await?;
    Ok(Json(models::show(model, state.template()?, &file)))
}

/// The served model's header, read once, off the async threads.
async fn model_file(state: &AppState) -> Result<Arc<ModelFile>, ApiError> {
    let model = Arc::clone(state.model()?);
    let file = state
        .model_file
        .get_or_try_init(|| async move {
            tokio::task::spawn_blocking(move || ModelFile::read(&model).map(Arc::new))
                .await
                .map_err(|e| ApiError::server(e.to_string()))?
        })
        .await?;
    Ok(Arc::clone(file))
}

/// `POST /api/chat` (without messages there is nothing to generate: `done_reason: load`).
pub async fn chat(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let body = Body::parse(&body)?;
    let mut chat_body = request::chat_body(&body)?;
    let name = model_name(&state, &body)?;
    if chat_body
        .0
        .get("messages")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        let mut loaded = loaded(name);
        loaded["message"] = json!({ "role": "assistant", "content": "" });
        return Ok(Json(loaded).into_response());
    }
    let prepared = chat::prepare(&state, &mut chat_body)?;
    let answer = Answer::new(Kind::Chat, name, prepared.reader)
        .with_logprobs(request::logprobs(&body)?, &state)?;
    pipeline::respond(&state, &ctx, prepared.generation, answer).await
}

/// The answer to a request with nothing to generate: the model is loaded (as Ollama loads it
/// for such a request; here it always is, since the edge answers 503 until then).
fn loaded(name: String) -> Value {
    json!({
        "model": name,
        "created_at": now(),
        "done": true,
        "done_reason": "load",
    })
}

/// `POST /api/generate`: a prompt through the chat template (its `system` first), or as it
/// is with `raw`; `context` (an earlier answer's conversation) goes before it. Without a
/// prompt there is nothing to generate (`done_reason: load`).
pub async fn generate(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let body = Body::parse(&body)?;
    let name = model_name(&state, &body)?;
    let prompt = body.str(&["prompt"])?.unwrap_or_default().to_string();
    let context = request::context(&body)?;
    if prompt.is_empty() {
        let mut loaded = loaded(name);
        loaded["response"] = "".into();
        return Ok(Json(loaded).into_response());
    }
    let (route, mut generate_body) = request::generate_body(&body, &prompt)?;
    let (mut generation, reader) = match route {
        Route::Chat => {
            let prepared = chat::prepare(&state, &mut generate_body)?;
            (prepared.generation, prepared.reader)
        }
        Route::Raw => {
            let model = state.model()?;
            let generation =
                Generation::from_completion(&generate_body, model, &state.config.defaults)?;
            (generation, chat::AnswerReader::content_only())
        }
    };
    if !context.is_empty() {
        let model = state.model()?;
        go_on_from(&mut generation, &context, model);
    }
    let answer = Answer::new(Kind::Generate, name, reader)
        .with_logprobs(request::logprobs(&body)?, &state)?;
    pipeline::respond(&state, &ctx, generation, answer).await
}

/// Puts an earlier conversation's tokens before the prompt (without the prompt's own
/// beginning-of-sequence token, which the conversation has already).
fn go_on_from(generation: &mut Generation, context: &[i32], model: &LoadedModel) {
    let bos = model.model.vocab().bos();
    for prompt in &mut generation.prompts {
        let rest = match prompt.first() {
            Some(&first) if first == bos => &prompt[1..],
            _ => &prompt[..],
        };
        let mut tokens: Vec<LlamaToken> = context.iter().map(|&t| LlamaToken(t)).collect();
        tokens.extend_from_slice(rest);
        *prompt = tokens;
    }
}

/// `POST /api/embed`: L2-normalized vectors of each input, which by default is cut to what
/// one input may hold (`truncate: false` makes that an error instead).
pub async fn embed(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let body = Body::parse(&body)?;
    let input = match body.get(&["input"]) {
        None | Some((_, Value::Null)) => Vec::new(),
        Some((_, Value::String(text))) => vec![text.clone()],
        Some((_, Value::Array(items))) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .ok_or_else(|| type_error("input", "string or array of strings", v))
            })
            .collect::<Result<_, _>>()?,
        Some((_, other)) => return Err(type_error("input", "string or array of strings", other)),
    };
    let truncate = body.bool(&["truncate"])?.unwrap_or(true);
    let started = std::time::Instant::now();
    let vectors = embed_texts(&state, &ctx, &input, truncate, 2).await?;
    let n_tokens: usize = vectors.iter().map(|(_, n)| n).sum();
    Ok(Json(json!({
        "model": model_name(&state, &body)?,
        "embeddings": vectors.into_iter().map(|(v, _)| v).collect::<Vec<_>>(),
        "total_duration": started.elapsed().as_nanos() as u64,
        "load_duration": 0,
        "prompt_eval_count": n_tokens,
    })))
}

/// `POST /api/embeddings` (Ollama's first embedding route): the vector of `prompt`, not
/// normalized.
pub async fn embeddings_legacy(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let body = Body::parse(&body)?;
    let prompt = body.str(&["prompt"])?.unwrap_or_default().to_string();
    if prompt.is_empty() {
        return Ok(Json(json!({ "embedding": [] })));
    }
    let mut vectors = embed_texts(&state, &ctx, &[prompt], false, -1).await?;
    let (vector, _) = vectors.pop().unwrap_or_default();
    Ok(Json(json!({ "embedding": vector })))
}

/// One pooled vector per text, with the tokens each took.
async fn embed_texts(
    state: &AppState,
    ctx: &RequestCtx,
    texts: &[String],
    truncate: bool,
    normalize: i32,
) -> Result<Vec<(Vec<f32>, usize)>, ApiError> {
    embeddings::require_enabled(state)?;
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let model = Arc::clone(state.model()?);
    let most = if model.embedding.can_split {
        model.n_ctx_slot as usize - 1
    } else {
        (model.embedding.n_ubatch as usize).min(model.n_ctx_slot as usize)
    };
    let mut inputs = Vec::with_capacity(texts.len());
    for text in texts {
        let mut tokens = model.tokenize(text, true, true);
        if tokens.is_empty() {
            return Err(ApiError::invalid("Input content cannot be empty"));
        }
        if truncate {
            tokens.truncate(most);
        }
        inputs.push(tokens);
    }
    let results =
        embeddings::run(state, ctx, &model, inputs, TaskKind::Embed { normalize }).await?;
    Ok(results
        .into_iter()
        .map(|r| (r.vectors.into_iter().next().unwrap_or_default(), r.n_tokens))
        .collect())
}

/// The model name an answer echoes: the request's, else the served model's.
fn model_name(state: &AppState, body: &Body) -> Result<String, ApiError> {
    Ok(body
        .str(&["model"])?
        .filter(|m| !m.is_empty())
        .map_or_else(|| state.model_name(), String::from))
}

/// Now, as Ollama's `created_at`.
pub(crate) fn now() -> String {
    rfc3339(SystemTime::now())
}

/// A time in RFC 3339 (UTC, with nanoseconds), as Ollama writes its times.
fn rfc3339(time: SystemTime) -> String {
    time::OffsetDateTime::from(time)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths() {
        assert!(is_api_path("/api/chat"));
        assert!(is_api_path("/api/nope"));
        assert!(!is_api_path("/api"));
        assert!(!is_api_path("/apiary"));
        assert!(!is_api_path("/v1/chat/completions"));
    }

    #[test]
    fn times_as_ollama_writes_them() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123456789Z");
    }
}
