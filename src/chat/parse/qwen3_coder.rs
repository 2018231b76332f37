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
//! `</parameter>`, untyped. As llama.cpp does, the tool's schema types it: a parameter that can
//! only be a string keeps the text as it is; any other (or one the schema does not describe) is
//! JSON if the text reads as JSON other than a string, else a string. Arguments keep the order
//! they are written in.
//!
//! Qwen3-Coder models sometimes leave out the first call's `<tool_call>` and start with
//! `<function=NAME>`. As llama.cpp does, the first call may then open with `<function=` and the
//! name of an offered tool; later calls need the opener.

use serde_json::{Map, Value};

use super::tagged::TagSyntax;
use super::{OfferedTools, RawCall};

pub const TAGS: TagSyntax = TagSyntax {
    open: "<tool_call>",
    close: "</tool_call>",
    wrappers: &[],
};

const PARAM_OPEN: &str = "<parameter=";
const PARAM_CLOSE: &str = "</parameter>";

/// `<function=NAME>` and its parameters → the call with the arguments as compact JSON.
pub fn call(body: &str, tools: &OfferedTools) -> Option<RawCall> {
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
        let value = parameter_text(value);
        let value = if tools.is_string(name, key) {
            Value::String(value.to_string())
        } else {
            untyped_value(value)
        };
        arguments.insert(key.to_string(), value);
        rest = after;
    }
}

/// A value's text, less the newline after `<parameter=P>` and the one before `</parameter>`.
fn parameter_text(raw: &str) -> &str {
    let text = raw.strip_prefix('\n').unwrap_or(raw);
    text.strip_suffix('\n').unwrap_or(text)
}

fn untyped_value(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(value) if !value.is_string() => value,
        _ => Value::String(text.to_string()),
    }
}
