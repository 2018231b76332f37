//! llama-server's native routes: `/health`, `/props`, `/slots`, `/completion`, `/tokenize`,
//! `/detokenize`, with its field names and JSON shapes.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use llama_cpp_2::token::LlamaToken;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::fields::{Body, type_error};
use super::generate::{self, Item};
use super::params;
use crate::engine::{Completion, GenerateRequest, LoadedModel};

pub async fn health() -> Json<Value> {
    // The guard answers 503 "Loading model" until the model is ready.
    Json(json!({ "status": "ok" }))
}

pub async fn props(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let model = state.model()?;
    Ok(Json(json!({
        "default_generation_settings": {
            "n_ctx": model.n_ctx_slot,
            "params": generation_settings(&state, model),
        },
        "total_slots": model.n_slots,
        "model_alias": state.model_name(),
        "model_path": model.path.display().to_string(),
        "modalities": { "vision": false, "video": false, "audio": false },
        "endpoint_slots": true,
        "endpoint_props": false,
        "endpoint_metrics": false,
        "chat_template": state.config.chat_template.clone().or_else(|| model.chat_template.clone()).unwrap_or_default(),
        "bos_token": model.bos_token,
        "eos_token": model.eos_token,
        "build_info": format!("gguf-serve {}", crate::build_info::LONG_VERSION),
        "is_sleeping": false,
        "memory": {
            "allocated": model.memory,
            "predicted": state.config.predicted,
        },
        "backend_sampling": model.backend_sampling,
    })))
}

/// The server's default sampling settings, in llama-server's `params` shape.
fn generation_settings(state: &AppState, _model: &LoadedModel) -> Value {
    let d = crate::engine::SamplingParams::default();
    json!({
        "n_predict": state.config.n_predict,
        "seed": d.seed,
        "temperature": d.temperature,
        "dynatemp_range": d.dynatemp_range,
        "dynatemp_exponent": d.dynatemp_exponent,
        "top_k": d.top_k,
        "top_p": d.top_p,
        "min_p": d.min_p,
        "typical_p": d.typical_p,
        "repeat_last_n": d.repeat_last_n,
        "repeat_penalty": d.repeat_penalty,
        "presence_penalty": d.presence_penalty,
        "frequency_penalty": d.frequency_penalty,
        "min_keep": d.min_keep,
        "stop": [],
        "ignore_eos": false,
        "stream": false,
        "cache_prompt": true,
    })
}

pub async fn slots(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let slots = state.engine.slots().await.map_err(generate::engine_error)?;
    Ok(Json(serde_json::to_value(slots).unwrap_or_default()))
}

/// `POST /completion` (and `/completions`).
pub async fn completion(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = Body::parse(&body)?;
    let model = Arc::clone(state.model()?);
    let request = prompt_request(&state, &body, &model)?;
    let stream = body.bool(&["stream"])?.unwrap_or(false);
    let return_tokens = body.bool(&["return_tokens"])?.unwrap_or(false);
    let model_name = state.model_name();
    let prompt_text = prompt_text(&body);
    if !stream {
        let collected = generate::collect(&state, request).await?;
        let done = &collected.done;
        let mut reply = final_json(done, &done.text, &model_name, &prompt_text, return_tokens);
        if !collected.probs.is_empty() {
            reply["completion_probabilities"] = collected
                .probs
                .iter()
                .map(|(t, p)| generate::probs_json(&model, *t, p))
                .collect();
        }
        return Ok(Json(reply).into_response());
    }
    let n_prompt = request.prompt.len();
    let mut n_decoded = 0usize;
    let format = move |item: Item| match item {
        Item::Token { text, probs } => {
            n_decoded += 1;
            let mut chunk = json!({
                "index": 0,
                "content": text,
                "tokens": [],
                "stop": false,
                "id_slot": -1,
                "tokens_predicted": n_decoded,
                "tokens_evaluated": n_prompt,
            });
            if let Some((token, probs)) = probs {
                chunk["completion_probabilities"] =
                    json!([generate::probs_json(&model, token, &probs)]);
            }
            vec![chunk]
        }
        Item::Done(done) => vec![final_json(
            &done,
            &done.tail,
            &model_name,
            &prompt_text,
            return_tokens,
        )],
    };
    generate::stream(&state, request, format, false).await
}

