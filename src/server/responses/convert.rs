//! A Responses request as the chat request it means: `instructions` and `input` items become
//! `messages`, function tools become chat tools, `max_output_tokens`, `reasoning.effort` and
//! `text.format` become their chat fields, and every other field passes through, so the chat
//! route's reading of the body (its field checks and wording) applies unchanged. This is
//! llama-server's mapping (`server_chat_convert_responses_to_chatcmpl`), plain JSON to JSON.

use serde_json::{Map, Value, json};

use crate::server::error::ApiError;
use crate::server::fields::Body;
use crate::wording::responses as words;

/// The chat body a Responses body stands for; its mistakes are 400s in llama-server's words.
pub fn to_chat(body: &Body) -> Result<Body, ApiError> {
    let input = body
        .0
        .get("input")
        .ok_or_else(|| ApiError::invalid(words::INPUT_REQUIRED))?;
    if body
        .0
        .get("previous_response_id")
        .and_then(Value::as_str)
        .is_some_and(|id| !id.is_empty())
    {
        return Err(ApiError::invalid(words::PREVIOUS_RESPONSE_ID));
    }
    let mut chat = body.0.clone();
    chat.remove("input");
    // The Responses API has no `n`: one answer per response.
    chat.remove("n");
    let mut messages = Vec::new();
    if let Some(instructions) = chat.remove("instructions") {
        let text = instructions.as_str().unwrap_or_default();
        messages.push(json!({ "role": "system", "content": text }));
    }
    match input {
        Value::String(_) => messages.push(json!({ "role": "user", "content": input })),
        Value::Array(items) => {
            for item in items {
                add_item(&mut messages, item).map_err(ApiError::invalid)?;
            }
        }
        _ => return Err(ApiError::invalid(words::INPUT_TYPE)),
    }
    chat.insert("messages".into(), Value::Array(messages));
    if let Some(tools) = chat.remove("tools") {
        let tools = chat_tools(&tools).map_err(ApiError::invalid)?;
        if !tools.is_empty() {
            chat.insert("tools".into(), Value::Array(tools));
        }
    }
    if let Some(choice) = chat.get_mut("tool_choice") {
        named_tool_choice(choice);
    }
    if let Some(max) = chat.remove("max_output_tokens") {
        chat.insert("max_tokens".into(), max);
    }
    if let Some(reasoning) = chat.remove("reasoning")
        && let Some(effort) = reasoning.get("effort")
    {
        chat.insert("reasoning_effort".into(), effort.clone());
    }
    if let Some(format) = text_format(&chat)
        && !chat.contains_key("response_format")
    {
        chat.insert("response_format".into(), format);
    }
    Ok(Body(chat))
}

type Item<'a> = &'a Map<String, Value>;

fn string<'a>(item: Item<'a>, key: &str) -> Option<&'a str> {
    item.get(key).and_then(Value::as_str)
}

/// Appends one input item to the messages. Items that belong to the assistant (its text,
/// reasoning, function calls) join the assistant message before them, as one turn.
fn add_item(messages: &mut Vec<Value>, item: &Value) -> Result<(), &'static str> {
    let Some(item) = item.as_object() else {
        return Err(words::UNKNOWN_ITEM);
    };
    let previous_is_assistant = messages.last().is_some_and(|m| m["role"] == "assistant");
    let kind = string(item, "type");
    let role = string(item, "role");
    let content = match item.get("content") {
        // A message's text alone is one text part.
        Some(Value::String(text)) => Some(vec![json!({ "type": "input_text", "text": text })]),
        Some(Value::Array(parts)) => Some(parts.clone()),
        _ => None,
    };
    if let (Some("user" | "system" | "developer"), Some(parts)) = (role, &content) {
        let parts = parts
            .iter()
            .map(input_part)
            .collect::<Result<Vec<_>, _>>()?;
        let mut message = item.clone();
        message.remove("type");
        message.remove("status");
        message.insert("content".into(), Value::Array(parts));
        messages.push(Value::Object(message));
    } else if role == Some("assistant") && matches!(kind, None | Some("message")) {
        // llama-server requires `type: message`; an assistant message without it (OpenAI's
        // "easy input message") is read the same way here.
        let parts = content
            .unwrap_or_default()
            .iter()
            .map(output_part)
            .collect::<Result<Vec<_>, _>>()?;
        if previous_is_assistant {
            let previous = messages.last_mut().expect("checked");
            match previous.get_mut("content") {
                Some(Value::Array(old)) => old.extend(parts),
                _ => previous["content"] = Value::Array(parts),
            }
        } else {
            let mut message = item.clone();
            message.remove("type");
            message.remove("status");
            message.insert("content".into(), Value::Array(parts));
            messages.push(Value::Object(message));
        }
    } else if kind == Some("function_call")
        && let (Some(arguments), Some(call_id), Some(name)) = (
            string(item, "arguments"),
            string(item, "call_id"),
            string(item, "name"),
        )
    {
        let call = json!({
            "function": { "arguments": arguments, "name": name },
            "id": call_id,
            "type": "function",
        });
        if previous_is_assistant {
            let previous = messages.last_mut().expect("checked");
            match previous.get_mut("tool_calls") {
                Some(Value::Array(calls)) => calls.push(call),
                _ => previous["tool_calls"] = json!([call]),
            }
        } else {
            messages.push(json!({ "role": "assistant", "tool_calls": [call] }));
        }
    } else if kind == Some("function_call_output")
        && let Some(call_id) = string(item, "call_id")
        && let Some(output) = item.get("output").filter(|o| o.is_string() || o.is_array())
    {
        let content = match output {
            Value::Array(parts) => Value::Array(
                parts
                    .iter()
                    .map(tool_output_part)
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            text => text.clone(),
        };
        messages.push(json!({ "content": content, "role": "tool", "tool_call_id": call_id }));
    } else if kind == Some("reasoning") && item.get("summary").is_some_and(Value::is_array) {
        let text = reasoning_text(item)?;
        if previous_is_assistant {
            messages.last_mut().expect("checked")["reasoning_content"] = text.into();
        } else {
            messages.push(json!({
                "role": "assistant",
                "content": [],
                "reasoning_content": text,
            }));
        }
    } else {
        return Err(words::UNKNOWN_ITEM);
    }
    Ok(())
}

