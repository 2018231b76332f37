//! `/v1/responses` and the token-count routes over plain HTTP on the demo model: the response
//! object's shape and ids, the named SSE events in llama-server's order, the counts against the
//! generation's usage, `text.format`, and every bad request answered with llama-server's error
//! JSON while the server keeps serving; on the tiny gpt-oss, reasoning (Harmony's analysis
//! channel) as a `reasoning` item and its events.

mod common;

use common::{Server, assert_error};
use serde_json::{Value, json};

/// A greedy request with `extra`'s fields on top.
fn body(extra: Value) -> Value {
    let mut body = json!({
        "instructions": "Answer briefly.",
        "input": "Name a colour.",
        "max_output_tokens": 8,
        "temperature": 0,
    });
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

/// POSTs a stream request and returns its `(event name, data)` pairs and whether the body
/// held anything else (a `[DONE]` line, data without an event name).
fn named_events(server: &Server, path: &str, body: &Value) -> (Vec<(String, Value)>, bool) {
    let response = server
        .client()
        .post(format!("{}{path}", server.url))
        .json(body)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().unwrap();
    let mut events = Vec::new();
    let mut stray = false;
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let lines: Vec<&str> = block.lines().collect();
        match lines.as_slice() {
            [event, data] if event.starts_with("event: ") && data.starts_with("data: ") => {
                events.push((
                    event["event: ".len()..].to_string(),
                    serde_json::from_str(&data["data: ".len()..]).unwrap(),
                ));
            }
            _ => stray = true,
        }
    }
    (events, stray)
}

