//! Chat: rendering messages through the model's Jinja template and reading structure (reasoning,
//! tool calls) back out of generated text.
//!
//! The server's path through this module, per request:
//! 1. [`ChatRequest::from_json`] (or the field parsers [`parse_messages`], [`parse_tools`],
//!    [`parse_tool_choice`], [`parse_response_format`]) turns the request JSON into typed
//!    values (errors name the field, for HTTP 400);
//! 2. [`ChatTemplate::render`] (template built once per model) gives the prompt, the
//!    [`ChatFormat`] and the special tokens the engine must keep as text;
//! 3. [`ChatRequest::grammar`] ([`ResponseFormat::grammar`] / [`tool_call_grammar`]) gives a
//!    GBNF grammar when output is constrained;
//! 4. a [`ChatParser`] reads the generated text (the engine has already cut it at the stop
//!    strings, holding back what may begin one): `push` per chunk while streaming, `finish` at
//!    the end for the whole [`ParsedMessage`].
//!
//! Architecture invariant: nothing here touches llama.cpp state except the pure
//! `json_schema_to_grammar` conversion; rendering and parsing are plain functions of their inputs.

mod error;
mod format;
mod grammar;
mod parse;
mod request;
mod template;
mod types;

pub use error::ChatError;
pub use format::ChatFormat;
pub use grammar::{ResponseFormat, parse_response_format, schema_grammar, tool_call_grammar};
pub use parse::{ChatDelta, ChatParser, ParsedMessage, ParserConfig, ToolCallDelta};
pub use request::{ChatOptions, ChatRequest};
pub use template::{
    BUILTIN_TEMPLATES, CHATML_TEMPLATE, ChatTemplate, LegacyApply, RenderRequest, RenderedPrompt,
    SpecialTokens, TemplateCaps,
};
pub use types::{
    ChatMessage, ContentPart, MessageContent, ReasoningEffort, ReasoningFormat, Role, Tool,
    ToolCall, ToolChoice, parse_messages, parse_tool_choice, parse_tools,
};