fn prompt_text(body: &Body) -> Value {
    body.get(&["prompt"])
        .map_or(Value::Null, |(_, v)| v.clone())
}

/// llama-server's final `/completion` object; `content` is the whole text, or in a stream the
/// part not yet sent.
fn final_json(
    done: &Completion,
    content: &str,
    model: &str,
    prompt: &Value,
    return_tokens: bool,
) -> Value {
    let tokens: Vec<i32> = if return_tokens {
        done.tokens.iter().map(|t| t.0).collect()
    } else {
        Vec::new()
    };
    json!({
        "index": 0,
        "content": content,
        "tokens": tokens,
        "id_slot": done.id_slot,
        "stop": true,
        "model": model,
        "tokens_predicted": done.tokens_predicted,
        "tokens_evaluated": done.tokens_evaluated,
        "prompt": prompt,
        "has_new_line": done.text.contains('\n'),
        "truncated": done.truncated,
        "stop_type": done.stop_type.as_str(),
        "stopping_word": match &done.stop_type { crate::engine::StopType::Word(w) => w.as_str(), _ => "" },
        "tokens_cached": done.tokens_evaluated + done.tokens_predicted,
        "timings": done.timings,
    })
}

/// `POST /tokenize`: `content` → token ids, or `{id, piece}` objects with `with_pieces`.
pub async fn tokenize(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = Body::parse(&body)?;
    let model = state.model()?;
    let Some(content) = body.str(&["content"])? else {
        return Ok(Json(json!({ "tokens": [] })));
    };
    let add_special = body.bool(&["add_special"])?.unwrap_or(false);
    let parse_special = body.bool(&["parse_special"])?.unwrap_or(true);
    let with_pieces = body.bool(&["with_pieces"])?.unwrap_or(false);
    let tokens = model.tokenize(content, add_special, parse_special);
    let tokens: Vec<Value> = if with_pieces {
        tokens
            .iter()
            .map(|&t| {
                let bytes = model.token_bytes(t);
                let piece = match String::from_utf8(bytes) {
                    Ok(s) => Value::String(s),
                    Err(e) => Value::from(e.into_bytes()),
                };
                json!({ "id": t.0, "piece": piece })
            })
            .collect()
    } else {
        tokens.iter().map(|t| Value::from(t.0)).collect()
    };
    Ok(Json(json!({ "tokens": tokens })))
}

/// `POST /detokenize`: token ids → `content`.
pub async fn detokenize(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body = Body::parse(&body)?;
    let model = state.model()?;
    let tokens = match body.get(&["tokens"]) {
        None => Vec::new(),
        Some((name, Value::Array(items))) => items
            .iter()
            .map(|v| {
                v.as_i64()
                    .and_then(|id| i32::try_from(id).ok())
                    .filter(|&id| model.is_valid_token(id))
                    .map(LlamaToken)
                    .ok_or_else(|| match v {
                        Value::Number(_) => ApiError::invalid(format!(
                            "Field '{name}': token {v} is out of the vocabulary"
                        )),
                        other => type_error(name, "array of token ids", other),
                    })
            })
            .collect::<Result<_, _>>()?,
        Some((name, other)) => return Err(type_error(name, "array of token ids", other)),
    };
    Ok(Json(json!({ "content": model.detokenize(&tokens) })))
}

/// The request of a body with a `prompt` (text, token ids or both): `/completion` and
/// `/v1/completions`.
pub fn prompt_request(
    state: &AppState,
    body: &Body,
    model: &LoadedModel,
) -> Result<GenerateRequest, ApiError> {
    let Some((_, prompt)) = body.get(&["prompt"]) else {
        return Err(ApiError::invalid("\"prompt\" is required"));
    };
    let prompt = params::prompt(prompt, model)?;
    params::generate_request(body, model, prompt, state.next_id(), state.config.n_predict)
}

/// For handlers that build a request from a rendered prompt (chat).
pub fn request_for_text(
    state: &AppState,
    body: &Body,
    model: &LoadedModel,
    text: &str,
) -> Result<GenerateRequest, ApiError> {
    let prompt = model.tokenize(text, true, true);
    params::generate_request(body, model, prompt, state.next_id(), state.config.n_predict)
}
