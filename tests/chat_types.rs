//! Request validation: every rejected request names the field, as the HTTP 400 message shows it.

use gguf_serve::chat::{
    ChatError, MessageContent, ReasoningEffort, ReasoningFormat, Role, ToolChoice, parse_messages,
    parse_tool_choice, parse_tools,
};
use serde_json::{Value, json};

fn field_of(result: Result<impl std::fmt::Debug, ChatError>) -> String {
    match result {
        Err(ChatError::InvalidField { field, .. }) => field,
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

#[test]
fn invalid_requests_name_the_field() {
    let user = json!({"role": "user", "content": "hi"});
    // The shape checks llama-server makes first are its own sentences.
    let llama_cases: Vec<(Value, &str)> = vec![
        (
            json!({"role": "user"}),
            "Expected 'messages' to be an array",
        ),
        (
            json!([{"role": "user"}]),
            "All non-assistant messages must contain 'content'",
        ),
        (
            json!([{"role": "user", "content": 5}]),
            "Expected 'content' to be a string or an array",
        ),
        (
            json!([{"role": "assistant"}]),
            "Assistant message must contain either 'content' or 'tool_calls'!",
        ),
    ];
    for (messages, want) in llama_cases {
        let err = parse_messages(&messages).unwrap_err();
        assert!(matches!(err, ChatError::Request(_)), "{messages}: {err:?}");
        assert_eq!(err.to_string(), want, "{messages}");
    }
    assert!(
        parse_messages(&json!([])).unwrap().is_empty(),
        "no messages is accepted"
    );
    let message_cases: Vec<(Value, &str)> = vec![
        (
            json!([user, {"role": "bot", "content": "x"}]),
            "messages[1].role",
        ),
        (json!([{"content": "x"}]), "messages[0].role"),
        (
            json!([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}]}]),
            "messages[0].content[1].type",
        ),
        (
            json!([{"role": "user", "content": [{"type": "text"}]}]),
            "messages[0].content[0].text",
        ),
        (
            json!([user, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"arguments": "{}"}}]}]),
            "messages[1].tool_calls[0].function.name",
        ),
        (
            json!([user, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": 3}}]}]),
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            json!([{"role": "tool", "content": "x", "tool_call_id": 7}]),
            "messages[0].tool_call_id",
        ),
    ];
    for (messages, want) in message_cases {
        assert_eq!(field_of(parse_messages(&messages)), want, "{messages}");
    }

    let tool_cases: Vec<(Value, &str)> = vec![
        (json!({}), "tools"),
        (json!([{"type": "retrieval"}]), "tools[0].type"),
        (json!([{"type": "function"}]), "tools[0].function"),
        (
            json!([{"type": "function", "function": {"name": ""}}]),
            "tools[0].function.name",
        ),
        (
            json!([{"type": "function", "function": {"name": "f", "parameters": "{}"}}]),
            "tools[0].function.parameters",
        ),
    ];
    for (tools, want) in tool_cases {
        assert_eq!(field_of(parse_tools(Some(&tools))), want, "{tools}");
    }

    assert_eq!(
        field_of(parse_tool_choice(Some(&json!("sometimes")))),
        "tool_choice"
    );
    assert_eq!(
        field_of(parse_tool_choice(Some(&json!({"type": "function"})))),
        "tool_choice.function.name"
    );
    assert_eq!(field_of(ReasoningEffort::parse("max")), "reasoning_effort");
    assert_eq!(
        ReasoningFormat::parse("deepseek-r2")
            .unwrap_err()
            .to_string(),
        "Unknown reasoning format: deepseek-r2"
    );
    let err = parse_messages(&json!([{"role": "bot", "content": "x"}])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Field 'messages[0].role': unknown role \"bot\" (expected system, developer, user, assistant or tool)"
    );
}

