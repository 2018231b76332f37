//! The Messages API's answer: the chat parser's message (reasoning, content, tool calls) as
//! Anthropic's content blocks, whole or as its stream of events, with `stop_reason` and
//! `usage`. One adapter over the pipeline, as the chat route's; only the JSON differs.

use axum::response::sse::Event as SseEvent;
use serde_json::{Value, json};

use super::super::chat::AnswerReader;
use super::super::error::ApiError;
use super::super::pipeline::{Adapter, Finished, Update};
use super::error::error_json;
use super::stream::Blocks;
use crate::chat::{ChatParser, ParsedMessage};
use crate::engine::{Completion, StopType};

pub struct Messages {
    /// `msg_` and the request id.
    pub id: String,
    pub model_name: String,
    /// The chat's parser settings, tools and continued assistant message (a prefill).
    pub reader: AnswerReader,
    /// The request's `stop_sequences`: a match is `stop_reason: stop_sequence`.
    pub stop_sequences: Vec<String>,
    /// The answer while it streams.
    pub streaming: Option<(ChatParser, Blocks)>,
}

impl Messages {
    /// The message object without its content, as `message_start` and the answer carry it.
    fn message(&self, content: Value, stop: (Value, Value), usage: Value) -> Value {
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "content": content,
            "model": self.model_name,
            "stop_reason": stop.0,
            "stop_sequence": stop.1,
            "usage": usage,
        })
    }

    /// `stop_reason` and `stop_sequence`: a limit is `max_tokens`; a stop string the request
    /// gave is `stop_sequence` (a template's own stop string is the end of the turn); else
    /// `tool_use` when the model called a tool, `end_turn` when it did not.
    fn stop(&self, done: &Completion, message: &ParsedMessage) -> (Value, Value) {
        match &done.stop_type {
            StopType::Limit | StopType::None => (json!("max_tokens"), Value::Null),
            _ if !message.tool_calls.is_empty() => (json!("tool_use"), Value::Null),
            StopType::Word(word) if self.stop_sequences.contains(word) => {
                (json!("stop_sequence"), json!(word))
            }
            StopType::Eos | StopType::Word(_) => (json!("end_turn"), Value::Null),
        }
    }

    /// The first events of a stream: `message_start` with the prompt's usage, and a `ping`
    /// (Anthropic sends one there).
    fn start(&self, n_prompt: usize, n_cached: usize) -> Vec<Value> {
        let usage = json!({
            "cache_read_input_tokens": n_cached,
            "input_tokens": n_prompt.saturating_sub(n_cached),
            "output_tokens": 0,
        });
        let message = self.message(json!([]), (Value::Null, Value::Null), usage);
        vec![
            json!({ "type": "message_start", "message": message }),
            json!({ "type": "ping" }),
        ]
    }
}

/// Anthropic's `usage` of a finished answer (input tokens exclude those read from the cache).
fn usage(done: &Completion) -> Value {
    let cached = done.timings.cache_n.min(done.tokens_evaluated);
    json!({
        "cache_read_input_tokens": cached,
        "input_tokens": done.tokens_evaluated - cached,
        "output_tokens": done.tokens_predicted,
    })
}

/// A message's content blocks: its reasoning first, then its text, then its tool calls.
fn content(message: &ParsedMessage) -> Value {
    let mut blocks = Vec::new();
    if !message.reasoning_content.is_empty() {
        blocks.push(json!({
            "type": "thinking",
            "thinking": message.reasoning_content,
            // Anthropic signs its models' reasoning; a local model's has nothing to sign.
            "signature": "",
        }));
    }
    if !message.content.is_empty() {
        blocks.push(json!({ "type": "text", "text": message.content }));
    }
    for call in &message.tool_calls {
        blocks.push(json!({
            "type": "tool_use",
            "id": call.id,
            "name": call.name,
            "input": call.arguments_object(),
        }));
    }
    Value::Array(blocks)
}

impl Adapter for Messages {
    fn answer(&mut self, results: Vec<Finished>) -> Value {
        let Some(r) = results.into_iter().next() else {
            return Value::Null;
        };
        let message = self.reader.read(&r.done.text);
        let stop = self.stop(&r.done, &message);
        self.message(content(&message), stop, usage(&r.done))
    }

    fn stream(&mut self, update: Update) -> Vec<Value> {
        let mut out = Vec::new();
        if self.streaming.is_none() {
            let (n_prompt, n_cached) = match &update {
                Update::Token {
                    n_prompt, timings, ..
                } => (*n_prompt, timings.as_ref().map_or(0, |t| t.cache_n)),
                Update::Done(r) => (r.done.tokens_evaluated, r.done.timings.cache_n),
            };
            out.extend(self.start(n_prompt, n_cached));
            let (parser, deltas) = self.reader.parser();
            let mut blocks = Blocks::default();
            out.extend(blocks.push(&deltas));
            self.streaming = Some((parser, blocks));
        }
        let (mut parser, mut blocks) = self.streaming.take().expect("set above");
        match update {
            Update::Token { text, .. } => {
                out.extend(blocks.push(&parser.push(&text)));
                self.streaming = Some((parser, blocks));
            }
            Update::Done(r) => {
                out.extend(blocks.push(&parser.push(&r.done.tail)));
                let (last, message) = parser.finish();
                out.extend(blocks.push(&last));
                out.extend(blocks.close());
                let (stop_reason, stop_sequence) = self.stop(&r.done, &message);
                out.push(json!({
                    "type": "message_delta",
                    "delta": { "stop_reason": stop_reason, "stop_sequence": stop_sequence },
                    "usage": usage(&r.done),
                }));
                out.push(json!({ "type": "message_stop" }));
            }
        }
        out
    }

    fn done_marker(&self) -> bool {
        false
    }

    /// Each event is named by its type (`event: content_block_delta`), as Anthropic sends them.
    fn event(&self, payload: Value) -> SseEvent {
        let name = payload["type"].as_str().unwrap_or("message").to_string();
        SseEvent::default().event(name).data(payload.to_string())
    }

    fn stream_error(&self, error: &ApiError) -> Value {
        error_json(error, None)
    }

    fn keep_alive(&self) -> Option<SseEvent> {
        Some(self.event(json!({ "type": "ping" })))
    }
}
