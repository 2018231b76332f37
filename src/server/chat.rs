//! OpenAI's `/v1/chat/completions` (and llama-server's `/apply-template`): an adapter over the
//! pipeline. It renders the messages with the server's template into the prompt, adds what the
//! chat format needs ([`ChatSetup`]: grammar, stop strings, special tokens), and parses each
//! choice's text into `content`, `reasoning_content` and `tool_calls`, whole or delta by delta.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::AppState;
use super::edge::{RawBody, RequestCtx};
use super::error::{ApiError, ErrorType};
use super::fields::Body;
use super::openai::{fingerprint, finish_reason, logprobs, usage};
use super::pipeline::{self, Adapter, Finished, StepProbs, Update, unix_time};
use super::request::{ChatSetup, Generation};
use crate::chat::{
    ChatError, ChatParser, ChatRequest, ParsedMessage, ParserConfig, RenderedPrompt, Tool,
};
use crate::engine::{Completion, LoadedModel};

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let mut body = Body::parse(&body)?;
    let prepared = prepare(&state, &mut body)?;
    let adapter = Chat {
        reader: prepared.reader,
        id: format!("chatcmpl-{}", ctx.id),
        model_name: state.model_name(),
        model: prepared.model,
        include_usage: prepared.generation.response.include_usage,
        special: state.config.special,
        parsers: HashMap::new(),
    };
    pipeline::respond(&state, &ctx, prepared.generation, adapter).await
}

/// A chat request ready to run: the typed generation, and how to read its answer back. Other
/// protocols that map onto a chat (the Responses API) run through this too.
pub struct Prepared {
    pub model: Arc<LoadedModel>,
    pub generation: Generation,
    pub reader: AnswerReader,
}

/// How to parse a chat answer: the format's parser, the tools offered, and the continued
/// assistant text the answer starts from.
pub struct AnswerReader {
    /// The continued assistant message, echoed at the start of the answer.
    pub prefix: String,
    pub parser_config: ParserConfig,
    pub tools: Vec<Tool>,
}

impl AnswerReader {
    /// A new parser for one answer, and the deltas of the continued text it starts from.
    pub fn parser(&self) -> (ChatParser, Vec<crate::chat::ChatDelta>) {
        let mut parser = ChatParser::new(self.parser_config).with_tools(&self.tools);
        let deltas = parser.push(&self.prefix);
        (parser, deltas)
    }

    /// A reader for text that is only content (a prompt completed as it is).
    pub fn content_only() -> Self {
        Self {
            prefix: String::new(),
            parser_config: ParserConfig::content_only(),
            tools: Vec::new(),
        }
    }

    /// A whole answer's text, parsed (after the continued text it starts from).
    pub fn read(&self, text: &str) -> ParsedMessage {
        let (mut parser, _) = self.parser();
        parser.push(text);
        parser.finish().1
    }
}

/// Renders a chat body with the server's template and parses it into the one typed request.
pub fn prepare(state: &AppState, body: &mut Body) -> Result<Prepared, ApiError> {
    let model = Arc::clone(state.model()?);
    let (chat, rendered) = render(state, body)?;
    let setup = ChatSetup {
        grammar: chat.grammar(rendered.format).map_err(chat_error)?,
        stop: rendered.additional_stops.clone(),
        preserved_tokens: rendered
            .preserved_tokens
            .iter()
            .filter_map(|text| match model.tokenize(text, false, true).as_slice() {
                [token] => Some(*token),
                _ => None,
            })
            .collect(),
    };
    chat_logprobs(body, !chat.tools.is_empty())?;
    let prompt = model.tokenize(&rendered.prompt, true, true);
    let generation =
        Generation::from_body(body, &model, &state.config.defaults, vec![prompt], &setup)?;
    let parser_config = if state.config.chat.skip_parsing {
        ParserConfig::content_only()
    } else {
        chat.parser_config(&rendered, state.config.chat.reasoning_format)
    };
    let reader = AnswerReader {
        prefix: chat.continued_text(rendered.format),
        parser_config,
        tools: chat.tools.clone(),
    };
    Ok(Prepared {
        model,
        generation,
        reader,
    })
}

/// Chat's `logprobs`: `true` asks for `top_logprobs` (default 20) per token; `top_logprobs`
/// alone is an error, as in llama-server.
fn chat_logprobs(body: &mut Body, has_tools: bool) -> Result<(), ApiError> {
    let wanted = matches!(body.0.get("logprobs"), Some(Value::Bool(true)));
    if wanted {
        if has_tools && body.bool(&["stream"])?.unwrap_or(false) {
            return Err(ApiError::invalid(
                "logprobs is not supported with tools + stream",
            ));
        }
        if !body.0.contains_key("n_probs") {
            let n = body.int(&["top_logprobs"])?.unwrap_or(20);
            body.0.insert("n_probs".into(), n.into());
        }
    } else {
        if body.get(&["top_logprobs"]).is_some() {
            return Err(ApiError::invalid(
                "top_logprobs requires logprobs to be set to true",
            ));
        }
        if body.0.get("logprobs").is_some_and(Value::is_boolean) {
            body.0.insert("logprobs".into(), 0.into());
        }
    }
    Ok(())
}

struct Chat {
    reader: AnswerReader,
    id: String,
    model_name: String,
    model: Arc<LoadedModel>,
    include_usage: bool,
    special: bool,
    /// Each choice's parser while it streams.
    parsers: HashMap<usize, ChatParser>,
}

impl Chat {
    /// A choice's parser, and the deltas of the continued text it starts from.
    fn parser(&self) -> (ChatParser, Vec<crate::chat::ChatDelta>) {
        self.reader.parser()
    }

