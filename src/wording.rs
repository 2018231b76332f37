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

/// `[json.exception.out_of_range.403] key 'K' not found`: a required field is missing.
pub fn key_not_found(key: &str) -> String {
    format!("[json.exception.out_of_range.403] key '{key}' not found")
}

/// `/infill`'s own checks, in llama-server's words.
pub mod infill {
    /// Before the list of the missing FIM tokens (`prefix token is missing. …`).
    pub const UNSUPPORTED: &str = "Infill is not supported by this model: ";
    pub const EXTRA_NOT_ARRAY: &str =
        "\"input_extra\" must be an array of {\"filename\": string, \"text\": string}";
    pub const CHUNK_TEXT: &str =
        "extra_context chunk must contain a \"text\" field with a string value";
    pub const CHUNK_FILENAME: &str = "extra_context chunk's \"filename\" field must be a string";
    pub const INVALID_TOKENS: &str = "Prompt contains invalid tokens";
}

/// The Responses API's mistakes, as llama-server words them when it maps a Responses request
/// onto a chat (`server_chat_convert_responses_to_chatcmpl`); all are 400s.
pub mod responses {
    pub const INPUT_REQUIRED: &str = "'input' is required";
    pub const INPUT_TYPE: &str = "'input' must be a string or array of objects";
    pub const PREVIOUS_RESPONSE_ID: &str = "llama.cpp does not support 'previous_response_id'.";
    pub const UNKNOWN_ITEM: &str = "Cannot determine type of 'item'";
    pub const INPUT_TEXT_NEEDS_TEXT: &str = "'Input text' requires 'text'";
    pub const IMAGE_URL_REQUIRED: &str = "'image_url' is required";
    pub const INPUT_FILE: &str = "'input_file' is not supported by llamacpp at this moment";
    pub const INPUT_PART_TYPE: &str =
        "'type' must be one of 'input_text', 'input_image', or 'input_file'";
    pub const OUTPUT_TEXT_NEEDS_TEXT: &str = "'Output text' requires 'text'";
    pub const REFUSAL_NEEDS_REFUSAL: &str = "'Refusal' requires 'refusal'";
    pub const OUTPUT_PART_TYPE: &str = "'type' must be one of 'output_text' or 'refusal'";
    pub const TOOL_OUTPUT_NEEDS_TYPE: &str = "Output of tool call missing 'type' field";
    pub const TOOL_OUTPUT_TYPE: &str =
        "Output of tool call should be 'Input text' or 'Input image'";
    pub const REASONING_CONTENT_ARRAY: &str = "item['content'] is not an array";
    pub const REASONING_CONTENT_EMPTY: &str = "item['content'] is empty";
    pub const REASONING_TEXT: &str = "item['content']['text'] is not a string";
    pub const TOOLS_ARRAY: &str = "'tools' must be an array of objects";
}
/// A request's `lora` that is not an array (llama-server's field handler, under `Field 'lora': `).
pub const LORA_NOT_ARRAY: &str =
    "Error: 'lora' must be an array of objects with 'id' and 'scale' fields";

/// A `POST /lora-adapters` body that is not an array.
pub const LORA_BODY_NOT_ARRAY: &str = "Request body must be an array";

/// gguf-serve's own per-request limits (llama-server has none of these), worded in its
/// `Field 'x': …` style; all are 400s.
pub mod limits {
    /// `stop` holds more strings than a request may give.
    pub fn too_many_stops(max: usize, got: usize) -> String {
        format!("at most {max} stop strings are accepted, but got {got}")
    }

    /// A stop string longer than a request may give.
    pub fn stop_too_long(max: usize, got: usize) -> String {
        format!("a stop string may be at most {max} bytes long, but one is {got} bytes")
    }

    /// `logit_bias` with more entries than the vocabulary has tokens.
    pub fn logit_bias_too_large(n_vocab: usize, got: usize) -> String {
        format!("at most {n_vocab} entries (the vocabulary's size) are accepted, but got {got}")
    }
}
