//! OpenAI chat request types, checked at the edge.
//!
//! The server hands us the raw JSON of `messages`, `tools` and `tool_choice`; these functions
//! turn it into typed values or a [`ChatError::InvalidField`] naming the offending field
//! (`messages[1].tool_calls[0].function.name`), so nothing past here ever sees raw JSON shapes.

use serde::Serialize;
use serde_json::Value;

use super::ChatError;

/// Who wrote a message. `developer` is OpenAI's newer name for `system`; it is passed to the
/// template as `system` except for gpt-oss, whose template knows the difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// A message's content: a string, or typed parts of which we support `text`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One `{"type":"text","text":…}` content part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
}

impl MessageContent {
    /// The parts joined with newlines, as llama.cpp does for templates that only take strings.
    pub fn to_text(&self) -> String {
        match self {
            MessageContent::Text(text) => text.clone(),
            MessageContent::Parts(parts) => parts
                .iter()
                .map(|part| part.text.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// A function call made by the assistant (in a request's history or in our answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolCall {
    /// Empty when the client sent none.
    pub id: String,
    pub name: String,
    /// The arguments as JSON text, as OpenAI sends them.
    pub arguments: String,
}

impl ToolCall {
    /// The arguments as a JSON object, as Anthropic's and Ollama's APIs carry them: `{}` when
    /// the model wrote no valid JSON object (as llama-server answers).
    pub fn arguments_object(&self) -> Value {
        match serde_json::from_str::<Value>(&self.arguments) {
            Ok(object @ Value::Object(_)) => object,
            _ => Value::Object(serde_json::Map::new()),
        }
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: Option<MessageContent>,
    pub reasoning_content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    /// For `role: tool`: the call this is the result of.
    pub tool_call_id: Option<String>,
    /// For `role: tool`: the function's name.
    pub name: Option<String>,
}

impl ChatMessage {
    /// A message with text content and nothing else.
    pub fn text(role: Role, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: Some(MessageContent::Text(content.into())),
            reasoning_content: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }
}

/// A function tool offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: String,
    /// JSON schema of the arguments; `{"type":"object","properties":{}}` when absent.
    pub parameters: Value,
}

impl Tool {
    /// The parameters (`properties`) with their schemas, in the schema's order.
    pub fn properties(&self) -> impl Iterator<Item = (&str, &Value)> {
        let properties = self.parameters.get("properties").and_then(Value::as_object);
        properties
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Whether parameter `name`'s schema allows strings only: `{"type": "string"}`,
    /// `{"type": ["string"]}`, or an `enum` or `const` of strings (formats that write values
    /// untyped, as Qwen3-Coder does, keep such values as text).
    pub fn is_string_parameter(&self, name: &str) -> bool {
        let Some(schema) = self.properties().find(|(k, _)| *k == name).map(|(_, v)| v) else {
            return false;
        };
        let strings =
            |values: &Vec<Value>| !values.is_empty() && values.iter().all(Value::is_string);
        match (schema.get("type"), schema.get("enum"), schema.get("const")) {
            (Some(Value::String(t)), _, _) => t == "string",
            (Some(Value::Array(types)), _, _) => {
                strings(types) && types.iter().all(|t| t == "string")
            }
            (None, Some(Value::Array(values)), _) => strings(values),
            (None, None, Some(value)) => value.is_string(),
            _ => false,
        }
    }
}

/// How the model may use the tools (`tool_choice`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// The model decides (the default).
    #[default]
    Auto,
    /// Tools are described but calls are not parsed.
    None,
    /// The model must call a tool (enforced with a grammar).
    Required,
    /// The model must call this function (`{"type":"function","function":{"name":…}}`).
    Function(String),
}

/// Parses the `messages` array, with llama-server's checks and words.
pub fn parse_messages(value: &Value) -> Result<Vec<ChatMessage>, ChatError> {
    let items = value
        .as_array()
        .ok_or_else(|| ChatError::Request("Expected 'messages' to be an array".into()))?;
    for item in items {
        let role = item.get("role").and_then(Value::as_str).unwrap_or_default();
        let content = item.get("content");
        if role != "assistant" && content.is_none() {
            return Err(ChatError::Request(
                "All non-assistant messages must contain 'content'".into(),
            ));
        }
        if role == "assistant" && content.is_none() && item.get("tool_calls").is_none() {
            return Err(ChatError::Request(
                "Assistant message must contain either 'content' or 'tool_calls'!".into(),
            ));
        }
        if content.is_some_and(|c| !(c.is_string() || c.is_null() || c.is_array())) {
            return Err(ChatError::Request(
                "Expected 'content' to be a string or an array".into(),
            ));
        }
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_message(item, &format!("messages[{i}]")))
        .collect()
}

fn parse_message(value: &Value, path: &str) -> Result<ChatMessage, ChatError> {
    let obj = value
        .as_object()
        .ok_or_else(|| ChatError::wrong_type(path, "object", value))?;
    let role = match obj.get("role").and_then(Value::as_str) {
        Some("system") => Role::System,
        Some("developer") => Role::Developer,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("tool") => Role::Tool,
        Some(other) => {
            return Err(ChatError::field(
                format!("{path}.role"),
                format!(
                    "unknown role {other:?} (expected system, developer, user, assistant or tool)"
                ),
            ));
        }
        None => {
            return Err(ChatError::field(
                format!("{path}.role"),
                "missing or not a string",
            ));
        }
    };
    let content = match obj.get("content") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(MessageContent::Text(text.clone())),
        Some(Value::Array(parts)) => Some(MessageContent::Parts(parse_parts(parts, path)?)),
        Some(_) => {
            return Err(ChatError::field(
                format!("{path}.content"),
                "expected a string, an array of content parts or null",
            ));
        }
    };
    let tool_calls = match obj.get("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(calls)) => calls
            .iter()
            .enumerate()
            .map(|(i, call)| parse_tool_call(call, &format!("{path}.tool_calls[{i}]")))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ChatError::field(
                format!("{path}.tool_calls"),
                "expected an array",
            ));
        }
    };
    if content.is_none() && tool_calls.is_empty() && role != Role::Assistant {
        return Err(ChatError::field(format!("{path}.content"), "missing"));
    }
    Ok(ChatMessage {
        role,
        content,
        reasoning_content: optional_string(
            obj.get("reasoning_content"),
            path,
            "reasoning_content",
        )?,
        tool_calls,
        tool_call_id: optional_string(obj.get("tool_call_id"), path, "tool_call_id")?,
        name: optional_string(obj.get("name"), path, "name")?,
    })
}

