//! Ollama's answers: `/api/chat`'s `message` (content, `thinking`, `tool_calls` with object
//! arguments) or `/api/generate`'s `response`, whole or as newline-delimited JSON chunks, the
//! last with `done: true`, `done_reason` and the counts and durations (nanoseconds) Ollama
//! reports. The text goes through the chat's parser, as the OpenAI chat route's does. With
//! `logprobs`, each token's entry (`token`, `logprob`, `bytes`, `top_logprobs`) goes out with
//! the chunk that carries its text, or the next one when the parser holds the text back.

use std::sync::Arc;

use llama_cpp_2::token::LlamaToken;
use serde_json::{Map, Value, json};

use super::super::AppState;
use super::super::chat::AnswerReader;
use super::super::error::ApiError;
use super::super::pipeline::{Adapter, Finished, StepProbs, Update, logprob};
use crate::chat::{ChatDelta, ChatParser};
use crate::engine::{Completion, LoadedModel, StopType};

/// Which of Ollama's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/api/chat`: a `message`.
    Chat,
    /// `/api/generate`: a `response`, and the conversation's tokens as `context`.
    Generate,
}

pub struct Answer {
    pub kind: Kind,
    /// The model as the request named it, echoed as Ollama does.
    pub model_name: String,
    pub reader: AnswerReader,
    /// The parser of the answer while it streams.
    pub parser: Option<ChatParser>,
    /// `logprobs`, when the request asked for them.
    logprobs: Option<Logprobs>,
}

/// What renders the `logprobs` entries, and those not sent yet.
struct Logprobs {
    model: Arc<LoadedModel>,
    special: bool,
    /// `top_logprobs`: how many alternatives an entry lists.
    top: usize,
    /// Entries of tokens whose text no chunk has carried yet.
    pending: Vec<Value>,
}

impl Logprobs {
    /// Ollama's entry for one token: its text, log probability and UTF-8 bytes, and the `top`
    /// most likely tokens at that position.
    fn entry(&self, step: &StepProbs) -> Value {
        let token = |t: LlamaToken, p: f32| {
            let bytes = self.model.token_piece(t, self.special);
            let mut e = json!({ "token": String::from_utf8_lossy(&bytes), "logprob": logprob(p) });
            if !bytes.is_empty() {
                e["bytes"] = bytes.into();
            }
            e
        };
        let mut e = token(step.token, step.probs.prob);
        let top: Vec<Value> = (step.probs.top.iter().take(self.top))
            .map(|&(t, p)| token(t, p))
            .collect();
        if !top.is_empty() {
            e["top_logprobs"] = top.into();
        }
        e
    }
}

impl Answer {
    pub fn new(kind: Kind, model_name: String, reader: AnswerReader) -> Self {
        Self {
            kind,
            model_name,
            reader,
            parser: None,
            logprobs: None,
        }
    }

    /// Answers with `logprobs` entries listing `top` alternatives each (`None`: without).
    pub fn with_logprobs(mut self, top: Option<usize>, state: &AppState) -> Result<Self, ApiError> {
        if let Some(top) = top {
            self.logprobs = Some(Logprobs {
                model: Arc::clone(state.model()?),
                special: state.config.special,
                top,
                pending: Vec::new(),
            });
        }
        Ok(self)
    }

    /// Puts the entries not sent yet on the first of these chunks.
    fn send_pending(&mut self, chunks: &mut [Value]) {
        let (Some(lp), Some(first)) = (&mut self.logprobs, chunks.first_mut()) else {
            return;
        };
        if !lp.pending.is_empty() {
            first["logprobs"] = std::mem::take(&mut lp.pending).into();
        }
    }

