//! Running a [`Generation`] for an API adapter: one engine request per result (several prompts,
//! `n` completions), collected whole or streamed as Server-Sent Events. The adapter only turns
//! results and updates into its protocol's JSON; checks, the context limit, cancellation,
//! keep-alive pings and usage accounting happen here once for every protocol.
//!
//! A receiver belongs to the response: when a client disconnects, axum drops it and the engine
//! frees the slot at its next step.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use llama_cpp_2::token::LlamaToken;
use serde_json::Value;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::AppState;
use super::edge::RequestCtx;
use super::error::{ApiError, ErrorType};
use super::request::Generation;
use crate::engine::{Completion, EngineError, Event, StopType, Timings, TokenProbs};

/// How an engine error reaches the client.
pub fn engine_error(e: EngineError) -> ApiError {
    match e {
        EngineError::QueueFull(_) => ApiError {
            retry_after: Some(1),
            ..ApiError::new(ErrorType::Unavailable, e.to_string())
        },
        EngineError::Sampler(_) => ApiError::invalid(e.to_string()),
        // llama-server answers 500 to generating with an encoder; nothing failed, the model
        // cannot do it, so this is its 501 for what the server does not support.
        EngineError::NotSupported(_) => ApiError::new(ErrorType::NotSupported, e.to_string()),
        EngineError::ShuttingDown | EngineError::Stopped => {
            ApiError::new(ErrorType::Unavailable, e.to_string())
        }
        other => ApiError::server(other.to_string()),
    }
}

/// One generated token's probabilities and the text sent with it.
#[derive(Debug, Clone)]
pub struct StepProbs {
    pub token: LlamaToken,
    /// The text released at this step (possibly empty: held back, or end of generation).
    pub text: String,
    pub probs: TokenProbs,
}

/// One result, run to its end.
#[derive(Debug)]
pub struct Finished {
    pub index: usize,
    pub prompt: Vec<LlamaToken>,
    pub done: Completion,
    /// Per generated token, when `n_probs` asked for them.
    pub probs: Vec<StepProbs>,
}

/// One step of a stream.
#[derive(Debug)]
pub enum Update {
    Token {
        index: usize,
        token: LlamaToken,
        text: String,
        /// Tokens of this result so far.
        n_decoded: usize,
        n_prompt: usize,
        probs: Option<StepProbs>,
        timings: Option<Timings>,
    },
    Done(Finished),
}

/// A protocol's view of results: the JSON of a whole answer, and of each step of a stream.
pub trait Adapter: Send + 'static {
    /// The answer once every result is done (in index order).
    fn answer(&mut self, results: Vec<Finished>) -> Value;
    /// The `data:` payloads of one stream step.
    fn stream(&mut self, update: Update) -> Vec<Value>;
    /// Whether a stream ends with `data: [DONE]` (OpenAI's routes; not after an error).
    fn done_marker(&self) -> bool;
    /// The SSE event carrying one payload (unnamed: `data:` only, unless a protocol names its
    /// events).
    fn event(&self, payload: Value) -> SseEvent {
        SseEvent::default().data(payload.to_string())
    }
    /// The payload sent when generation fails mid-stream (llama-server's `{"error": …}`).
    fn stream_error(&self, error: &ApiError) -> Value {
        serde_json::json!({ "error": error.body() })
    }
    /// What a silent stream sends every `sse_ping_interval` seconds (a comment line, unless a
    /// protocol has its own ping event).
    fn keep_alive(&self) -> Option<SseEvent> {
        None
    }
    /// Whether a stream is newline-delimited JSON (`application/x-ndjson`, one payload a line,
    /// as Ollama streams) instead of Server-Sent Events.
    fn ndjson(&self) -> bool {
        false
    }
}

/// One piece of a stream, framed for its transport.
enum Frame {
    Event(SseEvent),
    Line(Value),
}

