//! Constraining output with GBNF grammars: `response_format` and `tool_choice: required`.
//!
//! JSON schemas go through llama.cpp's own converter (`llama_cpp_2::json_schema_to_grammar`),
//! so grammars match llama-server's. The engine applies the grammar; this module only writes it.

use serde_json::{Value, json};

use super::types::{Tool, ToolChoice};
use super::{ChatError, ChatFormat};

/// The request's `response_format`.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ResponseFormat {
    /// Free text (absent, or `{"type":"text"}`).
    #[default]
    Text,
    /// `{"type":"json_object"}`: any JSON object (or the optional `schema` given with it).
    JsonObject(Value),
    /// `{"type":"json_schema","json_schema":{"schema":…}}`.
    JsonSchema(Value),
}

/// Parses `response_format` as llama-server does.
pub fn parse_response_format(value: Option<&Value>) -> Result<ResponseFormat, ChatError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(ResponseFormat::Text);
    };
    match value.get("type").and_then(Value::as_str).unwrap_or("") {
        "" | "text" => Ok(ResponseFormat::Text),
        "json_object" => Ok(ResponseFormat::JsonObject(
            value
                .get("schema")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"})),
        )),
        "json_schema" => value
            .pointer("/json_schema/schema")
            .filter(|schema| schema.is_object())
            .map(|schema| ResponseFormat::JsonSchema(schema.clone()))
            .ok_or_else(|| {
                ChatError::field(
                    "response_format.json_schema.schema",
                    "missing or not an object",
                )
            }),
        other => Err(ChatError::field(
            "response_format.type",
            format!(
                "must be one of \"text\", \"json_object\" or \"json_schema\", but got {other:?}"
            ),
        )),
    }
}

impl ResponseFormat {
    /// The grammar enforcing this format; `None` for free text.
    pub fn grammar(&self) -> Result<Option<String>, ChatError> {
        match self {
            ResponseFormat::Text => Ok(None),
            ResponseFormat::JsonObject(schema) => {
                schema_grammar(schema, "response_format").map(Some)
            }
            ResponseFormat::JsonSchema(schema) => {
                schema_grammar(schema, "response_format.json_schema.schema").map(Some)
            }
        }
    }

    /// The schema the output must satisfy, if any.
    pub fn schema(&self) -> Option<&Value> {
        match self {
            ResponseFormat::Text => None,
            ResponseFormat::JsonObject(schema) | ResponseFormat::JsonSchema(schema) => Some(schema),
        }
    }
}

/// Converts a JSON schema to GBNF with llama.cpp's converter.
pub fn schema_grammar(schema: &Value, field: &str) -> Result<String, ChatError> {
    llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|e| ChatError::Grammar {
        field: field.to_string(),
        reason: e.to_string(),
    })
}

/// A grammar forcing one tool call in the model's format, for `tool_choice` `required` or a
/// named function; `None` when the model may answer freely or the format has no forced form.
///
/// The grammar covers the answer from its first token: Hermes gets `<tool_call>{…}</tool_call>`
/// (no `<think>` first), Llama 3 a bare `{"name": …, "parameters": …}`, Harmony an optional
/// analysis message and then
/// `<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{…}`. Plain and
/// `<think>`-only formats have no tool call syntax, so they get `None`; so, for now, do Mistral
/// Nemo, DeepSeek R1, Qwen3-Coder and Functionary v3.2, whose calls are parsed but not forced.
pub fn tool_call_grammar(
    format: ChatFormat,
    tools: &[Tool],
    choice: &ToolChoice,
) -> Result<Option<String>, ChatError> {
    let tools: Vec<&Tool> = match choice {
        ToolChoice::Auto | ToolChoice::None => return Ok(None),
        ToolChoice::Required => tools.iter().collect(),
        ToolChoice::Function(name) => tools.iter().filter(|t| &t.name == name).collect(),
    };
    if tools.is_empty() {
        return Err(ChatError::field(
            "tool_choice",
            "a tool call is required but no matching tool was given in `tools`",
        ));
    }
    match format {
        ChatFormat::Hermes => hermes_grammar(&tools).map(Some),
        ChatFormat::Harmony => harmony_grammar(&tools).map(Some),
        ChatFormat::Llama3Json => llama3_grammar(&tools).map(Some),
        ChatFormat::Content
        | ChatFormat::Think
        | ChatFormat::MistralNemo
        | ChatFormat::DeepSeekR1
        | ChatFormat::Qwen3Coder
        | ChatFormat::FunctionaryV32 => Ok(None),
    }
}

fn parameters(tool: &Tool) -> Value {
    match &tool.parameters {
        Value::Object(map) if !map.is_empty() => tool.parameters.clone(),
        _ => json!({"type": "object", "properties": {}}),
    }
}

/// Renames the converter's `root` rule so the grammar can be embedded under another root.
fn rename_root(grammar: &str, name: &str) -> String {
    grammar
        .lines()
        .map(|line| match line.strip_prefix("root ::=") {
            Some(rest) => format!("{name} ::={rest}"),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The schema of a call object `{"name": NAME, ARGS_KEY: {…}}` for any of `tools`.
fn call_schema(tools: &[&Tool], args_key: &str) -> Value {
    let calls: Vec<Value> = tools
        .iter()
        .map(|tool| {
            json!({
                "type": "object",
                "properties": {"name": {"const": tool.name}, args_key: parameters(tool)},
                "required": ["name", args_key],
            })
        })
        .collect();
    if calls.len() == 1 {
        calls[0].clone()
    } else {
        json!({"anyOf": calls})
    }
}

fn llama3_grammar(tools: &[&Tool]) -> Result<String, ChatError> {
    schema_grammar(&call_schema(tools, "parameters"), "tools")
}

fn hermes_grammar(tools: &[&Tool]) -> Result<String, ChatError> {
    let inner = schema_grammar(&call_schema(tools, "arguments"), "tools")?;
    Ok(format!(
        // Exactly Qwen's layout: free whitespace here lets a small model loop on newlines.
        "root ::= \"<tool_call>\\n\" tool-call-json \"\\n</tool_call>\"\n{}\n",
        rename_root(&inner, "tool-call-json")
    ))
}

fn harmony_grammar(tools: &[&Tool]) -> Result<String, ChatError> {
    // One conversion for all tools keeps the helper rules (`space`, `string`, …) unique; the
    // argument schemas become `$defs`, which the converter emits as rules `ref-defs-NAME` that
    // we pair with their function names.
    let defs: serde_json::Map<String, Value> = tools
        .iter()
        .enumerate()
        .map(|(i, tool)| (format!("tool{i}args"), parameters(tool)))
        .collect();
    let refs: Vec<Value> = (0..tools.len())
        .map(|i| json!({"$ref": format!("#/$defs/tool{i}args")}))
        .collect();
    let inner = schema_grammar(&json!({"$defs": defs, "anyOf": refs}), "tools")?;
    let alternatives: Vec<String> = tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            format!(
                "\"{}\" \" <|constrain|>json<|message|>\" ref-defs-tool{i}args",
                tool.name.replace('\\', "\\\\").replace('"', "\\\"")
            )
        })
        .collect();
    Ok(format!(
        "root ::= analysis? \"<|channel|>commentary to=functions.\" ( {} )\n\
         analysis ::= \"<|channel|>analysis<|message|>\" analysis-body \"<|end|><|start|>assistant\"\n\
         analysis-body ::= ( [^<] | \"<\" [^|] )*\n{}\n",
        alternatives.join(" | "),
        rename_root(&inner, "tool-args-any")
    ))
}
