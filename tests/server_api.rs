//! The HTTP API against the real binary and the demo model: llama-server's routes, shapes,
//! streaming, errors and cancellation.

mod common;

use std::time::Duration;

use common::{Server, assert_error};
use serde_json::{Value, json};

fn greedy(prompt: &str, n: u32) -> Value {
    json!({ "prompt": prompt, "n_predict": n, "temperature": 0 })
}

#[test]
fn health_models_props_slots() {
    let server = Server::start(&["-np", "2", "--alias", "zeta,demo", "--tags", "b,a"]);
    let (status, health) = server.get("/health");
    assert_eq!((status, health), (200, json!({ "status": "ok" })));

    // Aliases and tags are sorted sets; the first alias is the model's name.
    let (status, models) = server.get("/v1/models");
    assert_eq!(status, 200);
    assert_eq!(models["object"], "list");
    let data = &models["data"][0];
    assert_eq!(data["id"], "demo");
    assert_eq!(data["aliases"], json!(["demo", "zeta"]));
    assert_eq!(data["tags"], json!(["a", "b"]));
    assert_eq!(models["models"][0]["name"], "demo");
    assert!(data["meta"]["n_params"].as_u64().unwrap() > 200_000_000);

    // An explicit -np splits the context between the slots, as llama-server does.
    assert_eq!(data["meta"]["n_ctx"], 2048);
    let (status, props) = server.get("/props");
    assert_eq!(status, 200);
    assert_eq!(props["total_slots"], 2);
    assert_eq!(props["model_alias"], "demo");
    assert_eq!(props["default_generation_settings"]["n_ctx"], 2048);
    assert_eq!(
        props["default_generation_settings"]["params"]["samplers"],
        json!([
            "penalties",
            "dry",
            "top_n_sigma",
            "top_k",
            "typ_p",
            "top_p",
            "min_p",
            "xtc",
            "temperature"
        ])
    );

    let (status, slots) = server.get("/slots");
    assert_eq!(status, 200);
    let slots = slots.as_array().unwrap();
    assert_eq!(slots.len(), 2);
    for slot in slots {
        assert_eq!(slot["is_processing"], false);
        assert_eq!(slot["n_ctx"], 2048);
        assert!(slot.get("id_task").is_none(), "a never-used slot: {slot}");
    }

    // With a unified cache (-kvu, or -np left to auto) each slot may use all of it.
    let unified = Server::start(&["-np", "2", "-kvu"]);
    assert_eq!(
        unified.get("/props").1["default_generation_settings"]["n_ctx"],
        4096
    );
    let auto = Server::start(&[]);
    let props = auto.get("/props").1;
    assert_eq!(props["default_generation_settings"]["n_ctx"], 4096);
    assert_eq!(props["total_slots"], 4);
}

#[test]
fn greedy_completion_is_deterministic_and_matches_its_stream() {
    let server = Server::start(&[]);
    let body = greedy("The three primary colors are", 32);
    let (status, first) = server.post("/completion", &body);
    assert_eq!(status, 200, "{first}");
    let (_, second) = server.post("/completion", &body);
    let text = first["content"].as_str().unwrap();
    assert!(!text.is_empty());
    assert_eq!(
        text, second["content"],
        "greedy output differs between two calls"
    );
    assert_eq!(first["tokens_predicted"], 32);
    assert_eq!(first["stop_type"], "limit");
    assert!(first["timings"]["predicted_per_second"].as_f64().unwrap() > 0.0);
    // The second call reuses the cached prompt.
    assert!(
        second["timings"]["cache_n"].as_u64().unwrap() > 0,
        "{second}"
    );

    let mut stream_body = body.clone();
    stream_body["stream"] = json!(true);
    let (events, _) = server.stream("/completion", &stream_body);
    let streamed: String = events
        .iter()
        .map(|e| e["content"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, text, "stream and non-stream differ");
    let last = events.last().unwrap();
    assert_eq!(last["stop"], true);
    assert_eq!(last["tokens_predicted"], 32);
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|e| e["stop"] == false)
    );
}

#[test]
fn prompt_as_token_ids_and_stop_strings() {
    let server = Server::start(&[]);
    let (_, tokens) = server.post(
        "/tokenize",
        &json!({ "content": "Once upon a time", "add_special": true }),
    );
    let ids = tokens["tokens"].clone();
    let (_, by_ids) = server.post(
        "/completion",
        &json!({ "prompt": ids, "n_predict": 16, "temperature": 0 }),
    );
    let (_, by_text) = server.post("/completion", &greedy("Once upon a time", 16));
    assert_eq!(by_ids["content"], by_text["content"]);

    // Stop at the first word of the greedy continuation that is not at its start.
    let text = by_text["content"].as_str().unwrap();
    let word = text.split_whitespace().nth(2).expect("three words");
    let cut = text.find(word).unwrap();
    let mut body = greedy("Once upon a time", 16);
    body["stop"] = json!([word]);
    for stream in [false, true] {
        body["stream"] = json!(stream);
        let content = if stream {
            let (events, _) = server.stream("/completion", &body);
            let last = events.last().unwrap().clone();
            assert_eq!(last["stop_type"], "word");
            assert_eq!(last["stopping_word"], word);
            events
                .iter()
                .map(|e| e["content"].as_str().unwrap().to_string())
                .collect::<String>()
        } else {
            let (_, done) = server.post("/completion", &body);
            assert_eq!(done["stop_type"], "word");
            done["content"].as_str().unwrap().to_string()
        };
        assert_eq!(content, &text[..cut], "stream={stream}");
    }
}