/// Runs the generation and answers through `adapter`.
pub async fn respond(
    state: &AppState,
    ctx: &RequestCtx,
    generation: Generation,
    adapter: impl Adapter,
) -> Result<Response, ApiError> {
    let model = state.model()?;
    for prompt in &generation.prompts {
        if prompt.len() >= model.n_ctx_slot as usize {
            return Err(ApiError::exceed_context(prompt.len(), model.n_ctx_slot));
        }
    }
    let requests = generation.engine_requests(|| state.next_id(), &ctx.span);
    let mut tasks = Vec::with_capacity(requests.len());
    for (index, request) in requests {
        let prompt = request.prompt.clone();
        let rx = if prompt.is_empty() {
            // llama-server answers an empty prompt with an empty result.
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let _ = tx.send(Event::Done(Box::new(empty_completion())));
            rx
        } else {
            state.engine.generate(request).map_err(engine_error)?
        };
        tasks.push((index, prompt, rx));
    }
    if generation.stream {
        let ping = generation.response.sse_ping_interval;
        return stream(ctx, tasks, adapter, ping).await;
    }
    let mut adapter = adapter;
    let results = futures::future::try_join_all(
        tasks
            .into_iter()
            .map(|(index, prompt, rx)| collect(state, index, prompt, rx)),
    )
    .await?;
    for r in &results {
        ctx.usage
            .add(r.done.tokens_evaluated, r.done.tokens_predicted);
    }
    Ok(axum::Json(adapter.answer(results)).into_response())
}

/// The result of an empty prompt: nothing generated.
fn empty_completion() -> Completion {
    Completion {
        stop_type: StopType::None,
        text: String::new(),
        tail: String::new(),
        tokens: Vec::new(),
        tokens_predicted: 0,
        tokens_evaluated: 0,
        tokens_cached: 0,
        id_slot: 0,
        truncated: false,
        timings: Timings::default(),
    }
}

type Receiver = tokio::sync::mpsc::UnboundedReceiver<Event>;

/// Runs one engine request to its end.
async fn collect(
    state: &AppState,
    index: usize,
    prompt: Vec<LlamaToken>,
    mut rx: Receiver,
) -> Result<Finished, ApiError> {
    let mut probs = Vec::new();
    while let Some(event) = rx.recv().await {
        match event {
            Event::Token {
                token,
                text,
                probs: Some(p),
                ..
            } => probs.push(StepProbs {
                token,
                text,
                probs: p,
            }),
            Event::Token { .. } => {}
            Event::Done(done) => {
                // llama-server drops the steps that spelled a stop string.
                if let StopType::Word(word) = &done.stop_type {
                    let n = state.model()?.tokenize(word, false, false).len();
                    probs.truncate(probs.len().saturating_sub(n));
                }
                return Ok(Finished {
                    index,
                    prompt,
                    done: *done,
                    probs,
                });
            }
            Event::Error(e) => return Err(engine_error(e)),
            // Generation tasks get no embedding results.
            Event::Embedding(_) => {}
        }
    }
    Err(engine_error(EngineError::Stopped))
}

