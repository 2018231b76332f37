//! The OpenAI-compatible routes: `/v1/models`, `/v1/completions`, `/v1/chat/completions`, and
//! llama-server's `/apply-template`, with llama-server's JSON (`usage`, `timings`, SSE chunks
//! ending in `data: [DONE]`).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::fields::Body;
use super::generate::{self, Item, random_id, unix_time};
use super::native::request_for_text;
use super::params;
use llama_cpp_2::token::LlamaToken;

use crate::engine::{Completion, LoadedModel, StopType, TokenProbs};

pub async fn models(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let model = state.model()?;
    let name = state.model_name();
    Ok(Json(json!({
        "models": [{
            "name": name,
            "model": name,
            "modified_at": "",
            "size": "",
            "digest": "",
            "type": "model",
            "description": "",
            "tags": [""],
            "capabilities": ["completion"],
            "parameters": "",
            "details": { "parent_model": "", "format": "gguf", "family": "", "families": [""], "parameter_size": "", "quantization_level": "" },
        }],
        "object": "list",
        "data": [{
            "id": name,
            "aliases": state.config.alias.iter().collect::<Vec<_>>(),
            "tags": [],
            "object": "model",
            "created": unix_time(),
            "owned_by": "llamacpp",
            "meta": {
                "n_vocab": model.n_vocab,
                "n_ctx": model.n_ctx_slot,
                "n_ctx_train": model.n_ctx_train,
                "n_params": model.n_params,
                "size": model.size,
            },
        }],
    })))
}

fn usage(done: &Completion) -> Value {
    json!({
        "completion_tokens": done.tokens_predicted,
        "prompt_tokens": done.tokens_evaluated,
        "total_tokens": done.tokens_predicted + done.tokens_evaluated,
        "prompt_tokens_details": { "cached_tokens": done.tokens_cached },
    })
}

fn finish_reason(done: &Completion) -> &'static str {
    match done.stop_type {
        StopType::Eos | StopType::Word(_) => "stop",
        StopType::Limit => "length",
    }
}

fn fingerprint() -> String {
    format!("gguf-serve-{}", env!("CARGO_PKG_VERSION"))
}

