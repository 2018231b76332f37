//! gpt-oss end to end without a download: a tiny random-weight gpt-oss GGUF, written with our
//! GGUF writer and carrying the real gpt-oss chat template, served by the real binary. The text
//! it writes is noise; what is checked is that `reasoning_effort` reaches the Harmony prompt,
//! and that the answer comes back through the Harmony parser as a well-formed message, streamed
//! and not. With `tool_choice: required` the noise is grammar-constrained into a call, so the
//! same model, served with other formats' templates, checks that each format's forced-call
//! grammar and its parser agree.

mod common;

use common::serve_tiny_gpt_oss;
use serde_json::{Value, json};

/// A greedy chat request with `extra`'s fields on top.
fn chat_body(extra: &Value) -> Value {
    let mut body = json!({
        "messages": [{ "role": "user", "content": "What is 2 + 2?" }],
        "max_tokens": 24,
        "temperature": 0,
    });
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

/// A parsed Harmony answer never shows message headers: they are consumed by the parser.
fn assert_well_formed(message: &Value) {
    assert_eq!(message["role"], "assistant", "{message}");
    let content = message["content"].as_str().expect("content is a string");
    let reasoning = message
        .get("reasoning_content")
        .map_or("", |r| r.as_str().expect("reasoning_content is a string"));
    for text in [content, reasoning] {
        for header in ["<|start|>", "<|channel|>", "<|message|>"] {
            assert!(!text.contains(header), "{header} left in {message}");
        }
    }
    assert!(
        message.get("tool_calls").is_none(),
        "no tools offered: {message}"
    );
}

#[test]
fn reasoning_effort_reaches_the_harmony_prompt_and_the_answer_parses() {
    let (_dir, server) = serve_tiny_gpt_oss(&[]);
    let (_, props) = server.get("/props");
    assert!(
        props["chat_template"]
            .as_str()
            .unwrap()
            .contains("<|channel|>"),
        "the model's own template is used"
    );
    let cases = [
        (json!({}), "medium"),
        (json!({ "reasoning_effort": "high" }), "high"),
        (
            json!({ "chat_template_kwargs": { "reasoning_effort": "low" } }),
            "low",
        ),
    ];
    for (extra, effort) in cases {
        let body = chat_body(&extra);
        let (status, rendered) = server.post("/apply-template", &body);
        assert_eq!(status, 200, "{rendered}");
        let prompt = rendered["prompt"].as_str().unwrap();
        assert_eq!(
            prompt.matches("Reasoning: ").count(),
            1,
            "{extra}: {prompt}"
        );
        assert!(
            prompt.contains(&format!("Reasoning: {effort}\n\n")),
            "{extra}: {prompt}"
        );
        assert!(prompt.ends_with("<|start|>assistant"), "{prompt}");

        let (status, answer) = server.post("/v1/chat/completions", &body);
        assert_eq!(status, 200, "{extra}: {answer}");
        assert_well_formed(&answer["choices"][0]["message"]);
        let finish = answer["choices"][0]["finish_reason"].as_str().unwrap();
        assert!(["stop", "length"].contains(&finish), "{answer}");
        // The Harmony system message alone is longer than this.
        assert!(
            answer["usage"]["prompt_tokens"].as_u64().unwrap() > 30,
            "{answer}"
        );
    }
}

#[test]
fn streamed_harmony_answer_adds_up_to_the_whole_one() {
    let (_dir, server) = serve_tiny_gpt_oss(&[]);
    let body = chat_body(&json!({ "reasoning_effort": "high" }));
    let (status, answer) = server.post("/v1/chat/completions", &body);
    assert_eq!(status, 200, "{answer}");
    let message = &answer["choices"][0]["message"];

    let mut stream_body = body.clone();
    stream_body["stream"] = json!(true);
    let (events, done) = server.stream("/v1/chat/completions", &stream_body);
    assert!(done, "stream ends with [DONE]");
    let mut content = String::new();
    let mut reasoning = String::new();
    for event in &events {
        let delta = &event["choices"][0]["delta"];
        content.push_str(delta["content"].as_str().unwrap_or(""));
        reasoning.push_str(delta["reasoning_content"].as_str().unwrap_or(""));
    }
    assert_eq!(content, message["content"].as_str().unwrap());
    assert_eq!(
        reasoning,
        message
            .get("reasoning_content")
            .map_or("", |r| r.as_str().unwrap())
    );
    let last = &events.last().unwrap()["choices"][0];
    assert_eq!(last["finish_reason"], answer["choices"][0]["finish_reason"]);
}

/// A chat asking for a forced call of `set_flag(on: bool)`, whose arguments are short (but
/// JSON grammars allow runs of up to 20 blanks, which a random model likes). `logit_bias`
/// (byte tokens' ids are their bytes) steers the noise past the free text a format's grammar
/// allows before the call, where it would otherwise ramble until `max_tokens`.
fn forced_call_body(logit_bias: Value) -> Value {
    chat_body(&json!({
        "max_tokens": 512,
        "tools": [{ "type": "function", "function": {
            "name": "set_flag",
            "parameters": {
                "type": "object",
                "properties": { "on": { "type": "boolean" } },
                "required": ["on"],
                "additionalProperties": false,
            },
        }}],
        "tool_choice": "required",
        "logit_bias": logit_bias,
    }))
}

/// The answer to [`forced_call_body`] is one parsed call of `set_flag` and no content: the
/// markup the grammar made the model write is parsed away. Where the format lets the model
/// reason first and nothing steers it out (`may_reason`), reasoning cut off by `max_tokens` is
/// the other right answer.
fn assert_forced_call(answer: &Value, may_reason: bool) {
    let choice = &answer["choices"][0];
    let message = &choice["message"];
    assert_eq!(message["content"], "", "{answer}");
    let Some(calls) = message["tool_calls"].as_array() else {
        assert!(may_reason, "no call: {answer}");
        assert_eq!(choice["finish_reason"], "length", "{answer}");
        assert!(!message["reasoning_content"].as_str().unwrap().is_empty());
        return;
    };
    assert_eq!(choice["finish_reason"], "tool_calls", "{answer}");
    assert_eq!(calls.len(), 1, "{answer}");
    assert_eq!(calls[0]["function"]["name"], "set_flag");
    let arguments = calls[0]["function"]["arguments"].as_str().unwrap();
    let arguments: Value = serde_json::from_str(arguments).unwrap();
    assert!(arguments["on"].is_boolean(), "{answer}");
}

/// A forced call is grammar-constrained Harmony: an optional analysis message, then
/// `<|channel|>commentary to=functions.set_flag <|constrain|>json<|message|>{…}`; `c` over
/// `a` picks the commentary channel.
#[test]
fn forced_tool_call_comes_back_as_harmony_parsed() {
    let (_dir, server) = serve_tiny_gpt_oss(&[]);
    let body = forced_call_body(json!({ "99": 30 }));
    let (status, answer) = server.post("/v1/chat/completions", &body);
    assert_eq!(status, 200, "{answer}");
    assert_forced_call(&answer, false);
}

/// The same model under other formats' templates: the grammar of each format's forced call
/// and its parser agree on real generated text.
#[test]
fn forced_tool_call_round_trips_in_other_formats() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/chat/");
    // DeepSeek R1's prompt leaves `<think>` open: its grammar allows any reasoning before the
    // call, which no static logit bias steers a random model out of.
    let cases = [
        ("templates/mistralai-Mistral-Nemo-Instruct-2407", false),
        ("templates/deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", true),
        ("format-templates/meetkai-functionary-medium-v3.2", false),
        ("format-templates/Qwen3-Coder", false),
    ];
    for (template, may_reason) in cases {
        let file = format!("{data}{template}.jinja");
        let (_dir, server) = serve_tiny_gpt_oss(&["--chat-template-file", &file]);
        let body = forced_call_body(json!({}));
        let (status, answer) = server.post("/v1/chat/completions", &body);
        assert_eq!(status, 200, "{template}: {answer}");
        assert_forced_call(&answer, may_reason);
    }
}
