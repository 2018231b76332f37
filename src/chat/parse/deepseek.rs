//! DeepSeek R1's native tool calls (after its `<think>` reasoning, which the caller splits off):
//!
//! ```text
//! <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME
//! ```json
//! {"arg": …}
//! ```<｜tool▁call▁end｜><｜tool▁calls▁end｜>
//! ```
//!
//! As llama.cpp reads it, the fence around the arguments is optional, and the type before
//! `<｜tool▁sep｜>` (always `function`) is not checked.

use super::RawCall;
use super::scan::compact_json;
use super::tagged::TagSyntax;

pub const TAGS: TagSyntax = TagSyntax {
    open: "<｜tool▁call▁begin｜>",
    close: "<｜tool▁call▁end｜>",
    // The begin marker as llama.cpp accepts it, including spellings models have been seen to
    // write.
    wrappers: &[
        "<｜tool▁calls▁begin｜>",
        "<｜tool_calls_begin｜>",
        "<｜tool calls begin｜>",
        "<｜tool\\_calls\\_begin｜>",
        "<｜tool▁calls｜>",
        "<｜tool▁calls▁end｜>",
    ],
};

const SEP: &str = "<｜tool▁sep｜>";

/// `function<｜tool▁sep｜>NAME\n```json\n{…}\n```` → the call.
pub fn call(body: &str) -> Option<RawCall> {
    let (_, rest) = body.split_once(SEP)?;
    let (name, arguments) = rest.split_once('\n')?;
    let arguments = arguments.trim();
    let arguments = arguments
        .strip_prefix("```json")
        .and_then(|a| a.strip_suffix("```"))
        .unwrap_or(arguments);
    Some(RawCall::new(name.trim(), compact_json(arguments)?))
}