    fn chunk(&self, index: usize, delta: Value, finish: Value) -> Value {
        json!({
            "choices": [{ "finish_reason": finish, "index": index, "delta": delta }],
            "created": unix_time(),
            "id": self.id,
            "model": self.model_name,
            "system_fingerprint": fingerprint(),
            "object": "chat.completion.chunk",
        })
    }

    /// A choice's last chunks: what its parser still held, the finish reason, and usage.
    fn finish_choice(&mut self, r: &Finished) -> Vec<Value> {
        let (mut parser, mut deltas) = match self.parsers.remove(&r.index) {
            Some(parser) => (parser, Vec::new()),
            None => self.parser(),
        };
        deltas.extend(parser.push(&r.done.tail));
        let (last, message) = parser.finish();
        deltas.extend(last);
        let mut out: Vec<Value> = deltas
            .iter()
            .map(|d| self.chunk(r.index, d.to_openai_json(), Value::Null))
            .collect();
        let reason = message.finish_reason(stopped(&r.done));
        out.push(self.chunk(r.index, json!({}), reason.into()));
        if self.include_usage {
            let mut last = self.chunk(r.index, json!({}), Value::Null);
            last["choices"] = json!([]);
            last["usage"] = usage(&r.done);
            out.push(last);
        }
        if let Some(last) = out.last_mut() {
            last["timings"] = json!(r.done.timings);
        }
        out
    }
}

impl Adapter for Chat {
    fn answer(&mut self, results: Vec<Finished>) -> Value {
        let choices: Vec<Value> = results
            .iter()
            .map(|r| {
                let message = self.reader.read(&r.done.text);
                let mut choice = json!({
                    "finish_reason": message.finish_reason(stopped(&r.done)),
                    "index": r.index,
                    "message": message.to_openai_json(),
                });
                if !r.probs.is_empty() {
                    choice["logprobs"] = logprobs(&self.model, &r.probs, self.special);
                }
                choice
            })
            .collect();
        let first = results.first().map(|r| &r.done);
        json!({
            "choices": choices,
            "created": unix_time(),
            "model": self.model_name,
            "system_fingerprint": fingerprint(),
            "object": "chat.completion",
            "usage": first.map(usage),
            "id": self.id,
            "timings": first.map(|d| json!(d.timings)),
        })
    }

    fn stream(&mut self, update: Update) -> Vec<Value> {
        match update {
            Update::Token {
                index,
                text,
                probs,
                timings,
                ..
            } => {
                let mut out = Vec::new();
                let mut deltas = Vec::new();
                if !self.parsers.contains_key(&index) {
                    let (parser, first) = self.parser();
                    self.parsers.insert(index, parser);
                    deltas = first;
                    out.push(self.chunk(
                        index,
                        json!({ "role": "assistant", "content": null }),
                        Value::Null,
                    ));
                }
                deltas.extend(self.parsers.get_mut(&index).expect("inserted").push(&text));
                let n = deltas.len();
                for (i, delta) in deltas.into_iter().enumerate() {
                    let mut c = self.chunk(index, delta.to_openai_json(), Value::Null);
                    if i + 1 == n {
                        let probs: Vec<StepProbs> = probs.iter().cloned().collect();
                        if !probs.is_empty() {
                            c["choices"][0]["logprobs"] =
                                logprobs(&self.model, &probs, self.special);
                        }
                        if let Some(t) = &timings {
                            c["timings"] = json!(t);
                        }
                    }
                    out.push(c);
                }
                out
            }
            Update::Done(r) => {
                let mut out = Vec::new();
                if !self.parsers.contains_key(&r.index) {
                    out.push(self.chunk(
                        r.index,
                        json!({ "role": "assistant", "content": null }),
                        Value::Null,
                    ));
                }
                out.extend(self.finish_choice(&r));
                out
            }
        }
    }

    fn done_marker(&self) -> bool {
        true
    }
}

/// Whether generation ended by itself (end of generation or a stop string), not at a limit.
fn stopped(done: &Completion) -> bool {
    finish_reason(done) == "stop"
}

/// `POST /apply-template`: the prompt the chat template renders, without generating.
pub async fn apply_template(
    State(state): State<Arc<AppState>>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let body = Body::parse(&body)?;
    let (_, rendered) = render(&state, &body)?;
    Ok(Json(json!({ "prompt": rendered.prompt })))
}

/// Validates the chat fields and renders the prompt with the server's template and chat
/// settings (`--chat-template-kwargs`, `--reasoning`, `--prefill-assistant`, …).
pub fn render(state: &AppState, body: &Body) -> Result<(ChatRequest, RenderedPrompt), ApiError> {
    let options = &state.config.chat;
    let chat =
        ChatRequest::from_json(&Value::Object(body.0.clone()), options).map_err(chat_error)?;
    let rendered = state
        .template()?
        .render(&chat.render_request())
        .map_err(chat_error)?;
    Ok((chat, rendered))
}

/// Chat errors are the client's (400), except a template that does not parse (the server's
/// own, 500). llama-server answers 500 for the settings its chat layer refuses at run time
/// (`tools` without Jinja, both `json_schema` and `grammar`, an unknown reasoning format):
/// those are the request's mistakes, so they are 400s here with llama-server's words.
pub fn chat_error(e: ChatError) -> ApiError {
    match e {
        ChatError::TemplateSyntax(_) => ApiError::new(ErrorType::Server, e.to_string()),
        other => ApiError::invalid(other.to_string()),
    }
}
