//! The Responses API's answer: a `response` object whose `output` holds a `reasoning` item (the
//! model's reasoning, gpt-oss's analysis channel), a `message` item (its text) and one
//! `function_call` item per tool call; streamed, the named events OpenAI sends
//! (`response.created`, `response.output_text.delta`, …, `response.completed`). The answer is
//! read by the chat parser, as on the chat route; the shapes, ids and event order are
//! llama-server's (`to_json_oaicompat_resp*` in `server-task.cpp`).

use axum::response::sse::Event as SseEvent;
use serde_json::{Value, json};

use crate::chat::{ChatDelta, ChatParser, ParsedMessage, ToolCall};
use crate::engine::Completion;
use crate::server::chat::AnswerReader;
use crate::server::pipeline::{Adapter, Finished, Update, unix_time};

/// The ids of a response and of its items, all carrying the request's id.
struct Ids {
    response: String,
    reasoning: String,
    message: String,
}

/// The Responses adapter over the pipeline.
pub struct Responses {
    ids: Ids,
    model_name: String,
    reader: AnswerReader,
    /// The answer being streamed, once its first update came.
    streaming: Option<Streaming>,
}

/// A stream's parser and what it has announced so far.
struct Streaming {
    parser: ChatParser,
    sent: Sent,
}

/// The items a stream has announced (`response.output_item.added`), in order: an item's
/// position is its `output_index`.
#[derive(Default)]
struct Sent {
    items: Vec<Announced>,
    /// The `call_…` id of each tool call, by the call's index.
    call_ids: Vec<String>,
}

/// One output item of a stream.
#[derive(Debug, PartialEq, Eq)]
enum Announced {
    Reasoning,
    Message,
    /// The tool call of this index in the parsed message.
    Call(usize),
}

impl Sent {
    fn index(&self, item: &Announced) -> Option<usize> {
        self.items.iter().position(|i| i == item)
    }

    /// Records a new item and returns its `response.output_item.added` event.
    fn announce(&mut self, announced: Announced, item: Value) -> Value {
        if matches!(announced, Announced::Call(_))
            && let Some(id) = item["call_id"].as_str()
        {
            self.call_ids.push(id.to_string());
        }
        self.items.push(announced);
        event(
            "response.output_item.added",
            json!({ "item": item, "output_index": self.items.len() - 1 }),
        )
    }
}

impl Responses {
    pub fn new(request_id: &str, model_name: String, reader: AnswerReader) -> Self {
        Self {
            ids: Ids {
                response: format!("resp_{request_id}"),
                reasoning: format!("rs_{request_id}"),
                message: format!("msg_{request_id}"),
            },
            model_name,
            reader,
            streaming: None,
        }
    }

    /// The `response` object with its output items and usage (`done` carries the counts).
    fn response(&self, output: Vec<Value>, done: &Completion) -> Value {
        json!({
            "id": self.ids.response,
            "object": "response",
            "created_at": unix_time(),
            "status": "completed",
            "model": self.model_name,
            "output": output,
            "usage": usage(done),
        })
    }

    /// The output items of a whole answer, in OpenAI's order: reasoning, text, calls.
    fn output_items(&self, message: &ParsedMessage) -> Vec<Value> {
        let mut items = Vec::new();
        if !message.reasoning_content.is_empty() {
            let mut item = reasoning_item(&self.ids.reasoning, &message.reasoning_content);
            item["status"] = "completed".into();
            items.push(item);
        }
        if !message.content.is_empty() {
            items.push(message_item(&self.ids.message, &message.content));
        }
        items.extend(message.tool_calls.iter().map(function_call_item));
        items
    }

