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
use super::native::{prompt_request, request_for_text};
use llama_cpp_2::token::LlamaToken;

use crate::chat::{ChatError, ChatParser, ChatRequest, RenderedPrompt};
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
    let request = prompt_request(&state, &body, &model)?;
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

/// `POST /v1/chat/completions`: messages rendered through the chat template; the answer parsed
/// into `content`, `reasoning_content` and `tool_calls` as the model's format dictates.
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = Body::parse(&body)?;
    let model = Arc::clone(state.model()?);
    let (chat, rendered) = render(&state, &body)?;
    let mut request = request_for_text(&state, &body, &model, &rendered.prompt)?;
    if let Some(grammar) = chat.grammar(rendered.format).map_err(chat_error)? {
        request.sampling.grammar = Some(grammar);
    }
    request
        .stop
        .extend(rendered.additional_stops.iter().cloned());
    request.preserved_tokens = rendered
        .preserved_tokens
        .iter()
        .filter_map(|text| match model.tokenize(text, false, true).as_slice() {
            [token] => Some(*token),
            _ => None,
        })
        .collect();
    let mut parser = ChatParser::new(chat.parser_config(&rendered, state.config.reasoning_format))
        .with_tools(&chat.tools);
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
        parser.push(&done.text);
        let (_, message) = parser.finish();
        let mut choice = json!({
            "finish_reason": message.finish_reason(stopped(done)),
            "index": 0,
            "message": message.to_openai_json(),
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
    let mut parser = Some(parser);
    let format = move |item: Item| {
        let mut out = Vec::new();
        if std::mem::take(&mut first) {
            out.push(chunk(
                json!({ "role": "assistant", "content": null }),
                Value::Null,
            ));
        }
        let Some(p) = parser.as_mut() else {
            return out;
        };
        match item {
            Item::Token { text, probs } => {
                let deltas = p.push(&text);
                let n = deltas.len();
                for (i, delta) in deltas.into_iter().enumerate() {
                    let mut c = chunk(delta.to_openai_json(), Value::Null);
                    if i + 1 == n && probs.is_some() {
                        c["choices"][0]["logprobs"] = logprobs(&model, probs.as_slice());
                    }
                    out.push(c);
                }
            }
            Item::Done(done) => {
                let mut p = parser.take().expect("parser present until done");
                let mut deltas = p.push(&done.tail);
                let (last, message) = p.finish();
                deltas.extend(last);
                out.extend(
                    deltas
                        .iter()
                        .map(|d| chunk(d.to_openai_json(), Value::Null)),
                );
                out.push(chunk(
                    json!({}),
                    message.finish_reason(stopped(&done)).into(),
                ));
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

/// Whether generation ended by itself (end of generation or a stop string), not at a limit.
fn stopped(done: &Completion) -> bool {
    matches!(done.stop_type, StopType::Eos | StopType::Word(_))
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
    let (_, rendered) = render(&state, &body)?;
    Ok(Json(json!({ "prompt": rendered.prompt })))
}

/// Validates the chat fields and renders the prompt with the server's template.
fn render(state: &AppState, body: &Body) -> Result<(ChatRequest, RenderedPrompt), ApiError> {
    let chat = ChatRequest::from_json(&Value::Object(body.0.clone())).map_err(chat_error)?;
    let rendered = state
        .template()?
        .render(&chat.render_request())
        .map_err(chat_error)?;
    Ok((chat, rendered))
}

/// Chat errors are the client's (400), except a template that does not parse.
fn chat_error(e: ChatError) -> ApiError {
    match e {
        ChatError::TemplateSyntax(_) => ApiError::server(e.to_string()),
        other => ApiError::invalid(other.to_string()),
    }
}
