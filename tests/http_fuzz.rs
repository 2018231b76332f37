//! An HTTP fuzz run against the real binary: malformed requests on every route (random JSON
//! types in every known field, wrong methods, bad content types, cut bodies, huge and negative
//! numbers, unicode, random GBNF grammars and JSON-schema edge cases) from a few clients at
//! once, while a watchdog sends a tiny greedy `/completion` every 0.5 s and fails the run if one
//! takes longer than its budget (an engine stall). Checks: no 5xx but 503 (busy) and 501 (a
//! documented "not supported"), every error body llama-server's error JSON (Anthropic's under
//! `/v1/messages`, Ollama's under `/api/`), no error event with a 5xx inside a stream (no
//! error line at all in Ollama's), and afterwards the server answers a normal request as it
//! did before the run.
//!
//! The default run (`GGUF_SERVE_FUZZ_REQUESTS`, 2 500) takes about a minute on two cores;
//! `GGUF_SERVE_FUZZ_REQUESTS=10000` is the full run. `GGUF_SERVE_FUZZ_SEED` replays a run (the
//! seed is printed).

mod common;
#[path = "http_fuzz/inputs.rs"]
mod inputs;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use inputs::Rng;
use serde_json::{Value, json};

/// The router's routes (src/server/mod.rs) with their methods, and a few it does not have.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/v1/health"),
    ("GET", "/props"),
    ("POST", "/props"),
    ("GET", "/slots"),
    ("GET", "/metrics"),
    ("GET", "/models"),
    ("GET", "/v1/models"),
    ("POST", "/completion"),
    ("POST", "/completions"),
    ("POST", "/infill"),
    ("POST", "/slots/0"),
    ("POST", "/v1/completions"),
    ("POST", "/chat/completions"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/tokenize"),
    ("POST", "/detokenize"),
    ("POST", "/apply-template"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/count_tokens"),
    ("POST", "/responses"),
    ("POST", "/v1/responses"),
    ("POST", "/responses/input_tokens"),
    ("POST", "/v1/responses/input_tokens"),
    ("POST", "/chat/completions/input_tokens"),
    ("POST", "/v1/chat/completions/input_tokens"),
    ("GET", "/lora-adapters"),
    ("POST", "/lora-adapters"),
    ("POST", "/embedding"),
    ("POST", "/embeddings"),
    ("POST", "/v1/embeddings"),
    ("POST", "/rerank"),
    ("POST", "/reranking"),
    ("POST", "/v1/rerank"),
    ("POST", "/v1/reranking"),
    ("GET", "/api/version"),
    ("GET", "/api/tags"),
    ("GET", "/api/ps"),
    ("POST", "/api/show"),
    ("POST", "/api/chat"),
    ("POST", "/api/generate"),
    ("POST", "/api/embed"),
    ("POST", "/api/embeddings"),
    ("POST", "/api/nope"),
    ("POST", "/nope"),
    ("GET", "/v2/x"),
];
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];
const CONTENT_TYPES: &[&str] = &[
    "text/plain",
    "",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
    "application/json; charset=latin1",
    "application/octet-stream",
];

/// One request as sent.
struct Sent {
    method: String,
    path: String,
    content_type: String,
    body: Vec<u8>,
    /// Send only this many body bytes (a cut body), then close our side.
    cut: Option<usize>,
}

/// One answer: status, headers (lower-case names), body (de-chunked).
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
        })
        .unwrap_or(default)
}

fn request(rng: &mut Rng) -> Sent {
    let &(method, route) = rng.pick(ROUTES);
    let mut path = route.to_string();
    if route.starts_with("/slots/") {
        let id = rng.pick(&[
            "0",
            "1",
            "3",
            "99",
            "-1",
            "abc",
            "18446744073709551616",
            "%FF",
        ]);
        let action = rng.pick(&["save", "restore", "erase", "explode", ""]);
        path = format!("/slots/{id}?action={action}");
    }
    if rng.chance(10) {
        let query = rng.pick(&[
            "fail_on_no_slot=1&fail_on_no_slot=0",
            "%ZZ=%FF",
            "action=save&action=erase",
            "a[]=1&a[]=2",
            "fail_on_no_slot",
            "=&&=",
            "action=%00",
        ]);
        path = format!(
            "{path}{}{query}",
            if path.contains('?') { '&' } else { '?' }
        );
    }
    let method = if rng.chance(90) {
        method
    } else {
        *rng.pick(METHODS)
    };
    let content_type = if rng.chance(85) {
        "application/json"
    } else {
        *rng.pick(CONTENT_TYPES)
    };
    let mut body = if method == "GET" && rng.chance(80) {
        Vec::new()
    } else {
        inputs::body(rng, route)
    };
    if route.starts_with("/slots/") && rng.chance(70) {
        let name = inputs::string(rng);
        body = json!({ "filename": name }).to_string().into_bytes();
    }
    let cut = (rng.chance(4) && !body.is_empty()).then(|| rng.below(body.len()));
    Sent {
        method: method.into(),
        path,
        content_type: content_type.into(),
        body,
        cut,
    }
}

