//! Mistral Nemo: content, then `[TOOL_CALLS]` and a JSON array of
//! `{"name": …, "arguments": {…}, "id": …}` calls that runs to the end of the answer.
//!
//! As llama.cpp's parser, everything before the marker is content as written. The array is held
//! back while streaming until it is whole; one that never becomes whole (a truncated answer)
//! stays in the content as written, marker included. A call keeps the id the model wrote, as
//! in llama-server.

use serde_json::Value;

use super::scan::{call_from_json, emit, json_prefix};
use super::{RawCall, Snapshot};

const TOOL_CALLS: &str = "[TOOL_CALLS]";

pub fn calls(text: &str, partial: bool, snapshot: &mut Snapshot) {
    let Some(at) = text.find(TOOL_CALLS) else {
        snapshot.content = emit(text, &[TOOL_CALLS], partial).to_string();
        return;
    };
    let calls = match json_prefix(&text[at + TOOL_CALLS.len()..]) {
        Some(Value::Array(items)) => items.iter().map(call_with_id).collect(),
        _ => None,
    };
    match calls {
        Some(calls) => {
            snapshot.content = text[..at].to_string();
            snapshot.calls = calls;
        }
        None if partial => snapshot.content = text[..at].to_string(),
        None => snapshot.content = text.to_string(),
    }
}

/// A call object, with the id the model gave it (llama-server returns that id).
fn call_with_id(value: &Value) -> Option<RawCall> {
    let mut call = call_from_json(value)?;
    call.id = value.get("id").and_then(Value::as_str).map(str::to_string);
    Some(call)
}
