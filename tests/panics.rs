//! A panic while serving one request ends only that request: a panic in a handler answers 500
//! in llama-server's error JSON (Anthropic's shape under `/v1/messages` is the edge's, tested
//! elsewhere), and a panic on the engine thread while one slot takes its token ends that
//! request (500, or an error event in its stream) while a stream on another slot finishes with
//! the same text it has alone, and the server serves the next requests. The panics come from
//! the test hook (`GGUF_SERVE_TEST_PANIC`), which only the server's environment turns on.

mod common;

use std::thread;
use std::time::Duration;

use common::{Server, assert_error};
use serde_json::{Value, json};

const MARKER: &str = "PANIC-MARKER-7";

fn start() -> Server {
    // `-ub 1`: a row's logits do not depend on what else is in the batch (see batching.rs).
    Server::start_env(
        &["-np", "2", "-ub", "1"],
        &[("GGUF_SERVE_TEST_PANIC", MARKER)],
    )
}

fn greedy(prompt: &str, n: u32) -> Value {
    json!({ "prompt": prompt, "n_predict": n, "temperature": 0, "cache_prompt": false,
            "ignore_eos": true })
}

#[test]
fn a_panicking_handler_answers_500_and_the_server_goes_on() {
    let server = start();
    let (status, body) = server.post("/tokenize", &json!({ "content": format!("x {MARKER}") }));
    let message = assert_error(status, &body, 500, "server_error");
    assert!(message.contains("panicked"), "{message}");
    let (status, body) = server.post("/tokenize", &json!({ "content": "hello" }));
    assert_eq!(status, 200, "{body}");
    assert!(!body["tokens"].as_array().unwrap().is_empty());
    assert_eq!(server.get("/health").0, 200);
}

#[test]
fn an_engine_panic_ends_one_request_and_the_other_slot_goes_on() {
    let server = start();
    let story = "Once upon a time, in a small village,";
    let alone = server.post("/completion", &greedy(story, 64)).1["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!alone.is_empty());

    let (streamed, panicked, panicked_stream) = thread::scope(|s| {
        let stream = s.spawn(|| {
            let mut body = greedy(story, 64);
            body["stream"] = json!(true);
            server.stream("/completion", &body)
        });
        // Wait until the stream's slot is generating, so that the panic lands beside it.
        let start = std::time::Instant::now();
        while server.get("/slots").1[0]["is_processing"] != true
            && server.get("/slots").1[1]["is_processing"] != true
        {
            assert!(start.elapsed() < Duration::from_secs(30), "no slot started");
            thread::sleep(Duration::from_millis(5));
        }
        let panicked = server.post("/completion", &greedy(&format!("Say {MARKER} now"), 16));
        let mut body = greedy(&format!("Say {MARKER} again"), 16);
        body["stream"] = json!(true);
        let panicked_stream = server.stream("/completion", &body);
        (stream.join().unwrap(), panicked, panicked_stream)
    });

    let (status, body) = panicked;
    let message = assert_error(status, &body, 500, "server_error");
    assert!(message.contains("panicked"), "{message}");

    // The streamed request got its first token, then an error event, and no [DONE].
    let (events, done) = panicked_stream;
    let last = events.last().expect("events");
    assert_eq!(last["error"]["code"], 500, "{events:?}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("panicked"),
        "{last}"
    );
    assert!(!done);

    let (events, _) = streamed;
    let text: String = events
        .iter()
        .map(|e| e["content"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(text, alone, "the other slot's stream changed");
    assert_eq!(events.last().unwrap()["stop"], true);

    // Both slots serve again, and the answer is the same.
    assert_eq!(server.get("/health").0, 200);
    for _ in 0..2 {
        let again = server.post("/completion", &greedy(story, 64));
        assert_eq!(again.0, 200, "{}", again.1);
        assert_eq!(again.1["content"], alone);
    }
    let slots = server.get("/slots").1;
    assert!(
        slots
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["is_processing"] == false),
        "{slots}"
    );
}
