//! A soak run on the demo model (#20): 16 clients for `GGUF_SERVE_SOAK_SECS` seconds (120 by
//! default, the CI version; 1800 for the full run) mixing streamed and whole answers, chat and
//! completion, with 20% of requests cancelled mid-stream and 10% malformed. It checks that no
//! answer is unexpected, that the server's RSS, less the host memory its prompt cache and the
//! slots' context checkpoints hold by design (capped, and shown in `/props`), grows by under 5%
//! after the warm-up, that every slot is free again at the end, and that greedy answers
//! (`cache_prompt: false`) at the end equal those at the start.

mod common;

use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::Server;
use serde_json::json;

const CLIENTS: u64 = 16;
const SLOTS: usize = 4;
const PROMPTS: [&str; 4] = [
    "The recipe for bread is",
    "In the year 2050, cities will",
    "My favourite animal is the",
    "Write a haiku about the sea:",
];

/// A small deterministic generator, one per client: the mix only has to vary, not be strong.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Default)]
struct Tally {
    answered: AtomicU64,
    streamed: AtomicU64,
    cancelled: AtomicU64,
    rejected: AtomicU64,
    unexpected: Mutex<Vec<String>>,
}

impl Tally {
    fn unexpected(&self, what: String) {
        self.unexpected.lock().unwrap().push(what);
    }
}

/// The greedy answers to every prompt, by completion and by chat, without the prompt cache.
fn greedy_answers(server: &Server) -> Vec<String> {
    let mut answers = Vec::new();
    for prompt in PROMPTS {
        let body =
            json!({"prompt": prompt, "n_predict": 16, "temperature": 0, "cache_prompt": false});
        let (status, answer) = server.post("/completion", &body);
        assert_eq!(status, 200, "{answer}");
        answers.push(answer["content"].as_str().unwrap().to_string());
        let body = json!({
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 16, "temperature": 0, "cache_prompt": false,
        });
        let (status, answer) = server.post("/v1/chat/completions", &body);
        assert_eq!(status, 200, "{answer}");
        let content = &answer["choices"][0]["message"]["content"];
        answers.push(content.as_str().unwrap_or_default().to_string());
    }
    answers
}

/// A malformed request of one of a few kinds, and the route it goes to.
fn bad_request(rng: &mut SplitMix) -> (&'static str, String) {
    match rng.below(5) {
        0 => (
            "/completion",
            r#"{"prompt": "Hi", "n_predict": "#.to_string(),
        ),
        1 => (
            "/completion",
            r#"{"prompt": "Hi", "n_predict": "many"}"#.to_string(),
        ),
        2 => (
            "/completion",
            r#"{"prompt": "Hi", "temperature": "hot"}"#.to_string(),
        ),
        3 => (
            "/v1/chat/completions",
            r#"{"messages": "nope"}"#.to_string(),
        ),
        _ => (
            "/v1/chat/completions",
            r#"{"messages": [{"role": 7}]}"#.to_string(),
        ),
    }
}

/// One client's requests until `deadline`.
fn client(server: &Server, seed: u64, deadline: Instant, tally: &Tally) {
    let mut rng = SplitMix(seed);
    let http = server.client();
    while Instant::now() < deadline {
        let roll = rng.below(100);
        let prompt = PROMPTS[rng.below(PROMPTS.len() as u64) as usize];
        let chat = rng.below(2) == 0;
        let (path, mut body) = if chat {
            let messages = json!([{"role": "user", "content": prompt}]);
            ("/v1/chat/completions", json!({"messages": messages}))
        } else {
            ("/completion", json!({"prompt": prompt}))
        };
        body["n_predict"] = json!(8 + rng.below(24));
        body["temperature"] = json!(rng.below(3) as f64 * 0.4);
        if roll < 10 {
            let (path, text) = bad_request(&mut rng);
            let (status, answer) = server.post_raw(path, &text);
            if (400..500).contains(&status) && answer["error"]["message"].is_string() {
                tally.rejected.fetch_add(1, Ordering::Relaxed);
            } else {
                tally.unexpected(format!("{path} {text}: {status} {answer}"));
            }
        } else if roll < 30 {
            // Cancelled: a stream read for its first bytes, then dropped.
            body["stream"] = json!(true);
            body["n_predict"] = json!(256);
            match http
                .post(format!("{}{path}", server.url))
                .json(&body)
                .send()
            {
                Ok(mut response) if response.status() == 200 => {
                    let mut first = [0u8; 64];
                    let _ = response.read(&mut first);
                    tally.cancelled.fetch_add(1, Ordering::Relaxed);
                }
                Ok(response) => tally.unexpected(format!("{path} stream: {}", response.status())),
                Err(e) => tally.unexpected(format!("{path} stream: {e}")),
            }
        } else if roll < 65 {
            body["stream"] = json!(true);
            let (events, done) = server.stream(path, &body);
            // Chat streams end with [DONE]; llama-server's native one with `stop: true`.
            let ended = done || events.last().is_some_and(|e| e["stop"] == true);
            if ended {
                tally.streamed.fetch_add(1, Ordering::Relaxed);
            } else {
                tally.unexpected(format!("{path} stream ended early: {events:?}"));
            }
        } else {
            let (status, answer) = server.post(path, &body);
            let text = if chat {
                &answer["choices"][0]["message"]["content"]
            } else {
                &answer["content"]
            };
            if status == 200 && text.is_string() {
                tally.answered.fetch_add(1, Ordering::Relaxed);
            } else {
                tally.unexpected(format!("{path}: {status} {answer}"));
            }
        }
    }
}

