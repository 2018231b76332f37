//! `gguf-serve bench`: a load generator for llama.cpp-style servers (gguf-serve, llama-server) and
//! OpenAI-compatible ones. It sends a workload at a fixed concurrency (closed loop) or as chat
//! conversations arriving at a rate (open loop), measures each request from the client's side
//! (time to first token, gaps between streamed tokens, latency, output tokens), collects the
//! timings the server reports, and summarises the run. The CLI (`src/cli/bench.rs`) validates
//! flags and prints; this module never prints and never touches the model.
//!
//! - `workload`: synthetic and JSONL prompts, request bodies.
//! - `conversation`: multi-turn chat traffic (arrivals, message lengths, growing histories).
//! - `client`: sends them over HTTP and measures.
//! - `sse`, `response`: read streamed and whole responses.
//! - `stats`: percentiles and the run summary; `report`: the summary as text.

mod client;
mod conversation;
mod report;
mod response;
mod sse;
mod stats;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

pub use client::{BenchConfig, OnDone, run};
pub use conversation::{
    ConversationPlan, ConversationRun, ConversationSummary, DEFAULT_SEED, Turn, arrivals,
    run_conversations, summarize_conversations,
};
pub use report::{render_conversation, render_text};
pub use sse::SseDecoder;
pub use stats::{Distribution, ServerSummary, Summary, percentile, summarize};
pub use workload::{
    BenchRequest, Prompt, RequestOptions, load_requests, parse_requests, request_body,
    synthetic_prompt, synthetic_requests,
};

/// Which API the requests go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// `POST /v1/chat/completions` (OpenAI).
    Chat,
    /// `POST /completion` (llama-server's native API).
    Completion,
}

impl Endpoint {
    /// The request path, relative to the server's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completion => "/completion",
        }
    }
}

impl std::str::FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "chat" => Ok(Endpoint::Chat),
            "completion" => Ok(Endpoint::Completion),
            _ => Err(format!(
                "unknown endpoint {s:?} (expected chat or completion)"
            )),
        }
    }
}

/// llama-server's `timings` object: what the server measured of one request.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerTimings {
    /// Prompt tokens reused from the prompt cache.
    pub cache_n: u64,
    /// Prompt tokens evaluated.
    pub prompt_n: u64,
    pub prompt_ms: f64,
    /// `None` where the server sent null (a rate over no tokens).
    pub prompt_per_second: Option<f64>,
    pub predicted_n: u64,
    pub predicted_ms: f64,
    pub predicted_per_second: Option<f64>,
}

impl ServerTimings {
    /// Reads a `timings` object; fields the server left out are zero. `None` if not an object.
    pub fn from_json(v: &Value) -> Option<Self> {
        v.as_object()?;
        let n = |key| v.get(key).and_then(Value::as_u64).unwrap_or(0);
        let x = |key| v.get(key).and_then(Value::as_f64);
        Some(Self {
            cache_n: n("cache_n"),
            prompt_n: n("prompt_n"),
            prompt_ms: x("prompt_ms").unwrap_or(0.0),
            prompt_per_second: x("prompt_per_second"),
            predicted_n: n("predicted_n"),
            predicted_ms: x("predicted_ms").unwrap_or(0.0),
            predicted_per_second: x("predicted_per_second"),
        })
    }
}

/// What the client measured of one successful request.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Time to the first chunk carrying text; `None` without streaming or without text.
    pub ttft: Option<Duration>,
    /// The gaps between consecutive chunks carrying text (inter-token latency where the server
    /// streams one token a chunk, as llama-server does); empty without streaming.
    pub chunk_gaps: Vec<Duration>,
    pub output_tokens: u64,
    /// Every prompt token, cached ones included, where the server said.
    pub prompt_tokens: Option<u64>,
    /// Prompt tokens the server reused from its cache (`usage.prompt_tokens_details.cached_tokens`
    /// or `timings.cache_n`), where it said.
    pub cached_tokens: Option<u64>,
    pub timings: Option<ServerTimings>,
}

/// One request's fate: its latency (also for failures, which may be slow) and its measurement or
/// the error message to report.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub latency: Duration,
    pub result: Result<Measurement, String>,
}

/// Errors that stop a benchmark before it sends anything.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}{}: {reason}", path.display(), if *line > 0 { format!(":{line}") } else { String::new() })]
    RequestsFile {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}
