//! The template's input variables, built as llama-server builds them.
//!
//! Field order matters (templates `tojson` whole messages and tools), so objects are built in
//! llama.cpp's order: `common_chat_msg::to_json_oaicompat`, `common_chat_tools_to_json_oaicompat`,
//! then the workarounds of `common_chat_templates_apply_jinja` and, for Harmony,
//! `common_chat_params_init_gpt_oss`.

use std::time::UNIX_EPOCH;

use serde_json::{Map, Value as Json, json};

use super::caps::TemplateCaps;
use super::env::NOW_VAR;
use super::time::strftime;
use super::{RenderRequest, SpecialTokens};
use crate::chat::types::{ChatMessage, MessageContent, Role, Tool};
use crate::chat::{ChatError, ChatFormat};

/// The whole render context.
pub fn build_context(
    req: &RenderRequest<'_>,
    tokens: &SpecialTokens,
    format: ChatFormat,
    caps: TemplateCaps,
) -> Result<Json, ChatError> {
    let mut messages: Vec<Json> = req.messages.iter().map(message_json).collect();
    if format == ChatFormat::Harmony {
        harmony_thinking(&mut messages);
    } else {
        for message in &mut messages {
            if message["role"] == "developer" {
                message["role"] = json!("system");
            }
        }
    }
    // Arguments first, so error paths still index the request's messages.
    if caps.supports_object_arguments {
        parse_arguments(&mut messages)?;
    }
    if !caps.supports_system_role {
        merge_system_message(&mut messages);
    }

    let mut ctx = Map::new();
    ctx.insert("messages".into(), Json::Array(messages));
    ctx.insert("bos_token".into(), json!(tokens.bos));
    ctx.insert("eos_token".into(), json!(tokens.eos));
    ctx.insert("enable_thinking".into(), json!(enable_thinking(req)?));
    if !req.tools.is_empty() {
        ctx.insert(
            "tools".into(),
            Json::Array(req.tools.iter().map(tool_json).collect()),
        );
    }
    ctx.insert("datetime".into(), json!(strftime(req.now, "%b %d %Y")));
    ctx.insert("date_string".into(), json!(strftime(req.now, "%d %b %Y")));
    for (key, value) in req.kwargs {
        ctx.insert(key.clone(), value.clone());
    }
    if let Some(effort) = req.reasoning_effort {
        ctx.insert("reasoning_effort".into(), json!(effort.as_str()));
    }
    if req.add_generation_prompt {
        ctx.insert("add_generation_prompt".into(), json!(true));
    }
    if let Some(effort) = ctx
        .get("reasoning_effort")
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    {
        let effort = effort.clone();
        ctx.insert("reasoning_strength".into(), effort);
    }
    let secs = req
        .now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    ctx.insert(NOW_VAR.into(), json!(secs));
    Ok(Json::Object(ctx))
}

/// `enable_thinking` is true unless `chat_template_kwargs.enable_thinking` says false.
fn enable_thinking(req: &RenderRequest<'_>) -> Result<bool, ChatError> {
    match req.kwargs.get("enable_thinking") {
        None => Ok(true),
        Some(Json::Bool(b)) => Ok(*b),
        Some(_) => Err(ChatError::field(
            "chat_template_kwargs.enable_thinking",
            "expected a boolean",
        )),
    }
}

fn message_json(msg: &ChatMessage) -> Json {
    let mut obj = Map::new();
    obj.insert("role".into(), json!(msg.role.as_str()));
    let content = match &msg.content {
        None => String::new(),
        Some(MessageContent::Text(text)) => text.clone(),
        // Templates that only take strings get the parts joined, as llama.cpp's normaliser does.
        Some(parts @ MessageContent::Parts(_)) => parts.to_text(),
    };
    obj.insert("content".into(), json!(content));
    if let Some(reasoning) = msg.reasoning_content.as_deref().filter(|s| !s.is_empty()) {
        obj.insert("reasoning_content".into(), json!(reasoning));
    }
    if let Some(name) = msg.name.as_deref().filter(|s| !s.is_empty()) {
        obj.insert("name".into(), json!(name));
    }
    if let Some(id) = msg.tool_call_id.as_deref().filter(|s| !s.is_empty()) {
        obj.insert("tool_call_id".into(), json!(id));
    }
    if !msg.tool_calls.is_empty() {
        let calls = msg
            .tool_calls
            .iter()
            .map(|call| {
                let mut tc = Map::new();
                tc.insert("type".into(), json!("function"));
                tc.insert(
                    "function".into(),
                    json!({ "name": call.name, "arguments": call.arguments }),
                );
                if !call.id.is_empty() {
                    tc.insert("id".into(), json!(call.id));
                }
                Json::Object(tc)
            })
            .collect();
        obj.insert("tool_calls".into(), Json::Array(calls));
    }
    Json::Object(obj)
}

fn tool_json(tool: &Tool) -> Json {
    let parameters = match &tool.parameters {
        Json::Object(map) if map.is_empty() => json!({}),
        other => other.clone(),
    };
    json!({
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": parameters,
        }
    })
}

/// gpt-oss's template reads past reasoning from `thinking`; with tool calls, the content of
/// that turn is dropped (it was the tool call's preamble).
fn harmony_thinking(messages: &mut [Json]) {
    for message in messages {
        let Some(obj) = message.as_object_mut() else {
            continue;
        };
        if let Some(reasoning) = obj.get("reasoning_content").cloned() {
            obj.insert("thinking".into(), reasoning);
            if obj
                .get("tool_calls")
                .and_then(Json::as_array)
                .is_some_and(|c| !c.is_empty())
            {
                obj.remove("content");
            }
        }
    }
}

/// A template that ignores the system role gets the system text prepended to the next message.
fn merge_system_message(messages: &mut Vec<Json>) {
    if messages.first().map(|m| &m["role"]) != Some(&json!(Role::System.as_str())) {
        return;
    }
    let first = messages.remove(0);
    if let Some(next) = messages.first_mut() {
        let merged = format!(
            "{}\n{}",
            first["content"].as_str().unwrap_or_default(),
            next["content"].as_str().unwrap_or_default()
        );
        next["content"] = json!(merged);
    }
}

/// Templates that index into arguments get them as objects.
fn parse_arguments(messages: &mut [Json]) -> Result<(), ChatError> {
    for (i, message) in messages.iter_mut().enumerate() {
        let Some(calls) = message.get_mut("tool_calls").and_then(Json::as_array_mut) else {
            continue;
        };
        for (j, call) in calls.iter_mut().enumerate() {
            let Some(args) = call.pointer_mut("/function/arguments") else {
                continue;
            };
            if let Json::String(text) = args {
                *args = serde_json::from_str(text).map_err(|e| {
                    ChatError::field(
                        format!("messages[{i}].tool_calls[{j}].function.arguments"),
                        format!("not valid JSON: {e}"),
                    )
                })?;
            }
        }
    }
    Ok(())
}
