//! The chat part of a `/v1/chat/completions` (or `/apply-template`) body, validated in one go.
//!
//! The server hands over the parsed JSON body and its chat settings ([`ChatOptions`], from its
//! flags); [`ChatRequest::from_json`] picks out and checks every field this module uses, applying
//! llama-server's rules (`reasoning_effort: "none"` turns thinking off, `chat_template_kwargs`
//! are template variables over the server's, a final assistant message is continued), so the
//! server's wiring is: `from_json` → [`ChatRequest::render_request`] → [`ChatRequest::grammar`]
//! → [`ChatRequest::parser_config`]. Sampling fields are not ours and are ignored here.

use serde_json::{Map, Value};

use super::grammar::{ResponseFormat, parse_response_format, tool_call_grammar};
use super::types::{
    ChatMessage, ReasoningEffort, ReasoningFormat, Role, Tool, ToolChoice, parse_messages,
    parse_tool_choice, parse_tools,
};
use super::{ChatError, ChatFormat, ParserConfig, RenderRequest, RenderedPrompt};

/// The server's chat settings, from its flags.
#[derive(Debug, Clone)]
pub struct ChatOptions {
    /// `--chat-template-kwargs`: template variables every request starts from.
    pub kwargs: Map<String, Value>,
    /// `--reasoning on|off` (`None`: auto, the template decides).
    pub enable_thinking: Option<bool>,
    /// `--reasoning-effort`: the template's `reasoning_effort` unless a request sets one.
    pub reasoning_effort: Option<String>,
    /// `--prefill-assistant`: continue a final assistant message (default on).
    pub prefill_assistant: bool,
    /// `--reasoning-format`.
    pub reasoning_format: ReasoningFormat,
    /// `--skip-chat-parsing`: answers are plain content.
    pub skip_parsing: bool,
    /// `--jinja` (default): Jinja templates; off, llama.cpp's built-in templates, no tools.
    pub jinja: bool,
}

impl Default for ChatOptions {
    fn default() -> Self {
        Self {
            kwargs: Map::new(),
            enable_thinking: None,
            reasoning_effort: None,
            prefill_assistant: true,
            reasoning_format: ReasoningFormat::Auto,
            skip_parsing: false,
            jinja: true,
        }
    }
}
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
    /// `add_generation_prompt` (default true; off when a final message is continued).
    pub add_generation_prompt: bool,
    /// The final (assistant) message is continued rather than answered
    /// (`continue_final_message`, or llama-server's assistant prefill).
    pub continue_final_message: bool,
    /// The request's `reasoning_format`, overriding `--reasoning-format`.
    pub reasoning_format: Option<ReasoningFormat>,
}