    /// An object with `model`, `created_at` and `done`.
    fn object(&self, done: bool) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("model".into(), self.model_name.clone().into());
        out.insert("created_at".into(), super::now().into());
        out.insert("done".into(), done.into());
        out
    }

    /// A chunk or answer carrying text, reasoning and calls, in this route's shape.
    fn with_text(
        &self,
        out: &mut Map<String, Value>,
        content: &str,
        thinking: &str,
        calls: &[crate::chat::ToolCall],
    ) {
        match self.kind {
            Kind::Chat => {
                let mut message = json!({ "role": "assistant", "content": content });
                if !thinking.is_empty() {
                    message["thinking"] = thinking.into();
                }
                if !calls.is_empty() {
                    message["tool_calls"] = tool_calls(calls);
                }
                out.insert("message".into(), message);
            }
            Kind::Generate => {
                out.insert("response".into(), content.into());
                if !thinking.is_empty() {
                    out.insert("thinking".into(), thinking.into());
                }
            }
        }
    }

    /// What ends an answer: why it stopped, and the counts and durations.
    fn finish(&self, out: &mut Map<String, Value>, r: &Finished) {
        let done = &r.done;
        out.insert("done_reason".into(), done_reason(done).into());
        let t = &done.timings;
        let ns = |ms: f64| (ms * 1e6).round() as u64;
        out.insert(
            "total_duration".into(),
            ns(t.prompt_ms + t.predicted_ms).into(),
        );
        out.insert("load_duration".into(), 0.into());
        out.insert("prompt_eval_count".into(), done.tokens_evaluated.into());
        out.insert("prompt_eval_duration".into(), ns(t.prompt_ms).into());
        out.insert("eval_count".into(), done.tokens_predicted.into());
        out.insert("eval_duration".into(), ns(t.predicted_ms).into());
        if self.kind == Kind::Generate {
            let context: Vec<i32> = r.prompt.iter().chain(&done.tokens).map(|t| t.0).collect();
            out.insert("context".into(), context.into());
        }
    }

    /// The chunks of a batch of parser deltas: text and reasoning as they come (tool calls
    /// wait for the end, where Ollama sends them whole).
    fn chunks(&self, deltas: &[ChatDelta]) -> Vec<Value> {
        let content: String = deltas.iter().filter_map(|d| d.content.as_deref()).collect();
        let thinking: String = deltas
            .iter()
            .filter_map(|d| d.reasoning_content.as_deref())
            .collect();
        if content.is_empty() && thinking.is_empty() {
            return Vec::new();
        }
        let mut out = self.object(false);
        self.with_text(&mut out, &content, &thinking, &[]);
        vec![Value::Object(out)]
    }
}

/// `stop` for an end-of-generation token or a stop string, `length` for a limit.
fn done_reason(done: &Completion) -> &'static str {
    match done.stop_type {
        StopType::Eos | StopType::Word(_) => "stop",
        StopType::Limit | StopType::None => "length",
    }
}

/// Calls as Ollama writes them: arguments as an object (`{}` when the model wrote no valid
/// JSON object).
fn tool_calls(calls: &[crate::chat::ToolCall]) -> Value {
    calls
        .iter()
        .enumerate()
        .map(|(index, call)| {
            json!({
                "function": {
                    "index": index,
                    "name": call.name,
                    "arguments": call.arguments_object(),
                },
            })
        })
        .collect()
}

impl Adapter for Answer {
    fn answer(&mut self, results: Vec<Finished>) -> Value {
        let Some(r) = results.into_iter().next() else {
            return Value::Null;
        };
        let message = self.reader.read(&r.done.text);
        let mut out = self.object(true);
        self.with_text(
            &mut out,
            &message.content,
            &message.reasoning_content,
            &message.tool_calls,
        );
        self.finish(&mut out, &r);
        if let Some(lp) = &self.logprobs {
            let entries: Vec<Value> = r.probs.iter().map(|step| lp.entry(step)).collect();
            out.insert("logprobs".into(), entries.into());
        }
        Value::Object(out)
    }

    fn stream(&mut self, update: Update) -> Vec<Value> {
        let mut out = Vec::new();
        let mut parser = match self.parser.take() {
            Some(parser) => parser,
            None => {
                let (parser, deltas) = self.reader.parser();
                out.extend(self.chunks(&deltas));
                parser
            }
        };
        match update {
            Update::Token { text, probs, .. } => {
                if let (Some(lp), Some(step)) = (&mut self.logprobs, probs) {
                    let entry = lp.entry(&step);
                    lp.pending.push(entry);
                }
                out.extend(self.chunks(&parser.push(&text)));
                self.parser = Some(parser);
            }
            Update::Done(r) => {
                let mut deltas = parser.push(&r.done.tail);
                let (last, message) = parser.finish();
                deltas.extend(last);
                out.extend(self.chunks(&deltas));
                if !message.tool_calls.is_empty() {
                    let mut calls = self.object(false);
                    self.with_text(&mut calls, "", "", &message.tool_calls);
                    out.push(Value::Object(calls));
                }
                let mut end = self.object(true);
                self.with_text(&mut end, "", "", &[]);
                self.finish(&mut end, &r);
                out.push(Value::Object(end));
            }
        }
        self.send_pending(&mut out);
        out
    }

    fn done_marker(&self) -> bool {
        false
    }

    fn stream_error(&self, error: &ApiError) -> Value {
        super::error_response(error, None).1
    }

    fn ndjson(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatFormat, ParserConfig, ReasoningFormat, Tool};
    use crate::engine::Timings;
    use llama_cpp_2::token::LlamaToken;

    /// A Hermes answer: reasoning, text, then a call.
    const TEXT: &str = "<think>they want it on</think>Sure.\
        <tool_call>{\"name\": \"set_flag\", \"arguments\": {\"on\": true}}</tool_call>";

