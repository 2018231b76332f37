//! Small text and JSON helpers shared by the format parsers.

use serde_json::Value;

use super::RawCall;

/// The byte index where `text` stops being safe to emit while streaming: the start of the
/// longest suffix that is a proper prefix of one of `markers` (it may become that marker).
pub fn safe_end(text: &str, markers: &[&str]) -> usize {
    let longest = markers.iter().map(|m| m.len()).max().unwrap_or(0);
    for start in text.len().saturating_sub(longest.saturating_sub(1))..text.len() {
        if !text.is_char_boundary(start) {
            continue;
        }
        let tail = &text[start..];
        if markers
            .iter()
            .any(|m| m.len() > tail.len() && m.starts_with(tail))
        {
            return start;
        }
    }
    text.len()
}

/// `text` cut at [`safe_end`] when `partial`, whole otherwise.
pub fn emit<'a>(text: &'a str, markers: &[&str], partial: bool) -> &'a str {
    if partial {
        &text[..safe_end(text, markers)]
    } else {
        text
    }
}

/// The earliest occurrence of any of `markers`: (position, marker).
pub fn find_first<'m>(text: &str, markers: &[&'m str]) -> Option<(usize, &'m str)> {
    markers
        .iter()
        .filter_map(|m| text.find(m).map(|i| (i, *m)))
        .min_by_key(|(i, _)| *i)
}

/// The JSON value at the start of `text` (after whitespace), ignoring what follows it.
pub fn json_prefix(text: &str) -> Option<Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .next()?
        .ok()
}

/// `text` as compact JSON, if it is one JSON value.
pub fn compact_json(text: &str) -> Option<String> {
    serde_json::from_str::<Value>(text.trim())
        .ok()
        .map(|v| v.to_string())
}

/// A call object `{"name": …, "arguments": …}` (or `"parameters"`), arguments as compact JSON
/// text (a string stays as written, missing arguments are `{}`).
pub fn call_from_json(value: &Value) -> Option<RawCall> {
    let name = value.get("name")?.as_str()?.to_string();
    let arguments = match value.get("arguments").or_else(|| value.get("parameters")) {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    Some(RawCall::new(name, arguments))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_end_holds_back_marker_prefixes() {
        let cases = [
            ("hello <tool", 6),
            ("hello <tool_call>", 17),
            ("hello", 5),
            ("<", 0),
            ("a <|e", 2),
            ("é<", 2),
        ];
        for (text, want) in cases {
            assert_eq!(safe_end(text, &["<tool_call>", "<|end|>"]), want, "{text}");
        }
    }
}
