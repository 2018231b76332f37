//! OpenAI's `/v1/completions`, an adapter over the pipeline with llama-server's shapes: one
//! object whose `choices` hold every result (`usage` and `timings` are the first result's, as
//! llama-server reports them), chunks ending in `data: [DONE]`. Shared with the chat adapter:
//! `usage`, `finish_reason`, the `logprobs` object and the fingerprint.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::AppState;
use super::edge::{RawBody, RequestCtx};
use super::error::ApiError;
use super::fields::Body;
use super::pipeline::{self, Adapter, Finished, StepProbs, Update, probs_json, unix_time};
use super::request::Generation;
use crate::engine::{Completion, LoadedModel, StopType};

/// `POST /v1/completions`.
pub async fn completions(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let body = Body::parse(&body)?;
    let model = Arc::clone(state.model()?);
    let generation = Generation::from_completion(&body, &model, &state.config.defaults)?;
    let adapter = Completions {
        id: format!("chatcmpl-{}", ctx.id),
        model_name: state.model_name(),
        model,
        special: state.config.special,
    };
    pipeline::respond(&state, &ctx, generation, adapter).await
}

struct Completions {
    id: String,
    model_name: String,
    model: Arc<LoadedModel>,
    special: bool,
}

impl Completions {
    fn object(&self, choices: Vec<Value>) -> Value {
        json!({
            "choices": choices,
            "created": unix_time(),
            "model": self.model_name,
            "system_fingerprint": fingerprint(),
            "object": "text_completion",
            "id": self.id,
        })
    }
}

impl Adapter for Completions {
    fn answer(&mut self, results: Vec<Finished>) -> Value {
        let choices = results
            .iter()
            .map(|r| {
                json!({
                    "text": r.done.text,
                    "index": r.index,
                    "logprobs": logprobs(&self.model, &r.probs, self.special),
                    "finish_reason": finish_reason(&r.done),
                })
            })
            .collect();
        let mut object = self.object(choices);
        if let Some(first) = results.first() {
            object["usage"] = usage(&first.done);
            object["timings"] = json!(first.done.timings);
        }
        object
    }

    fn stream(&mut self, update: Update) -> Vec<Value> {
        match update {
            Update::Token {
                index,
                text,
                probs,
                timings,
                ..
            } => {
                let probs: Vec<StepProbs> = probs.into_iter().collect();
                let mut chunk = self.object(vec![json!({
                    "text": text,
                    "index": index,
                    "logprobs": logprobs(&self.model, &probs, self.special),
                    "finish_reason": null,
                })]);
                if let Some(timings) = timings {
                    chunk["timings"] = json!(timings);
                }
                vec![chunk]
            }
            Update::Done(r) => {
                let mut chunk = self.object(vec![json!({
                    "text": r.done.tail,
                    "index": r.index,
                    "logprobs": null,
                    "finish_reason": finish_reason(&r.done),
                })]);
                chunk["usage"] = usage(&r.done);
                chunk["timings"] = json!(r.done.timings);
                vec![chunk]
            }
        }
    }

    fn done_marker(&self) -> bool {
        true
    }
}

/// OpenAI's `usage`: every prompt token (cached ones included), and those reused from the cache.
pub fn usage(done: &Completion) -> Value {
    json!({
        "completion_tokens": done.tokens_predicted,
        "prompt_tokens": done.tokens_evaluated,
        "total_tokens": done.tokens_predicted + done.tokens_evaluated,
        "prompt_tokens_details": { "cached_tokens": done.timings.cache_n },
    })
}

/// `stop` when generation ended by itself (end of generation or a stop string), else `length`.
pub fn finish_reason(done: &Completion) -> &'static str {
    match done.stop_type {
        StopType::Eos | StopType::Word(_) => "stop",
        StopType::Limit | StopType::None => "length",
    }
}

/// The string clients see as `system_fingerprint` (llama-server's build info).
pub fn fingerprint() -> String {
    format!("gguf-serve-{}", env!("CARGO_PKG_VERSION"))
}

/// OpenAI's `logprobs` object holding llama-server's entries (`null` when none were asked for).
pub fn logprobs(model: &LoadedModel, probs: &[StepProbs], special: bool) -> Value {
    if probs.is_empty() {
        return Value::Null;
    }
    json!({ "content": probs.iter().map(|p| probs_json(model, p, special)).collect::<Vec<_>>() })
}
