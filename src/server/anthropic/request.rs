//! Anthropic's Messages request mapped onto the OpenAI chat body that `/v1/chat/completions`
//! reads, as llama-server does (`server_chat_convert_anthropic_to_oai`): the chat route's
//! schema, template and checks then apply unchanged. Blocks become messages: `text` blocks
//! content parts, `thinking` the assistant's `reasoning_content`, `tool_use` its `tool_calls`,
//! each `tool_result` a `tool` message after its turn. What this server cannot do (`image`
//! blocks: no multimodal model) is refused here, naming the block.

use serde_json::{Map, Value, json};

use super::super::error::ApiError;
use super::super::fields::{Body, field_error, type_error};

/// `max_tokens` when the request has none (Anthropic requires it; llama-server does not).
const DEFAULT_MAX_TOKENS: i64 = 4096;

/// Fields that mean the same in both APIs and pass through as they are.
const SAME_FIELDS: [&str; 5] = [
    "temperature",
    "top_p",
    "top_k",
    "stream",
    "chat_template_kwargs",
];

/// The chat request for an Anthropic body.
pub fn to_chat_body(body: &Body) -> Result<Body, ApiError> {
    let mut messages = Vec::new();
    if let Some((_, system)) = body.get(&["system"]) {
        messages.push(json!({ "role": "system", "content": system_text(system)? }));
    }
    match body.get(&["messages"]) {
        None => return Err(ApiError::invalid("'messages' is required")),
        Some((_, Value::Array(list))) => {
            for (i, message) in list.iter().enumerate() {
                convert_message(message, i, &mut messages)?;
            }
        }
        Some((_, other)) => return Err(type_error("messages", "array", other)),
    }
    let mut chat = Map::new();
    chat.insert("messages".into(), messages.into());
    if let Some((_, tools)) = body.get(&["tools"]) {
        chat.insert("tools".into(), convert_tools(tools)?);
    }
    if let Some((_, choice)) = body.get(&["tool_choice"])
        && let Some(choice) = convert_tool_choice(choice)
    {
        chat.insert("tool_choice".into(), choice);
    }
    if let Some((_, stop)) = body.get(&["stop_sequences"]) {
        chat.insert("stop".into(), stop.clone());
    }
    let max_tokens = body
        .get(&["max_tokens"])
        .map_or(json!(DEFAULT_MAX_TOKENS), |(_, v)| v.clone());
    chat.insert("max_tokens".into(), max_tokens);
    for key in SAME_FIELDS {
        if let Some(value) = body.0.get(key) {
            chat.insert(key.into(), value.clone());
        }
    }
    // `thinking` ({type: enabled, budget_tokens} or disabled) and `metadata` are accepted and
    // change nothing: whether the model reasons is its template's business, as in
    // llama-server, and no reasoning budget is enforced.
    // The stream's `message_start` reports cached prompt tokens, which the engine tells at the
    // first token only when asked for per-token timings.
    chat.insert("timings_per_token".into(), true.into());
    Ok(Body(chat))
}

