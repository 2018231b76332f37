//! Functionary v3.2: the prompt ends with `>>>`, so the answer starts with a recipient line.
//! Each message is `RECIPIENT\nBODY`, the next one after another `>>>`:
//! `all\nLet me look.>>>get_weather\n{"location": "Oslo"}`. Recipient `all` is content; any
//! other name is a call of that function with the body as its JSON arguments.
//!
//! As in llama.cpp, only an offered tool is called, and a body that is not JSON is not a call
//! (except for `python`, whose body is code: it becomes `{"code": …}`); such a message, or one
//! whose first line is not a name, stays in the content as written. While streaming, a call is held back until the next `>>>` or the
//! end. Without tools, everything after `all\n` is content.

use serde_json::json;

use super::scan::{compact_json, emit};
use super::{OfferedTools, RawCall, Snapshot};

const NEXT: &str = ">>>";
const ALL: &str = "all\n";

/// `tools`: `None` when tool calls are not parsed.
pub fn parse(text: &str, partial: bool, tools: Option<&OfferedTools>) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let text = text.strip_prefix(NEXT).unwrap_or(text);
    let Some(tools) = tools else {
        if !(partial && ALL.starts_with(text)) {
            snapshot.content = text.strip_prefix(ALL).unwrap_or(text).to_string();
        }
        return snapshot;
    };
    // The first message's `>>>` ends the prompt; the others' are written in the answer.
    let mut prefix = "";
    let mut messages = text.split(NEXT).peekable();
    while let Some(message) = messages.next() {
        let open = partial && messages.peek().is_none();
        read_message(prefix, message, open, tools, &mut snapshot);
        prefix = NEXT;
    }
    snapshot
}

/// One `RECIPIENT\nBODY` message, `>>>` (`prefix`) as written before it; `open` while it may
/// still grow.
fn read_message(
    prefix: &str,
    message: &str,
    open: bool,
    tools: &OfferedTools,
    snapshot: &mut Snapshot,
) {
    let Some((recipient, body)) = message.split_once('\n') else {
        if !open {
            snapshot.content.push_str(prefix);
            snapshot.content.push_str(message);
        }
        return;
    };
    let as_written = |snapshot: &mut Snapshot| {
        snapshot.content.push_str(prefix);
        snapshot.content.push_str(emit(message, &[NEXT], open));
    };
    match recipient {
        "all" => snapshot.content.push_str(emit(body, &[NEXT], open)),
        name if !is_name(name) || !tools.offers(name) => as_written(snapshot),
        _ if open => {}
        name => match call(name, body) {
            Some(call) => snapshot.calls.push(call),
            None => as_written(snapshot),
        },
    }
}

/// A recipient is a word, as llama.cpp's `(\w+)\n` reads it.
fn is_name(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_alphanumeric() || c == '_')
}

fn call(name: &str, body: &str) -> Option<RawCall> {
    let arguments = match compact_json(body) {
        Some(json) if json.starts_with('{') => json,
        _ if name == "python" => json!({ "code": body }).to_string(),
        _ => return None,
    };
    Some(RawCall::new(name, arguments))
}
