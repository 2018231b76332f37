//! Structured output through the server on the demo model: `response_format` json_schema
//! answers always parse and validate, and a forced tool call reaches the official `openai`
//! client as `tool_calls`, streamed and not.

mod common;

use common::Server;
use serde_json::{Value, json};

fn validate(person: &Value) -> Result<(), String> {
    let obj = person.as_object().ok_or("not an object")?;
    let name = obj.get("name").and_then(Value::as_str).ok_or("name")?;
    if name.chars().count() > 16 {
        return Err(format!("name too long: {name:?}"));
    }
    let age = obj.get("age").and_then(Value::as_i64).ok_or("age")?;
    if !(0..=120).contains(&age) {
        return Err(format!("age out of range: {age}"));
    }
    let mood = obj.get("mood").and_then(Value::as_str).ok_or("mood")?;
    if !["happy", "sad", "calm"].contains(&mood) {
        return Err(format!("mood not in the enum: {mood}"));
    }
    if obj.len() != 3 {
        return Err(format!("extra keys: {obj:?}"));
    }
    Ok(())
}

#[test]
fn twenty_json_schema_answers_validate() {
    let server = Server::start(&["-np", "1"]);
    let schema = json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "maxLength": 16 },
            "age": { "type": "integer", "minimum": 0, "maximum": 120 },
            "mood": { "enum": ["happy", "sad", "calm"] }
        },
        "required": ["name", "age", "mood"],
        "additionalProperties": false
    });
    for seed in 0..20 {
        let body = json!({
            "messages": [{ "role": "user", "content": "Describe a person as JSON." }],
            "response_format": { "type": "json_schema", "json_schema": { "name": "person", "schema": schema } },
            "temperature": 0.8,
            "seed": seed,
            "max_tokens": 96,
        });
        let (status, reply) = server.post("/v1/chat/completions", &body);
        assert_eq!(status, 200, "{reply}");
        let content = reply["choices"][0]["message"]["content"].as_str().unwrap();
        let parsed: Value = serde_json::from_str(content)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}: {content:?}"));
        validate(&parsed).unwrap_or_else(|e| panic!("seed {seed}: {e}: {content}"));
    }
}

#[test]
fn json_schema_on_completion() {
    let server = Server::start(&[]);
    let body = json!({
        "prompt": "A list of three numbers:",
        "json_schema": { "type": "array", "items": { "type": "integer" }, "minItems": 3, "maxItems": 3 },
        "n_predict": 48,
        "temperature": 0,
    });
    let (status, reply) = server.post("/completion", &body);
    assert_eq!(status, 200, "{reply}");
    let parsed: Value = serde_json::from_str(reply["content"].as_str().unwrap()).unwrap();
    assert_eq!(parsed.as_array().map(Vec::len), Some(3), "{parsed}");

    let (status, reply) = server.post(
        "/completion",
        &json!({ "prompt": "x", "grammar": "root ::= (" }),
    );
    assert_eq!(
        status, 400,
        "a broken grammar is the client's error: {reply}"
    );
}

/// A repetition whose minimum exceeds its maximum used to loop inside llama.cpp's grammar parser
/// on the engine thread, freezing every slot while memory grew by gigabytes, and a long literal
/// repeated 2000 times expands to billions of elements there: each is refused with a 400 on
/// every route, a JSON schema that asks for one too, and the server goes on.
#[test]
fn a_grammar_that_would_stall_the_engine_is_refused() {
    let server = Server::start(&["-np", "2"]);
    let grammar = r#"root ::= "a"{2,1}"#;
    let schema =
        json!({ "type": "array", "items": { "type": "integer" }, "minItems": 5, "maxItems": 2 });
    let expanding = format!(r#"root ::= "{}"{{2000}}"#, "a".repeat(1 << 20));
    let cases = [
        (
            "/completion",
            json!({ "prompt": "Hi", "grammar": expanding }),
        ),
        ("/completion", json!({ "prompt": "Hi", "grammar": grammar })),
        (
            "/v1/completions",
            json!({ "prompt": "Hi", "grammar": grammar }),
        ),
        (
            "/v1/chat/completions",
            json!({ "messages": [{ "role": "user", "content": "Hi" }], "grammar": grammar }),
        ),
        (
            "/completion",
            json!({ "prompt": "Hi", "json_schema": schema }),
        ),
    ];
    for (path, body) in cases {
        let started = std::time::Instant::now();
        let (status, reply) = server.post(path, &body);
        assert_eq!(status, 400, "{path} {body}: {reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap()
                .contains("grammar"),
            "{reply}"
        );
        assert!(
            started.elapsed().as_secs() < 10,
            "{path}: {:?}",
            started.elapsed()
        );
    }
    let (status, reply) = server.post("/completion", &json!({ "prompt": "Hi", "n_predict": 2 }));
    assert_eq!(status, 200, "the engine goes on: {reply}");
}

#[test]
fn forced_tool_call_reaches_the_openai_client() {
    let server = Server::start(&[
        "--chat-template-file",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/chat/templates/Qwen-Qwen2.5-7B-Instruct.jinja"
        ),
    ]);
    common::run_python(
        "openai_tool_calls.py",
        "openai",
        &[&server.url],
        "tool calls: ok",
    );
}