/// Streams every result's updates as they come; the first event is awaited before answering,
/// so that a request that cannot start (queue full, bad grammar) still gets its error status.
async fn stream(
    ctx: &RequestCtx,
    tasks: Vec<(usize, Vec<LlamaToken>, Receiver)>,
    mut adapter: impl Adapter,
    ping_seconds: i64,
) -> Result<Response, ApiError> {
    // Results are indexed 0..n (`Generation::engine_requests`).
    let n_results = tasks.len();
    let mut prompts: Vec<Vec<LlamaToken>> = vec![Vec::new(); n_results];
    let mut merged = futures::stream::select_all(tasks.into_iter().map(|(index, prompt, rx)| {
        prompts[index] = prompt;
        UnboundedReceiverStream::new(rx).map(move |event| (index, event))
    }));
    let first = match merged.next().await {
        Some((_, Event::Error(e))) => return Err(engine_error(e)),
        Some(first) => first,
        None => return Err(engine_error(EngineError::Stopped)),
    };
    let usage = ctx.usage.clone();
    let keep_alive = adapter.keep_alive();
    let ndjson = adapter.ndjson();
    let frame = move |adapter: &dyn Adapter, payload: Value| {
        if ndjson {
            Frame::Line(payload)
        } else {
            Frame::Event(adapter.event(payload))
        }
    };
    let frames = async_stream::stream! {
        let mut decoded = vec![0usize; n_results];
        let mut next = Some(first);
        let mut failed = false;
        loop {
            let (index, event) = match next.take() {
                Some(e) => e,
                None => match merged.next().await {
                    Some(e) => e,
                    None => break,
                },
            };
            let update = match event {
                Event::Token { token, text, probs, timings } => {
                    decoded[index] += 1;
                    Update::Token {
                        index,
                        token,
                        n_decoded: decoded[index],
                        n_prompt: prompts[index].len(),
                        probs: probs.map(|p| StepProbs { token, text: text.clone(), probs: p }),
                        text,
                        timings,
                    }
                }
                Event::Done(done) => {
                    usage.add(done.tokens_evaluated, done.tokens_predicted);
                    Update::Done(Finished {
                        index,
                        prompt: std::mem::take(&mut prompts[index]),
                        done: *done,
                        probs: Vec::new(),
                    })
                }
                Event::Error(e) => {
                    let body = adapter.stream_error(&engine_error(e));
                    yield frame(&adapter, body);
                    failed = true;
                    break;
                }
                Event::Embedding(_) => continue,
            };
            for payload in adapter.stream(update) {
                yield frame(&adapter, payload);
            }
        }
        if !failed && !ndjson && adapter.done_marker() {
            yield Frame::Event(SseEvent::default().data("[DONE]"));
        }
    };
    if ndjson {
        let lines = frames.filter_map(|frame| async move {
            match frame {
                Frame::Line(payload) => Some(Ok::<_, Infallible>(format!("{payload}\n"))),
                Frame::Event(_) => None,
            }
        });
        let headers = [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")];
        return Ok((headers, axum::body::Body::from_stream(lines)).into_response());
    }
    let events = frames.map(|frame| match frame {
        Frame::Event(event) => Ok::<_, Infallible>(event),
        Frame::Line(payload) => Ok(SseEvent::default().data(payload.to_string())),
    });
    Ok(sse(events, ping_seconds, keep_alive))
}

/// An SSE response, with `ping` (a comment line if none) after `ping_seconds` of silence
/// (never if negative).
fn sse(
    events: impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static,
    ping_seconds: i64,
    ping: Option<SseEvent>,
) -> Response {
    let sse = Sse::new(events);
    match u64::try_from(ping_seconds) {
        Ok(secs) if secs > 0 => {
            let mut keep_alive = KeepAlive::new().interval(Duration::from_secs(secs));
            if let Some(event) = ping {
                keep_alive = keep_alive.event(event);
            }
            sse.keep_alive(keep_alive).into_response()
        }
        _ => sse.into_response(),
    }
}

/// Seconds since the Unix epoch, for `created`.
pub fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A probability as a log probability; 0 as `f32::MIN`, since JSON has no -infinity.
pub fn logprob(p: f32) -> f32 {
    if p > 0.0 { p.ln() } else { f32::MIN }
}

/// llama-server's `completion_probabilities` entry for one step: the chosen token with the text
/// sent at that step, and the top tokens (`logprob`, or `prob` after sampling).
pub fn probs_json(model: &crate::engine::LoadedModel, step: &StepProbs, special: bool) -> Value {
    let post = step.probs.post_sampling;
    let entry = |id: i32, token: String, bytes: Vec<u8>, p: f32| {
        let mut e = serde_json::json!({ "id": id, "token": token, "bytes": bytes });
        if post {
            e["prob"] = p.into();
        } else {
            e["logprob"] = logprob(p).into();
        }
        e
    };
    let mut this = entry(
        step.token.0,
        valid_utf8_prefix(step.text.as_bytes()),
        step.text.as_bytes().to_vec(),
        step.probs.prob,
    );
    let top: Vec<Value> = step
        .probs
        .top
        .iter()
        .map(|&(t, p)| {
            let bytes = model.token_piece(t, special);
            entry(t.0, valid_utf8_prefix(&bytes), bytes, p)
        })
        .collect();
    this[if post { "top_probs" } else { "top_logprobs" }] = top.into();
    this
}

/// The longest valid UTF-8 prefix (llama-server cuts a token's text before a partial
/// character; its `bytes` keep everything).
fn valid_utf8_prefix(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(e) => String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned(),
    }
}
