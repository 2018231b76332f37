//! Grammars for `response_format` and forced tool calls: what they say, and that llama.cpp's
//! grammar parser accepts them (checked with the demo model's vocabulary).

mod common;

use std::sync::OnceLock;

use gguf_serve::chat::{
    ChatFormat, ResponseFormat, ToolChoice, parse_response_format, parse_tools, tool_call_grammar,
};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use serde_json::json;

/// The demo model's vocabulary, loaded once, for llama.cpp's grammar parser.
fn vocab_model() -> &'static LlamaModel {
    static MODEL: OnceLock<(LlamaBackend, LlamaModel)> = OnceLock::new();
    let (_, model) = MODEL.get_or_init(|| {
        let mut backend = LlamaBackend::init().expect("initializing llama.cpp");
        backend.void_logs();
        let params = LlamaModelParams::default().with_vocab_only(true);
        let model = LlamaModel::load_from_file(&backend, common::demo_model(), &params)
            .expect("loading the demo model's vocabulary");
        (backend, model)
    });
    model
}

fn assert_parses(grammar: &str, what: &str) {
    assert!(
        LlamaSampler::grammar(vocab_model(), grammar, "root").is_ok(),
        "{what}: llama.cpp rejects the grammar:\n{grammar}"
    );
}

fn weather_tools() -> Vec<gguf_serve::chat::Tool> {
    parse_tools(Some(&json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["location"]}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {
            "type": "object",
            "properties": {"tz": {"type": "string"}, "utc": {"type": "boolean"}, "at": {"type": "object", "properties": {"h": {"type": "integer"}}}},
            "required": ["tz"]}}},
        {"type": "function", "function": {"name": "ping"}}
    ])))
    .unwrap()
}

#[test]
fn response_format_parsing() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
    let cases = [
        (json!(null), Ok(ResponseFormat::Text)),
        (json!({"type": "text"}), Ok(ResponseFormat::Text)),
        (
            json!({"type": "json_object"}),
            Ok(ResponseFormat::JsonObject(json!({"type": "object"}))),
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}),
            Ok(ResponseFormat::JsonSchema(schema.clone())),
        ),
        (
            json!({"type": "json_schema"}),
            Err("response_format.json_schema.schema"),
        ),
        (json!({"type": "yaml"}), Err("response_format.type")),
    ];
    for (input, want) in cases {
        let got = parse_response_format(Some(&input));
        match (got, want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{input}"),
            (Err(e), Err(field)) => assert!(
                e.to_string().starts_with(&format!("Field '{field}'")),
                "{input}: {e}"
            ),
            (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn response_format_grammars_parse() {
    assert_eq!(ResponseFormat::Text.grammar().unwrap(), None);
    let object = ResponseFormat::JsonObject(json!({"type": "object"}))
        .grammar()
        .unwrap()
        .unwrap();
    assert!(object.contains("root ::="), "{object}");
    assert_parses(&object, "json_object");
    let schema = ResponseFormat::JsonSchema(json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name", "age"], "additionalProperties": false
    }));
    let grammar = schema.grammar().unwrap().unwrap();
    assert!(grammar.contains("\"\\\"age\\\"\""), "{grammar}");
    assert_parses(&grammar, "json_schema");
}

#[test]
fn forced_tool_call_grammars_parse() {
    let tools = weather_tools();
    for format in [
        ChatFormat::Hermes,
        ChatFormat::Harmony,
        ChatFormat::Llama3Json,
        ChatFormat::MistralNemo,
        ChatFormat::DeepSeekR1,
        ChatFormat::FunctionaryV32,
        ChatFormat::Qwen3Coder,
    ] {
        for choice in [
            ToolChoice::Required,
            ToolChoice::Function("get_time".into()),
        ] {
            let grammar = tool_call_grammar(format, &tools, &choice).unwrap().unwrap();
            println!("{format:?} {choice:?}:\n{grammar}");
            assert_parses(&grammar, &format!("{format:?} {choice:?}"));
            let only_time = choice != ToolChoice::Required;
            assert_eq!(grammar.contains("get_weather"), !only_time, "{grammar}");
            assert!(grammar.contains("get_time"), "{grammar}");
        }
    }
    assert_eq!(
        tool_call_grammar(ChatFormat::Hermes, &tools, &ToolChoice::Auto).unwrap(),
        None
    );
    assert_eq!(
        tool_call_grammar(ChatFormat::Think, &tools, &ToolChoice::Required).unwrap(),
        None
    );
    let missing = tool_call_grammar(
        ChatFormat::Hermes,
        &tools,
        &ToolChoice::Function("nope".into()),
    );
    assert!(
        missing
            .unwrap_err()
            .to_string()
            .starts_with("Field 'tool_choice")
    );
}