#[test]
fn valid_requests_parse() {
    let messages = parse_messages(&json!([
        {"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": null, "reasoning_content": "r", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]},
        {"role": "tool", "tool_call_id": "call_1", "name": "f", "content": "42"}
    ]))
    .unwrap();
    assert_eq!(messages[0].role, Role::Developer);
    assert_eq!(
        messages[0]
            .content
            .as_ref()
            .map(MessageContent::to_text)
            .as_deref(),
        Some("a\nb")
    );
    assert_eq!(messages[1].content, None);
    assert_eq!(
        messages[1].tool_calls[0].arguments, r#"{"x":1}"#,
        "objects become JSON text"
    );
    assert_eq!(messages[2].tool_call_id.as_deref(), Some("call_1"));

    let tools = parse_tools(Some(
        &json!([{"type": "function", "function": {"name": "f"}}]),
    ))
    .unwrap();
    assert_eq!(
        (tools[0].description.as_str(), &tools[0].parameters),
        ("", &json!({}))
    );
    assert_eq!(parse_tools(None).unwrap(), vec![]);

    let choices = [
        (None, ToolChoice::Auto),
        (Some(json!("none")), ToolChoice::None),
        (Some(json!("required")), ToolChoice::Required),
        (
            Some(json!({"type": "function", "function": {"name": "f"}})),
            ToolChoice::Function("f".into()),
        ),
    ];
    for (value, want) in choices {
        assert_eq!(
            parse_tool_choice(value.as_ref()).unwrap(),
            want,
            "{value:?}"
        );
    }
}

#[test]
fn whole_request() {
    use gguf_serve::chat::{ChatOptions, ChatRequest, ChatTemplate, SpecialTokens};
    let options = ChatOptions::default();
    let body = json!({
        "model": "x", "temperature": 0.2,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": "required",
        "reasoning_effort": "high",
        "chat_template_kwargs": {"enable_thinking": false, "builtin_tools": []}
    });
    let request = ChatRequest::from_json(&body, &options).unwrap();
    assert_eq!(request.reasoning_effort, Some(ReasoningEffort::High));
    assert!(request.parses_tool_calls());
    assert!(
        request
            .grammar(gguf_serve::chat::ChatFormat::Hermes)
            .unwrap()
            .is_some()
    );
    let template = ChatTemplate::new(None, SpecialTokens::default()).unwrap();
    let rendered = template.render(&request.render_request()).unwrap();
    assert_eq!(
        rendered.prompt,
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
    let config = request.parser_config(&rendered, ReasoningFormat::None);
    assert_eq!(config.reasoning_format, ReasoningFormat::None);

    let none = ChatRequest::from_json(
        &json!({
            "messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "none"
        }),
        &options,
    )
    .unwrap();
    assert_eq!(
        none.chat_template_kwargs.get("enable_thinking"),
        Some(&json!(false))
    );

    // Mistakes, in llama-server's words: a field's (`Field 'x': …`) or its own sentences.
    let bad: Vec<(Value, &str)> = vec![
        (json!({}), "'messages' is required"),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": []}),
            "Field 'chat_template_kwargs': [json.exception.type_error.302] type must be object, but is array",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": {"reasoning_effort": "max"}}),
            "Field 'chat_template_kwargs.reasoning_effort'",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "grammar": "root ::= \"a\"",
                   "tools": [{"type": "function", "function": {"name": "f"}}]}),
            "Cannot use custom grammar constraints with tools.",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}}),
            "Field 'response_format.type'",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "continue_final_message": true}),
            "Cannot set both add_generation_prompt and continue_final_message to true.",
        ),
        (
            json!({"messages": [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]}),
            "Cannot have 2 or more assistant messages at the end of the list.",
        ),
        (
            json!({"messages": "hi"}),
            "Expected 'messages' to be an array",
        ),
        (
            json!({"messages": [{"role": "user"}]}),
            "All non-assistant messages must contain 'content'",
        ),
    ];
    for (body, want) in bad {
        let err = ChatRequest::from_json(&body, &options)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(want), "{body}: {err}");
    }
}
