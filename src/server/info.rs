//! What the server tells about itself: `/health`, `/props`, `/slots` and `/v1/models`, in
//! llama-server's shapes, plus what is ours (`memory`: predicted against allocated, and the host
//! prompt cache).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ErrorType};
use super::pipeline::{engine_error, unix_time};
use super::settings::{Settings, generation_settings};
use crate::plan::prompt_cache::CacheRam;

pub async fn health() -> Json<Value> {
    // The edge answers 503 "Loading model" until the model is ready.
    Json(json!({ "status": "ok" }))
}

/// `GET /props`.
pub async fn props(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let model = state.model()?;
    let template = state.template()?;
    let config = &state.config;
    Ok(Json(json!({
        "default_generation_settings": {
            "params": generation_settings(&Settings::of_defaults(&config.defaults), false),
            "n_ctx": model.n_ctx_slot,
        },
        "total_slots": model.n_slots,
        "model_alias": state.model_name(),
        "model_ftype": model.ftype,
        "model_path": config.model_arg,
        "modalities": { "vision": false, "video": false, "audio": false },
        "endpoint_slots": config.endpoint_slots,
        "endpoint_props": config.endpoint_props,
        "endpoint_metrics": config.endpoint_metrics,
        "ui": false,
        "ui_settings": {},
        "chat_template": template.source(),
        "chat_template_caps": {
            "supports_system_role": template.caps().supports_system_role,
            "supports_tool_calls": template.caps().supports_tool_calls,
            "supports_object_arguments": template.caps().supports_object_arguments,
        },
        "bos_token": model.bos_token,
        "eos_token": model.eos_token,
        "build_info": format!("gguf-serve {}", crate::build_info::LONG_VERSION),
        "is_sleeping": false,
        "cors_proxy_enabled": false,
        // Ours: where llama.cpp placed the layers, per device (RPC workers' included).
        "devices": model.layers,
        "memory": {
            "allocated": model.memory,
            "predicted": config.predicted,
            "predicted_devices": config.predicted_devices,
            "prompt_cache": prompt_cache(config.prompt_cache, state.engine.stats.prompt_cache_now()),
            // Host memory of the slots' context checkpoints (sliding-window models): the most
            // planned, and now.
            "context_checkpoints": {
                "limit_bytes": config.checkpoints_limit,
                "bytes": state.engine.stats.checkpoints_now(),
            },
        },
        "backend_sampling": model.backend_sampling,
    })))
}

/// The host prompt cache in `/props` `memory`: its planned limit in bytes (`null`: none; 0:
/// off) and what it holds now.
fn prompt_cache(limit: CacheRam, (entries, bytes): (u64, u64)) -> Value {
    let limit = match limit {
        CacheRam::Off => Some(0),
        CacheRam::Limit(bytes) => Some(bytes),
        CacheRam::Unlimited => None,
    };
    json!({ "limit_bytes": limit, "bytes": bytes, "entries": entries })
}

/// `POST /props`: llama-server accepts it only with `--props` (and changes nothing it documents).
pub async fn set_props(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    if !state.config.endpoint_props {
        return Err(ApiError::new(
            ErrorType::NotSupported,
            "This server does not support changing global properties. Start it with `--props`",
        ));
    }
    Ok(Json(json!({ "success": true })))
}

/// `GET /metrics` (501 without `--metrics`).
pub async fn metrics(
    State(state): State<Arc<AppState>>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    if !state.config.endpoint_metrics {
        return Err(ApiError::new(
            ErrorType::NotSupported,
            "This server does not support metrics endpoint. Start it with `--metrics`",
        ));
    }
    let model = state.model()?;
    let config = &state.config;
    let ours = crate::metrics::Ours {
        queue_limit: config.max_queue,
        load_seconds: state.load_seconds(),
        plan: config
            .planned
            .as_ref()
            .map(|p| (p.quant.as_str(), p.n_gpu_layers, p.n_cpu_moe)),
        predicted: config.predicted.as_ref(),
        allocated: &model.memory,
    };
    let text = crate::metrics::render(&state.engine.stats.snapshot(), &ours);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        text,
    )
        .into_response())
}

#[derive(serde::Deserialize)]
pub struct SlotsQuery {
    fail_on_no_slot: Option<String>,
}

/// `GET /slots` (501 with `--no-slots`; 503 with `?fail_on_no_slot=1` when every slot is busy).
pub async fn slots(
    State(state): State<Arc<AppState>>,
    query: Result<Query<SlotsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    // A query axum cannot read (`fail_on_no_slot` twice) is a 400 in the error JSON.
    let Query(query) = query.map_err(|r| ApiError::invalid(r.body_text()))?;
    if !state.config.endpoint_slots {
        return Err(ApiError::new(
            ErrorType::NotSupported,
            "This server does not support slots endpoint. Start it with `--slots`",
        ));
    }
    let slots = state.engine.slots().await.map_err(engine_error)?;
    let fail = query
        .fail_on_no_slot
        .is_some_and(|v| !v.is_empty() && v != "0" && v != "false");
    if fail && slots.iter().all(|s| s.is_processing) {
        return Err(ApiError::new(ErrorType::Unavailable, "no slot available"));
    }
    let slots: Vec<Value> = slots
        .iter()
        .map(|slot| {
            let mut o = json!({
                "id": slot.id,
                "n_ctx": slot.n_ctx,
                "speculative": false,
                "is_processing": slot.is_processing,
            });
            if let Some(task) = &slot.task {
                o["id_task"] = json!(task.id_task);
                o["n_prompt_tokens"] = json!(task.n_prompt_tokens);
                o["n_prompt_tokens_processed"] = json!(task.n_prompt_tokens_processed);
                o["n_prompt_tokens_cache"] = json!(task.n_prompt_tokens_cache);
                o["params"] = generation_settings(&Settings::of_slot(task), false);
                o["next_token"] = json!([{
                    "has_next_token": task.has_next_token,
                    "has_new_line": task.has_new_line,
                    "n_remain": task.n_remain,
                    "n_decoded": task.n_decoded,
                }]);
            }
            o
        })
        .collect();
    Ok(Json(Value::Array(slots)))
}

/// `GET /v1/models` (and `/models`): OpenAI's list with llama-server's `meta`, and Ollama's
/// `models` list.
pub async fn models(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let model = state.model()?;
    let name = state.model_name();
    let aliases = if state.config.aliases.is_empty() {
        vec![name.clone()]
    } else {
        state.config.aliases.clone()
    };
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
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "",
                "families": [""],
                "parameter_size": "",
                "quantization_level": "",
            },
        }],
        "object": "list",
        "data": [{
            "id": name,
            "aliases": aliases,
            "tags": state.config.tags,
            "object": "model",
            "architecture": { "input_modalities": ["text"], "output_modalities": ["text"] },
            "created": unix_time(),
            "owned_by": "llamacpp",
            "meta": {
                "vocab_type": model.vocab_type,
                "n_vocab": model.n_vocab,
                "n_ctx": model.n_ctx_slot,
                "n_ctx_train": model.n_ctx_train,
                "n_embd": model.n_embd,
                "n_params": model.n_params,
                "size": model.size,
                "ftype": model.ftype,
            },
        }],
    })))
}
