//! Behaviour found by running the reference llama-server beside gguf-serve, kept: several
//! prompts and `n` completions, `logit_bias` in llama-server's forms, penalties that see the
//! prompt, the echo of a continued assistant message, counts and timings, post-sampling
//! probabilities, `/slots` after a request, context shift on and off.

mod common;

use common::Server;
use serde_json::{Value, json};

fn greedy(prompt: &str, n: u32) -> Value {
    json!({ "prompt": prompt, "n_predict": n, "temperature": 0 })
}

#[test]
fn several_prompts_and_several_completions() {
    let server = Server::start(&["-np", "2"]);
    // An array of strings is several prompts: an array of results, by index.
    let (status, reply) = server.post(
        "/completion",
        &json!({ "prompt": ["Hello", "The sky is"], "n_predict": 3, "temperature": 0 }),
    );
    assert_eq!(status, 200, "{reply}");
    let results = reply.as_array().expect("an array of results");
    assert_eq!(results.len(), 2);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i);
        assert_eq!(r["tokens_predicted"], 3);
    }
    assert_eq!(results[0]["prompt"], "<bos>Hello");
    // Token ids mixed with text are one prompt.
    let (_, one) = server.post(
        "/completion",
        &json!({ "prompt": [9259, " world"], "n_predict": 2, "temperature": 0 }),
    );
    assert!(one.is_object(), "{one}");
    // n greedy completions of one prompt read it once and agree.
    let (status, chat) = server.post(
        "/v1/chat/completions",
        &json!({ "messages": [{ "role": "user", "content": "Hi" }], "max_tokens": 6, "temperature": 0, "n": 2 }),
    );
    assert_eq!(status, 200, "{chat}");
    let choices = chat["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    assert_eq!(choices[0]["index"], 0);
    assert_eq!(choices[1]["index"], 1);
    assert_eq!(choices[0]["message"], choices[1]["message"]);
    assert_eq!(
        chat["usage"]["completion_tokens"], 6,
        "the first choice's usage"
    );
    // n is at most the number of slots.
    let (status, reply) = server.post("/completion", &json!({ "prompt": "x", "n": 3 }));
    let message = common::assert_error(status, &reply, 400, "invalid_request_error");
    assert_eq!(
        message,
        "Field 'n': Value must be between 1 <= value <= 2, but got 3"
    );
    // A stream carries each choice's chunks with its index, and one [DONE].
    let (events, done) = server.stream(
        "/v1/completions",
        &json!({ "prompt": "Hello", "max_tokens": 3, "temperature": 0, "n": 2, "stream": true }),
    );
    assert!(done);
    for index in [0, 1] {
        let finals: Vec<&Value> = events
            .iter()
            .filter(|e| {
                e["choices"][0]["index"] == index && !e["choices"][0]["finish_reason"].is_null()
            })
            .collect();
        assert_eq!(finals.len(), 1, "{events:?}");
    }
}

#[test]
fn logit_bias_forms_and_penalties_over_the_prompt() {
    let server = Server::start(&[]);
    let first = |body: Value| {
        let (status, reply) = server.post("/completion", &body);
        assert_eq!(status, 200, "{reply}");
        reply["completion_probabilities"][0]["id"].as_i64().unwrap()
    };
    let mut body = greedy("The capital of France is", 1);
    body["n_probs"] = json!(1);
    let plain = first(body.clone());
    // Banning the greedy token by id (pairs, object keys) or by its text changes it.
    let piece = server.post("/detokenize", &json!({ "tokens": [plain] })).1["content"]
        .as_str()
        .unwrap()
        .to_string();
    for bias in [
        json!([[plain, false]]),
        json!({ plain.to_string(): false }),
        json!([[piece, false]]),
        json!({ piece.clone(): -100 }),
    ] {
        let mut b = body.clone();
        b["logit_bias"] = bias.clone();
        assert_ne!(first(b), plain, "{bias}");
    }
    // Entries llama-server skips do not fail the request.
    let mut b = body.clone();
    b["logit_bias"] = json!([[999999999, -1], ["x", "bad"], 5]);
    assert_eq!(first(b), plain);
    // The penalties look back at the prompt: a word the prompt repeats is penalized at once.
    let mut repeated = greedy("Paris is in France. Paris is in France. Paris is in", 1);
    repeated["n_probs"] = json!(1);
    let again = first(repeated.clone());
    repeated["repeat_penalty"] = json!(10.0);
    assert_ne!(first(repeated), again);
}

