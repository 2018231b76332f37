//! OpenAI's Responses API (`POST /v1/responses`) and the token-count routes
//! (`/v1/responses/input_tokens`, `/v1/chat/completions/input_tokens`): thin adapters over the
//! chat route. A Responses body is rewritten as the chat body it means (`convert.rs`), prepared
//! by the chat adapter (template, grammar, field checks) and run through the one pipeline; only
//! the answer's shape and its stream of named events (`output.rs`) are the Responses API's own.

mod convert;
mod output;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::AppState;
use super::chat;
use super::edge::{RawBody, RequestCtx};
use super::error::ApiError;
use super::fields::Body;
use super::pipeline;

/// `POST /v1/responses`.
pub async fn responses(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let mut body = convert::to_chat(&parse(&body)?)?;
    let prepared = chat::prepare(&state, &mut body)?;
    let adapter = output::Responses::new(&ctx.id, state.model_name(), prepared.reader);
    pipeline::respond(&state, &ctx, prepared.generation, adapter).await
}

/// A Responses body: JSON that is not an object has no `input` (llama-server's reading).
fn parse(bytes: &[u8]) -> Result<Body, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(Body(map)),
        Ok(_) => Err(ApiError::invalid(crate::wording::responses::INPUT_REQUIRED)),
        Err(_) => Body::parse(bytes),
    }
}

/// `POST /v1/responses/input_tokens`: the prompt's length, as `/v1/responses` would tokenize it.
pub async fn responses_input_tokens(
    State(state): State<Arc<AppState>>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let body = convert::to_chat(&parse(&body)?)?;
    input_tokens(&state, &body)
}

/// `POST /v1/chat/completions/input_tokens`: the prompt's length, as
/// `/v1/chat/completions` would tokenize it.
pub async fn chat_input_tokens(
    State(state): State<Arc<AppState>>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    input_tokens(&state, &Body::parse(&body)?)
}

/// llama-server's answer to both count routes: the rendered prompt's tokens (with the model's
/// BOS and special tokens, as generation tokenizes it), nothing generated.
fn input_tokens(state: &AppState, body: &Body) -> Result<Json<Value>, ApiError> {
    let (_, rendered) = chat::render(state, body)?;
    let n_tokens = state.model()?.tokenize(&rendered.prompt, true, true).len();
    Ok(Json(
        json!({ "input_tokens": n_tokens, "object": "response.input_tokens" }),
    ))
}