fn optional_string(
    value: Option<&Value>,
    path: &str,
    key: &str,
) -> Result<Option<String>, ChatError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ChatError::field(
            format!("{path}.{key}"),
            "expected a string",
        )),
    }
}

fn parse_parts(parts: &[Value], path: &str) -> Result<Vec<ContentPart>, ChatError> {
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let part_path = format!("{path}.content[{i}]");
            match part.get("type").and_then(Value::as_str) {
                Some("text") => match part.get("text").and_then(Value::as_str) {
                    Some(text) => Ok(ContentPart {
                        kind: "text".into(),
                        text: text.into(),
                    }),
                    None => Err(ChatError::field(
                        format!("{part_path}.text"),
                        "missing or not a string",
                    )),
                },
                Some(other) => Err(ChatError::field(
                    format!("{part_path}.type"),
                    format!("unsupported content part type {other:?} (only \"text\" is supported)"),
                )),
                None => Err(ChatError::field(
                    format!("{part_path}.type"),
                    "missing or not a string",
                )),
            }
        })
        .collect()
}

fn parse_tool_call(value: &Value, path: &str) -> Result<ToolCall, ChatError> {
    let function = value
        .get("function")
        .and_then(Value::as_object)
        .ok_or_else(|| ChatError::field(format!("{path}.function"), "missing or not an object"))?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ChatError::field(format!("{path}.function.name"), "missing or not a string")
        })?;
    let arguments = match function.get("arguments") {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(text)) => text.clone(),
        // Some clients send the object itself; keep it as OpenAI's JSON text.
        Some(other @ Value::Object(_)) => other.to_string(),
        Some(_) => {
            return Err(ChatError::field(
                format!("{path}.function.arguments"),
                "expected a JSON string",
            ));
        }
    };
    Ok(ToolCall {
        id: optional_string(value.get("id"), path, "id")?.unwrap_or_default(),
        name: name.to_string(),
        arguments,
    })
}

