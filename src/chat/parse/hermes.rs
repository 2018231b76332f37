//! `<think>` reasoning, then content with tool calls in the format's syntax: Hermes
//! `<tool_call>{…}</tool_call>` blocks (here), a Llama 3.x bare JSON call (here), DeepSeek R1 and
//! Qwen3-Coder blocks ([`super::deepseek`], [`super::qwen3_coder`]) or Mistral Nemo's
//! `[TOOL_CALLS]` array ([`super::mistral`]).
//!
//! Reasoning: an answer that starts with `<think>` (or whose prompt left `<think>` open) has
//! its reasoning up to `</think>`, trimmed, as llama-server returns it. With reasoning format
//! `none` the tags stay in the content.

use serde_json::Value;

use super::scan::{call_from_json, emit};
use super::tagged::{self, TagSyntax};
use super::{OfferedTools, ParserConfig, RawCall, Snapshot, deepseek, mistral, qwen3_coder};
use crate::chat::ChatFormat;

const THINK_OPEN: &str = "<think>";
const THINK_CLOSE: &str = "</think>";
const CALL_OPEN: &str = "<tool_call>";
const CALL_CLOSE: &str = "</tool_call>";
const PYTHON_TAG: &str = "<|python_tag|>";

pub fn parse(config: &ParserConfig, tools: &OfferedTools, text: &str, partial: bool) -> Snapshot {
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
    if !config.parse_tool_calls {
        snapshot.content = rest.to_string();
        return snapshot;
    }
    match config.format {
        ChatFormat::Hermes => {
            tagged::calls(&HERMES, &[], hermes_call, rest, partial, &mut snapshot)
        }
        ChatFormat::DeepSeekR1 => tagged::calls(
            &deepseek::TAGS,
            &[],
            deepseek::call,
            rest,
            partial,
            &mut snapshot,
        ),
        ChatFormat::Qwen3Coder => {
            let call = |body: &str| qwen3_coder::call(body, tools);
            let bare = tools.function_openers();
            tagged::calls(
                &qwen3_coder::TAGS,
                &bare,
                call,
                rest,
                partial,
                &mut snapshot,
            )
        }
        ChatFormat::MistralNemo => mistral::calls(rest, partial, &mut snapshot),
        ChatFormat::Llama3Json => llama3_call(rest, partial, &mut snapshot),
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

/// Hermes / Qwen: `<tool_call>{"name": …, "arguments": {…}}</tool_call>`.
const HERMES: TagSyntax = TagSyntax {
    open: CALL_OPEN,
    close: CALL_CLOSE,
    wrappers: &[],
};

/// `{"name": …, "arguments": {…}}` → a call with the arguments as compact JSON text.
fn hermes_call(body: &str) -> Option<RawCall> {
    call_from_json(&serde_json::from_str(body.trim()).ok()?)
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
            Some(RawCall::new(name, args.to_string()))
        });
    match call {
        Some(call) => snapshot.calls.push(call),
        None => snapshot.content = text.to_string(),
    }
}
