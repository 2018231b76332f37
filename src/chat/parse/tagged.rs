//! Tool calls written as tagged blocks among the content: `OPEN body CLOSE`, one call per body
//! (Hermes' JSON, DeepSeek R1's fenced JSON, Qwen3-Coder's XML). The syntaxes differ only in
//! their tags and in how a body reads, so one scanner serves them all.
//!
//! A block whose body does not read as a call stays in the content as written; so does an
//! unclosed block at the end, unless its body already reads whole. While streaming, an unclosed
//! block is held back until it closes. Whitespace around calls is not content: trailing
//! whitespace is trimmed (and so held back while streaming).

use super::scan::{emit, find_first};
use super::{RawCall, Snapshot};

/// The tags of one call syntax.
pub struct TagSyntax {
    pub open: &'static str,
    pub close: &'static str,
    /// Markers around a run of calls that are not content (DeepSeek's `<｜tool▁calls▁begin｜>`).
    pub wrappers: &'static [&'static str],
}

/// Splits `text` into content and the calls of `syntax`'s blocks, each block's body read by
/// `body`. The first block may also start at one of `bare_first` without the open tag (the
/// marker is then part of its body); a later one is content.
pub fn calls(
    syntax: &TagSyntax,
    bare_first: &[&str],
    body: impl Fn(&str) -> Option<RawCall>,
    text: &str,
    partial: bool,
    snapshot: &mut Snapshot,
) {
    let markers: Vec<&str> = std::iter::once(syntax.open)
        .chain(syntax.wrappers.iter().copied())
        .chain(bare_first.iter().copied())
        .collect();
    let mut blocks = 0;
    let mut content = String::new();
    let mut pos = 0;
    while pos < text.len() {
        let rest = &text[pos..];
        let Some((at, marker)) = find_first(rest, &markers) else {
            content.push_str(emit(rest, &markers, partial));
            break;
        };
        content.push_str(&rest[..at]);
        let bare = bare_first.contains(&marker);
        if bare && blocks > 0 {
            content.push_str(marker);
            pos += at + marker.len();
            continue;
        }
        if marker != syntax.open && !bare {
            pos += at + marker.len();
            continue;
        }
        blocks += 1;
        let block = &rest[at..];
        let open_len = if bare { 0 } else { syntax.open.len() };
        let inner = &block[open_len..];
        match inner.find(syntax.close) {
            Some(close) => {
                let len = open_len + close + syntax.close.len();
                match body(&inner[..close]) {
                    Some(call) => snapshot.calls.push(call),
                    None => content.push_str(&block[..len]),
                }
                pos += at + len;
            }
            None if partial => break,
            None => {
                match body(inner) {
                    Some(call) => snapshot.calls.push(call),
                    None => content.push_str(block),
                }
                break;
            }
        }
    }
    snapshot.content = content.trim_end().to_string();
}