#[test]
fn counts_timings_probabilities_and_slots() {
    let server = Server::start(&["-np", "1"]);
    let (_, r) = server.post("/completion", &greedy("Once upon a time", 5));
    let evaluated = r["tokens_evaluated"].as_u64().unwrap();
    // The last token was never decoded, so it is not in the cache.
    assert_eq!(r["tokens_cached"], evaluated + 5 - 1);
    let t = &r["timings"];
    let per_token = t["predicted_per_token_ms"].as_f64().unwrap();
    let total = t["predicted_ms"].as_f64().unwrap();
    assert!(
        (per_token - total / 4.0).abs() < 1e-6,
        "4 decode steps after the first token: {t}"
    );
    assert_eq!(r["generation_settings"]["n_predict"], 5);
    // n_predict 0 still gives one token, as llama-server.
    assert_eq!(
        server.post("/completion", &greedy("Hi", 0)).1["tokens_predicted"],
        1
    );
    // Post-sampling probabilities: `prob` and `top_probs`, greedy keeps only its choice.
    let mut body = greedy("1, 2, 3,", 2);
    body["n_probs"] = json!(3);
    body["post_sampling_probs"] = json!(true);
    let (_, r) = server.post("/completion", &body);
    let step = &r["completion_probabilities"][0];
    assert_eq!(step["prob"], 1.0, "{step}");
    assert_eq!(step["top_probs"].as_array().unwrap().len(), 1, "{step}");
    // /slots shows the last task, done.
    let slot = server.get("/slots").1[0].clone();
    assert!(slot["id_task"].is_number(), "{slot}");
    assert_eq!(slot["next_token"][0]["has_next_token"], false);
    assert_eq!(slot["params"]["n_probs"], 3);
}

#[test]
fn a_continued_assistant_message_is_echoed() {
    let server = Server::start(&[]);
    let body = json!({
        "messages": [
            { "role": "user", "content": "Name three colors." },
            { "role": "assistant", "content": "Red," },
        ],
        "max_tokens": 4,
        "temperature": 0,
    });
    let (status, r) = server.post("/v1/chat/completions", &body);
    assert_eq!(status, 200, "{r}");
    let content = r["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.starts_with("Red,"), "{content:?}");
    let mut stream = body.clone();
    stream["stream"] = json!(true);
    let (events, _) = server.stream("/v1/chat/completions", &stream);
    let streamed: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, content);
    // Continuing needs the generation prompt off, as llama-server says.
    let (status, r) = server.post(
        "/v1/chat/completions",
        &json!({ "messages": [{ "role": "user", "content": "Hi" }], "continue_final_message": true }),
    );
    let message = common::assert_error(status, &r, 400, "invalid_request_error");
    assert_eq!(
        message,
        "Cannot set both add_generation_prompt and continue_final_message to true."
    );
}

#[test]
fn context_shift_on_and_off() {
    let body = json!({ "prompt": "Write a story.", "n_predict": 400, "ignore_eos": true, "temperature": 0 });
    let off = Server::start(&["-c", "256", "-np", "1"]);
    let (_, r) = off.post("/completion", &body);
    assert_eq!(r["truncated"], true, "{r}");
    assert_eq!(r["stop_type"], "limit");
    assert!(r["tokens_predicted"].as_u64().unwrap() < 256, "{r}");
    let on = Server::start(&["-c", "256", "-np", "1", "--context-shift"]);
    let (_, r) = on.post("/completion", &body);
    assert_eq!(
        r["tokens_predicted"], 400,
        "generation went on past the context: {r}"
    );
    assert_eq!(r["truncated"], true);
    assert!(r["tokens_cached"].as_u64().unwrap() < 256);
}
