//! What the HTTP fuzz run (`http_fuzz.rs`) found, one case each: answers that were not
//! llama-server's error JSON, or 5xx for a client's mistake.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

use common::{Server, assert_error};
use serde_json::{Value, json};

/// Sends raw bytes and returns the status and the body parsed as JSON.
fn raw(server: &Server, request: &str, close_after: bool) -> (u16, Value) {
    let mut tcp = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    tcp.write_all(request.as_bytes()).unwrap();
    if close_after {
        tcp.shutdown(Shutdown::Write).unwrap();
    }
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {answer:?}"));
    (status, body)
}

#[test]
fn fuzz_findings_answer_the_error_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    let server = Server::start(&["--slot-save-path", path.as_str()]);

    // A cut body on POST /lora-adapters was axum's text/plain 400.
    let (status, body) = raw(
        &server,
        "POST /lora-adapters HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: 40\r\n\r\n[{\"id\":0,",
        true,
    );
    assert_error(status, &body, 400, "invalid_request_error");

    // A query axum cannot read, and a slot id that is not UTF-8, were text/plain 400s.
    let (status, body) = server.get("/slots?fail_on_no_slot=1&fail_on_no_slot=0");
    assert_error(status, &body, 400, "invalid_request_error");
    let (status, body) = raw(
        &server,
        "POST /slots/%FF?action=erase HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Length: 2\r\n\r\n{}",
        false,
    );
    assert_error(status, &body, 400, "invalid_request_error");

    // Both json_schema and grammar on a chat was a 500 (llama-server's runtime_error).
    let (status, body) = server.post(
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": "Hi"}], "grammar": "root ::= \"a\"",
                "json_schema": {"type": "object"}}),
    );
    assert_eq!(
        assert_error(status, &body, 400, "invalid_request_error"),
        "Cannot use both json_schema and grammar"
    );
    assert_eq!(server.get("/health").0, 200);
}

/// A schema's grammar with a -1e308 frequency penalty (-inf as f32): every logit the grammar
/// allows became -inf or NaN, the sampler picked a token the grammar rejects, and accepting it
/// left llama.cpp's grammar with no stack: GGML_ASSERT(!stacks.empty()) aborted the server at
/// the next step (seed 99 of the fuzz run). Now the request ends with a 400 and the server goes
/// on.
#[test]
fn a_grammar_that_allows_no_token_ends_the_request_not_the_server() {
    let server = Server::start(&["-n", "8"]);
    let schema = json!({"type": "object", "properties": {"a": {"type": "object", "properties":
        {"b": {"type": "array", "items": {"type": "object"}}}}}, "required": ["a", "z"]});
    let body = json!({"input": "Hi", "max_output_tokens": 4, "seed": 1,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        "frequency_penalty": -1e308, "min_p": -2147483648i64});
    let (status, answer) = server.post("/v1/responses", &body);
    let message = assert_error(status, &answer, 400, "invalid_request_error");
    assert!(message.starts_with("the grammar allows none"), "{message}");
    assert_eq!(server.get("/health").0, 200);
    let (status, answer) = server.post("/completion", &json!({"prompt": "Hi", "n_predict": 2}));
    assert_eq!(status, 200, "{answer}");
}