/// A part of a user, system or developer message, as a chat content part.
fn input_part(part: &Value) -> Result<Value, &'static str> {
    match part.get("type").and_then(Value::as_str).unwrap_or_default() {
        "input_text" => {
            let text = part.get("text").ok_or(words::INPUT_TEXT_NEEDS_TEXT)?;
            Ok(json!({ "text": text, "type": "text" }))
        }
        "input_image" => {
            let url = part.get("image_url").ok_or(words::IMAGE_URL_REQUIRED)?;
            Ok(json!({ "image_url": { "url": url }, "type": "image_url" }))
        }
        "input_file" => Err(words::INPUT_FILE),
        _ => Err(words::INPUT_PART_TYPE),
    }
}

/// A part of an assistant message, as a chat content part.
fn output_part(part: &Value) -> Result<Value, &'static str> {
    let text = |key: &str| part.get(key).and_then(Value::as_str);
    match text("type").unwrap_or_default() {
        // A string content was turned into one `input_text` part above.
        "output_text" | "input_text" => {
            let text = text("text").ok_or(words::OUTPUT_TEXT_NEEDS_TEXT)?;
            Ok(json!({ "text": text, "type": "text" }))
        }
        "refusal" => {
            let refusal = text("refusal").ok_or(words::REFUSAL_NEEDS_REFUSAL)?;
            Ok(json!({ "refusal": refusal, "type": "refusal" }))
        }
        _ => Err(words::OUTPUT_PART_TYPE),
    }
}

/// A part of a function call's output, as a chat content part.
fn tool_output_part(part: &Value) -> Result<Value, &'static str> {
    let mut part = part.clone();
    match part
        .get("type")
        .ok_or(words::TOOL_OUTPUT_NEEDS_TYPE)?
        .as_str()
    {
        Some("input_text") => part["type"] = "text".into(),
        Some("input_image") => {
            let url = part.get("image_url").ok_or(words::IMAGE_URL_REQUIRED)?;
            part["image_url"] = json!({ "url": url });
            part["type"] = "image_url".into();
        }
        _ => return Err(words::TOOL_OUTPUT_TYPE),
    }
    Ok(part)
}

/// The text of a reasoning item: its first content part's.
fn reasoning_text(item: Item<'_>) -> Result<String, &'static str> {
    let Some(Value::Array(content)) = item.get("content") else {
        return Err(words::REASONING_CONTENT_ARRAY);
    };
    let first = content.first().ok_or(words::REASONING_CONTENT_EMPTY)?;
    first
        .get("text")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or(words::REASONING_TEXT)
}

/// Function tools as chat tools (`strict` defaults to true, as in OpenAI's Responses API);
/// tools of other types (web search, file search, …) have no chat equivalent and are left out.
fn chat_tools(tools: &Value) -> Result<Vec<Value>, &'static str> {
    let tools = tools.as_array().ok_or(words::TOOLS_ARRAY)?;
    Ok(tools
        .iter()
        .filter(|tool| tool.get("type").and_then(Value::as_str) == Some("function"))
        .map(|tool| {
            let mut function = tool.as_object().cloned().unwrap_or_default();
            function.remove("type");
            function.entry("strict").or_insert(Value::Bool(true));
            json!({ "type": "function", "function": function })
        })
        .collect())
}

/// A Responses named tool choice (`{"type": "function", "name": …}`) in chat's shape
/// (`{"type": "function", "function": {"name": …}}`).
fn named_tool_choice(choice: &mut Value) {
    if choice.get("function").is_none()
        && choice.get("type").and_then(Value::as_str) == Some("function")
        && let Some(name) = choice.get("name").cloned()
    {
        *choice = json!({ "type": "function", "function": { "name": name } });
    }
}

/// `text.format` as a chat `response_format`: a JSON schema or any JSON object; plain text
/// needs none.
fn text_format(chat: &Map<String, Value>) -> Option<Value> {
    let format = chat.get("text")?.get("format")?;
    match format.get("type")?.as_str()? {
        "json_schema" => {
            let mut schema = format.as_object()?.clone();
            schema.remove("type");
            Some(json!({ "type": "json_schema", "json_schema": schema }))
        }
        "json_object" => Some(json!({ "type": "json_object" })),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
