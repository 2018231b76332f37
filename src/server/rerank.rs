//! llama-server's rerank routes (`/rerank`, `/reranking`, `/v1/rerank`, `/v1/reranking`): a
//! query and documents in, each document scored by the reranker (one rank-pooled task per
//! query/document prompt, all batched through the engine), results sorted by score. Jina's
//! shape (`documents`, `relevance_score`, `usage`) or, for a body with `texts`, TEI's (a bare
//! list with `score`, and `text` on `return_text`), as `format_response_rerank` writes them.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use llama_cpp_2::token::LlamaToken;
use serde_json::{Value, json};

use super::AppState;
use super::edge::{RawBody, RequestCtx};
use super::embeddings::run;
use super::error::{ApiError, ErrorType};
use super::fields::{Body, as_int};
use crate::engine::{LoadedModel, TaskKind};

/// `POST /rerank` and its aliases.
pub async fn rerank(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    RawBody(raw): RawBody,
) -> Result<Json<Value>, ApiError> {
    if !state.config.embeddings.reranking {
        return Err(ApiError::new(
            ErrorType::NotSupported,
            "This server does not support reranking. Start it with `--reranking`",
        ));
    }
    let model = Arc::clone(state.model()?);
    let body = Body::parse(&raw)?;
    let tei = body.0.contains_key("texts");
    let query = match body.0.get("query") {
        Some(Value::String(q)) => q.clone(),
        Some(_) => return Err(ApiError::invalid("\"query\" must be a string")),
        None => return Err(ApiError::invalid("\"query\" must be provided")),
    };
    // llama-server's `json_value`: a field of the wrong type reads as its default.
    let documents = string_array(body.0.get("documents"))
        .or_else(|| string_array(body.0.get("texts")))
        .unwrap_or_default();
    if documents.is_empty() {
        return Err(ApiError::invalid(
            "\"documents\" must be a non-empty string array",
        ));
    }
    // A number (1.5 reads as 1); anything else reads as every document. A negative count
    // gives no results (llama-server fails with a 500 on it).
    let top_n = body
        .0
        .get("top_n")
        .filter(|v| v.is_number())
        .and_then(as_int)
        .unwrap_or(documents.len() as i64);
    let inputs = documents
        .iter()
        .map(|doc| rerank_prompt(&model, &query, doc))
        .collect();
    let results = run(&state, &ctx, &model, inputs, TaskKind::Rerank).await?;

    let return_text = tei && body.0.get("return_text").and_then(Value::as_bool) == Some(true);
    let label = if tei { "score" } else { "relevance_score" };
    let mut ranked: Vec<(usize, f32)> = results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                i,
                r.vectors
                    .first()
                    .and_then(|v| v.first())
                    .copied()
                    .unwrap_or(-1e6),
            )
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(usize::try_from(top_n).unwrap_or(0));
    let items: Vec<Value> = ranked
        .into_iter()
        .map(|(index, score)| {
            let mut item = json!({ "index": index, label: score });
            if return_text {
                item["text"] = documents[index].clone().into();
            }
            item
        })
        .collect();
    if tei {
        return Ok(Json(Value::Array(items)));
    }
    let n_tokens: usize = results.iter().map(|r| r.n_tokens).sum();
    let name = match body.0.get("model") {
        Some(Value::String(m)) => m.clone(),
        _ => state.model_name(),
    };
    Ok(Json(json!({
        "model": name,
        "object": "list",
        "usage": { "prompt_tokens": n_tokens, "total_tokens": n_tokens },
        "results": items,
    })))
}

/// A list of strings, or `None` for anything else (llama-server then takes the default).
fn string_array(value: Option<&Value>) -> Option<Vec<String>> {
    value?
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(String::from))
        .collect()
}

/// llama-server's rerank prompt (`format_prompt_rerank`): the model's rerank template with
/// `{query}` and `{document}` filled in, or else `[BOS] query [EOS] [SEP] document [EOS]`, each
/// special token where the vocabulary adds it (EOS falls back to SEP).
pub fn rerank_prompt(model: &LoadedModel, query: &str, doc: &str) -> Vec<LlamaToken> {
    let info = &model.embedding;
    if let Some(template) = &info.rerank_template {
        let prompt = template
            .replace("{query}", query)
            .replace("{document}", doc);
        return model.tokenize(&prompt, false, true);
    }
    let vocab = model.model.vocab();
    let mut tokens = Vec::new();
    if model.add_bos {
        tokens.push(vocab.bos());
    }
    tokens.extend(model.tokenize(query, false, false));
    if model.add_eos {
        tokens.push(info.eos_or_sep);
    }
    if info.add_sep {
        tokens.push(info.sep);
    }
    tokens.extend(model.tokenize(doc, false, false));
    if model.add_eos {
        tokens.push(info.eos_or_sep);
    }
    tokens
}