    fn answer(kind: Kind) -> Answer {
        let reader = AnswerReader {
            prefix: String::new(),
            parser_config: ParserConfig {
                format: ChatFormat::Hermes,
                reasoning_format: ReasoningFormat::Deepseek,
                parse_tool_calls: true,
                thinking_forced_open: false,
            },
            tools: vec![Tool {
                name: "set_flag".into(),
                description: String::new(),
                parameters: json!({ "type": "object", "properties": { "on": { "type": "boolean" } } }),
            }],
        };
        Answer::new(kind, "m".into(), reader)
    }

    fn finished(text: &str) -> Finished {
        Finished {
            index: 0,
            prompt: vec![LlamaToken(1), LlamaToken(2)],
            done: Completion {
                stop_type: StopType::Eos,
                text: text.into(),
                tail: String::new(),
                tokens: vec![LlamaToken(3)],
                tokens_predicted: 1,
                tokens_evaluated: 2,
                tokens_cached: 2,
                id_slot: 0,
                truncated: false,
                timings: Timings::new(0, 2, 1.5, 1, 2.0),
            },
            probs: Vec::new(),
        }
    }

    #[test]
    fn a_whole_chat_answer() {
        let out = answer(Kind::Chat).answer(vec![finished(TEXT)]);
        assert_eq!(out["model"], "m");
        assert_eq!(out["done"], true);
        assert_eq!(out["done_reason"], "stop");
        assert_eq!(out["message"]["role"], "assistant");
        assert_eq!(out["message"]["thinking"], "they want it on");
        assert_eq!(out["message"]["content"], "Sure.");
        assert_eq!(
            out["message"]["tool_calls"],
            json!([{ "function": { "index": 0, "name": "set_flag", "arguments": { "on": true } } }])
        );
        assert_eq!(out["prompt_eval_count"], 2);
        assert_eq!(out["eval_count"], 1);
        assert_eq!(out["prompt_eval_duration"], 1_500_000);
        assert_eq!(out["total_duration"], 3_500_000);
        assert!(out.get("context").is_none(), "a chat has no context");
    }

    #[test]
    fn a_streamed_chat_answer_adds_up_to_the_whole() {
        let mut adapter = answer(Kind::Chat);
        let mut chunks = Vec::new();
        for piece in TEXT.as_bytes().chunks(7) {
            let text = String::from_utf8(piece.to_vec()).unwrap();
            chunks.extend(adapter.stream(Update::Token {
                index: 0,
                token: LlamaToken(0),
                text,
                n_decoded: 0,
                n_prompt: 2,
                probs: None,
                timings: None,
            }));
        }
        chunks.extend(adapter.stream(Update::Done(finished(TEXT))));
        let (last, rest) = chunks.split_last().unwrap();
        assert!(rest.iter().all(|c| c["done"] == false));
        let joined = |field: &str| -> String {
            rest.iter()
                .filter_map(|c| c["message"][field].as_str())
                .collect()
        };
        assert_eq!(joined("thinking"), "they want it on");
        assert_eq!(joined("content"), "Sure.");
        let calls: Vec<&Value> = rest
            .iter()
            .filter_map(|c| c["message"].get("tool_calls"))
            .collect();
        assert_eq!(calls.len(), 1, "the call comes whole, once");
        assert_eq!(calls[0][0]["function"]["arguments"], json!({ "on": true }));
        assert_eq!(last["done"], true);
        assert_eq!(last["done_reason"], "stop");
        assert_eq!(last["message"]["content"], "");
        assert_eq!(last["eval_count"], 1);
    }

    #[test]
    fn a_generate_answer_carries_the_conversation_as_context() {
        let mut adapter = answer(Kind::Generate);
        let out = adapter.answer(vec![finished("<think>hm</think>Paris")]);
        assert_eq!(out["response"], "Paris");
        assert_eq!(out["thinking"], "hm");
        assert_eq!(out["context"], json!([1, 2, 3]));
        let mut cut = finished("Par");
        cut.done.stop_type = StopType::Limit;
        let mut chunks = adapter.stream(Update::Token {
            index: 0,
            token: LlamaToken(3),
            text: "Par".into(),
            n_decoded: 1,
            n_prompt: 2,
            probs: None,
            timings: None,
        });
        chunks.extend(adapter.stream(Update::Done(cut)));
        assert_eq!(chunks[0]["response"], "Par");
        assert_eq!(chunks[0]["done"], false);
        let last = chunks.last().unwrap();
        assert_eq!(last["done_reason"], "length");
        assert_eq!(last["response"], "");
        assert_eq!(last["context"], json!([1, 2, 3]));
    }
}
