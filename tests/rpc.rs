//! llama.cpp's RPC backend, on loopback, CPU only: two `gguf-serve rpc-worker` processes hold the
//! demo model's layers for a server started with `--rpc`, which generates what one process
//! generates, token for token; a worker killed mid-request is an error for the client and one
//! clear log line, and the server stays up to say so.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, assert_error, binary, demo_args, free_port};
use serde_json::{Value, json};

/// A `gguf-serve rpc-worker` on a free loopback port; killed when dropped.
struct Worker {
    child: Child,
    port: u16,
}

impl Worker {
    fn start() -> Self {
        let port = free_port();
        let child = Command::new(binary())
            .args(["rpc-worker", "--port", &port.to_string(), "-t", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning gguf-serve rpc-worker");
        let mut worker = Self { child, port };
        worker.wait_listening();
        worker
    }

    /// Until the worker accepts connections (it serves one client at a time and drops one
    /// that says nothing, as this probe does).
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the RPC worker exited before listening: {status}");
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "the RPC worker never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rpc_flag(workers: &[&Worker]) -> String {
    workers
        .iter()
        .map(|w| w.endpoint())
        .collect::<Vec<_>>()
        .join(",")
}

/// Greedy tokens of a fixed prompt.
fn greedy(server: &Server) -> (String, Vec<Value>) {
    let body = json!({
        "prompt": "The three most useful things to know about bread are",
        "n_predict": 32,
        "temperature": 0,
        "return_tokens": true,
        "cache_prompt": false,
    });
    let (status, answer) = server.post("/completion", &body);
    assert_eq!(status, 200, "{answer}");
    let tokens = answer["tokens"].as_array().expect("tokens").clone();
    assert_eq!(tokens.len(), 32, "{answer}");
    (answer["content"].as_str().unwrap().to_owned(), tokens)
}

/// `-ub 1` (tests/batching.rs says why) and no repacked weights: the workers' CPU devices hold
/// plain ggml buffers, so the single process must compute with the same kernels to be
/// comparable bit for bit.
const SAME_KERNELS: [&str; 3] = ["-ub", "1", "--no-repack"];

#[test]
fn two_workers_hold_the_layers_and_generate_what_one_process_does() {
    let alone = {
        let server = Server::start(&SAME_KERNELS);
        greedy(&server)
    };
    let (w1, w2) = (Worker::start(), Worker::start());
    let mut extra = SAME_KERNELS.to_vec();
    let rpc = rpc_flag(&[&w1, &w2]);
    // The planner keeps a model that fits one device on that device; `-ts 1,1` asks for the
    // split over both workers that this test is about.
    extra.extend(["--rpc", &rpc, "-ts", "1,1"]);
    let server = Server::start(&extra);

    let (_, props) = server.get("/props");
    let devices = props["devices"].as_array().expect("/props devices");
    for worker in [&w1, &w2] {
        let on_worker: Vec<&Value> = devices
            .iter()
            .filter(|d| d["description"] == worker.endpoint().as_str())
            .collect();
        assert_eq!(on_worker.len(), 1, "{} in {props}", worker.endpoint());
        let layers = on_worker[0]["layers"].as_array().unwrap();
        assert!(
            !layers.is_empty(),
            "no layer on {}: {props}",
            worker.endpoint()
        );
    }
    let allocated = props["memory"]["allocated"].as_array().unwrap();
    assert!(
        allocated
            .iter()
            .filter(|d| d["device"].as_str().unwrap().starts_with("RPC"))
            .all(|d| d["weights"].as_u64().unwrap() > 0),
        "{props}"
    );

    assert_eq!(greedy(&server), alone);
}

#[test]
fn a_worker_killed_mid_request_is_an_error_and_the_server_stays_up() {
    let (w1, mut w2) = (Worker::start(), Worker::start());
    let log = tempfile::NamedTempFile::new().unwrap();
    let rpc = rpc_flag(&[&w1, &w2]);
    // Layers on both workers (`-ts 1,1`), so that the one killed holds some.
    let mut server = Server::start_logged(&["--rpc", &rpc, "-ts", "1,1"], "127.0.0.1", log.path());

    let mut stream = server.start_long_stream();
    w2.child.kill().unwrap();
    w2.child.wait().unwrap();
    let mut rest = String::new();
    // The stream ends (no hang) with llama-server's error event.
    stream
        .read_to_string(&mut rest)
        .expect("reading the rest of the stream");
    let last = rest
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .next_back()
        .unwrap_or_else(|| panic!("no event after the kill: {rest:?}"));
    let event: Value = serde_json::from_str(last).unwrap_or_else(|_| panic!("{last}"));
    let message = event["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{event}"));
    assert!(message.contains("an RPC worker was lost"), "{event}");
    assert_eq!(event["error"]["code"], 500, "{event}");

    // Still up: /health and every route say why, in llama-server's error JSON.
    let (status, health) = server.get("/health");
    let reason = assert_error(status, &health, 503, "unavailable_error");
    assert!(reason.contains("an RPC worker was lost"), "{health}");
    let (status, body) = server.post("/completion", &json!({"prompt": "hi", "n_predict": 1}));
    assert_error(status, &body, 503, "unavailable_error");

    // SIGTERM still ends it, although the engine thread is stuck inside llama.cpp.
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}");

    // One line says what happened, with llama.cpp's own words and where it raised them.
    let log = std::fs::read_to_string(log.path()).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ggml-rpc.cpp:"))
        .collect();
    assert_eq!(lines.len(), 1, "one clear line in the log:\n{log}");
    assert!(lines[0].contains("ERROR"), "{}", lines[0]);
    assert!(lines[0].contains("an RPC worker was lost"), "{}", lines[0]);
    drop(w1);
}

#[test]
fn an_unreachable_worker_is_refused_before_loading() {
    let port = free_port();
    let out = Command::new(binary())
        .args(demo_args(&["--rpc", &format!("127.0.0.1:{port}")]))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("--rpc 127.0.0.1:{port}: cannot connect")),
        "{stderr}"
    );
    // llama.cpp would have aborted (SIGABRT); this is an ordinary error exit.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
}

#[test]
fn llama_arg_rpc_is_read_like_the_flag() {
    let port = free_port();
    let out = Command::new(binary())
        .args(demo_args(&[]))
        .env("LLAMA_ARG_RPC", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");
}
