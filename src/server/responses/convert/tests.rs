//! The Responses → chat mapping, case by case: each row is a Responses body and the chat body
//! (or the 400's message) llama-server makes of it.

use serde_json::{Value, json};

use super::to_chat;
use crate::server::fields::Body;
use crate::wording::responses as words;

fn convert(body: Value) -> Result<Value, String> {
    let body = Body(body.as_object().expect("an object").clone());
    to_chat(&body)
        .map(|chat| Value::Object(chat.0))
        .map_err(|e| e.body()["message"].as_str().unwrap().to_string())
}

#[test]
fn bodies_become_the_chat_bodies_they_mean() {
    let cases = [
        (
            json!({ "input": "hi", "instructions": "be brief", "max_output_tokens": 5 }),
            json!({
                "messages": [
                    { "role": "system", "content": "be brief" },
                    { "role": "user", "content": "hi" },
                ],
                "max_tokens": 5,
            }),
        ),
        (
            json!({ "input": "hi", "reasoning": { "effort": "high" }, "store": false, "n": 2 }),
            json!({
                "messages": [{ "role": "user", "content": "hi" }],
                "reasoning_effort": "high",
                "store": false,
            }),
        ),
        (
            json!({ "input": [{ "role": "user", "content": "a" }] }),
            json!({ "messages": [{
                "role": "user",
                "content": [{ "text": "a", "type": "text" }],
            }] }),
        ),
        (
            json!({ "input": "x", "tools": [
                { "type": "function", "name": "f", "parameters": {} },
                { "type": "web_search" },
            ], "tool_choice": { "type": "function", "name": "f" } }),
            json!({
                "messages": [{ "role": "user", "content": "x" }],
                "tools": [{ "type": "function", "function": {
                    "name": "f", "parameters": {}, "strict": true,
                } }],
                "tool_choice": { "type": "function", "function": { "name": "f" } },
            }),
        ),
        (
            json!({ "input": "x", "tools": [{ "type": "web_search" }] }),
            json!({ "messages": [{ "role": "user", "content": "x" }] }),
        ),
        (
            json!({ "input": "x", "text": { "format": {
                "type": "json_schema", "name": "n", "schema": { "type": "object" },
            } } }),
            json!({
                "messages": [{ "role": "user", "content": "x" }],
                "text": { "format": {
                    "type": "json_schema", "name": "n", "schema": { "type": "object" },
                } },
                "response_format": { "type": "json_schema", "json_schema": {
                    "name": "n", "schema": { "type": "object" },
                } },
            }),
        ),
    ];
    for (body, want) in cases {
        assert_eq!(convert(body.clone()), Ok(want), "{body}");
    }
}

/// A tool round trip as a client sends it back: the assistant's reasoning and call join one
/// assistant message, the call's output is a tool message.
#[test]
fn assistant_items_join_one_turn() {
    let body = json!({ "input": [
        { "role": "user", "content": "weather?" },
        { "type": "reasoning", "id": "rs_1", "summary": [],
          "content": [{ "type": "reasoning_text", "text": "think" }] },
        { "type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "w",
          "arguments": "{}", "status": "completed" },
        { "type": "function_call_output", "call_id": "call_1", "output": "sunny" },
        { "type": "message", "role": "assistant",
          "content": [{ "type": "output_text", "text": "It is sunny." }] },
    ] });
    let chat = convert(body).unwrap();
    assert_eq!(
        chat["messages"],
        json!([
            { "role": "user", "content": [{ "text": "weather?", "type": "text" }] },
            { "role": "assistant", "content": [], "reasoning_content": "think",
              "tool_calls": [{ "function": { "arguments": "{}", "name": "w" },
                               "id": "call_1", "type": "function" }] },
            { "content": "sunny", "role": "tool", "tool_call_id": "call_1" },
            { "role": "assistant", "content": [{ "text": "It is sunny.", "type": "text" }] },
        ])
    );
}

#[test]
fn mistakes_are_named() {
    let cases = [
        (json!({}), words::INPUT_REQUIRED),
        (json!({ "input": 3 }), words::INPUT_TYPE),
        (
            json!({ "input": "x", "previous_response_id": "resp_1" }),
            words::PREVIOUS_RESPONSE_ID,
        ),
        (json!({ "input": [1] }), words::UNKNOWN_ITEM),
        (
            json!({ "input": [{ "type": "nope" }] }),
            words::UNKNOWN_ITEM,
        ),
        (
            json!({ "input": [{ "role": "user", "content": [{ "type": "input_file" }] }] }),
            words::INPUT_FILE,
        ),
        (
            json!({ "input": [{ "role": "user", "content": [{ "type": "input_text" }] }] }),
            words::INPUT_TEXT_NEEDS_TEXT,
        ),
        (
            json!({ "input": [{ "type": "reasoning", "summary": [] }] }),
            words::REASONING_CONTENT_ARRAY,
        ),
        (
            json!({ "input": [{ "type": "function_call_output", "call_id": "c",
                                "output": [{ "type": "output_text" }] }] }),
            words::TOOL_OUTPUT_TYPE,
        ),
        (json!({ "input": "x", "tools": {} }), words::TOOLS_ARRAY),
    ];
    for (body, want) in cases {
        assert_eq!(convert(body.clone()), Err(want.to_string()), "{body}");
    }
}
