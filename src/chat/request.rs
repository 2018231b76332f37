//! The chat part of a `/v1/chat/completions` (or `/apply-template`) body, validated in one go.
//!
//! The server hands over the parsed JSON body; [`ChatRequest::from_json`] picks out and checks
//! every field this module uses, applying llama-server's rules (`reasoning_effort: "none"`
//! turns thinking off, `chat_template_kwargs` are template variables), so the server's wiring
//! is: `from_json` → [`ChatRequest::render_request`] → [`ChatRequest::grammar`] →
//! [`ChatRequest::parser_config`]. Sampling fields are not ours and are ignored here.

use serde_json::{Map, Value};

use super::grammar::{ResponseFormat, parse_response_format, tool_call_grammar};
use super::types::{
    ChatMessage, ReasoningEffort, ReasoningFormat, Tool, ToolChoice, parse_messages,
    parse_tool_choice, parse_tools,
};
use super::{ChatError, ChatFormat, ParserConfig, RenderRequest, RenderedPrompt};

/// The validated chat fields of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<Tool>,
    pub tool_choice: ToolChoice,
    pub response_format: ResponseFormat,
    /// `reasoning_effort` low/medium/high (`none` is folded into `enable_thinking: false`).
    pub reasoning_effort: Option<ReasoningEffort>,
    /// `chat_template_kwargs`, merged over the server's defaults by the caller if it has any.
    pub chat_template_kwargs: Map<String, Value>,
    /// `add_generation_prompt` (default true).
    pub add_generation_prompt: bool,
    /// The request's `reasoning_format`, overriding `--reasoning-format`.
    pub reasoning_format: Option<ReasoningFormat>,
}

impl ChatRequest {
    /// Validates the chat fields of `body`; errors name the field.
    pub fn from_json(body: &Value) -> Result<Self, ChatError> {
        let messages = parse_messages(body.get("messages").unwrap_or(&Value::Null))?;
        let tools = parse_tools(body.get("tools"))?;
        let tool_choice = parse_tool_choice(body.get("tool_choice"))?;
        let response_format = parse_response_format(body.get("response_format"))?;
        let mut chat_template_kwargs = match body.get("chat_template_kwargs") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(_) => {
                return Err(ChatError::field(
                    "chat_template_kwargs",
                    "expected an object",
                ));
            }
        };
        let reasoning_effort = match body.get("reasoning_effort") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s == "none" => {
                chat_template_kwargs.insert("enable_thinking".into(), Value::Bool(false));
                chat_template_kwargs.remove("reasoning_effort");
                None
            }
            Some(Value::String(s)) => Some(ReasoningEffort::parse(s)?),
            Some(_) => return Err(ChatError::field("reasoning_effort", "expected a string")),
        };
        if let Some(effort) = chat_template_kwargs.get("reasoning_effort") {
            let effort = effort.as_str().ok_or_else(|| {
                ChatError::field("chat_template_kwargs.reasoning_effort", "expected a string")
            })?;
            ReasoningEffort::parse(effort).map_err(|_| {
                ChatError::field(
                    "chat_template_kwargs.reasoning_effort",
                    format!("unknown value {effort:?} (expected low, medium or high)"),
                )
            })?;
        }
        let add_generation_prompt = match body.get("add_generation_prompt") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(ChatError::field(
                    "add_generation_prompt",
                    "expected a boolean",
                ));
            }
        };
        let reasoning_format = match body.get("reasoning_format") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(ReasoningFormat::parse(s)?),
            Some(_) => return Err(ChatError::field("reasoning_format", "expected a string")),
        };
        let tools_used = !tools.is_empty() && tool_choice != ToolChoice::None;
        if tools_used && body.get("grammar").is_some_and(|g| !g.is_null()) {
            return Err(ChatError::field(
                "grammar",
                "cannot use custom grammar constraints with tools",
            ));
        }
        Ok(ChatRequest {
            messages,
            tools,
            tool_choice,
            response_format,
            reasoning_effort,
            chat_template_kwargs,
            add_generation_prompt,
            reasoning_format,
        })
    }

    /// The template inputs (the clock is now; set `now` for reproducible output).
    pub fn render_request(&self) -> RenderRequest<'_> {
        let mut req = RenderRequest::new(&self.messages, &self.tools, &self.chat_template_kwargs);
        req.add_generation_prompt = self.add_generation_prompt;
        req.reasoning_effort = self.reasoning_effort;
        req
    }

    /// Whether tool calls are parsed from the answer.
    pub fn parses_tool_calls(&self) -> bool {
        !self.tools.is_empty() && self.tool_choice != ToolChoice::None
    }

    /// The grammar to sample with, if any: a forced tool call (`tool_choice` required or a
    /// named function) in the model's format, else the `response_format` schema.
    pub fn grammar(&self, format: ChatFormat) -> Result<Option<String>, ChatError> {
        if self.parses_tool_calls()
            && let Some(grammar) = tool_call_grammar(format, &self.tools, &self.tool_choice)?
        {
            return Ok(Some(grammar));
        }
        self.response_format.grammar()
    }

    /// How to parse the answer to `rendered`; `server_default` is `--reasoning-format`.
    pub fn parser_config(
        &self,
        rendered: &RenderedPrompt,
        server_default: ReasoningFormat,
    ) -> ParserConfig {
        ParserConfig {
            format: rendered.format,
            reasoning_format: self.reasoning_format.unwrap_or(server_default),
            parse_tool_calls: self.parses_tool_calls(),
            thinking_forced_open: rendered.thinking_forced_open,
        }
    }
}