/// `POST /v1/completions`.
pub async fn completions(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = Body::parse(&body)?;
    let model = Arc::clone(state.model()?);
    let Some((_, prompt)) = body.get(&["prompt"]) else {
        return Err(ApiError::invalid("\"prompt\" is required"));
    };
    let prompt = params::prompt(prompt, &model)?;
    let request = params::generate_request(
        &body,
        &model,
        prompt,
        state.next_id(),
        state.config.n_predict,
    )?;
    let stream = body.bool(&["stream"])?.unwrap_or(false);
    let id = format!("cmpl-{}", random_id());
    let name = state.model_name();
    let chunk = move |text: &str, finish: Value, done: Option<&Completion>| {
        let mut c = json!({
            "choices": [{ "text": text, "index": 0, "logprobs": null, "finish_reason": finish }],
            "created": unix_time(),
            "model": name,
            "system_fingerprint": fingerprint(),
            "object": "text_completion",
            "id": id,
        });
        if let Some(done) = done {
            c["usage"] = usage(done);
            c["timings"] = json!(done.timings);
        }
        c
    };
    if !stream {
        let collected = generate::collect(&state, request).await?;
        let done = &collected.done;
        let mut reply = chunk(&done.text, finish_reason(done).into(), Some(done));
        reply["choices"][0]["logprobs"] = logprobs(&model, &collected.probs);
        return Ok(Json(reply).into_response());
    }
    let format = move |item: Item| match item {
        Item::Token { text, probs } => {
            let mut c = chunk(&text, Value::Null, None);
            c["choices"][0]["logprobs"] = logprobs(&model, probs.as_slice());
            vec![c]
        }
        Item::Done(done) => vec![chunk(&done.tail, finish_reason(&done).into(), Some(&done))],
    };
    generate::stream(&state, request, format, true).await
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = Body::parse(&body)?;
    let model = Arc::clone(state.model()?);
    let prompt = render(&state, &body)?;
    let request = request_for_text(&state, &body, &model, &prompt)?;
    let stream = body.bool(&["stream"])?.unwrap_or(false);
    let include_usage = body
        .get(&["stream_options"])
        .and_then(|(_, v)| v.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let id = format!("chatcmpl-{}", random_id());
    let name = state.model_name();
    if !stream {
        let collected = generate::collect(&state, request).await?;
        let done = &collected.done;
        let mut choice = json!({
            "finish_reason": finish_reason(done),
            "index": 0,
            "message": { "role": "assistant", "content": done.text },
        });
        if !collected.probs.is_empty() {
            choice["logprobs"] = logprobs(&model, &collected.probs);
        }
        return Ok(Json(json!({
            "choices": [choice],
            "created": unix_time(),
            "model": name,
            "system_fingerprint": fingerprint(),
            "object": "chat.completion",
            "usage": usage(done),
            "id": id,
            "timings": done.timings,
        }))
        .into_response());
    }
    let mut first = true;
    let chunk = move |delta: Value, finish: Value| {
        json!({
            "choices": [{ "finish_reason": finish, "index": 0, "delta": delta }],
            "created": unix_time(),
            "id": id,
            "model": name,
            "system_fingerprint": fingerprint(),
            "object": "chat.completion.chunk",
        })
    };
    let format = move |item: Item| {
        let mut out = Vec::new();
        if std::mem::take(&mut first) {
            out.push(chunk(
                json!({ "role": "assistant", "content": null }),
                Value::Null,
            ));
        }
        match item {
            Item::Token { text, probs } => {
                let mut c = chunk(json!({ "content": text }), Value::Null);
                if probs.is_some() {
                    c["choices"][0]["logprobs"] = logprobs(&model, probs.as_slice());
                }
                out.push(c);
            }
            Item::Done(done) => {
                if !done.tail.is_empty() {
                    out.push(chunk(json!({ "content": done.tail }), Value::Null));
                }
                out.push(chunk(json!({}), finish_reason(&done).into()));
                if include_usage {
                    let mut last = chunk(json!({}), Value::Null);
                    last["choices"] = json!([]);
                    last["usage"] = usage(&done);
                    out.push(last);
                }
                if let Some(last) = out.last_mut() {
                    last["timings"] = json!(done.timings);
                }
            }
        }
        out
    };
    generate::stream(&state, request, format, true).await
}

/// OpenAI's `logprobs` object (`null` when none were asked for).
fn logprobs(model: &LoadedModel, probs: &[(LlamaToken, TokenProbs)]) -> Value {
    if probs.is_empty() {
        return Value::Null;
    }
    json!({ "content": probs.iter().map(|(t, p)| generate::probs_json(model, *t, p)).collect::<Vec<_>>() })
}

/// `POST /apply-template`: the prompt the chat template renders, without generating.
pub async fn apply_template(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = Body::parse(&body)?;
    Ok(Json(json!({ "prompt": render(&state, &body)? })))
}

/// Renders `messages` into a prompt with ChatML, llama-server's fallback for models without a
/// chat template.
fn render(_state: &AppState, body: &Body) -> Result<String, ApiError> {
    let Some((_, messages)) = body.get(&["messages"]) else {
        return Err(ApiError::invalid("'messages' is required"));
    };
    let Value::Array(messages) = messages else {
        return Err(super::fields::type_error("messages", "array", messages));
    };
    if messages.is_empty() {
        return Err(ApiError::invalid("'messages' must not be empty"));
    }
    let mut prompt = String::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).ok_or_else(|| {
            ApiError::invalid(format!(
                "'messages[{i}].role' is required and must be a string"
            ))
        })?;
        let content = match m.get("content") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .map(|p| p.get("text").and_then(Value::as_str).unwrap_or_default())
                .collect(),
            Some(other) => {
                return Err(super::fields::type_error(
                    &format!("messages[{i}].content"),
                    "string or array",
                    other,
                ));
            }
        };
        prompt.push_str(&format!("<|im_start|>{role}\n{content}<|im_end|>\n"));
    }
    prompt.push_str("<|im_start|>assistant\n");
    Ok(prompt)
}
