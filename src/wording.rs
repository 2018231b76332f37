//! llama-server's words for a request's mistakes, shared by the HTTP edge (`server::fields`) and
//! the chat module so that the same mistake reads the same wherever it is caught. llama-server
//! reads JSON with nlohmann::json, whose type errors its messages keep.

use serde_json::Value;

/// JSON's name for a value's type, as nlohmann::json words it.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `[json.exception.type_error.302] type must be T, but is U`.
pub fn type_mismatch(expected: &str, got: &Value) -> String {
    format!(
        "[json.exception.type_error.302] type must be {expected}, but is {}",
        type_name(got)
    )
}

/// `Field 'x': WHAT`, llama-server's wrapping of a field's error.
pub fn field_message(field: &str, what: impl std::fmt::Display) -> String {
    format!("Field '{field}': {what}")
}

/// A request's `lora` that is not an array (llama-server's field handler, under `Field 'lora': `).
pub const LORA_NOT_ARRAY: &str =
    "Error: 'lora' must be an array of objects with 'id' and 'scale' fields";

/// A `POST /lora-adapters` body that is not an array.
pub const LORA_BODY_NOT_ARRAY: &str = "Request body must be an array";
