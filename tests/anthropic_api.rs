//! The Messages API over raw HTTP, where a client library would hide the wire: errors in
//! Anthropic's shape with their statuses (from the handler and from the edge: API key, bad
//! JSON, unknown paths), both key headers, the SSE event names and their order, and
//! `count_tokens` against the prompt `/v1/messages` runs.

mod common;

use common::Server;
use serde_json::{Value, json};

/// Asserts Anthropic's error shape and status; returns the message.
fn assert_anthropic_error(status: u16, body: &Value, want_status: u16, want_type: &str) -> String {
    assert_eq!(status, want_status, "status for {body}");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], want_type, "{body}");
    assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    body["error"]["message"].as_str().unwrap().to_string()
}

fn greedy(max_tokens: u64) -> Value {
    json!({
        "model": "demo",
        "max_tokens": max_tokens,
        "temperature": 0,
        "messages": [{ "role": "user", "content": "Count to five." }],
    })
}

/// One SSE stream's events as (name, data) pairs.
fn sse_events(server: &Server, body: &Value) -> Vec<(String, Value)> {
    let response = server
        .client()
        .post(format!("{}/v1/messages", server.url))
        .json(body)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().unwrap();
    assert!(!text.contains("[DONE]"), "no [DONE] in Anthropic streams");
    text.split("\n\n")
        .filter(|chunk| !chunk.trim().is_empty())
        .map(|chunk| {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in chunk.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap();
                }
            }
            assert_eq!(data["type"], name.as_str(), "event name is the data's type");
            (name, data)
        })
        .collect()
}

#[test]
fn errors_are_anthropic_shaped_and_the_server_keeps_serving() {
    let server = Server::start(&[]);
    let cases = [
        (json!({ "max_tokens": 4 }), 400, "'messages' is required"),
        (
            json!({ "max_tokens": "many", "messages": [{ "role": "user", "content": "hi" }] }),
            400,
            "max_tokens",
        ),
        (
            json!({ "messages": [{ "role": "user", "content": [{ "type": "image", "source": {} }] }] }),
            400,
            "image input is not supported",
        ),
        (
            json!({ "messages": [{ "role": "wizard", "content": "hi" }] }),
            400,
            "role",
        ),
    ];
    for (body, status, words) in cases {
        let (got, answer) = server.post("/v1/messages", &body);
        let message = assert_anthropic_error(got, &answer, status, "invalid_request_error");
        assert!(message.contains(words), "{message} lacks {words}");
    }
    let (status, answer) = server.post_raw("/v1/messages", "{not json");
    assert_anthropic_error(status, &answer, 400, "invalid_request_error");
    let (status, answer) = server.post_raw("/v1/messages/count_tokens", "[]");
    assert_anthropic_error(status, &answer, 400, "invalid_request_error");
    let (status, answer) = server.post("/v1/messages/batches", &json!({}));
    assert_anthropic_error(status, &answer, 404, "not_found_error");
    let (status, answer) = server.get("/v1/messages");
    assert_anthropic_error(status, &answer, 404, "not_found_error");
    // Other routes keep llama-server's error JSON.
    let (status, answer) = server.post("/v1/chat/completions", &json!({}));
    common::assert_error(status, &answer, 400, "invalid_request_error");

    let (status, answer) = server.post("/v1/messages", &greedy(4));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stop_reason"], "max_tokens");
}

#[test]
fn api_key_from_either_header_and_anthropic_401s() {
    let server = Server::start(&["--api-key", "sk-right"]);
    let url = format!("{}/v1/messages", server.url);
    let send = |header: Option<(&str, &str)>| {
        let mut request = server.client().post(&url).json(&greedy(2));
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().unwrap())
    };
    for header in [None, Some(("x-api-key", "sk-wrong"))] {
        let (status, body) = send(header);
        let message = assert_anthropic_error(status, &body, 401, "authentication_error");
        assert_eq!(message, "Invalid API Key");
    }
    for header in [
        ("x-api-key", "sk-right"),
        ("authorization", "Bearer sk-right"),
    ] {
        let (status, body) = send(Some(header));
        assert_eq!(status, 200, "{header:?}: {body}");
        assert_eq!(body["type"], "message");
    }
}

#[test]
fn stream_events_in_anthropic_order_and_agreeing_with_the_whole_answer() {
    let server = Server::start(&[]);
    let (status, whole) = server.post("/v1/messages", &greedy(12));
    assert_eq!(status, 200, "{whole}");
    assert!(whole["id"].as_str().unwrap().starts_with("msg_"));
    let text = whole["content"][0]["text"].as_str().unwrap();

    let mut body = greedy(12);
    body["stream"] = json!(true);
    let events = sse_events(&server, &body);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let n = names.len();
    assert_eq!(names[..3], ["message_start", "ping", "content_block_start"]);
    assert_eq!(
        names[n - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert!(
        names[3..n - 3].iter().all(|&n| n == "content_block_delta"),
        "{names:?}"
    );
    let start = &events[0].1["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(start["usage"]["output_tokens"], 0);
    let streamed: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(streamed, text);
    let delta = &events[n - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], whole["stop_reason"]);
    assert_eq!(
        delta["usage"]["output_tokens"],
        whole["usage"]["output_tokens"]
    );

    // count_tokens: the prompt the route runs (all of it: cached or not).
    let (status, counted) = server.post("/v1/messages/count_tokens", &greedy(12));
    assert_eq!(status, 200, "{counted}");
    let usage = &whole["usage"];
    let prompt = usage["input_tokens"].as_u64().unwrap()
        + usage["cache_read_input_tokens"].as_u64().unwrap();
    assert_eq!(counted, json!({ "input_tokens": prompt }));
}
