//! Running one generation for a handler: collect it whole, or stream it as Server-Sent Events.
//! The receiver is owned by the response: when a client disconnects, axum drops it and the engine
//! frees the slot at its next step.

use std::convert::Infallible;

use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use tokio::sync::mpsc::UnboundedReceiver;

use super::error::{ApiError, ErrorType};
use llama_cpp_2::token::LlamaToken;

use crate::engine::{Completion, EngineError, Event, GenerateRequest, TokenProbs};
use crate::server::AppState;

/// How an engine error reaches the client.
pub fn engine_error(e: EngineError) -> ApiError {
    match e {
        EngineError::QueueFull(_) => ApiError {
            retry_after: Some(1),
            ..ApiError::new(ErrorType::Unavailable, e.to_string())
        },
        EngineError::Sampler(_) => ApiError::invalid(e.to_string()),
        EngineError::ShuttingDown | EngineError::Stopped => {
            ApiError::new(ErrorType::Unavailable, e.to_string())
        }
        other => ApiError::server(other.to_string()),
    }
}

/// A finished request, with the token probabilities when they were asked for.
pub struct Collected {
    pub done: Completion,
    pub probs: Vec<(LlamaToken, TokenProbs)>,
}

/// Runs a request to the end; the completion's `text` holds everything generated.
pub async fn collect(state: &AppState, request: GenerateRequest) -> Result<Collected, ApiError> {
    let mut rx = state.engine.generate(request).map_err(engine_error)?;
    let mut probs = Vec::new();
    while let Some(event) = rx.recv().await {
        match event {
            Event::Token {
                token,
                probs: Some(p),
                ..
            } => probs.push((token, p)),
            Event::Token { .. } => {}
            Event::Done(done) => return Ok(Collected { done: *done, probs }),
            Event::Error(e) => return Err(engine_error(e)),
        }
    }
    Err(engine_error(EngineError::Stopped))
}

/// What a stream formatter is given.
pub enum Item {
    /// One token: the text it released (may be empty while a stop string is possible) and its
    /// probabilities when asked for.
    Token {
        text: String,
        probs: Option<(LlamaToken, TokenProbs)>,
    },
    Done(Box<Completion>),
}

/// llama-server's `completion_probabilities` entry for one step.
pub fn probs_json(
    model: &crate::engine::LoadedModel,
    token: LlamaToken,
    probs: &TokenProbs,
) -> serde_json::Value {
    let entry = |t: LlamaToken, p: f32| {
        let bytes = model.token_bytes(t);
        serde_json::json!({
            "id": t.0,
            "token": String::from_utf8_lossy(&bytes),
            "bytes": bytes,
            "logprob": if p > 0.0 { p.ln() } else { f32::MIN },
        })
    };
    let mut this = entry(token, probs.prob);
    this["top_logprobs"] = probs.top.iter().map(|&(t, p)| entry(t, p)).collect();
    this
}

/// Starts a request and streams it. The first event is awaited before answering, so a request
/// that cannot start (queue full, bad grammar) still gets a proper error status.
/// `format` turns each item into the JSON payloads of `data:` lines; `done_marker` appends
/// `data: [DONE]` (the OpenAI routes).
pub async fn stream<F>(
    state: &AppState,
    request: GenerateRequest,
    format: F,
    done_marker: bool,
) -> Result<Response, ApiError>
where
    F: FnMut(Item) -> Vec<serde_json::Value> + Send + 'static,
{
    let mut rx = state.engine.generate(request).map_err(engine_error)?;
    let first = match rx.recv().await {
        Some(Event::Error(e)) => return Err(engine_error(e)),
        Some(event) => event,
        None => return Err(engine_error(EngineError::Stopped)),
    };
    let events = events(first, rx, format, done_marker);
    Ok(Sse::new(events).into_response())
}

fn events<F>(
    first: Event,
    mut rx: UnboundedReceiver<Event>,
    mut format: F,
    done_marker: bool,
) -> impl Stream<Item = Result<SseEvent, Infallible>>
where
    F: FnMut(Item) -> Vec<serde_json::Value> + Send + 'static,
{
    async_stream::stream! {
        let mut next = Some(first);
        loop {
            let event = match next.take() {
                Some(e) => e,
                None => match rx.recv().await {
                    Some(e) => e,
                    None => break,
                },
            };
            match event {
                Event::Token { token, text, probs } => {
                    if !text.is_empty() || probs.is_some() {
                        let probs = probs.map(|p| (token, p));
                        for payload in format(Item::Token { text, probs }) {
                            yield Ok(SseEvent::default().data(payload.to_string()));
                        }
                    }
                }
                Event::Done(done) => {
                    for payload in format(Item::Done(done)) {
                        yield Ok(SseEvent::default().data(payload.to_string()));
                    }
                    break;
                }
                Event::Error(e) => {
                    let body = serde_json::json!({ "error": engine_error(e).body() });
                    yield Ok(SseEvent::default().data(body.to_string()));
                    break;
                }
            }
        }
        if done_marker {
            yield Ok(SseEvent::default().data("[DONE]"));
        }
    }
}

/// Seconds since the Unix epoch, for `created`.
pub fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A random id suffix for `chatcmpl-…` and `cmpl-…`.
pub fn random_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| {
            char::from(
                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                    [rng.random_range(0..62)],
            )
        })
        .collect()
}