/// Parses the `tools` array (absent or null means no tools).
pub fn parse_tools(value: Option<&Value>) -> Result<Vec<Tool>, ChatError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ChatError::field("tools", "expected an array")),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let path = format!("tools[{i}]");
            if tool.get("type").and_then(Value::as_str) != Some("function") {
                return Err(ChatError::field(
                    format!("{path}.type"),
                    "only \"function\" tools are supported",
                ));
            }
            let function = tool
                .get("function")
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    ChatError::field(format!("{path}.function"), "missing or not an object")
                })?;
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .filter(|name| !name.is_empty())
                .ok_or_else(|| {
                    ChatError::field(format!("{path}.function.name"), "missing or not a string")
                })?;
            let description = optional_string(
                function.get("description"),
                &format!("{path}.function"),
                "description",
            )?;
            let parameters = match function.get("parameters") {
                None | Some(Value::Null) => serde_json::json!({}),
                Some(schema @ Value::Object(_)) => schema.clone(),
                Some(_) => {
                    return Err(ChatError::field(
                        format!("{path}.function.parameters"),
                        "expected a JSON schema object",
                    ));
                }
            };
            Ok(Tool {
                name: name.to_string(),
                description: description.unwrap_or_default(),
                parameters,
            })
        })
        .collect()
}

/// Parses `tool_choice` (absent means `auto`).
pub fn parse_tool_choice(value: Option<&Value>) -> Result<ToolChoice, ChatError> {
    match value {
        None | Some(Value::Null) => Ok(ToolChoice::Auto),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(ChatError::field(
                "tool_choice",
                format!("unknown value {other:?} (expected auto, none, required or a function)"),
            )),
        },
        Some(obj @ Value::Object(_)) => obj
            .pointer("/function/name")
            .and_then(Value::as_str)
            .map(|name| ToolChoice::Function(name.to_string()))
            .ok_or_else(|| {
                ChatError::field("tool_choice.function.name", "missing or not a string")
            }),
        Some(_) => Err(ChatError::field(
            "tool_choice",
            "expected a string or an object",
        )),
    }
}

/// How much the model should think (`reasoning_effort`); gpt-oss renders it as `Reasoning: …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReasoningEffort {
    Low,
    #[default]
    Medium,
    High,
}

impl ReasoningEffort {
    /// Parses the request's `reasoning_effort`.
    pub fn parse(value: &str) -> Result<Self, ChatError> {
        match value {
            "low" => Ok(ReasoningEffort::Low),
            "medium" => Ok(ReasoningEffort::Medium),
            "high" => Ok(ReasoningEffort::High),
            other => Err(ChatError::field(
                "reasoning_effort",
                format!("unknown value {other:?} (expected low, medium or high)"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
        }
    }
}

/// Where reasoning goes in the answer (llama-server's `--reasoning-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReasoningFormat {
    /// Reasoning stays in `content`, tags and all.
    None,
    /// Reasoning is extracted into `reasoning_content` (same as `deepseek`).
    #[default]
    Auto,
    /// Reasoning is extracted into `reasoning_content`.
    Deepseek,
}

impl ReasoningFormat {
    /// Parses the `--reasoning-format` flag or the request's `reasoning_format`.
    pub fn parse(value: &str) -> Result<Self, ChatError> {
        match value {
            "none" => Ok(ReasoningFormat::None),
            "auto" => Ok(ReasoningFormat::Auto),
            "deepseek" => Ok(ReasoningFormat::Deepseek),
            "deepseek-legacy" => Err(ChatError::Unsupported(
                "reasoning format deepseek-legacy is not supported by gguf-serve yet".into(),
            )),
            other => Err(ChatError::Unsupported(format!(
                "Unknown reasoning format: {other}"
            ))),
        }
    }

    /// Whether reasoning is moved out of `content`.
    pub fn extracts(self) -> bool {
        self != ReasoningFormat::None
    }
}
