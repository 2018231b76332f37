//! llama-server's embedding routes: `/embedding` and `/embeddings` (its own shape: per input,
//! `{index, embedding}` with a list of vectors, one per token under pooling `none`) and
//! `/v1/embeddings` (OpenAI's: `data`, `usage`, vectors as floats or base64). Each input is one
//! embedding task on the engine, sent together so that they share batches; the checks and
//! their wording are llama-server's (`handle_embeddings_impl`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use base64::Engine as _;
use llama_cpp_2::token::LlamaToken;
use serde_json::{Value, json};

use super::AppState;
use super::edge::{RawBody, RequestCtx};
use super::error::{ApiError, ErrorType};
use super::fields::{Body, as_int};
use super::pipeline::engine_error;
use super::request::prompts;
use crate::engine::{
    Embedding, Event, GenerateRequest, LoadedModel, Pooling, SamplingParams, TaskKind, TaskParams,
};
use crate::wording::type_mismatch;

/// The server's embedding settings (from `--embedding`, `--reranking`, `--embd-normalize`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingOptions {
    /// The embedding routes answer.
    pub enabled: bool,
    /// The rerank routes answer (embeddings with rank pooling).
    pub reranking: bool,
    /// `embd_normalize` of requests that give none.
    pub embd_normalize: i32,
}

impl Default for EmbeddingOptions {
    fn default() -> Self {
        Self {
            enabled: false,
            reranking: false,
            embd_normalize: 2,
        }
    }
}

/// `POST /embedding`, `/embeddings`: llama-server's own shape.
pub async fn native(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    embeddings(&state, &ctx, &body, false).await
}

/// `POST /v1/embeddings`: OpenAI's shape.
pub async fn openai(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    embeddings(&state, &ctx, &body, true).await
}

/// 501 unless the server was started for embeddings (`--embedding`).
pub fn require_enabled(state: &AppState) -> Result<(), ApiError> {
    if state.config.embeddings.enabled {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorType::NotSupported,
        "This server does not support embeddings. Start it with `--embeddings`",
    ))
}

async fn embeddings(
    state: &AppState,
    ctx: &RequestCtx,
    raw: &[u8],
    mut oai: bool,
) -> Result<Json<Value>, ApiError> {
    require_enabled(state)?;
    let model = Arc::clone(state.model()?);
    if oai && model.embedding.pooling == Pooling::None {
        return Err(ApiError::invalid(
            "Pooling type 'none' is not OAI compatible. Please use a different pooling type",
        ));
    }
    // Valid JSON that is not an object has neither field, as llama-server reads it.
    let body = match Body::parse(raw) {
        Err(_) if serde_json::from_slice::<Value>(raw).is_ok() => Body(Default::default()),
        parsed => parsed?,
    };
    let input = if let Some(input) = body.0.get("input") {
        input
    } else if let Some(content) = body.0.get("content") {
        // "content" is llama-server's own field: the answer takes its own shape too.
        oai = false;
        content
    } else {
        return Err(ApiError::invalid(
            "\"input\" or \"content\" must be provided",
        ));
    };
    let base64 = match body.0.get("encoding_format") {
        None => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(_)) => {
            return Err(ApiError::invalid(
                "The format to return the embeddings in. Can be either float or base64",
            ));
        }
        Some(other) => return Err(ApiError::invalid(type_mismatch("string", other))),
    };
    if matches!(input, Value::Array(items) if items.is_empty()) {
        return Err(ApiError::invalid("\"input\" must not be empty"));
    }
    let inputs = prompts(input, &model)?;
    if inputs.iter().any(Vec::is_empty) {
        return Err(ApiError::invalid("Input content cannot be empty"));
    }
    // Read as llama-server's `get<int>()`: no `Field '…'` prefix on a type error.
    let normalize = match body.0.get("embd_normalize") {
        None => state.config.embeddings.embd_normalize,
        Some(v) => as_int(v)
            .filter(|_| !v.is_boolean())
            .map(|n| n as i32)
            .ok_or_else(|| ApiError::invalid(type_mismatch("number", v)))?,
    };
    let results = run(state, ctx, &model, inputs, TaskKind::Embed { normalize }).await?;
    let answer = if oai {
        let name = body
            .str(&["model"])?
            .map_or_else(|| state.model_name(), String::from);
        openai_answer(&results, &name, base64)
    } else {
        Value::Array(
            results
                .iter()
                .enumerate()
                .map(|(index, r)| json!({ "index": index, "embedding": r.vectors }))
                .collect(),
        )
    };
    Ok(Json(answer))
}

