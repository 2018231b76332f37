//! Backend sampling (`--sampling backend`, llama-server's `-bs`): the sampler chain runs inside
//! the decode graph. On the CPU backend it runs as ggml ops, so these tests need no GPU: greedy
//! output is token for token the host sampler's, a seeded request is reproducible, requests
//! whose samplers cannot run there (grammars, n_probs) fall back to the host, concurrent
//! requests all finish, and a chain kept on its sequence after a request (so that the next
//! request with the same settings skips llama.cpp's graph re-reserve) chooses as a fresh one.

mod common;

use std::thread;
use std::time::Duration;

use common::Server;
use serde_json::{Value, json};

const PROMPTS: [&str; 3] = [
    "The recipe for bread is",
    "In the year 2050, cities will",
    "To learn a language quickly,",
];

fn greedy(prompt: &str) -> Value {
    json!({
        "prompt": prompt,
        "n_predict": 32,
        "temperature": 0,
        "cache_prompt": false,
        "return_tokens": true,
    })
}

fn completion(server: &Server, body: &Value) -> Value {
    let (status, reply) = server.post("/completion", body);
    assert_eq!(status, 200, "{reply}");
    reply
}

fn tokens(reply: &Value) -> Vec<i64> {
    reply["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect()
}

/// Greedy with penalties and a banned token: the chain's logit_bias and penalties (advanced by
/// accepting each token on the chain) must act as the host sampler's sparse overrides do.
fn penalized(first_token: i64) -> Value {
    json!({
        "prompt": "one, two, one, two, one, two,",
        "n_predict": 32,
        "temperature": 0,
        "repeat_penalty": 1.3,
        "frequency_penalty": 0.2,
        "presence_penalty": 0.2,
        "logit_bias": [[first_token, false]],
        "cache_prompt": false,
        "return_tokens": true,
    })
}

#[test]
fn greedy_backend_sampling_matches_host_sampling() {
    let host = Server::start(&["--sampling", "host"]);
    let expected: Vec<(Vec<i64>, Value)> = PROMPTS
        .iter()
        .map(|p| {
            let r = completion(&host, &greedy(p));
            (tokens(&r), r["content"].clone())
        })
        .collect();
    let banned = expected[0].0[0];
    let expected_penalized = tokens(&completion(&host, &penalized(banned)));
    drop(host);
    // One slot: every request after the first reuses the chain before it when it can.
    let backend = Server::start(&["-bs", "-np", "1"]);
    assert_eq!(backend.get("/props").1["backend_sampling"], json!(true));
    for (prompt, (want_tokens, want_text)) in PROMPTS.iter().zip(&expected) {
        let r = completion(&backend, &greedy(prompt));
        assert_eq!(&tokens(&r), want_tokens, "{prompt}");
        assert_eq!(&r["content"], want_text, "{prompt}");
        assert!(!want_tokens.is_empty());
    }
    let got = tokens(&completion(&backend, &penalized(banned)));
    assert_eq!(got, expected_penalized);
    assert!(!got.contains(&banned));
    // Again on the same, reset chain: the penalties start from no tokens.
    assert_eq!(
        tokens(&completion(&backend, &penalized(banned))),
        expected_penalized
    );
}

#[test]
fn seeded_backend_sampling_is_reproducible_and_falls_back_when_it_must() {
    let server = Server::start(&["--sampling", "backend", "-np", "1"]);
    let seeded = json!({
        "prompt": "Once upon a time",
        "n_predict": 32,
        "temperature": 0.8,
        "top_p": 0.95,
        "seed": 42,
        "cache_prompt": false,
    });
    let first = completion(&server, &seeded)["content"].clone();
    // The chain stays on the slot; reset, its RNG starts from the seed again.
    let second = completion(&server, &seeded)["content"].clone();
    assert_eq!(first, second);
    assert!(!first.as_str().unwrap().is_empty());
    // Another seed replaces the chain; the first seed then comes back on a fresh one.
    let mut other = seeded.clone();
    other["seed"] = json!(7);
    assert_ne!(completion(&server, &other)["content"], first);
    assert_eq!(completion(&server, &seeded)["content"], first);

    // A grammar has no backend implementation: the request samples on the host.
    let schema = json!({
        "prompt": "A person as JSON:",
        "n_predict": 64,
        "temperature": 0,
        "json_schema": {
            "type": "object",
            "properties": { "age": { "type": "integer" } },
            "required": ["age"],
        },
    });
    let reply = completion(&server, &schema);
    let text = reply["content"].as_str().unwrap();
    let parsed: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(parsed["age"].is_i64(), "{text}");

    // n_probs needs the raw logits: host sampling too.
    let probs = json!({
        "prompt": "The capital of France is",
        "n_predict": 4,
        "temperature": 0,
        "n_probs": 3,
    });
    let reply = completion(&server, &probs);
    let steps = reply["completion_probabilities"].as_array().unwrap();
    assert_eq!(steps.len(), 4, "{reply}");
    for step in steps {
        assert_eq!(step["top_logprobs"].as_array().unwrap().len(), 3, "{step}");
    }
}

#[test]
fn concurrent_requests_with_backend_sampling_all_finish() {
    let server = Server::start(&["--sampling", "backend", "-np", "4"]);
    let prompts = [
        "My favourite animal is the",
        "The recipe for bread is",
        "In the year 2050, cities will",
        "To learn a language quickly,",
    ];
    let replies: Vec<Value> = thread::scope(|s| {
        let handles: Vec<_> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let server = &server;
                s.spawn(move || {
                    // Greedy and sampled requests side by side in one batch.
                    let body = json!({
                        "prompt": p,
                        "n_predict": 24,
                        "temperature": if i % 2 == 0 { 0.0 } else { 0.8 },
                        "seed": i,
                        "repeat_penalty": 1.1,
                        "cache_prompt": false,
                    });
                    completion(server, &body)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for reply in &replies {
        assert!(reply["tokens_predicted"].as_u64().unwrap() > 0, "{reply}");
    }
    // Every request ended: the slots are idle (their chains stay; /slots shows the last task,
    // done) and a new request works.
    let slots = server.get("/slots").1;
    for slot in slots.as_array().unwrap() {
        assert_eq!(slot["is_processing"], json!(false), "{slot}");
        assert_eq!(
            slot["next_token"][0]["has_next_token"],
            json!(false),
            "{slot}"
        );
    }
    let r = completion(&server, &greedy(PROMPTS[0]));
    assert!(!tokens(&r).is_empty());
}

/// A slot serving a request shows its chain in /slots; a client that goes away frees the slot,
/// and the next request still samples on the backend.
#[test]
fn a_dropped_stream_frees_its_slot() {
    let server = Server::start(&["--sampling", "backend", "-np", "1"]);
    let response = server.start_long_stream();
    let slot = server.get("/slots").1[0].clone();
    assert_eq!(slot["is_processing"], json!(true), "{slot}");
    assert_eq!(slot["params"]["backend_sampling"], json!(true), "{slot}");
    drop(response);
    server.wait_slot_idle(0, Duration::from_secs(5));
    let slot = server.get("/slots").1[0].clone();
    assert_eq!(
        slot["next_token"][0]["has_next_token"],
        json!(false),
        "{slot}"
    );
    let r = completion(&server, &greedy(PROMPTS[1]));
    assert!(r["tokens_predicted"].as_u64().unwrap() > 0, "{r}");
}

/// A greedy chain stays attached between greedy requests (no re-reserve per request); a
/// request that needs the logits still gets fresh ones on that sequence, and greedy requests
/// after it still match.
#[test]
fn a_kept_greedy_chain_gives_way_to_host_sampling() {
    let server = Server::start(&["--sampling", "backend", "-np", "1"]);
    let prompt = "The capital of France is";
    let first = tokens(&completion(&server, &greedy(prompt)));
    let mut with_probs = greedy(prompt);
    with_probs["n_probs"] = json!(2);
    let reply = completion(&server, &with_probs);
    let steps = reply["completion_probabilities"].as_array().unwrap();
    let chosen: Vec<i64> = steps.iter().map(|s| s["id"].as_i64().unwrap()).collect();
    assert_eq!(chosen, first, "host greedy after a kept chain: {reply}");
    for step in steps {
        assert_eq!(
            step["top_logprobs"][0]["id"], step["id"],
            "stale logits: {step}"
        );
    }
    assert_eq!(tokens(&completion(&server, &greedy(prompt))), first);
}