fn send(port: u16, sent: &Sent) -> Result<Answer, String> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        sent.method,
        sent.path,
        sent.body.len()
    );
    if !sent.content_type.is_empty() {
        head.push_str(&format!("Content-Type: {}\r\n", sent.content_type));
    }
    head.push_str("\r\n");
    let body = &sent.body[..sent.cut.unwrap_or(sent.body.len())];
    let written = tcp
        .write_all(head.as_bytes())
        .and_then(|_| tcp.write_all(body));
    if sent.cut.is_some() {
        let _ = tcp.shutdown(Shutdown::Write);
    } else {
        written.map_err(|e| format!("write: {e}"))?;
    }
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw)
        .map_err(|e| format!("read (a stall?): {e}"))?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> Result<Answer, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no complete response: {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap().trim(), 16).ok())
            .unwrap_or(0);
        data = &data[line_end + 2..];
        if size == 0 || size > data.len() {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}

/// What is wrong with an answer, if anything.
fn check(sent: &Sent, answer: &Answer) -> Option<String> {
    let status = answer.status;
    let route = sent.path.split('?').next().unwrap();
    let anthropic = route == "/v1/messages" || route.starts_with("/v1/messages/");
    let ollama = route.starts_with("/api/");
    if status >= 500 && status != 503 && status != 501 {
        return Some(format!("status {status}"));
    }
    if status >= 400 {
        let Ok(body) = serde_json::from_slice::<Value>(&answer.body) else {
            return Some(format!(
                "status {status} with a body that is not JSON: {:?} (content-type {:?})",
                String::from_utf8_lossy(&answer.body),
                answer.headers.get("content-type")
            ));
        };
        let shaped = if anthropic {
            body["type"] == "error"
                && body["error"]["type"].is_string()
                && body["error"]["message"].is_string()
        } else if ollama {
            body["error"].is_string()
        } else {
            body["error"]["code"] == status
                && body["error"]["message"].is_string()
                && body["error"]["type"].is_string()
        };
        if !shaped {
            return Some(format!("status {status}: not the error shape: {body}"));
        }
    }
    if status == 200
        && answer
            .headers
            .get("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream"))
    {
        for line in String::from_utf8_lossy(&answer.body).lines() {
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            let Ok(event) = serde_json::from_str::<Value>(data) else {
                if data != "[DONE]" {
                    return Some(format!("stream event not JSON: {data:?}"));
                }
                continue;
            };
            let code = event["error"]["code"].as_u64().unwrap_or(0);
            let server_side = event["error"]["type"] == "api_error";
            if (code >= 500 && code != 503 && code != 501) || server_side {
                return Some(format!("stream error event: {event}"));
            }
        }
    }
    if status == 200
        && answer
            .headers
            .get("content-type")
            .is_some_and(|t| t.starts_with("application/x-ndjson"))
    {
        // Ollama's streams: a JSON object a line. A failure once the answer has started is
        // the server's (a request it could not run was refused with a status).
        for line in String::from_utf8_lossy(&answer.body).lines() {
            match serde_json::from_str::<Value>(line) {
                Ok(chunk) if chunk.get("error").is_some() => {
                    return Some(format!("stream error line: {chunk}"));
                }
                Ok(_) => {}
                Err(_) => return Some(format!("stream line not JSON: {line:?}")),
            }
        }
    }
    None
}

fn greedy(server: &Server) -> (u16, Value) {
    server.post(
        "/completion",
        &json!({"prompt": "The capital of France is", "n_predict": 8, "temperature": 0,
                "cache_prompt": false}),
    )
}