/// The server's resident memory, bytes.
fn rss(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// The host memory the server holds on purpose, bytes: its prompt cache's entries and the
/// slots' context checkpoints, as `/props` counts them (each within its planned limit, checked
/// here).
fn cached(server: &Server) -> u64 {
    let (status, props) = server.get("/props");
    assert_eq!(status, 200, "{props}");
    let memory = &props["memory"];
    let held = |part: &str| {
        let bytes = memory[part]["bytes"].as_u64().unwrap();
        if let Some(limit) = memory[part]["limit_bytes"].as_u64() {
            assert!(
                bytes <= limit,
                "{part}: {bytes} bytes held, {limit} planned"
            );
        }
        bytes
    };
    held("prompt_cache") + held("context_checkpoints")
}

#[test]
fn soak() {
    let seconds: u64 = std::env::var("GGUF_SERVE_SOAK_SECS")
        .map(|s| s.parse().expect("GGUF_SERVE_SOAK_SECS: seconds"))
        .unwrap_or(120);
    let slots = SLOTS.to_string();
    let server = Server::start(&["-np", &slots, "-c", "4096"]);
    let before = greedy_answers(&server);

    let tally = Tally::default();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let warm = start + Duration::from_secs(seconds / 4);
    let mut rss_warm = 0;
    let mut rss_peak = 0;
    let mut cache_peak = 0;
    thread::scope(|s| {
        for seed in 0..CLIENTS {
            let (server, tally) = (&server, &tally);
            s.spawn(move || client(server, seed, deadline, tally));
        }
        while Instant::now() < deadline {
            thread::sleep(Duration::from_secs(1));
            let held = cached(&server);
            let now = rss(&server).saturating_sub(held);
            cache_peak = cache_peak.max(held);
            if Instant::now() < warm {
                rss_warm = rss_warm.max(now);
            } else {
                rss_peak = rss_peak.max(now);
            }
        }
    });

    for id in 0..SLOTS {
        server.wait_slot_idle(id, Duration::from_secs(30));
    }
    let after = greedy_answers(&server);
    let count = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "soak {seconds} s, {CLIENTS} clients: {} answered, {} streamed, {} cancelled, {} rejected; \
         RSS less the caches {:.1} MiB after warm-up, peak {:.1} MiB later (caches up to {:.1} MiB)",
        count(&tally.answered),
        count(&tally.streamed),
        count(&tally.cancelled),
        count(&tally.rejected),
        rss_warm as f64 / 1048576.0,
        rss_peak as f64 / 1048576.0,
        cache_peak as f64 / 1048576.0,
    );
    let unexpected = tally.unexpected.into_inner().unwrap();
    assert!(
        unexpected.is_empty(),
        "{} unexpected answers, the first: {:?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(5)]
    );
    assert!(count(&tally.cancelled) > 0 && count(&tally.rejected) > 0);
    assert!(
        (rss_peak as f64) < rss_warm as f64 * 1.05,
        "RSS less the caches grew from {rss_warm} to {rss_peak} bytes after the warm-up"
    );
    assert_eq!(before, after, "greedy answers changed over the soak");
    let (status, _) = server.get("/health");
    assert_eq!(status, 200);
}