    /// The events of a stream's deltas; each first piece of an item announces the item.
    /// Besides llama-server's fields, events carry OpenAI's `output_index` and `content_index`,
    /// which the `openai` client's stream helper (`client.responses.stream`) needs.
    fn delta_events(&self, sent: &mut Sent, deltas: Vec<ChatDelta>) -> Vec<Value> {
        let mut out = Vec::new();
        for delta in deltas {
            if let Some(reasoning) = delta.reasoning_content.filter(|s| !s.is_empty()) {
                let index = match sent.index(&Announced::Reasoning) {
                    Some(index) => index,
                    None => {
                        let mut item = reasoning_item(&self.ids.reasoning, "");
                        item["content"] = json!([]);
                        item["status"] = "in_progress".into();
                        out.push(sent.announce(Announced::Reasoning, item));
                        sent.items.len() - 1
                    }
                };
                out.push(event(
                    "response.reasoning_text.delta",
                    json!({
                        "delta": reasoning,
                        "item_id": self.ids.reasoning,
                        "output_index": index,
                        "content_index": 0,
                    }),
                ));
            }
            if let Some(content) = delta.content.filter(|s| !s.is_empty()) {
                let index = match sent.index(&Announced::Message) {
                    Some(index) => index,
                    None => {
                        let item = json!({
                            "content": [],
                            "id": self.ids.message,
                            "role": "assistant",
                            "status": "in_progress",
                            "type": "message",
                        });
                        out.push(sent.announce(Announced::Message, item));
                        let index = sent.items.len() - 1;
                        out.push(event(
                            "response.content_part.added",
                            json!({
                                "item_id": self.ids.message,
                                "part": { "type": "output_text", "text": "" },
                                "output_index": index,
                                "content_index": 0,
                            }),
                        ));
                        index
                    }
                };
                out.push(event(
                    "response.output_text.delta",
                    json!({
                        "item_id": self.ids.message,
                        "delta": content,
                        "output_index": index,
                        "content_index": 0,
                    }),
                ));
            }
            for call in delta.tool_calls {
                if let (Some(id), Some(name)) = (&call.id, &call.name) {
                    let (fc, call_id) = call_ids(id);
                    let item = json!({
                        "id": fc,
                        "arguments": "",
                        "call_id": call_id,
                        "name": name,
                        "type": "function_call",
                        "status": "in_progress",
                    });
                    out.push(sent.announce(Announced::Call(call.index), item));
                }
                if !call.arguments.is_empty()
                    && let Some(index) = sent.index(&Announced::Call(call.index))
                    && let Some(id) = sent.call_ids.get(call.index)
                {
                    let (fc, _) = call_ids(id);
                    out.push(event(
                        "response.function_call_arguments.delta",
                        json!({ "delta": call.arguments, "item_id": fc, "output_index": index }),
                    ));
                }
            }
        }
        out
    }

    /// A stream's last events: each item done, in the order the stream announced them (the
    /// parser's deltas add up to its final message, so every item has been announced), then
    /// the whole response.
    fn done_events(&self, sent: &Sent, message: &ParsedMessage, done: &Completion) -> Vec<Value> {
        let mut out = Vec::new();
        let mut items = Vec::new();
        for (index, announced) in sent.items.iter().enumerate() {
            let item = match announced {
                // llama-server's streamed reasoning item has no status.
                Announced::Reasoning => {
                    reasoning_item(&self.ids.reasoning, &message.reasoning_content)
                }
                Announced::Message => {
                    let item = message_item(&self.ids.message, &message.content);
                    let part = &item["content"][0];
                    out.push(event(
                        "response.output_text.done",
                        json!({
                            "item_id": self.ids.message,
                            "text": part["text"],
                            "output_index": index,
                            "content_index": 0,
                        }),
                    ));
                    out.push(event(
                        "response.content_part.done",
                        json!({
                            "item_id": self.ids.message,
                            "part": part,
                            "output_index": index,
                            "content_index": 0,
                        }),
                    ));
                    item
                }
                Announced::Call(i) => {
                    let Some(call) = message.tool_calls.get(*i) else {
                        continue;
                    };
                    let item = function_call_item(call);
                    out.push(event(
                        "response.function_call_arguments.done",
                        json!({
                            "item_id": item["id"],
                            "arguments": item["arguments"],
                            "output_index": index,
                        }),
                    ));
                    item
                }
            };
            out.push(event(
                "response.output_item.done",
                json!({ "item": item, "output_index": index }),
            ));
            items.push(item);
        }
        let mut completed = event(
            "response.completed",
            json!({ "response": self.response(items, done) }),
        );
        completed["timings"] = json!(done.timings);
        out.push(completed);
        out
    }
}

