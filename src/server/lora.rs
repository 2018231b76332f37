//! `GET /lora-adapters` and `POST /lora-adapters`: the loaded LoRA adapters and their global
//! scales, as llama-server lists and sets them. The engine owns the adapters and the scales;
//! a request's own `lora` (read by `fields::Body::lora`) overrides them for that request.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::edge::RawBody;
use super::error::ApiError;
use super::fields::{lora_entries, parse_value};
use super::pipeline::engine_error;
use crate::wording::LORA_BODY_NOT_ARRAY;

/// `GET /lora-adapters`: `[{id, path, scale, task_name, prompt_prefix}]`, with an activated
/// LoRA's invocation string and tokens.
pub async fn adapters(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let model = state.model()?;
    let adapters = state.engine.lora_adapters().await.map_err(engine_error)?;
    let list = adapters
        .iter()
        .enumerate()
        .map(|(id, a)| {
            let mut entry = json!({
                "id": id,
                "path": a.path.to_string_lossy(),
                "scale": a.scale,
                "task_name": a.task_name,
                "prompt_prefix": a.prompt_prefix,
            });
            if !a.alora_invocation_tokens.is_empty() {
                let bytes: Vec<u8> = (a.alora_invocation_tokens.iter())
                    .flat_map(|&t| model.token_bytes(t))
                    .collect();
                let tokens: Vec<i32> = a.alora_invocation_tokens.iter().map(|t| t.0).collect();
                entry["alora_invocation_string"] = json!(String::from_utf8_lossy(&bytes));
                entry["alora_invocation_tokens"] = json!(tokens);
            }
            entry
        })
        .collect();
    Ok(Json(Value::Array(list)))
}

/// `POST /lora-adapters`: `[{id, scale}]` sets the global scales; adapters it does not name
/// go to 0.
pub async fn set_adapters(
    State(state): State<Arc<AppState>>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let Value::Array(items) = parse_value(&body)? else {
        return Err(ApiError::invalid(LORA_BODY_NOT_ARRAY));
    };
    state
        .engine
        .set_lora_adapters(lora_entries(&items))
        .await
        .map_err(engine_error)?;
    Ok(Json(json!({ "success": true })))
}
