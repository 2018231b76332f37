//! Anthropic's Messages API (`POST /v1/messages`, `POST /v1/messages/count_tokens`), which
//! Claude Code and the `anthropic` SDK speak: a thin adapter over the chat route's core. The
//! body is mapped onto the chat request (`request.rs`), prepared and run exactly as
//! `/v1/chat/completions` runs it (`chat::prepare`, `pipeline::respond`), and the parsed answer
//! written as Anthropic's message or event stream (`response.rs`, `stream.rs`). Errors on these
//! paths are written in Anthropic's shape (`error.rs`).

mod error;
mod request;
mod response;
mod stream;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use axum::response::Response;
use serde_json::{Value, json};

pub use error::{error_response, is_messages_path};

use super::AppState;
use super::chat;
use super::edge::{RawBody, RequestCtx};
use super::error::ApiError;
use super::fields::Body;
use super::pipeline;

/// `POST /v1/messages`.
pub async fn messages(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let body = Body::parse(&body)?;
    let mut chat_body = request::to_chat_body(&body)?;
    let chat = chat::prepare(&state, &mut chat_body)?;
    let adapter = response::Messages {
        id: format!("msg_{}", ctx.id),
        model_name: state.model_name(),
        reader: chat.reader,
        stop_sequences: request::stop_sequences(&body),
        streaming: None,
    };
    pipeline::respond(&state, &ctx, chat.generation, adapter).await
}

/// `POST /v1/messages/count_tokens`: the tokens of the prompt `/v1/messages` would run.
pub async fn count_tokens(
    State(state): State<Arc<AppState>>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let body = Body::parse(&body)?;
    let chat_body = request::to_chat_body(&body)?;
    let (_, rendered) = chat::render(&state, &chat_body)?;
    let n_tokens = state.model()?.tokenize(&rendered.prompt, true, true).len();
    Ok(Json(json!({ "input_tokens": n_tokens })))
}