#[test]
fn tokenize_detokenize_round_trip() {
    let server = Server::start(&[]);
    let text = "Hello, world! Ünïcödé and emoji 🦀 too.";
    let (status, tokens) = server.post("/tokenize", &json!({ "content": text }));
    assert_eq!(status, 200);
    let ids = tokens["tokens"].as_array().unwrap();
    assert!(ids.len() > 5);
    let (_, back) = server.post("/detokenize", &json!({ "tokens": ids }));
    assert_eq!(back["content"], text);

    let (_, pieces) = server.post(
        "/tokenize",
        &json!({ "content": "Hello world", "with_pieces": true }),
    );
    let joined: String = pieces["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["piece"].as_str().unwrap())
        .collect();
    assert_eq!(joined, "Hello world");
    assert!(pieces["tokens"][0]["id"].is_number());
}

#[test]
fn chat_completions_stream_and_not() {
    let server = Server::start(&[]);
    let body = json!({
        "messages": [{ "role": "system", "content": "You are terse." }, { "role": "user", "content": "Name a fruit." }],
        "max_tokens": 12,
        "temperature": 0,
    });
    let (status, reply) = server.post("/v1/chat/completions", &body);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["choices"][0]["message"]["role"], "assistant");
    let content = reply["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!content.is_empty());
    assert_eq!(reply["usage"]["completion_tokens"], 12);
    assert_eq!(reply["choices"][0]["finish_reason"], "length");

    let mut stream_body = body.clone();
    stream_body["stream"] = json!(true);
    stream_body["stream_options"] = json!({ "include_usage": true });
    let (chunks, done) = server.stream("/v1/chat/completions", &stream_body);
    assert!(done, "stream must end with [DONE]");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| {
            c["choices"]
                .get(0)?
                .get("delta")?
                .get("content")?
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(streamed, content);
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 12);
}

#[test]
fn v1_completions() {
    let server = Server::start(&[]);
    let (status, reply) = server.post(
        "/v1/completions",
        &json!({ "prompt": "1, 2, 3,", "max_tokens": 6, "temperature": 0 }),
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["object"], "text_completion");
    // llama-server's ids are chatcmpl- on every OpenAI route.
    assert!(reply["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(reply["usage"]["completion_tokens"], 6);
    let (chunks, done) = server.stream(
        "/v1/completions",
        &json!({ "prompt": "1, 2, 3,", "max_tokens": 6, "temperature": 0, "stream": true }),
    );
    assert!(done);
    let streamed: String = chunks
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, reply["choices"][0]["text"]);
}

#[test]
fn bad_requests_get_llama_server_errors_and_the_server_keeps_serving() {
    let server = Server::start(&["-c", "256"]);
    let long_prompt = "word ".repeat(400);
    let cases: Vec<(&str, String, u16, &str, &str)> = vec![
        (
            "/completion",
            "{not json".into(),
            400,
            "invalid_request_error",
            "parse error",
        ),
        (
            "/completion",
            "[1, 2]".into(),
            400,
            "invalid_request_error",
            "cannot use at() with array",
        ),
        (
            "/completion",
            json!({ "n_predict": 4 }).to_string(),
            400,
            "invalid_request_error",
            "prompt",
        ),
        (
            "/completion",
            json!({ "prompt": "hi", "temperature": "hot" }).to_string(),
            400,
            "invalid_request_error",
            "temperature",
        ),
        (
            "/completion",
            json!({ "prompt": "hi", "n_predict": "many" }).to_string(),
            400,
            "invalid_request_error",
            "n_predict",
        ),
        (
            "/completion",
            json!({ "prompt": "hi", "stop": ["a", 5] }).to_string(),
            400,
            "invalid_request_error",
            "Field 'stop': [json.exception.type_error.302] type must be string, but is number",
        ),
        (
            "/completion",
            json!({ "prompt": [1, 999999999] }).to_string(),
            400,
            "invalid_request_error",
            "Prompt contains invalid tokens",
        ),
        (
            "/completion",
            json!({ "prompt": long_prompt }).to_string(),
            400,
            "exceed_context_size_error",
            "context size",
        ),
        (
            "/v1/chat/completions",
            json!({ "max_tokens": 4 }).to_string(),
            400,
            "invalid_request_error",
            "messages",
        ),
        (
            "/v1/chat/completions",
            json!({ "messages": "hi" }).to_string(),
            400,
            "invalid_request_error",
            "messages",
        ),
        (
            "/v1/chat/completions",
            json!({ "messages": [{ "content": "hi" }] }).to_string(),
            400,
            "invalid_request_error",
            "role",
        ),
        (
            "/detokenize",
            json!({ "tokens": ["a"] }).to_string(),
            400,
            "invalid_request_error",
            "tokens",
        ),
        (
            "/no/such/route",
            "{}".into(),
            404,
            "not_found_error",
            "Not Found",
        ),
    ];
    for (path, body, status, kind, needle) in cases {
        let (got, reply) = server.post_raw(path, &body);
        let message = assert_error(got, &reply, status, kind);
        assert!(
            message.contains(needle),
            "{path} {body}: message {message:?} should mention {needle:?}"
        );
        let (ok, next) = server.post("/completion", &greedy("Hello", 2));
        assert_eq!(
            ok, 200,
            "server stopped serving after {path} {body}: {next}"
        );
    }
    let (status, reply) = server.post("/completion", &json!({ "prompt": long_prompt }));
    assert_eq!(reply["error"]["n_ctx"], 256);
    assert!(reply["error"]["n_prompt_tokens"].as_u64().unwrap() > 256);
    assert_eq!(status, 400);
}

#[test]
fn api_key_is_required_when_set() {
    let server = Server::start(&["--api-key", "s3cret"]);
    let url = format!("{}/completion", server.url);
    let body = greedy("Hi", 2).to_string();
    for auth in [None, Some("Bearer wrong")] {
        let mut request = server.client().post(&url).body(body.clone());
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let r = request.send().unwrap();
        let status = r.status().as_u16();
        assert_error(status, &r.json().unwrap(), 401, "authentication_error");
    }
    let r = server
        .client()
        .post(&url)
        .header("authorization", "Bearer s3cret")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // /health stays public.
    assert_eq!(server.get("/health").0, 200);
}

#[test]
fn a_dropped_stream_frees_the_slot_within_a_second() {
    let server = Server::start(&["-np", "1"]);
    let response = server.start_long_stream();
    let (_, slots) = server.get("/slots");
    assert_eq!(
        slots[0]["is_processing"], true,
        "the stream should still be generating"
    );
    drop(response);
    server.wait_slot_idle(0, Duration::from_secs(1));
    let (status, _) = server.post("/completion", &greedy("Hi", 1));
    assert_eq!(status, 200);
}

#[test]
fn model_file_errors_exit_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let not_gguf = dir.path().join("notes.gguf");
    std::fs::write(&not_gguf, b"PK\x03\x04 not a model").unwrap();
    let truncated = dir.path().join("truncated.gguf");
    let demo = std::fs::read(common::demo_model()).unwrap();
    std::fs::write(&truncated, &demo[..demo.len() / 3]).unwrap();
    for (path, needle) in [
        (dir.path().join("missing.gguf"), "missing.gguf"),
        (not_gguf, "not a GGUF file"),
        (truncated, "truncated.gguf"),
    ] {
        let out = std::process::Command::new(common::binary())
            .args([
                "-m",
                path.to_str().unwrap(),
                "--port",
                &common::free_port().to_string(),
            ])
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{} should fail", path.display());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("gguf-serve:"))
            .collect();
        assert_eq!(lines.len(), 1, "one error line expected, got: {stderr}");
        assert!(
            lines[0].contains(needle),
            "{:?} should mention {needle}",
            lines[0]
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn token_probabilities() {
    let server = Server::start(&[]);
    let mut body = greedy("The sun rises in the", 4);
    body["n_probs"] = json!(3);
    let (status, reply) = server.post("/completion", &body);
    assert_eq!(status, 200, "{reply}");
    let steps = reply["completion_probabilities"]
        .as_array()
        .expect("completion_probabilities");
    assert_eq!(steps.len(), 4);
    for step in steps {
        let top = step["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        let logprobs: Vec<f64> = top.iter().map(|t| t["logprob"].as_f64().unwrap()).collect();
        assert!(
            logprobs.windows(2).all(|w| w[0] >= w[1]),
            "sorted: {logprobs:?}"
        );
        assert!(logprobs[0] <= 0.0);
        // Greedy picks the most likely token.
        assert_eq!(step["id"], top[0]["id"]);
        assert_eq!(step["logprob"], top[0]["logprob"]);
    }

    let chat = json!({
        "messages": [{ "role": "user", "content": "Hi" }],
        "max_tokens": 3, "temperature": 0, "logprobs": true, "top_logprobs": 2,
    });
    let (_, reply) = server.post("/v1/chat/completions", &chat);
    let content = reply["choices"][0]["logprobs"]["content"]
        .as_array()
        .expect("logprobs.content");
    assert_eq!(content.len(), 3);
    assert_eq!(content[0]["top_logprobs"].as_array().unwrap().len(), 2);
}
