//! Reading reasoning, content and tool calls back out of generated text, while it streams.
//!
//! Each format has a pure parser `text → Snapshot` with a `partial` flag. In partial mode it
//! holds back whatever could still turn into markup (a half-written `<tool_c`, an unclosed tool
//! call), so that every partial snapshot is a prefix of any later one. [`ChatParser`] re-parses
//! the text seen so far on each chunk and sends the difference to the previous snapshot as
//! OpenAI-style deltas; [`ChatParser::finish`] parses once more in final mode. Hence the
//! invariant the tests check: the streamed deltas concatenate to the non-streamed message, for
//! every way of splitting the text into chunks.

mod deepseek;
mod functionary;
mod harmony;
mod hermes;
mod mistral;
mod openai;
mod qwen3_coder;
pub(crate) mod scan;
mod tagged;

use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use serde::Serialize;

use super::ChatFormat;
use super::types::{ReasoningFormat, Tool, ToolCall};

/// How to read one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParserConfig {
    pub format: ChatFormat,
    pub reasoning_format: ReasoningFormat,
    /// Parse tool calls (the request offered tools and `tool_choice` is not `none`).
    pub parse_tool_calls: bool,
    /// The prompt ended inside `<think>` ([`super::RenderedPrompt::thinking_forced_open`]).
    pub thinking_forced_open: bool,
}

impl ParserConfig {
    /// Everything the model writes is content (`--skip-chat-parsing`).
    pub fn content_only() -> Self {
        Self {
            format: ChatFormat::Content,
            reasoning_format: ReasoningFormat::None,
            parse_tool_calls: false,
            thinking_forced_open: false,
        }
    }
}

/// A fragment of one tool call, as in OpenAI's streaming `delta.tool_calls[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolCallDelta {
    pub index: usize,
    /// Set on the call's first fragment only.
    pub id: Option<String>,
    /// Set on the call's first fragment only.
    pub name: Option<String>,
    /// The next piece of the arguments' JSON text.
    pub arguments: String,
}

/// One streaming update; fields that did not change are `None` / empty.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ChatDelta {
    pub content: Option<String>,
    pub reasoning_content: Option<String>,
    pub tool_calls: Vec<ToolCallDelta>,
}

/// The whole answer, as a non-streamed response carries it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ParsedMessage {
    pub content: String,
    pub reasoning_content: String,
    pub tool_calls: Vec<ToolCall>,
}

impl ParsedMessage {
    /// OpenAI's `finish_reason`, as llama-server picks it: `length` when generation was cut
    /// off (`stopped` false: token limit, context full), else `tool_calls` if the model called
    /// a tool, else `stop` (end-of-generation token or stop string).
    pub fn finish_reason(&self, stopped: bool) -> &'static str {
        match (stopped, self.tool_calls.is_empty()) {
            (false, _) => "length",
            (true, false) => "tool_calls",
            (true, true) => "stop",
        }
    }

    /// Applies a delta, as a streaming client does.
    pub fn apply(&mut self, delta: &ChatDelta) {
        if let Some(content) = &delta.content {
            self.content.push_str(content);
        }
        if let Some(reasoning) = &delta.reasoning_content {
            self.reasoning_content.push_str(reasoning);
        }
        for call in &delta.tool_calls {
            if call.index == self.tool_calls.len() {
                self.tool_calls.push(ToolCall {
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                });
            }
            let Some(target) = self.tool_calls.get_mut(call.index) else {
                continue;
            };
            if let Some(id) = &call.id {
                target.id.push_str(id);
            }
            if let Some(name) = &call.name {
                target.name.push_str(name);
            }
            target.arguments.push_str(&call.arguments);
        }
    }
}

/// A tool call as parsed, before it gets an id (unless the model wrote one).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RawCall {
    pub name: String,
    pub arguments: String,
    /// The call's id as the model wrote it (Mistral Nemo does).
    pub id: Option<String>,
}