impl Adapter for Responses {
    fn answer(&mut self, results: Vec<Finished>) -> Value {
        // One answer per response (`n` is not a Responses field).
        let Some(r) = results.first() else {
            return Value::Null;
        };
        let message = self.reader.read(&r.done.text);
        let mut response = self.response(self.output_items(&message), &r.done);
        response["completed_at"] = response["created_at"].clone();
        response
    }

    fn stream(&mut self, update: Update) -> Vec<Value> {
        let mut out = Vec::new();
        let mut streaming = match self.streaming.take() {
            Some(streaming) => streaming,
            None => {
                let (parser, first) = self.reader.parser();
                let mut streaming = Streaming {
                    parser,
                    sent: Sent::default(),
                };
                let started = json!({
                    "response": {
                        "id": self.ids.response,
                        "object": "response",
                        "status": "in_progress",
                    },
                });
                out.push(event("response.created", started.clone()));
                out.push(event("response.in_progress", started));
                out.extend(self.delta_events(&mut streaming.sent, first));
                streaming
            }
        };
        match update {
            Update::Token { text, timings, .. } => {
                let deltas = streaming.parser.push(&text);
                out.extend(self.delta_events(&mut streaming.sent, deltas));
                if let (Some(timings), Some(last)) = (timings, out.last_mut()) {
                    last["timings"] = json!(timings);
                }
                self.streaming = Some(streaming);
            }
            Update::Done(r) => {
                let mut deltas = streaming.parser.push(&r.done.tail);
                let (last, message) = streaming.parser.finish();
                deltas.extend(last);
                out.extend(self.delta_events(&mut streaming.sent, deltas));
                out.extend(self.done_events(&streaming.sent, &message, &r.done));
            }
        }
        out
    }

    fn done_marker(&self) -> bool {
        false
    }

    fn event(&self, payload: Value) -> SseEvent {
        // `event:` before `data:`, as llama-server writes them.
        let event = match payload["type"].as_str() {
            Some(name) => SseEvent::default().event(name),
            None => SseEvent::default(),
        };
        event.data(payload.to_string())
    }
}

/// One stream event: its `type` (also its SSE `event:` name) and its fields.
fn event(kind: &str, fields: Value) -> Value {
    let mut event = json!({ "type": kind });
    if let (Some(event), Value::Object(fields)) = (event.as_object_mut(), fields) {
        event.extend(fields);
    }
    event
}

/// `usage` as the Responses API counts it.
fn usage(done: &Completion) -> Value {
    json!({
        "input_tokens": done.tokens_evaluated,
        "output_tokens": done.tokens_predicted,
        "total_tokens": done.tokens_evaluated + done.tokens_predicted,
        "input_tokens_details": { "cached_tokens": done.timings.cache_n },
    })
}

fn reasoning_item(id: &str, text: &str) -> Value {
    json!({
        "id": id,
        "summary": [],
        "type": "reasoning",
        "content": [{ "text": text, "type": "reasoning_text" }],
        "encrypted_content": "",
    })
}

fn message_item(id: &str, text: &str) -> Value {
    json!({
        "content": [{
            "type": "output_text",
            "annotations": [],
            "logprobs": [],
            "text": text,
        }],
        "id": id,
        "role": "assistant",
        "status": "completed",
        "type": "message",
    })
}

fn function_call_item(call: &ToolCall) -> Value {
    let (fc, call_id) = call_ids(&call.id);
    json!({
        "id": fc,
        "type": "function_call",
        "status": "completed",
        "arguments": call.arguments,
        "call_id": call_id,
        "name": call.name,
    })
}

/// A call's item id (`fc_…`) and `call_id` (`call_…`) from the chat parser's call id, as
/// llama-server derives both from one id.
fn call_ids(id: &str) -> (String, String) {
    let bare = id.strip_prefix("call_").unwrap_or(id);
    (format!("fc_{bare}"), format!("call_{bare}"))
}

#[cfg(test)]
mod tests;