#[test]
fn response_object_and_stream_events() {
    let server = Server::start(&[]);
    let answer = server
        .client()
        .post(format!("{}/v1/responses", server.url))
        .json(&body(json!({})))
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    let request_id = answer.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let answer: Value = answer.json().unwrap();
    let mut keys: Vec<&str> = answer
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "completed_at",
            "created_at",
            "id",
            "model",
            "object",
            "output",
            "status",
            "usage"
        ]
    );
    assert_eq!(answer["id"], format!("resp_{request_id}"));
    assert_eq!(answer["object"], "response");
    assert_eq!(answer["status"], "completed");
    let output = answer["output"].as_array().unwrap();
    assert_eq!(output.len(), 1, "{answer}");
    let message = &output[0];
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["status"], "completed");
    assert_eq!(message["id"], format!("msg_{request_id}"));
    let part = &message["content"][0];
    assert_eq!(part["type"], "output_text");
    assert_eq!(part["annotations"], json!([]));
    let text = part["text"].as_str().unwrap();
    assert!(!text.is_empty(), "{answer}");
    let usage = &answer["usage"];
    let (input, output_tokens) = (
        usage["input_tokens"].as_u64().unwrap(),
        usage["output_tokens"].as_u64().unwrap(),
    );
    assert!(input > 0 && (1..=8).contains(&output_tokens), "{usage}");
    assert_eq!(usage["total_tokens"], input + output_tokens);
    assert!(usage["input_tokens_details"]["cached_tokens"].is_u64());

    // Streamed: every event named as its `type`, no `[DONE]`, in llama-server's order.
    let (events, stray) = named_events(&server, "/responses", &body(json!({ "stream": true })));
    assert!(!stray, "only named events: {events:?}");
    for (name, data) in &events {
        assert_eq!(data["type"], *name);
    }
    let mut order: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    order.dedup();
    assert_eq!(
        order,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let deltas: String = events
        .iter()
        .filter(|(name, _)| name == "response.output_text.delta")
        .map(|(_, data)| data["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, text, "the stream says what the answer said");
    let id = events[0].1["response"]["id"].as_str().unwrap();
    assert!(id.starts_with("resp_"));
    let (_, completed) = events.last().unwrap();
    assert_eq!(completed["response"]["id"], id);
    assert_eq!(completed["response"]["status"], "completed");
    assert_eq!(
        completed["response"]["output"][0]["content"][0]["text"],
        text
    );
    assert_eq!(
        completed["response"]["usage"]["output_tokens"],
        output_tokens
    );
    assert!(completed["timings"]["predicted_n"].is_u64());

    // The counts are what generation tokenized, on every spelling of the routes.
    for path in ["/v1/responses/input_tokens", "/responses/input_tokens"] {
        let (status, count) = server.post(path, &body(json!({})));
        assert_eq!(status, 200, "{count}");
        assert_eq!(
            count,
            json!({ "input_tokens": input, "object": "response.input_tokens" })
        );
    }
    let messages = json!({ "messages": [
        { "role": "system", "content": "Answer briefly." },
        { "role": "user", "content": "Name a colour." },
    ] });
    for path in [
        "/v1/chat/completions/input_tokens",
        "/chat/completions/input_tokens",
    ] {
        let (status, count) = server.post(path, &messages);
        assert_eq!(status, 200, "{count}");
        assert_eq!(count["input_tokens"], input);
    }
}

#[test]
fn text_format_constrains_the_answer() {
    let server = Server::start(&[]);
    let schema = json!({
        "type": "object",
        "properties": { "blue": { "type": "boolean" } },
        "required": ["blue"],
    });
    let request = body(json!({
        "input": "Is the sky blue?",
        "max_output_tokens": 40,
        "text": { "format": { "type": "json_schema", "name": "answer", "schema": schema } },
    }));
    let (status, answer) = server.post("/v1/responses", &request);
    assert_eq!(status, 200, "{answer}");
    let text = answer["output"][0]["content"][0]["text"].as_str().unwrap();
    let parsed: Value = serde_json::from_str(text).expect("the answer is JSON");
    assert!(parsed["blue"].is_boolean(), "{parsed}");
}

#[test]
fn bad_requests_get_llama_server_errors() {
    let server = Server::start(&[]);
    let cases = [
        ("/v1/responses", json!({}), "'input' is required"),
        ("/v1/responses", json!([1]), "'input' is required"),
        (
            "/v1/responses",
            json!({ "input": 3 }),
            "'input' must be a string or array of objects",
        ),
        (
            "/v1/responses",
            json!({ "input": "x", "previous_response_id": "resp_1" }),
            "llama.cpp does not support 'previous_response_id'.",
        ),
        (
            "/v1/responses",
            json!({ "input": [{ "type": "nope" }] }),
            "Cannot determine type of 'item'",
        ),
        (
            "/v1/responses",
            json!({ "input": [{ "role": "user", "content": [{ "type": "input_file" }] }] }),
            "'input_file' is not supported by llamacpp at this moment",
        ),
        (
            "/v1/responses",
            json!({ "input": "x", "tools": {} }),
            "'tools' must be an array of objects",
        ),
        (
            "/v1/responses",
            json!({ "input": "x", "max_output_tokens": "x" }),
            "Field 'max_tokens': [json.exception.type_error.302] type must be number, but is string",
        ),
        (
            "/v1/responses",
            json!({ "input": "x", "stream": true, "temperature": "hot" }),
            "Field 'temperature': [json.exception.type_error.302] type must be number, but is string",
        ),
        (
            "/v1/responses/input_tokens",
            json!({}),
            "'input' is required",
        ),
    ];
    for (path, request, want) in cases {
        let (status, error) = server.post(path, &request);
        let message = assert_error(status, &error, 400, "invalid_request_error");
        assert_eq!(message, want, "{path} {request}");
    }
    let (status, error) = server.post_raw("/v1/responses", "not json");
    let message = assert_error(status, &error, 400, "invalid_request_error");
    assert!(
        message.starts_with("[json.exception.parse_error.101]"),
        "{message}"
    );
    let (status, error) = server.post("/v1/chat/completions/input_tokens", &json!({}));
    assert_error(status, &error, 400, "invalid_request_error");

    // Still serving.
    let (status, answer) = server.post("/v1/responses", &body(json!({})));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "completed");
}

/// The tiny gpt-oss, steered (`a`, byte token 97, over the other channels' letters) into
/// Harmony's analysis channel by a forced call's grammar, which allows reasoning first: the
/// answer is reasoning cut off by `max_output_tokens`.
#[test]
fn reasoning_comes_as_a_reasoning_item() {
    let (_dir, server) = common::serve_tiny_gpt_oss(&[]);
    let request = json!({
        "input": "Turn the flag on.",
        "tools": [{ "type": "function", "name": "set_flag", "parameters": {
            "type": "object", "properties": { "on": { "type": "boolean" } }, "required": ["on"],
        } }],
        "tool_choice": "required",
        "max_output_tokens": 24,
        "temperature": 0,
        "logit_bias": { "97": 30 },
    });
    let (status, answer) = server.post("/v1/responses", &request);
    assert_eq!(status, 200, "{answer}");
    let item = &answer["output"][0];
    assert_eq!(answer["output"].as_array().unwrap().len(), 1, "{answer}");
    assert_eq!(item["type"], "reasoning", "{answer}");
    assert!(item["id"].as_str().unwrap().starts_with("rs_"));
    assert_eq!(item["summary"], json!([]));
    assert_eq!(item["status"], "completed");
    assert_eq!(item["content"][0]["type"], "reasoning_text");
    let reasoning = item["content"][0]["text"].as_str().unwrap();
    assert!(!reasoning.is_empty(), "{answer}");

    let mut stream = request.clone();
    stream["stream"] = json!(true);
    let (events, stray) = named_events(&server, "/v1/responses", &stream);
    assert!(!stray, "{events:?}");
    let mut order: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    order.dedup();
    assert_eq!(
        order,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_text.delta",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[2].1["item"]["type"], "reasoning");
    assert_eq!(events[2].1["item"]["status"], "in_progress");
    let deltas: String = events
        .iter()
        .filter(|(name, _)| name == "response.reasoning_text.delta")
        .map(|(_, data)| data["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, reasoning);
    let done = &events[events.len() - 2].1["item"];
    assert_eq!(done["content"][0]["text"], reasoning);

    // Sent back, the reasoning is the assistant turn's (continued, as the last message): the
    // count grows by it.
    let (_, alone) = server.post(
        "/v1/responses/input_tokens",
        &json!({ "input": "Turn the flag on." }),
    );
    let with_reasoning = json!({ "input": [
        { "role": "user", "content": "Turn the flag on." },
        item,
    ] });
    let (status, count) = server.post("/v1/responses/input_tokens", &with_reasoning);
    assert_eq!(status, 200, "{count}");
    assert!(
        count["input_tokens"].as_u64() > alone["input_tokens"].as_u64(),
        "{count} {alone}"
    );
}