/// OpenAI's list: one object per input, in order, and the tokens read as usage.
fn openai_answer(results: &[Embedding], model_name: &str, base64: bool) -> Value {
    let data: Vec<Value> = results
        .iter()
        .enumerate()
        .map(|(index, r)| {
            let vector = r.vectors.first().map_or(&[][..], Vec::as_slice);
            if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!({
                    "embedding": base64::engine::general_purpose::STANDARD.encode(bytes),
                    "index": index,
                    "object": "embedding",
                    "encoding_format": "base64",
                })
            } else {
                json!({ "embedding": vector, "index": index, "object": "embedding" })
            }
        })
        .collect();
    let n_tokens: usize = results.iter().map(|r| r.n_tokens).sum();
    json!({
        "model": model_name,
        "object": "list",
        "usage": { "prompt_tokens": n_tokens, "total_tokens": n_tokens },
        "data": data,
    })
}

/// Runs one embedding or rerank task per input on the engine, all queued at once so that they
/// share batches, and returns their results in input order. Inputs that could never be read
/// fail first, with llama-server's words and status.
pub async fn run(
    state: &AppState,
    ctx: &RequestCtx,
    model: &LoadedModel,
    inputs: Vec<Vec<LlamaToken>>,
    kind: TaskKind,
) -> Result<Vec<Embedding>, ApiError> {
    let info = &model.embedding;
    for input in &inputs {
        let n = input.len();
        if !info.can_split && n > info.n_ubatch as usize {
            return Err(ApiError::server(format!(
                "input ({n} tokens) is too large to process. increase the physical batch size \
                 (current batch size: {})",
                info.n_ubatch
            )));
        }
        if !info.can_split && n > model.n_ctx_slot as usize {
            return Err(ApiError {
                context: Some((n, model.n_ctx_slot)),
                ..ApiError::new(
                    ErrorType::ExceedContextSize,
                    format!(
                        "input ({n} tokens) is larger than the max context size ({} tokens). skipping",
                        model.n_ctx_slot
                    ),
                )
            });
        }
        if info.can_split && n >= model.n_ctx_slot as usize {
            return Err(ApiError::exceed_context(n, model.n_ctx_slot));
        }
    }
    let mut receivers = Vec::with_capacity(inputs.len());
    for prompt in inputs {
        let request = GenerateRequest {
            id: state.next_id(),
            span: ctx.span.clone(),
            prompt,
            params: stateless_params(),
            timings_per_token: false,
            group: None,
            kind,
        };
        receivers.push(state.engine.generate(request).map_err(engine_error)?);
    }
    let mut results = Vec::with_capacity(receivers.len());
    for mut rx in receivers {
        let result = loop {
            match rx.recv().await {
                Some(Event::Embedding(result)) => break *result,
                Some(Event::Error(e)) => return Err(engine_error(e)),
                Some(_) => continue,
                None => return Err(engine_error(crate::engine::EngineError::Stopped)),
            }
        };
        ctx.usage.add(result.n_tokens, 0);
        results.push(result);
    }
    Ok(results)
}

/// The settings of a task that only reads its prompt: no cached prefix, nothing to generate.
fn stateless_params() -> TaskParams {
    TaskParams {
        // As llama-server's embedding tasks (`/slots` shows n_remain -1).
        n_predict: -1,
        stop: Vec::new(),
        ignore_eos: false,
        cache_prompt: false,
        n_cache_reuse: 0,
        sampling: SamplingParams::default(),
        preserved_tokens: Vec::new(),
        id_slot: None,
        n_probs: 0,
        post_sampling_probs: false,
        n_keep: 0,
        n_discard: 0,
        n_indent: 0,
        t_max_predict_ms: 0,
        lora: Default::default(),
    }
}
