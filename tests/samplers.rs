//! The samplers llama-server runs only when `samplers` names them: adaptive-p (`adaptive_p`,
//! `a`; `adaptive_target`, `adaptive_decay`, `--adaptive-target`, `--adaptive-decay`) and
//! infill (`infill`, `i`). On the demo model: adaptive-p steers the chosen tokens' probability
//! towards its target, samples as `dist` with a negative one, and is seeded; infill's end of
//! text ends an answer even under `ignore_eos`; the flags reach
//! `/props` and requests; the fields are clamped or refused in llama-server's words; and (an
//! ignored test that needs the reference llama-server) the same seeded requests give the same
//! text as llama-server's.

mod common;

use serde_json::{Value, json};

use common::{Server, assert_error, demo_args};

/// A sampled completion of 48 tokens with seed 5 and the probabilities of each chosen token
/// (before sampling), over `fields`.
fn sampled(server: &Server, fields: Value) -> Value {
    let mut body = json!({
        "prompt": "Write a short story about a lighthouse keeper.",
        "n_predict": 48,
        "seed": 5,
        "temperature": 1.0,
        "top_k": 40,
        "n_probs": 1,
        "cache_prompt": false,
        "ignore_eos": true,
    });
    body.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    let (status, reply) = server.post("/completion", &body);
    assert_eq!(status, 200, "{reply}");
    reply
}

/// The mean probability the model gave the tokens it was made to choose.
fn mean_chosen_probability(reply: &Value) -> f64 {
    let probs = reply["completion_probabilities"].as_array().unwrap();
    let chosen: Vec<f64> = probs
        .iter()
        .map(|p| p["logprob"].as_f64().unwrap().exp())
        .collect();
    chosen.iter().sum::<f64>() / chosen.len() as f64
}

#[test]
fn adaptive_p_steers_towards_its_target_and_is_seeded() {
    let server = Server::start(&["-np", "1"]);
    let plain = sampled(&server, json!({ "samplers": ["top_k", "temperature"] }));
    let adaptive = |target: f64| {
        sampled(
            &server,
            json!({ "samplers": ["top_k", "temperature", "adaptive_p"], "adaptive_target": target }),
        )
    };
    // A negative target leaves the choice to the distribution, with the same seed as `dist`.
    assert_eq!(adaptive(-1.0)["content"], plain["content"]);
    let low = adaptive(0.05);
    let high = adaptive(0.9);
    assert_ne!(low["content"], plain["content"]);
    assert_eq!(adaptive(0.05)["content"], low["content"], "seeded");
    let (low_p, plain_p, high_p) = (
        mean_chosen_probability(&low),
        mean_chosen_probability(&plain),
        mean_chosen_probability(&high),
    );
    assert!(
        low_p < 0.5 * plain_p && plain_p < high_p,
        "mean probability of the chosen tokens: target 0.05 {low_p:.3}, dist {plain_p:.3}, \
         target 0.9 {high_p:.3}"
    );
    // Named as letters; wherever it is named it chooses last.
    let letters = sampled(
        &server,
        json!({ "samplers": "akt", "adaptive_target": 0.05 }),
    );
    assert_eq!(letters["content"], low["content"]);
    assert_eq!(
        letters["generation_settings"]["samplers"],
        json!(["adaptive_p", "top_k", "temperature"])
    );
    // infill chooses the end of text when it finds no likely text token, past `ignore_eos`'s
    // ban, and that token ends the answer, as in llama-server (this seed meets it at once).
    let infill = sampled(
        &server,
        json!({ "samplers": "kita", "adaptive_target": 0.1, "adaptive_decay": 0.5 }),
    );
    assert_eq!(
        infill["generation_settings"]["samplers"],
        json!(["top_k", "infill", "temperature", "adaptive_p"])
    );
    assert_eq!(infill["stop_type"], "eos", "{infill}");
    assert!(
        infill["tokens_predicted"].as_u64().unwrap() < 48,
        "{infill}"
    );
}

#[test]
fn adaptive_p_flags_and_fields() {
    let flags = [
        "--adaptive-target",
        "0.25",
        "--adaptive-decay",
        "0.5",
        "--samplers",
        "top_k;temperature;adaptive_p",
    ];
    let server = Server::start(&flags);
    let params = &server.get("/props").1["default_generation_settings"]["params"];
    assert_eq!(params["adaptive_target"], json!(0.25), "{params}");
    assert_eq!(params["adaptive_decay"], json!(0.5), "{params}");
    assert_eq!(
        params["samplers"],
        json!(["top_k", "temperature", "adaptive_p"])
    );
    // Requests inherit them; a target above 1 is clamped, as llama-server clamps it.
    let (status, reply) = server.post(
        "/completion",
        &json!({ "prompt": "Hi", "n_predict": 2, "adaptive_target": 7.5 }),
    );
    assert_eq!(status, 200, "{reply}");
    let settings = &reply["generation_settings"];
    assert_eq!(settings["adaptive_target"], json!(1.0), "{settings}");
    assert_eq!(settings["adaptive_decay"], json!(0.5), "{settings}");
    // The decay has hard limits.
    let (status, reply) = server.post(
        "/completion",
        &json!({ "prompt": "Hi", "n_predict": 2, "adaptive_decay": 1.5 }),
    );
    let message = assert_error(status, &reply, 400, "invalid_request_error");
    assert_eq!(
        message,
        "Field 'adaptive_decay': Value must be between 0.000000 <= value <= 0.990000, but got \
         1.500000"
    );
    // --sampling-seq takes the letters.
    let letters = Server::start(&["--sampling-seq", "kia"]);
    let params = &letters.get("/props").1["default_generation_settings"]["params"];
    assert_eq!(params["samplers"], json!(["top_k", "infill", "adaptive_p"]));
}

/// The same seeded requests, on the same command lines, give gguf-serve and the reference
/// llama-server the same text.
#[test]
#[ignore = "needs the reference llama-server: GGUF_SERVE_LLAMA_SERVER"]
fn the_same_text_as_llama_server() {
    let reference = common::reference_llama_server();
    let bodies = [
        json!({ "samplers": ["top_k", "temperature", "adaptive_p"], "adaptive_target": 0.3 }),
        json!({ "samplers": "kita", "adaptive_target": 0.1, "adaptive_decay": 0.5 }),
        json!({ "samplers": ["top_k", "infill"] }),
        json!({ "samplers": ["penalties", "top_k", "infill", "temperature", "adaptive_p"],
                "adaptive_target": 0.6, "repeat_penalty": 1.3 }),
        json!({}),
    ];
    let runs = [
        demo_args(&["-np", "1"]),
        demo_args(&[
            "-np",
            "1",
            "--adaptive-target",
            "0.2",
            "--adaptive-decay",
            "0.7",
            "--samplers",
            "top_k;min_p;temperature;adaptive_p",
        ]),
    ];
    for args in &runs {
        let texts = |server: &Server| -> Vec<Value> {
            bodies
                .iter()
                .map(|fields| sampled(server, fields.clone())["content"].clone())
                .collect()
        };
        let ours = texts(&Server::start_with(args));
        let theirs = texts(&Server::start_program(&reference, args));
        for ((fields, ours), theirs) in bodies.iter().zip(&ours).zip(&theirs) {
            assert_eq!(ours, theirs, "{args:?} {fields}");
        }
    }
}
