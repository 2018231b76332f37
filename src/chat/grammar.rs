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
/// `<think>`-only formats have no tool call syntax, so they get `None`. Mistral Nemo gets
/// `[TOOL_CALLS][{…}]`, DeepSeek R1 optional reasoning and its call block, Functionary v3.2
/// `NAME\n{…}`, Qwen3-Coder its XML block.
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
        ChatFormat::MistralNemo => mistral_nemo_grammar(&tools).map(Some),
        ChatFormat::DeepSeekR1 => deepseek_r1_grammar(&tools).map(Some),
        ChatFormat::FunctionaryV32 => functionary_v3_2_grammar(&tools).map(Some),
        ChatFormat::Qwen3Coder => qwen3_coder_grammar(&tools).map(Some),
        ChatFormat::Content | ChatFormat::Think => Ok(None),
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

/// The schema of a call object `{"name": NAME, ARGS_KEY: {…}}` for any of `tools`, with an
/// `"id"` of 9 letters and digits if `with_id` (Mistral Nemo's, as llama.cpp asks for it).
fn call_schema(tools: &[&Tool], args_key: &str, with_id: bool) -> Value {
    let calls: Vec<Value> = tools
        .iter()
        .map(|tool| {
            let mut call = json!({
                "type": "object",
                "properties": {"name": {"const": tool.name}, args_key: parameters(tool)},
                "required": ["name", args_key],
            });
            if with_id {
                call["properties"]["id"] = json!({"type": "string", "pattern": "^[a-zA-Z0-9]{9}$"});
                call["required"] = json!(["name", args_key, "id"]);
            }
            call
        })
        .collect();
    if calls.len() == 1 {
        calls[0].clone()
    } else {
        json!({"anyOf": calls})
    }
}

fn llama3_grammar(tools: &[&Tool]) -> Result<String, ChatError> {
    schema_grammar(&call_schema(tools, "parameters", false), "tools")
}

fn hermes_grammar(tools: &[&Tool]) -> Result<String, ChatError> {
    let inner = schema_grammar(&call_schema(tools, "arguments", false), "tools")?;
    Ok(format!(
        // Exactly Qwen's layout: free whitespace here lets a small model loop on newlines.
        "root ::= \"<tool_call>\\n\" tool-call-json \"\\n</tool_call>\"\n{}\n",
        rename_root(&inner, "tool-call-json")
    ))
}

fn harmony_grammar(tools: &[&Tool]) -> Result<String, ChatError> {
    let (calls, rules) = named_calls(tools, |name, args| {
        format!("\"{name}\" \" <|constrain|>json<|message|>\" {args}")
    })?;
    Ok(format!(
        "root ::= analysis? \"<|channel|>commentary to=functions.\" ( {calls} )\n\
         analysis ::= \"<|channel|>analysis<|message|>\" analysis-body \"<|end|><|start|>assistant\"\n\
         analysis-body ::= ( [^<] | \"<\" [^|] )*\n{rules}\n"
    ))
}

/// `[TOOL_CALLS]` and an array of calls with the 9-character ids Mistral Nemo writes.
fn mistral_nemo_grammar(tools: &[&Tool]) -> Result<String, ChatError> {
    let schema =
        json!({"type": "array", "items": call_schema(tools, "arguments", true), "minItems": 1});
    let inner = schema_grammar(&schema, "tools")?;
    Ok(format!(
        "root ::= \"[TOOL_CALLS]\" tool-calls-json\n{}\n",
        rename_root(&inner, "tool-calls-json")
    ))
}

/// DeepSeek R1's call block, after reasoning if the model thinks first (its prompt may leave
/// `<think>` open, and the parser then needs the `</think>`).
fn deepseek_r1_grammar(tools: &[&Tool]) -> Result<String, ChatError> {
    let (calls, rules) = named_calls(tools, |name, args| {
        format!(
            "\"function<｜tool▁sep｜>{name}\\n```json\\n\" {args} \"\\n```<｜tool▁call▁end｜>\""
        )
    })?;
    Ok(format!(
        "root ::= reasoning? \"<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>\" ( {calls} ) \"<｜tool▁calls▁end｜>\"\n\
         reasoning ::= \"<think>\"? reasoning-body \"</think>\" [ \\n]*\n\
         reasoning-body ::= ( [^<] | \"<\" [^/] )*\n{rules}\n"
    ))
}

