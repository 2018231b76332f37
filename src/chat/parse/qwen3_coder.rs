//! Qwen3-Coder's XML tool calls (also Qwen3.5's and Nemotron Nano 3's):
//!
//! ```text
//! <tool_call>
//! <function=NAME>
//! <parameter=P>
//! V
//! </parameter>
//! </function>
//! </tool_call>
//! ```
//!
//! A parameter's value is the text between the newlines after `<parameter=P>` and before
//! `</parameter>`. llama.cpp types it by the tool's schema (strings stay text, the rest is
//! JSON); the parser has no schemas, so a value that reads as JSON other than a string is
//! taken as JSON and everything else as a string. Arguments keep the order they are written in.

use serde_json::{Map, Value};

use super::RawCall;
use super::tagged::TagSyntax;

pub const QWEN3_CODER: TagSyntax = TagSyntax {
    open: "<tool_call>",
    close: "</tool_call>",
    wrappers: &[],
    body: call,
};

const PARAM_OPEN: &str = "<parameter=";
const PARAM_CLOSE: &str = "</parameter>";

/// `<function=NAME>` and its parameters → the call with the arguments as compact JSON.
fn call(body: &str) -> Option<RawCall> {
    let rest = body.trim().strip_prefix("<function=")?;
    let (name, mut rest) = rest.split_once('>')?;
    let mut arguments = Map::new();
    loop {
        rest = rest.trim_start();
        if let Some(end) = rest.strip_prefix("</function>") {
            return end
                .trim()
                .is_empty()
                .then(|| RawCall::new(name, Value::Object(arguments).to_string()));
        }
        let (key, after) = rest.strip_prefix(PARAM_OPEN)?.split_once('>')?;
        let (value, after) = after.split_once(PARAM_CLOSE)?;
        arguments.insert(key.to_string(), parameter_value(value));
        rest = after;
    }
}

fn parameter_value(raw: &str) -> Value {
    let text = raw.strip_prefix('\n').unwrap_or(raw);
    let text = text.strip_suffix('\n').unwrap_or(text);
    match serde_json::from_str::<Value>(text) {
        Ok(value) if !value.is_string() => value,
        _ => Value::String(text.to_string()),
    }
}
