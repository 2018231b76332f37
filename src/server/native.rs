//! llama-server's native generation routes: `/completion` (an adapter over the pipeline, with
//! llama-server's result objects and stream chunks), `/tokenize` and `/detokenize`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use axum::response::Response;
use llama_cpp_2::token::LlamaToken;
use serde_json::{Value, json};

use super::AppState;
use super::edge::{RawBody, RequestCtx};
use super::error::ApiError;
use super::fields::{Body, type_error};
use super::pipeline::{self, Adapter, Finished, Update, probs_json};
use super::request::{Generation, ResponseOptions};
use super::settings::{Settings, generation_settings};
use crate::engine::{Completion, LoadedModel, StopType, TaskParams};

/// `POST /completion` (and `/completions`).
pub async fn completion(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let body = Body::parse(&body)?;
    let model = Arc::clone(state.model()?);
    let generation = Generation::from_completion(&body, &model, &state.config.defaults)?;
    let adapter = adapter(&state, model, &generation);
    pipeline::respond(&state, &ctx, generation, adapter).await
}

/// llama-server's `/completion` answer for a generation (`/infill` answers the same way).
pub(super) fn adapter(
    state: &AppState,
    model: Arc<LoadedModel>,
    generation: &Generation,
) -> impl Adapter + use<> {
    Native {
        model,
        model_name: state.model_name(),
        task: generation.task.clone(),
        response: generation.response.clone(),
        stream: generation.stream,
        special: state.config.special,
    }
}

/// llama-server's shapes for `/completion`.
struct Native {
    model: Arc<LoadedModel>,
    model_name: String,
    task: TaskParams,
    response: ResponseOptions,
    stream: bool,
    special: bool,
}

impl Adapter for Native {
    fn answer(&mut self, results: Vec<Finished>) -> Value {
        let mut objects: Vec<Value> = results.iter().map(|r| self.result(r, false)).collect();
        if objects.len() == 1 {
            objects.pop().expect("one")
        } else {
            Value::Array(objects)
        }
    }

    fn stream(&mut self, update: Update) -> Vec<Value> {
        match update {
            Update::Token {
                index,
                token,
                text,
                n_decoded,
                n_prompt,
                probs,
                timings,
            } => {
                let mut chunk = json!({
                    "index": index,
                    "content": text,
                    "tokens": [token.0],
                    "stop": false,
                    "id_slot": -1,
                    "tokens_predicted": n_decoded,
                    "tokens_evaluated": n_prompt,
                });
                if let Some(timings) = timings {
                    chunk["timings"] = json!(timings);
                }
                if let Some(step) = probs {
                    chunk["completion_probabilities"] =
                        json!([probs_json(&self.model, &step, self.special)]);
                }
                vec![self.filtered(chunk)]
            }
            Update::Done(finished) => vec![self.result(&finished, true)],
        }
    }

    fn done_marker(&self) -> bool {
        false
    }
}

impl Native {
    /// The final object of one result; in a stream, `content` is the text not sent yet.
    fn result(&self, r: &Finished, streamed: bool) -> Value {
        let done = &r.done;
        let content = if streamed { &done.tail } else { &done.text };
        let tokens: Vec<i32> = if self.response.return_tokens && !streamed {
            done.tokens.iter().map(|t| t.0).collect()
        } else {
            Vec::new()
        };
        let settings = Settings::of_task(&self.task, self.stream, self.response.timings_per_token);
        let mut object = json!({
            "index": r.index,
            "content": content,
            "tokens": tokens,
            "id_slot": done.id_slot,
            "stop": true,
            "model": self.model_name,
            "tokens_predicted": done.tokens_predicted,
            "tokens_evaluated": done.tokens_evaluated,
            "generation_settings": generation_settings(&settings, true),
            "prompt": self.model.detokenize(&r.prompt),
            "has_new_line": done.text.contains('\n'),
            "truncated": done.truncated,
            "stop_type": done.stop_type.as_str(),
            "stopping_word": stopping_word(done),
            "tokens_cached": done.tokens_cached,
            "timings": done.timings,
        });
        if !streamed && !r.probs.is_empty() {
            object["completion_probabilities"] = r
                .probs
                .iter()
                .map(|step| probs_json(&self.model, step, self.special))
                .collect();
        }
        self.filtered(object)
    }

    /// `response_fields`: only the fields asked for; `a/b` lifts `b` of `a` under the key `a/b`.
    fn filtered(&self, object: Value) -> Value {
        let fields = &self.response.response_fields;
        if fields.is_empty() {
            return object;
        }
        let mut out = serde_json::Map::new();
        for field in fields {
            let found = field.split('/').try_fold(&object, |v, key| v.get(key));
            if let Some(v) = found {
                out.insert(field.clone(), v.clone());
            }
        }
        Value::Object(out)
    }
}

fn stopping_word(done: &Completion) -> &str {
    match &done.stop_type {
        StopType::Word(w) => w,
        _ => "",
    }
}

/// `POST /tokenize`: `content` → token ids, or `{id, piece}` objects with `with_pieces`.
pub async fn tokenize(
    State(state): State<Arc<AppState>>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let body = Body::parse(&body)?;
    let model = state.model()?;
    let Some(content) = body.str(&["content"])? else {
        return Ok(Json(json!({ "tokens": [] })));
    };
    crate::test_hook::panic_if_marked(content, "/tokenize's content");
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
    RawBody(body): RawBody,
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
                        other => type_error(name, "number", other),
                    })
            })
            .collect::<Result<_, _>>()?,
        Some((name, other)) => return Err(type_error(name, "array", other)),
    };
    Ok(Json(json!({ "content": model.detokenize(&tokens) })))
}