impl RawCall {
    pub fn new(name: impl Into<String>, arguments: impl Into<String>) -> Self {
        RawCall {
            name: name.into(),
            arguments: arguments.into(),
            id: None,
        }
    }
}

/// What the parsers need to know of the tools the request offered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OfferedTools {
    /// Functionary only calls these.
    names: HashSet<String>,
    /// The (tool, parameter) pairs whose schema allows strings only (Qwen3-Coder writes
    /// arguments untyped).
    string_params: HashSet<(String, String)>,
    /// `<function=NAME>` for each tool: how a Qwen3-Coder first call without `<tool_call>`
    /// starts.
    function_openers: Vec<String>,
}

impl OfferedTools {
    fn new(tools: &[Tool]) -> Self {
        let string_params = tools.iter().flat_map(|tool| {
            tool.properties()
                .filter(|(name, _)| tool.is_string_parameter(name))
                .map(|(name, _)| (tool.name.clone(), name.to_string()))
        });
        OfferedTools {
            names: tools.iter().map(|tool| tool.name.clone()).collect(),
            string_params: string_params.collect(),
            function_openers: tools
                .iter()
                .map(|tool| format!("<function={}>", tool.name))
                .collect(),
        }
    }

    pub fn offers(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    pub fn is_string(&self, tool: &str, parameter: &str) -> bool {
        self.string_params
            .contains(&(tool.to_string(), parameter.to_string()))
    }

    pub fn function_openers(&self) -> Vec<&str> {
        self.function_openers.iter().map(String::as_str).collect()
    }
}

/// What a format parser sees in the text so far.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Snapshot {
    pub content: String,
    pub reasoning: String,
    pub calls: Vec<RawCall>,
}

fn parse(config: &ParserConfig, tools: &OfferedTools, text: &str, partial: bool) -> Snapshot {
    let extract = config.reasoning_format.extracts();
    match config.format {
        ChatFormat::Content => Snapshot {
            content: text.to_string(),
            ..Snapshot::default()
        },
        // A continued analysis message has no header in the output; parse it as if it had.
        ChatFormat::Harmony if config.thinking_forced_open && extract => harmony::parse(
            &format!("<|channel|>analysis<|message|>{text}"),
            partial,
            extract,
            config.parse_tool_calls,
        ),
        ChatFormat::Harmony => harmony::parse(text, partial, extract, config.parse_tool_calls),
        ChatFormat::FunctionaryV32 => {
            let tools = config.parse_tool_calls.then_some(tools);
            functionary::parse(text, partial, tools)
        }
        ChatFormat::Think
        | ChatFormat::Hermes
        | ChatFormat::Llama3Json
        | ChatFormat::MistralNemo
        | ChatFormat::DeepSeekR1
        | ChatFormat::Qwen3Coder => hermes::parse(config, tools, text, partial),
    }
}

/// The incremental parser for one answer.
#[derive(Debug)]
pub struct ChatParser {
    config: ParserConfig,
    tools: OfferedTools,
    text: String,
    sent: Snapshot,
    ids: Vec<String>,
    id_seed: u64,
}

impl ChatParser {
    /// A parser whose tool call ids are random (`call_` and 24 letters and digits).
    pub fn new(config: ParserConfig) -> Self {
        Self::with_id_seed(config, RandomState::new().build_hasher().finish())
    }

    /// A parser with reproducible tool call ids, for tests.
    pub fn with_id_seed(config: ParserConfig, id_seed: u64) -> Self {
        ChatParser {
            config,
            tools: OfferedTools::default(),
            text: String::new(),
            sent: Snapshot::default(),
            ids: Vec::new(),
            id_seed,
        }
    }

    /// The tools the request offered, where the format needs them: Functionary only calls
    /// offered tools; Qwen3-Coder's arguments are typed by their schemas, and its first call
    /// may start at `<function=NAME>` of an offered tool.
    pub fn with_tools(mut self, tools: &[Tool]) -> Self {
        self.tools = OfferedTools::new(tools);
        self
    }