/// Functionary v3.2: the prompt ends with `>>>`, so a call is `NAME\n{…}`.
fn functionary_v3_2_grammar(tools: &[&Tool]) -> Result<String, ChatError> {
    let (calls, rules) = named_calls(tools, |name, args| format!("\"{name}\\n\" {args}"))?;
    Ok(format!("root ::= {calls}\n{rules}\n"))
}

/// One alternative per tool, `call(NAME as GBNF-escaped text, ARGUMENTS rule)` joined with `|`,
/// and the rules they use.
fn named_calls(
    tools: &[&Tool],
    call: impl Fn(&str, &str) -> String,
) -> Result<(String, String), ChatError> {
    let schemas = tools.iter().map(|tool| parameters(tool)).collect();
    let (names, rules) = schema_rules(schemas)?;
    let alternatives: Vec<String> = tools
        .iter()
        .zip(&names)
        .map(|(tool, rule)| call(&escape(&tool.name), rule))
        .collect();
    Ok((alternatives.join(" | "), rules))
}

/// The rules of several schemas at once, and the name of each schema's rule. One conversion
/// keeps the helper rules (`space`, `string`, …) unique: the schemas go in as an `anyOf`,
/// whose root rule lists their rules in order (a primitive schema's rule is the shared
/// primitive, `boolean` say, so the names cannot be guessed).
fn schema_rules(schemas: Vec<Value>) -> Result<(Vec<String>, String), ChatError> {
    if schemas.is_empty() {
        return Ok((Vec::new(), String::new()));
    }
    let count = schemas.len();
    let inner = schema_grammar(&json!({ "anyOf": schemas }), "tools")?;
    let (root, rest): (Vec<&str>, Vec<&str>) =
        inner.lines().partition(|line| line.starts_with("root ::="));
    let names: Vec<String> = root
        .first()
        .and_then(|line| line.strip_prefix("root ::="))
        .map(|alternatives| {
            alternatives
                .split('|')
                .map(|n| n.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    if names.len() != count || names.iter().any(|n| n.is_empty() || n.contains(' ')) {
        return Err(ChatError::Grammar {
            field: "tools".into(),
            reason: format!("unexpected grammar for {count} argument schemas: {inner}"),
        });
    }
    Ok((names, rest.join("\n")))
}

/// `text` escaped for a GBNF string literal.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Qwen3-Coder's XML call: `<tool_call>\n<function=NAME>\n`, each parameter (in the schema's
/// order; the required ones always) as `<parameter=P>\nVALUE\n</parameter>\n`, then
/// `</function>\n</tool_call>`. A string-only parameter's value is text with no line starting
/// with `</`; any other's is JSON of its schema.
fn qwen3_coder_grammar(tools: &[&Tool]) -> Result<String, ChatError> {
    let json_schemas = tools.iter().flat_map(|tool| {
        tool.properties()
            .filter(|(name, _)| !tool.is_string_parameter(name))
            .map(|(_, schema)| schema.clone())
    });
    let (names, rules) = schema_rules(json_schemas.collect())?;
    let mut json_rules = names.into_iter();
    let mut calls = Vec::new();
    for tool in tools {
        let required = tool.parameters.get("required").and_then(Value::as_array);
        let is_required = |name: &str| required.is_some_and(|r| r.iter().any(|v| v == name));
        let mut parameters = Vec::new();
        for (name, _) in tool.properties() {
            let value = match tool.is_string_parameter(name) {
                true => "xml-text".to_string(),
                false => json_rules.next().unwrap_or_default(),
            };
            let parameter = format!(
                "\"<parameter={}>\\n\" {value} \"\\n</parameter>\\n\"",
                escape(name)
            );
            parameters.push(match is_required(name) {
                true => parameter,
                false => format!("( {parameter} )?"),
            });
        }
        calls.push(format!(
            "\"<function={}>\\n\" {} \"</function>\\n\"",
            escape(&tool.name),
            parameters.join(" ")
        ));
    }
    Ok(format!(
        "root ::= \"<tool_call>\\n\" ( {} ) \"</tool_call>\"\n\
         xml-text ::= ( [^\\n] | \"\\n\" [^<] | \"\\n<\" [^/] )*\n{rules}\n",
        calls.join(" | ")
    ))
}
