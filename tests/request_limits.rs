//! Per-request limits at the edge, on every generation protocol: `--max-n-predict` refuses a
//! larger `n_predict`/`max_tokens`/`max_output_tokens` with llama-server's 400 (Anthropic's
//! shape on `/v1/messages`) and caps an unlimited request; `-n` is llama-server's default and
//! ceiling; stop strings, `logit_bias` and `n_probs` are bounded.

mod common;

use common::{Server, assert_error};
use serde_json::{Value, json};

fn predicted(body: &Value) -> u64 {
    body["tokens_predicted"].as_u64().unwrap()
}

#[test]
fn max_n_predict_refuses_more_and_caps_unlimited_requests() {
    let server = Server::start(&["--max-n-predict", "6"]);
    let long = |extra: Value| {
        let mut body = json!({"prompt": "Tell me a story", "ignore_eos": true, "temperature": 0});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let (status, body) = server.post("/completion", &long(json!({"n_predict": 7})));
    assert_eq!(
        assert_error(status, &body, 400, "invalid_request_error"),
        "Field 'n_predict': Value must be between -1 <= value <= 6, but got 7"
    );
    let (status, body) = server.post("/completion", &long(json!({"n_predict": 6})));
    assert_eq!((status, predicted(&body)), (200, 6), "{body}");
    let (status, body) = server.post("/completion", &long(json!({"n_predict": -1})));
    assert_eq!(
        (status, predicted(&body)),
        (200, 6),
        "unlimited is capped: {body}"
    );
    let (status, body) = server.post("/completion", &long(json!({})));
    assert_eq!(
        (status, predicted(&body)),
        (200, 6),
        "absent is capped: {body}"
    );

    let chat =
        |max: Value| json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": max});
    let (status, body) = server.post("/v1/chat/completions", &chat(json!(100)));
    assert_eq!(
        assert_error(status, &body, 400, "invalid_request_error"),
        "Field 'max_tokens': Value must be between -1 <= value <= 6, but got 100"
    );
    let (status, body) = server.post("/v1/completions", &json!({"prompt": "Hi", "max_tokens": 7}));
    assert_error(status, &body, 400, "invalid_request_error");
    let (status, body) = server.post(
        "/v1/responses",
        &json!({"input": "Hi", "max_output_tokens": 50}),
    );
    assert_error(status, &body, 400, "invalid_request_error");
    let (status, body) = server.post(
        "/v1/messages",
        &json!({"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    let (status, body) = server.post(
        "/v1/messages",
        &json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]}),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn n_predict_flag_is_the_default_and_a_ceiling_as_in_llama_server() {
    let server = Server::start(&["-n", "5"]);
    for asked in [json!(null), json!(-1), json!(50), json!(3)] {
        let body = json!({"prompt": "Tell me a story", "ignore_eos": true, "n_predict": asked});
        let (status, answer) = server.post("/completion", &body);
        let want = if asked == json!(3) { 3 } else { 5 };
        assert_eq!(
            (status, predicted(&answer)),
            (200, want),
            "n_predict {asked}"
        );
    }
}

#[test]
fn stop_strings_logit_bias_and_n_probs_are_bounded() {
    let server = Server::start(&[]);
    let stops: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
    let (status, body) = server.post("/completion", &json!({"prompt": "Hi", "stop": stops}));
    assert_eq!(
        assert_error(status, &body, 400, "invalid_request_error"),
        "Field 'stop': at most 64 stop strings are accepted, but got 65"
    );
    let (status, body) = server.post(
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": "Hi"}], "stop": "x".repeat(300)}),
    );
    assert_eq!(
        assert_error(status, &body, 400, "invalid_request_error"),
        "Field 'stop': a stop string may be at most 256 bytes long, but one is 300 bytes"
    );
    let stops: Vec<String> = (0..64).map(|i| format!("s{i}")).collect();
    let (status, body) = server.post(
        "/completion",
        &json!({"prompt": "Hi", "stop": stops, "n_predict": 2}),
    );
    assert_eq!(status, 200, "{body}");

    let n_vocab = server.get("/v1/models").1["data"][0]["meta"]["n_vocab"]
        .as_u64()
        .expect("n_vocab in /v1/models");
    let bias: Vec<Value> = (0..=n_vocab).map(|i| json!([i % 100, 1.0])).collect();
    let (status, body) = server.post(
        "/completion",
        &json!({"prompt": "Hi", "n_predict": 1, "logit_bias": bias}),
    );
    assert_eq!(
        assert_error(status, &body, 400, "invalid_request_error"),
        format!(
            "Field 'logit_bias': at most {n_vocab} entries (the vocabulary's size) are accepted, \
             but got {}",
            n_vocab + 1
        )
    );

    // n_probs beyond the vocabulary lists the whole vocabulary, as llama-server does.
    let (status, body) = server.post(
        "/completion",
        &json!({"prompt": "Hi", "n_predict": 1, "n_probs": 1_000_000_000_000i64}),
    );
    assert_eq!(status, 200, "{body}");
    let top = body["completion_probabilities"][0]["top_logprobs"]
        .as_array()
        .or_else(|| body["completion_probabilities"][0]["top_probs"].as_array())
        .expect("top probabilities");
    assert_eq!(top.len() as u64, n_vocab);
}