    /// Feeds generated text; returns what can be streamed now.
    pub fn push(&mut self, chunk: &str) -> Vec<ChatDelta> {
        self.text.push_str(chunk);
        if self.config.format == ChatFormat::Content {
            // Plain content: the chunk is the delta. Re-parsing (copying) the whole text per
            // chunk would make a long answer quadratic.
            if chunk.is_empty() {
                return Vec::new();
            }
            self.sent.content.push_str(chunk);
            return vec![ChatDelta {
                content: Some(chunk.to_string()),
                ..ChatDelta::default()
            }];
        }
        let snapshot = parse(&self.config, &self.tools, &self.text, true);
        self.advance(snapshot)
    }

    /// Ends the answer: returns the last deltas and the whole message.
    pub fn finish(mut self) -> (Vec<ChatDelta>, ParsedMessage) {
        let snapshot = parse(&self.config, &self.tools, &self.text, false);
        let deltas = self.advance(snapshot);
        let message = ParsedMessage {
            content: self.sent.content.clone(),
            reasoning_content: self.sent.reasoning.clone(),
            tool_calls: self
                .sent
                .calls
                .iter()
                .zip(&self.ids)
                .map(|(call, id)| ToolCall {
                    id: id.clone(),
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                })
                .collect(),
        };
        (deltas, message)
    }

    /// The generated text so far, unparsed.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn advance(&mut self, next: Snapshot) -> Vec<ChatDelta> {
        let mut deltas = Vec::new();
        if let Some(more) = extension(&self.sent.reasoning, &next.reasoning) {
            deltas.push(ChatDelta {
                reasoning_content: Some(more.to_string()),
                ..ChatDelta::default()
            });
        }
        if let Some(more) = extension(&self.sent.content, &next.content) {
            deltas.push(ChatDelta {
                content: Some(more.to_string()),
                ..ChatDelta::default()
            });
        }
        for (index, call) in next.calls.iter().enumerate() {
            let fragment = match self.sent.calls.get(index) {
                Some(old) => extension(&old.arguments, &call.arguments).map(|more| ToolCallDelta {
                    index,
                    id: None,
                    name: None,
                    arguments: more.to_string(),
                }),
                None => {
                    let id = self.tool_call_id(index, call.id.as_deref());
                    Some(ToolCallDelta {
                        index,
                        id: Some(id),
                        name: Some(call.name.clone()),
                        arguments: call.arguments.clone(),
                    })
                }
            };
            if let Some(fragment) = fragment {
                deltas.push(ChatDelta {
                    tool_calls: vec![fragment],
                    ..ChatDelta::default()
                });
            }
        }
        self.sent = next;
        deltas
    }

    /// The id of call `index`: the one the model wrote, else a random one.
    fn tool_call_id(&mut self, index: usize, written: Option<&str>) -> String {
        if let Some(id) = written.filter(|_| self.ids.len() == index) {
            self.ids.push(id.to_string());
        }
        while self.ids.len() <= index {
            let mut id = String::from("call_");
            let mut state =
                (self.id_seed ^ (self.ids.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
            for _ in 0..24 {
                // xorshift64*: ids need to be unique, not secret.
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 58;
                id.push(char::from(
                    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                        [r as usize % 62],
                ));
            }
            self.ids.push(id);
        }
        self.ids[index].clone()
    }
}

/// The text `new` adds to `old`, if any. A partial snapshot is always a prefix of the next one;
/// if a format parser ever broke that, we drop the change rather than send text twice.
fn extension<'a>(old: &str, new: &'a str) -> Option<&'a str> {
    match new.strip_prefix(old) {
        Some("") => None,
        Some(more) => Some(more),
        None => {
            tracing::warn!(
                old,
                new,
                "chat parser: snapshot is not an extension, delta dropped"
            );
            None
        }
    }
}