impl ChatRequest {
    /// Validates the chat fields of `body` over the server's `options`; errors name the field
    /// or are llama-server's own messages.
    pub fn from_json(body: &Value, options: &ChatOptions) -> Result<Self, ChatError> {
        let messages = match body.get("messages") {
            None => return Err(ChatError::Request("'messages' is required".into())),
            Some(v) => parse_messages(v)?,
        };
        let tools = parse_tools(body.get("tools"))?;
        let tool_choice = parse_tool_choice(body.get("tool_choice"))?;
        if !options.jinja {
            if !tools.is_empty() {
                return Err(ChatError::Unsupported(
                    "tools param requires --jinja flag".into(),
                ));
            }
            if tool_choice != ToolChoice::Auto {
                return Err(ChatError::Unsupported(
                    "tool_choice param requires --jinja flag".into(),
                ));
            }
        }
        let has_schema = body.get("json_schema").is_some_and(|v| !v.is_null());
        let has_grammar = body
            .get("grammar")
            .and_then(Value::as_str)
            .is_some_and(|g| !g.is_empty());
        if has_schema && has_grammar {
            return Err(ChatError::Unsupported(
                "Cannot use both json_schema and grammar".into(),
            ));
        }
        let response_format = parse_response_format(body.get("response_format"))?;
        let mut chat_template_kwargs = options.kwargs.clone();
        match body.get("chat_template_kwargs") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                chat_template_kwargs.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            Some(other) => {
                return Err(ChatError::wrong_type(
                    "chat_template_kwargs",
                    "object",
                    other,
                ));
            }
        }
        if let Some(on) = options.enable_thinking {
            chat_template_kwargs
                .entry("enable_thinking")
                .or_insert(Value::Bool(on));
        }
        if let Some(Value::String(_)) = chat_template_kwargs.get("enable_thinking") {
            return Err(ChatError::Request(
                "invalid type for \"enable_thinking\" (expected boolean, got string)".into(),
            ));
        }
        let mut reasoning_effort = options
            .reasoning_effort
            .as_deref()
            .map(ReasoningEffort::parse)
            .transpose()?;
        match body.get("reasoning_effort") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s == "none" => {
                chat_template_kwargs.insert("enable_thinking".into(), Value::Bool(false));
                chat_template_kwargs.remove("reasoning_effort");
                reasoning_effort = None;
            }
            Some(Value::String(s)) => reasoning_effort = Some(ReasoningEffort::parse(s)?),
            Some(other) => return Err(ChatError::wrong_type("reasoning_effort", "string", other)),
        }
        if let Some(effort) = chat_template_kwargs.get("reasoning_effort") {
            let effort = effort.as_str().ok_or_else(|| {
                ChatError::wrong_type("chat_template_kwargs.reasoning_effort", "string", effort)
            })?;
            ReasoningEffort::parse(effort).map_err(|_| {
                ChatError::field(
                    "chat_template_kwargs.reasoning_effort",
                    format!("unknown value {effort:?} (expected low, medium or high)"),
                )
            })?;
        }
        let mut add_generation_prompt = match body.get("add_generation_prompt") {
            Some(Value::Bool(b)) => *b,
            // llama-server reads it with a default for any other type.
            _ => true,
        };
        let mut continue_final_message =
            matches!(body.get("continue_final_message"), Some(Value::Bool(true)))
                || matches!(
                    body.get("continue_final_message").and_then(Value::as_str),
                    Some("content" | "reasoning_content")
                );
        let last = messages.last();
        if !continue_final_message
            && options.prefill_assistant
            && last.is_some_and(|m| m.role == Role::Assistant)
        {
            let n = messages.len();
            if n >= 2 && messages[n - 2].role == Role::Assistant {
                return Err(ChatError::Request(
                    "Cannot have 2 or more assistant messages at the end of the list.".into(),
                ));
            }
            continue_final_message = true;
            add_generation_prompt = false;
        }
        if continue_final_message && add_generation_prompt {
            return Err(ChatError::Request(
                "Cannot set both add_generation_prompt and continue_final_message to true.".into(),
            ));
        }
        if continue_final_message
            && last.is_some_and(|m| m.role == Role::Assistant && !m.tool_calls.is_empty())
        {
            return Err(ChatError::Request(
                "Cannot continue an assistant message that contains tool calls.".into(),
            ));
        }
        let reasoning_format = match body.get("reasoning_format") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(ReasoningFormat::parse(s)?),
            Some(other) => return Err(ChatError::wrong_type("reasoning_format", "string", other)),
        };
        let tools_used = !tools.is_empty() && tool_choice != ToolChoice::None;
        if tools_used && body.get("grammar").is_some_and(|g| !g.is_null()) {
            return Err(ChatError::Request(
                "Cannot use custom grammar constraints with tools.".into(),
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
            continue_final_message,
            reasoning_format,
        })
    }

    /// The template inputs (the clock is now; set `now` for reproducible output).
    pub fn render_request(&self) -> RenderRequest<'_> {
        let mut req = RenderRequest::new(&self.messages, &self.tools, &self.chat_template_kwargs);
        req.add_generation_prompt = self.add_generation_prompt;
        req.reasoning_effort = self.reasoning_effort;
        req.prefill_assistant = self.continue_final_message;
        req
    }

    /// The text an answer continues and echoes first, as llama-server's parser does: the final
    /// assistant message's content (or its reasoning, when that is all it has) when it is
    /// continued. Empty otherwise, and for Harmony, whose continuation is channel messages.
    pub fn continued_text(&self, format: ChatFormat) -> String {
        if !self.continue_final_message || format == ChatFormat::Harmony {
            return String::new();
        }
        let Some(last) = self.messages.last().filter(|m| m.role == Role::Assistant) else {
            return String::new();
        };
        let content = last
            .content
            .as_ref()
            .map(super::types::MessageContent::to_text)
            .unwrap_or_default();
        if content.is_empty() {
            last.reasoning_content.clone().unwrap_or_default()
        } else {
            content
        }
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
