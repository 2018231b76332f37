//! The content blocks of a streamed answer, from the chat parser's deltas: one block open at a
//! time, numbered in order, each opened by `content_block_start`, filled by
//! `content_block_delta`s (`thinking_delta`, `text_delta`, `input_json_delta`) and closed by
//! `content_block_stop` before the next one starts, as Anthropic streams them. (llama-server
//! numbers blocks by kind and closes them all at the end; clients accept both.)

use serde_json::{Value, json};

use crate::chat::ChatDelta;

/// The kind of the open block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Thinking,
    Text,
    /// A tool call, by its index among the answer's calls.
    ToolUse(usize),
}

/// The blocks sent so far.
#[derive(Debug, Default)]
pub struct Blocks {
    /// The open block and its index.
    open: Option<(Kind, usize)>,
    /// Blocks started so far.
    count: usize,
}

impl Blocks {
    /// The events for a batch of parser deltas.
    pub fn push(&mut self, deltas: &[ChatDelta]) -> Vec<Value> {
        let mut out = Vec::new();
        for delta in deltas {
            if let Some(thinking) = delta.reasoning_content.as_deref().filter(|t| !t.is_empty()) {
                let start = json!({ "type": "thinking", "thinking": "", "signature": "" });
                let index = self.enter(Kind::Thinking, start, &mut out);
                out.push(block_delta(
                    index,
                    json!({ "type": "thinking_delta", "thinking": thinking }),
                ));
            }
            if let Some(text) = delta.content.as_deref().filter(|t| !t.is_empty()) {
                let start = json!({ "type": "text", "text": "" });
                let index = self.enter(Kind::Text, start, &mut out);
                out.push(block_delta(
                    index,
                    json!({ "type": "text_delta", "text": text }),
                ));
            }
            for call in &delta.tool_calls {
                let start = json!({
                    "type": "tool_use",
                    "id": call.id.clone().unwrap_or_default(),
                    "name": call.name.clone().unwrap_or_default(),
                    "input": {},
                });
                let index = self.enter(Kind::ToolUse(call.index), start, &mut out);
                if !call.arguments.is_empty() {
                    out.push(block_delta(
                        index,
                        json!({ "type": "input_json_delta", "partial_json": call.arguments }),
                    ));
                }
            }
        }
        out
    }

    /// Closes the open block, if any (at the end of the answer).
    pub fn close(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        if let Some((kind, index)) = self.open.take() {
            if kind == Kind::Thinking {
                // Anthropic's clients expect a signature before a thinking block ends; a local
                // model's reasoning has none.
                out.push(block_delta(
                    index,
                    json!({ "type": "signature_delta", "signature": "" }),
                ));
            }
            out.push(json!({ "type": "content_block_stop", "index": index }));
        }
        out
    }

    /// Makes `kind` the open block (closing another, starting it with `start`); its index.
    fn enter(&mut self, kind: Kind, start: Value, out: &mut Vec<Value>) -> usize {
        if let Some((open, index)) = self.open
            && open == kind
        {
            return index;
        }
        out.extend(self.close());
        let index = self.count;
        self.count += 1;
        self.open = Some((kind, index));
        out.push(json!({
            "type": "content_block_start",
            "index": index,
            "content_block": start,
        }));
        index
    }
}

fn block_delta(index: usize, delta: Value) -> Value {
    json!({ "type": "content_block_delta", "index": index, "delta": delta })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ToolCallDelta;

    fn types(events: &[Value]) -> Vec<String> {
        events
            .iter()
            .map(|e| {
                let t = e["type"].as_str().unwrap();
                match (&e["index"], e["delta"]["type"].as_str()) {
                    (Value::Number(i), Some(d)) => format!("{t}[{i}]:{d}"),
                    (Value::Number(i), None) => format!("{t}[{i}]"),
                    _ => t.to_string(),
                }
            })
            .collect()
    }

    #[test]
    fn blocks_open_one_at_a_time_in_order() {
        let mut blocks = Blocks::default();
        let reasoning = ChatDelta {
            reasoning_content: Some("hmm".into()),
            ..ChatDelta::default()
        };
        let text = ChatDelta {
            content: Some("hi".into()),
            ..ChatDelta::default()
        };
        let call = |index: usize, name: Option<&str>, arguments: &str| ChatDelta {
            tool_calls: vec![ToolCallDelta {
                index,
                id: name.map(|_| format!("call_{index}")),
                name: name.map(String::from),
                arguments: arguments.into(),
            }],
            ..ChatDelta::default()
        };
        let mut events = blocks.push(&[reasoning.clone(), reasoning, text.clone(), text]);
        events.extend(blocks.push(&[call(0, Some("f"), ""), call(0, None, "{\"a\":1}")]));
        events.extend(blocks.push(&[call(1, Some("g"), "{}")]));
        events.extend(blocks.close());
        assert_eq!(
            types(&events),
            [
                "content_block_start[0]",
                "content_block_delta[0]:thinking_delta",
                "content_block_delta[0]:thinking_delta",
                "content_block_delta[0]:signature_delta",
                "content_block_stop[0]",
                "content_block_start[1]",
                "content_block_delta[1]:text_delta",
                "content_block_delta[1]:text_delta",
                "content_block_stop[1]",
                "content_block_start[2]",
                "content_block_delta[2]:input_json_delta",
                "content_block_stop[2]",
                "content_block_start[3]",
                "content_block_delta[3]:input_json_delta",
                "content_block_stop[3]",
            ]
        );
        assert_eq!(events[9]["content_block"]["name"], "f");
        assert_eq!(events[9]["content_block"]["id"], "call_0");
        assert_eq!(events[12]["content_block"]["name"], "g");
        assert!(blocks.close().is_empty(), "nothing left open");
    }
}