#[test]
fn malformed_requests_on_every_route() {
    let n_requests = env_number("GGUF_SERVE_FUZZ_REQUESTS", 2500) as usize;
    let seed = env_number("GGUF_SERVE_FUZZ_SEED", 0x5eed_f00d);
    let budget = Duration::from_millis(env_number("GGUF_SERVE_FUZZ_BUDGET_MS", 15_000));
    let slot_dir = tempfile::tempdir().unwrap();
    let slot_path = slot_dir.path().display().to_string();
    // -n 8: llama-server's ceiling on every request's n_predict, so that no valid request
    // generates for long; four slots, three fuzzing clients: the watchdog can always get one.
    let server = Server::start(&[
        "-np",
        "4",
        "-n",
        "8",
        "--props",
        "--metrics",
        "--slot-save-path",
        slot_path.as_str(),
    ]);
    let before = greedy(&server);
    assert_eq!(before.0, 200, "{}", before.1);
    eprintln!("http_fuzz: seed {seed}, {n_requests} requests");

    let done = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let statuses = Arc::new(Mutex::new(BTreeMap::<u16, usize>::new()));
    let watchdog = {
        let done = Arc::clone(&done);
        let url = server.url.clone();
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(budget)
                .build()
                .unwrap();
            let (mut worst, mut n) = (Duration::ZERO, 0);
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = client
                    .post(format!("{url}/completion"))
                    .json(&json!({"prompt": "Hi", "n_predict": 1, "temperature": 0}))
                    .send()
                    .and_then(|r| r.error_for_status());
                let took = t.elapsed();
                if let Err(e) = r {
                    return Err(format!("watchdog request {n} failed after {took:?}: {e}"));
                }
                worst = worst.max(took);
                n += 1;
                std::thread::sleep(Duration::from_millis(500));
            }
            Ok((n, worst))
        })
    };
    // GGUF_SERVE_FUZZ_LOG=FILE: every request, before it is sent (to find what killed a server).
    let log = std::env::var("GGUF_SERVE_FUZZ_LOG")
        .ok()
        .map(|path| Mutex::new(std::fs::File::create(path).expect("creating the fuzz log")));
    let log = log.as_ref();
    let started = Instant::now();
    std::thread::scope(|s| {
        for worker in 0..3u64 {
            let (next, failures, statuses) = (&next, &failures, &statuses);
            let port = server.port;
            s.spawn(move || {
                let mut rng = Rng::new(seed ^ (worker + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                while next.fetch_add(1, Ordering::Relaxed) < n_requests {
                    let sent = request(&mut rng);
                    if let Some(log) = log {
                        let line = format!(
                            "{worker} {} {} {} {:?} {}\n",
                            sent.method,
                            sent.path,
                            sent.content_type,
                            sent.cut,
                            String::from_utf8_lossy(&sent.body)
                        );
                        log.lock().unwrap().write_all(line.as_bytes()).unwrap();
                    }
                    let problem = match send(port, &sent) {
                        Ok(answer) => {
                            *statuses.lock().unwrap().entry(answer.status).or_default() += 1;
                            check(&sent, &answer)
                        }
                        Err(e) if sent.cut.is_some() && e.starts_with("no complete") => {
                            // A cut body with our side closed: hyper drops the connection
                            // without an answer (nothing could read it); counted, not failed.
                            *statuses.lock().unwrap().entry(0).or_default() += 1;
                            None
                        }
                        Err(e) => Some(e),
                    };
                    if let Some(problem) = problem {
                        let body = String::from_utf8_lossy(&sent.body);
                        let body: String = body.chars().take(300).collect();
                        failures.lock().unwrap().push(format!(
                            "{} {} ({}, cut {:?}) {body:?}: {problem}",
                            sent.method, sent.path, sent.content_type, sent.cut
                        ));
                    }
                }
            });
        }
    });
    done.store(true, Ordering::Relaxed);
    let watchdog = watchdog.join().unwrap();
    let statuses = statuses.lock().unwrap().clone();
    let failures = failures.lock().unwrap().clone();
    eprintln!(
        "http_fuzz: {} requests in {:.1?}, statuses {statuses:?} (0: connection closed \
         after a cut body), watchdog {watchdog:?}, {} failures",
        n_requests,
        started.elapsed(),
        failures.len()
    );
    for f in failures.iter().take(20) {
        eprintln!("  {f}");
    }
    assert!(
        failures.is_empty(),
        "{} failures (first above)",
        failures.len()
    );
    let (watched, worst) = watchdog.expect("the watchdog kept answering");
    assert!(watched > 0, "the watchdog never ran");
    assert!(worst < budget, "a watchdog request took {worst:?}");

    let after = greedy(&server);
    assert_eq!(after.0, 200, "{}", after.1);
    assert_eq!(
        after.1["content"], before.1["content"],
        "greedy answer changed"
    );
    assert_eq!(server.get("/health").0, 200);
}