/// The stop sequences the request gave (for `stop_reason: stop_sequence`).
pub fn stop_sequences(body: &Body) -> Vec<String> {
    match body.get(&["stop_sequences"]) {
        Some((_, Value::Array(list))) => list
            .iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect(),
        Some((_, Value::String(s))) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// `system`: a string, or text blocks joined as they are (llama-server adds no separator).
fn system_text(system: &Value) -> Result<String, ApiError> {
    match system {
        Value::String(text) => Ok(steady_billing_header(text)),
        Value::Array(blocks) => {
            let mut text = String::new();
            for (i, block) in blocks.iter().enumerate() {
                let path = format!("system[{i}]");
                if block_type(block) == "text" {
                    text.push_str(&steady_billing_header(block_str(block, "text", &path)?));
                }
            }
            Ok(text)
        }
        other => Err(type_error(
            "system",
            "string or array of text blocks",
            other,
        )),
    }
}

/// Claude Code opens its system prompt with `x-anthropic-billing-header: …; cch=XXXXX;`, a
/// stamp that changes on every request and so would stop the prompt cache right there; its
/// five characters become `fffff`, as llama-server rewrites them.
fn steady_billing_header(text: &str) -> String {
    const HEADER: &str = "x-anthropic-billing-header:";
    const STAMP: &str = "cch=";
    let mut out = text.to_string();
    if !text.starts_with(HEADER) {
        return out;
    }
    if let Some(at) = text[HEADER.len()..].find(STAMP) {
        let start = HEADER.len() + at + STAMP.len();
        if text.as_bytes().get(start + 5) == Some(&b';') && text.is_char_boundary(start + 5) {
            out.replace_range(start..start + 5, "fffff");
        }
    }
    out
}

/// One Anthropic message as chat messages: the message itself (if it has anything left once
/// its tool results are taken out), then one `tool` message per `tool_result`.
fn convert_message(message: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let path = format!("messages[{i}]");
    let Some(obj) = message.as_object() else {
        return Err(type_error(&path, "object", message));
    };
    let role = obj.get("role").cloned().unwrap_or(Value::Null);
    let blocks = match obj.get("content") {
        // A string (or a shape the chat schema will judge) goes on as it is.
        Some(Value::Array(blocks)) => blocks,
        Some(_) => {
            out.push(message.clone());
            return Ok(());
        }
        // llama-server drops an assistant turn without content, and passes others on.
        None if role == "assistant" => return Ok(()),
        None => {
            out.push(message.clone());
            return Ok(());
        }
    };
    let mut parts = Vec::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    let mut tool_results = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let path = format!("{path}.content[{j}]");
        match block_type(block) {
            "text" => parts.push(json!({ "type": "text", "text": block_str(block, "text", &path)? })),
            "thinking" => reasoning.push_str(block_str(block, "thinking", &path)?),
            // Encrypted reasoning only Anthropic's models can read: nothing to show ours.
            "redacted_thinking" => {}
            "tool_use" => tool_calls.push(json!({
                "id": block.get("id").and_then(Value::as_str).unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": block_str(block, "name", &path)?,
                    "arguments": block.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
                },
            })),
            "tool_result" => tool_results.push(json!({
                "role": "tool",
                "tool_call_id": block.get("tool_use_id").and_then(Value::as_str).unwrap_or_default(),
                "content": tool_result_text(block, &path)?,
            })),
            "image" => return Err(image_refused(&path)),
            // Other blocks (documents, server tools' results, …) are skipped, as llama-server
            // skips them.
            _ => {}
        }
    }
    if !parts.is_empty() || !tool_calls.is_empty() || !reasoning.is_empty() {
        let mut chat = json!({ "role": role });
        chat["content"] = if parts.is_empty() {
            json!("")
        } else {
            parts.into()
        };
        if !tool_calls.is_empty() {
            chat["tool_calls"] = tool_calls.into();
        }
        if !reasoning.is_empty() {
            chat["reasoning_content"] = reasoning.into();
        }
        out.push(chat);
    }
    out.extend(tool_results);
    Ok(())
}

/// A `tool_result`'s content: a string, or text blocks joined. `is_error` changes nothing in
/// the prompt (llama-server's rendering): the text itself says what went wrong.
fn tool_result_text(block: &Value, path: &str) -> Result<String, ApiError> {
    match block.get("content") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (k, part) in parts.iter().enumerate() {
                let path = format!("{path}.content[{k}]");
                match block_type(part) {
                    "text" => text.push_str(block_str(part, "text", &path)?),
                    "image" => return Err(image_refused(&path)),
                    _ => {}
                }
            }
            Ok(text)
        }
        Some(other) => Err(type_error(
            &format!("{path}.content"),
            "string or array of text blocks",
            other,
        )),
    }
}

/// `tools`: Anthropic's `{name, description, input_schema}` as OpenAI function tools.
fn convert_tools(tools: &Value) -> Result<Value, ApiError> {
    let Value::Array(list) = tools else {
        return Err(type_error("tools", "array", tools));
    };
    list.iter()
        .enumerate()
        .map(|(i, tool)| {
            let path = format!("tools[{i}]");
            Ok(json!({
                "type": "function",
                "function": {
                    "name": block_str(tool, "name", &path)?,
                    "description": tool.get("description").and_then(Value::as_str).unwrap_or_default(),
                    "parameters": tool.get("input_schema").cloned().unwrap_or_else(|| json!({})),
                },
            }))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// `tool_choice`: `auto`; `any` (some call is required); `tool` with a `name` (that tool's
/// call is required, where llama-server requires any call); `none` (no call, where
/// llama-server reads it as `auto`). Any other value leaves the choice to the model, as in
/// llama-server.
fn convert_tool_choice(choice: &Value) -> Option<Value> {
    match choice.get("type").and_then(Value::as_str)? {
        "auto" => Some(json!("auto")),
        "any" => Some(json!("required")),
        "tool" => Some(match choice.get("name").and_then(Value::as_str) {
            Some(name) => json!({ "type": "function", "function": { "name": name } }),
            None => json!("required"),
        }),
        "none" => Some(json!("none")),
        _ => None,
    }
}

/// A block's type; a block without one is skipped, as llama-server skips it.
fn block_type(block: &Value) -> &str {
    block
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn block_str<'a>(block: &'a Value, key: &str, path: &str) -> Result<&'a str, ApiError> {
    block
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| field_error(&format!("{path}.{key}"), "missing or not a string"))
}

/// An `image` block: llama-server turns it into an image part, which a model without a
/// multimodal projector refuses; this server never has one.
fn image_refused(path: &str) -> ApiError {
    field_error(
        &format!("{path}.type"),
        "image input is not supported: this server has no multimodal model loaded",
    )
}

#[cfg(test)]
mod tests;
