//! `<think>` reasoning, then content with Hermes `<tool_call>{…}</tool_call>` blocks or a
//! Llama 3.x bare JSON call.
//!
//! Reasoning: an answer that starts with `<think>` (or whose prompt left `<think>` open) has
//! its reasoning up to `</think>`, trimmed, as llama-server returns it. With reasoning format
//! `none` the tags stay in the content.

use serde_json::Value;

use super::scan::emit;
use super::{ParserConfig, RawCall, Snapshot};
use crate::chat::ChatFormat;

const THINK_OPEN: &str = "<think>";
const THINK_CLOSE: &str = "</think>";
const CALL_OPEN: &str = "<tool_call>";
const CALL_CLOSE: &str = "</tool_call>";
const PYTHON_TAG: &str = "<|python_tag|>";

pub fn parse(config: &ParserConfig, text: &str, partial: bool) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let rest = if config.reasoning_format.extracts() {
        match split_reasoning(text, partial, config.thinking_forced_open) {
            Some((reasoning, rest)) => {
                snapshot.reasoning = reasoning;
                rest
            }
            None => return snapshot,
        }
    } else {
        text
    };
    match config.format {
        ChatFormat::Hermes if config.parse_tool_calls => hermes_calls(rest, partial, &mut snapshot),
        ChatFormat::Llama3Json if config.parse_tool_calls => {
            llama3_call(rest, partial, &mut snapshot)
        }
        _ => snapshot.content = rest.to_string(),
    }
    snapshot
}

/// Splits off the reasoning: `(reasoning, rest)`, or `None` while it is too early to tell
/// whether the answer opens with `<think>`.
fn split_reasoning(text: &str, partial: bool, forced_open: bool) -> Option<(String, &str)> {
    let region = if forced_open {
        text
    } else {
        let trimmed = text.trim_start();
        match trimmed.strip_prefix(THINK_OPEN) {
            Some(region) => region,
            None if partial && THINK_OPEN.starts_with(trimmed) => return None,
            None => return Some((String::new(), text)),
        }
    };
    Some(match region.find(THINK_CLOSE) {
        Some(end) => (
            region[..end].trim().to_string(),
            region[end + THINK_CLOSE.len()..].trim_start(),
        ),
        None => (emit(region, &[THINK_CLOSE], partial).trim().to_string(), ""),
    })
}

/// Content around `<tool_call>` blocks. Whitespace before and between calls is not content,
/// so trailing whitespace is held back while streaming and trimmed at the end.
fn hermes_calls(text: &str, partial: bool, snapshot: &mut Snapshot) {
    let mut content = String::new();
    let mut pos = 0;
    while pos < text.len() {
        let rest = &text[pos..];
        let Some(open) = rest.find(CALL_OPEN) else {
            content.push_str(emit(rest, &[CALL_OPEN], partial));
            break;
        };
        content.push_str(&rest[..open]);
        let body = &rest[open + CALL_OPEN.len()..];
        match body.find(CALL_CLOSE) {
            Some(close) => {
                match hermes_call(&body[..close]) {
                    Some(call) => snapshot.calls.push(call),
                    None => content
                        .push_str(&rest[open..open + CALL_OPEN.len() + close + CALL_CLOSE.len()]),
                }
                pos += open + CALL_OPEN.len() + close + CALL_CLOSE.len();
            }
            // An unclosed call: wait for it, or at the end take it if its JSON is whole.
            None if partial => break,
            None => {
                match hermes_call(body) {
                    Some(call) => snapshot.calls.push(call),
                    None => content.push_str(&rest[open..]),
                }
                break;
            }
        }
    }
    snapshot.content = content.trim_end().to_string();
}

/// `{"name": …, "arguments": {…}}` → a call with the arguments as compact JSON text.
fn hermes_call(body: &str) -> Option<RawCall> {
    let value: Value = serde_json::from_str(body.trim()).ok()?;
    let name = value.get("name")?.as_str()?.to_string();
    let arguments = match value.get("arguments").or_else(|| value.get("parameters")) {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    Some(RawCall { name, arguments })
}

/// Llama 3.x: the whole answer is `{"name": …, "parameters": {…}}`, maybe after
/// `<|python_tag|>`. Anything that may still become one is held back while streaming.
fn llama3_call(text: &str, partial: bool, snapshot: &mut Snapshot) {
    let trimmed = text.trim_start();
    let json = trimmed.strip_prefix(PYTHON_TAG).unwrap_or(trimmed);
    if partial {
        let maybe_call = trimmed.is_empty()
            || json.starts_with('{')
            || trimmed.starts_with(PYTHON_TAG)
            || PYTHON_TAG.starts_with(trimmed);
        if !maybe_call {
            snapshot.content = text.to_string();
        }
        return;
    }
    let call = serde_json::from_str::<Value>(json.trim())
        .ok()
        .and_then(|value| {
            let name = value.get("name")?.as_str()?.to_string();
            let args = value.get("parameters").or_else(|| value.get("arguments"))?;
            Some(RawCall {
                name,
                arguments: args.to_string(),
            })
        });
    match call {
        Some(call) => snapshot.calls.push(call),
        None => snapshot.content = text.to_string(),
    }
}
