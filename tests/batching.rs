//! Continuous batching and the prompt cache, observed from outside: concurrent requests give
//! the same greedy text as sequential ones, a long shared prefix is not evaluated twice, and
//! requests beyond the queue bound get 503 with a retry hint.

mod common;

use std::thread;

use common::{Server, assert_error};
use serde_json::{Value, json};

const PROMPTS: [&str; 4] = [
    "The recipe for bread is",
    "In the year 2050, cities will",
    "My favourite animal is the",
    "To learn a language quickly,",
];

fn body(prompt: &str) -> Value {
    json!({ "prompt": prompt, "n_predict": 24, "temperature": 0, "cache_prompt": false })
}

/// Each step batches the four slots' tokens into one decode, and the text must not change.
/// llama.cpp's CPU matmuls round a lone row (gemv) differently from rows in groups of four
/// (the repacked gemm), so at the default micro-batch the two runs part after a dozen tokens,
/// in llama-server exactly as here. With `-ub 1` llama.cpp computes every row of the batch alone,
/// so what is left to compare is ours: slots, positions, sequence ids and where each slot's
/// logits are read.
#[test]
fn concurrent_streams_match_sequential_requests() {
    let server = Server::start(&["-np", "4", "-ub", "1"]);
    let sequential: Vec<String> = PROMPTS
        .iter()
        .map(|p| {
            server.post("/completion", &body(p)).1["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let concurrent: Vec<String> = thread::scope(|s| {
        let handles: Vec<_> = PROMPTS
            .iter()
            .map(|p| {
                let server = &server;
                s.spawn(move || {
                    let mut b = body(p);
                    b["stream"] = json!(true);
                    let (events, _) = server.stream("/completion", &b);
                    events
                        .iter()
                        .map(|e| e["content"].as_str().unwrap())
                        .collect::<String>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(concurrent, sequential);
}

#[test]
fn a_shared_prefix_is_served_from_the_cache() {
    let server = Server::start(&["-np", "2"]);
    let prefix: String = (0..60)
        .map(|i| format!("Fact {i}: the sky is blue. "))
        .collect();
    let first =
        json!({ "prompt": format!("{prefix}Question one?"), "n_predict": 4, "temperature": 0 });
    let second =
        json!({ "prompt": format!("{prefix}Question two?"), "n_predict": 4, "temperature": 0 });
    let (_, a) = server.post("/completion", &first);
    let (_, b) = server.post("/completion", &second);
    let (a, b) = (&a["timings"], &b["timings"]);
    assert_eq!(a["cache_n"], 0, "{a}");
    let cached = b["cache_n"].as_u64().unwrap();
    let evaluated = b["prompt_n"].as_u64().unwrap();
    assert!(cached > 400, "the shared prefix should be cached: {b}");
    assert!(
        evaluated < 10,
        "only the new suffix should be evaluated: {b}"
    );
    let (t_first, t_second) = (
        a["prompt_ms"].as_f64().unwrap(),
        b["prompt_ms"].as_f64().unwrap(),
    );
    assert!(
        t_second * 5.0 < t_first,
        "time to first token should drop: {t_first} ms then {t_second} ms"
    );

    // OpenAI's usage reports the cached tokens too.
    let chat = json!({ "messages": [{ "role": "user", "content": prefix }], "max_tokens": 2 });
    server.post("/v1/chat/completions", &chat);
    let (_, again) = server.post("/v1/chat/completions", &chat);
    assert!(
        again["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap()
            > 400,
        "{again}"
    );
}

#[test]
fn requests_beyond_the_queue_bound_get_503() {
    let server = Server::start(&["-np", "1", "--max-queue", "1"]);
    let long = json!({ "prompt": "Tell a long story.", "n_predict": 300, "ignore_eos": true, "stream": true });
    let short = json!({ "prompt": "Hi", "n_predict": 1 });
    thread::scope(|s| {
        let busy = s.spawn(|| server.stream("/completion", &long));
        while server.get("/slots").1[0]["is_processing"] != true {
            thread::yield_now();
        }
        // The slot is busy for seconds; of three more requests the queue holds one.
        let others: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let r = server
                        .client()
                        .post(format!("{}/completion", server.url))
                        .json(&short)
                        .send()
                        .unwrap();
                    (
                        r.status().as_u16(),
                        r.headers().get("retry-after").is_some(),
                        r.json::<Value>().unwrap(),
                    )
                })
            })
            .collect();
        let results: Vec<_> = others.into_iter().map(|h| h.join().unwrap()).collect();
        let rejected: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
        assert!(
            !rejected.is_empty(),
            "a request beyond the queue bound must be rejected: {results:?}"
        );
        for (status, retry_after, body) in &rejected {
            assert_error(*status, body, 503, "unavailable_error");
            assert!(retry_after, "503 must carry Retry-After");
        }
        assert!(
            results.iter().all(|r| r.0 == 503 || r.0 == 200),
            "{results:?}"
        );
        assert_eq!(busy.join().unwrap().0.last().unwrap()["stop"], true);
    });
}

/// ggml's CPU work runs on the engine's threads only. Its OpenMP thread pool belongs to the
/// thread that first computed a graph and outlives the work; libgomp counts every pool's idle
/// workers, and once they outnumber the CPUs its barriers sleep on a futex instead of spinning.
/// The planner's measurement of the CPU kernels (made when a folder offers several files) once
/// left such a pool on the main thread, and 2-thread decode on 2 cores ran at 70% CPU per
/// thread and half the speed.
#[test]
fn ggml_threads_are_the_engines_only() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a-Q4_K_M.gguf", "b-Q4_K_M.gguf"] {
        std::os::unix::fs::symlink(common::demo_model(), dir.path().join(name)).unwrap();
    }
    let model = dir.path().display().to_string();
    let args = ["-m", &model, "-c", "1024", "-t", "2", "-np", "1"];
    let server = Server::start_with(&args.map(String::from));
    let (status, _) = server.post("/completion", &json!({"prompt": "Hi", "n_predict": 4}));
    assert_eq!(status, 200);
    let tasks = std::fs::read_dir(format!("/proc/{}/task", server.pid())).expect("/proc");
    let mut names: Vec<String> = tasks
        .map(|t| {
            let comm = t.expect("a task").path().join("comm");
            std::fs::read_to_string(comm)
                .expect("comm")
                .trim()
                .to_string()
        })
        .collect();
    names.sort();
    let engine = names.iter().filter(|n| *n == "engine").count();
    let others: Vec<&String> = names
        .iter()
        .filter(|n| *n != "engine" && *n != "http")
        .collect();
    assert_eq!(
        engine, 2,
        "the engine thread and one ggml worker for -t 2: {names:?}"
    );
    assert_eq!(others.len(), 1, "only the main thread besides: {names:?}");
}
