//! Table tests of the Anthropic → chat mapping: each Anthropic body and the chat body it
//! becomes (or the error it gets).

use serde_json::{Value, json};

use super::*;

fn convert(body: Value) -> Result<Value, String> {
    let Value::Object(map) = body else {
        panic!("bodies are objects")
    };
    to_chat_body(&Body(map))
        .map(|b| Value::Object(b.0))
        .map_err(|e| e.message)
}

#[test]
fn maps_onto_the_chat_request() {
    let cases = [
        (
            "string content, system blocks joined, defaults",
            json!({
                "system": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}],
                "messages": [{"role": "user", "content": "Hi"}],
            }),
            json!({
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                ],
                "max_tokens": 4096,
                "timings_per_token": true,
            }),
        ),
        (
            "a tool round trip: tool_use, then tool_result blocks become tool messages",
            json!({
                "max_tokens": 16,
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Weather?", "cache_control": {"type": "ephemeral"}}]},
                    {"role": "assistant", "content": [
                        {"type": "thinking", "thinking": "use the tool", "signature": ""},
                        {"type": "redacted_thinking", "data": "xx"},
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18"}, {"type": "text", "text": "C"}]},
                        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "failed", "is_error": true},
                    ]},
                ],
                "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "tool", "name": "get_weather"},
                "stop_sequences": ["END"],
                "temperature": 0,
                "top_k": 1,
                "stream": true,
                "metadata": {"user_id": "u"},
                "thinking": {"type": "enabled", "budget_tokens": 1024},
            }),
            json!({
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
                    {"role": "assistant", "content": "", "reasoning_content": "use the tool",
                     "tool_calls": [{"id": "toolu_1", "type": "function",
                                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                    {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
                    {"role": "tool", "tool_call_id": "toolu_2", "content": "failed"},
                ],
                "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}}],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "stop": ["END"],
                "max_tokens": 16,
                "temperature": 0,
                "top_k": 1,
                "stream": true,
                "timings_per_token": true,
            }),
        ),
        (
            "tool_choice any and none; an assistant turn without content is dropped",
            json!({
                "messages": [{"role": "user", "content": "x"}, {"role": "assistant"}],
                "tool_choice": {"type": "none"},
            }),
            json!({
                "messages": [{"role": "user", "content": "x"}],
                "tool_choice": "none",
                "max_tokens": 4096,
                "timings_per_token": true,
            }),
        ),
    ];
    for (what, body, want) in cases {
        assert_eq!(convert(body), Ok(want), "{what}");
    }
    let any = convert(json!({"messages": [], "tool_choice": {"type": "any"}})).unwrap();
    assert_eq!(any["tool_choice"], "required");
}

#[test]
fn refuses_what_it_cannot_serve() {
    let image = json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}});
    let cases = [
        (json!({}), "'messages' is required"),
        (
            json!({"messages": "hi"}),
            "Field 'messages': [json.exception.type_error.302] type must be array, but is string",
        ),
        (
            json!({"messages": [{"role": "user", "content": [image]}]}),
            "Field 'messages[0].content[0].type': image input is not supported: this server has no multimodal model loaded",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [image]}]}]}),
            "Field 'messages[0].content[0].content[0].type': image input is not supported: this server has no multimodal model loaded",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "text"}]}]}),
            "Field 'messages[0].content[0].text': missing or not a string",
        ),
        (
            json!({"messages": [], "tools": [{"description": "no name"}]}),
            "Field 'tools[0].name': missing or not a string",
        ),
    ];
    for (body, want) in cases {
        assert_eq!(convert(body.clone()), Err(want.to_string()), "{body}");
    }
}

#[test]
fn claude_codes_billing_stamp_is_made_steady() {
    let cases = [
        (
            "x-anthropic-billing-header: cc_version=2.1; cch=a5145;You are Claude Code.",
            "x-anthropic-billing-header: cc_version=2.1; cch=fffff;You are Claude Code.",
        ),
        // Not at the start, or not five characters then `;`: left alone.
        (
            "Hi. x-anthropic-billing-header: cch=a5145;",
            "Hi. x-anthropic-billing-header: cch=a5145;",
        ),
        (
            "x-anthropic-billing-header: cch=a51;",
            "x-anthropic-billing-header: cch=a51;",
        ),
    ];
    for (system, want) in cases {
        let chat = convert(json!({ "system": system, "messages": [] })).unwrap();
        assert_eq!(chat["messages"][0]["content"], want);
        let blocks = json!([{ "type": "text", "text": system }]);
        let chat = convert(json!({ "system": blocks, "messages": [] })).unwrap();
        assert_eq!(chat["messages"][0]["content"], want);
    }
}
