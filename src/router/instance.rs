//! One model's server: a `gguf-serve` child process on a loopback port, as llama-server's
//! router runs one `llama-server` per model. The router starts it with its own serve flags and
//! the model's path, watches `/health` until the model is loaded, passes its log lines on with
//! the model's name in front, and stops it with SIGTERM (then SIGKILL after the stop timeout).
//! A child ends with the router: it gets SIGTERM when the router's process dies.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;
use tokio::sync::{Notify, watch};

use super::placement::Memory;

/// Where a model's server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Loading,
    Loaded,
    /// Stopped by the router (unloaded).
    Stopped,
    /// Ended on its own, or never became ready: its exit code and last log line.
    Failed {
        exit_code: Option<i32>,
        message: String,
    },
}

impl State {
    /// Whether the process holds (or is taking) its memory.
    pub fn is_running(&self) -> bool {
        matches!(self, State::Loading | State::Loaded)
    }
}

/// How to start a model's server.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    /// The serve flags every model's server gets, then this model's own.
    pub args: Vec<OsString>,
    /// The key the router sends; the child gets it in its environment, never on its command
    /// line (which `/models` shows).
    pub key: String,
    /// `--api-prefix`, which the model's server gets too.
    pub prefix: String,
    pub stop_timeout: Duration,
}

impl Launch {
    /// The command line of a model's server whose own flags are `model_flags`, as `/models`
    /// shows it.
    pub fn command_line(&self, model_flags: &[OsString]) -> Vec<String> {
        std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(OsString::as_os_str))
            .chain(model_flags.iter().map(OsString::as_os_str))
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }
}

/// A model's server, from its start until it has exited.
#[derive(Debug)]
pub struct Instance {
    pub id: String,
    pub port: u16,
    /// Its command line, as `/models` shows it.
    pub args: Vec<String>,
    /// The memory its plan takes.
    pub memory: Memory,
    state: watch::Sender<State>,
    stop: Notify,
    in_flight: AtomicUsize,
    last_used: AtomicU64,
    /// Ollama's `keep_alive`, as the last request that gave one asked, and when the last
    /// request ended: the model is unloaded once idle for that long.
    keep_alive: Mutex<(super::keep_alive::KeepAlive, Instant)>,
    /// The server's own `/v1/models` entry, read once it is loaded (llama-server's router
    /// shows it in its listing).
    info: std::sync::OnceLock<serde_json::Map<String, serde_json::Value>>,
    key: String,
    prefix: String,
}

/// Environment variables the child must not read: the router has already turned
/// llama-server's into flags on the command line it passes on.
fn inherited(name: &str) -> bool {
    !(name.starts_with("LLAMA_ARG_") || name == "LLAMA_API_KEY")
}

impl Instance {
    /// Starts the server of model `id` on `port`, with `launch` and the model's own flags.
    /// The returned instance is loading.
    pub fn start(
        id: &str,
        port: u16,
        memory: Memory,
        launch: &Launch,
        model_flags: &[OsString],
        last_used: u64,
    ) -> std::io::Result<Arc<Instance>> {
        let mut command = tokio::process::Command::new(&launch.program);
        command
            .args(&launch.args)
            .args(model_flags)
            .env_clear()
            .envs(std::env::vars_os().filter(|(k, _)| k.to_str().is_some_and(inherited)))
            .env("LLAMA_API_KEY", &launch.key)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe and touches only the child's own settings.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        let args = launch.command_line(model_flags);
        let instance = Arc::new(Instance {
            id: id.to_owned(),
            port,
            args,
            memory,
            state: watch::Sender::new(State::Loading),
            stop: Notify::new(),
            in_flight: AtomicUsize::new(0),
            last_used: AtomicU64::new(last_used),
            keep_alive: Mutex::new((None, Instant::now())),
            info: std::sync::OnceLock::new(),
            key: launch.key.clone(),
            prefix: launch.prefix.clone(),
        });
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(relay_log(id.to_owned(), stderr, Arc::clone(&tail)));
        }
        tokio::spawn(Arc::clone(&instance).supervise(child, tail, launch.stop_timeout));
        tokio::spawn(Arc::clone(&instance).watch_health());
        Ok(instance)
    }

    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

    /// Waits until the model is loaded (`Ok`) or its server has ended (`Err` with the state).
    pub async fn ready(&self) -> Result<(), State> {
        let mut rx = self.state.subscribe();
        let state = rx
            .wait_for(|s| *s != State::Loading)
            .await
            .map(|s| s.clone())
            .unwrap_or(State::Stopped);
        if state == State::Loaded {
            Ok(())
        } else {
            Err(state)
        }
    }

    /// Waits until the process has exited.
    pub async fn exited(&self) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|s| !s.is_running()).await;
    }

    /// Asks the server to stop (SIGTERM, then SIGKILL after the stop timeout).
    pub fn stop(&self) {
        self.stop.notify_one();
    }

    /// Whether it is loading or has requests running.
    pub fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0 || self.state() == State::Loading
    }

    pub fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    /// Records that a request is about to run, with its `keep_alive` if it gave one (`Some`:
    /// keep the model that long once idle; `Some(None)`: until the router stops or needs the
    /// room). Its idle time starts again, so that the model is not unloaded under it before
    /// the request counts as running.
    pub fn requested(&self, keep_alive: Option<super::keep_alive::KeepAlive>) {
        let mut kept = self.keep_alive.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(keep_alive) = keep_alive {
            kept.0 = keep_alive;
        }
        kept.1 = Instant::now();
    }

    /// Whether it is loaded and has been idle longer than its `keep_alive`.
    pub fn expired(&self, now: Instant) -> bool {
        let (keep_alive, idle_since) = *self.keep_alive.lock().unwrap_or_else(|e| e.into_inner());
        keep_alive.is_some_and(|d| idle_since + d <= now)
            && self.state() == State::Loaded
            && !self.busy()
    }

    /// Counts a request from now until the guard is dropped (its answer sent or abandoned).
    pub fn begin(self: &Arc<Self>, now: u64) -> InFlight {
        self.last_used.fetch_max(now, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Owns the process: waits for it to exit, or to be told to stop, and records how it ended.
    async fn supervise(
        self: Arc<Self>,
        mut child: tokio::process::Child,
        tail: Arc<Mutex<VecDeque<String>>>,
        stop_timeout: Duration,
    ) {
        let (status, stopped) = tokio::select! {
            status = child.wait() => (status, false),
            () = self.stop.notified() => {
                if let Some(pid) = child.id() {
                    // SAFETY: kill(2) on our own child's pid.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
                }
                let status = match tokio::time::timeout(stop_timeout, child.wait()).await {
                    Ok(status) => status,
                    Err(_) => {
                        tracing::warn!(model = %self.id, "still running {}s after SIGTERM: killing it", stop_timeout.as_secs());
                        let _ = child.start_kill();
                        child.wait().await
                    }
                };
                (status, true)
            }
        };
        let exit_code = status.ok().and_then(|s| s.code());
        let state = if stopped {
            tracing::info!(model = %self.id, "unloaded");
            State::Stopped
        } else {
            let message = tail
                .lock()
                .map(|t| t.back().cloned().unwrap_or_default())
                .unwrap_or_default();
            tracing::warn!(model = %self.id, ?exit_code, "the model's server ended: {message}");
            State::Failed { exit_code, message }
        };
        self.state.send_replace(state);
    }

    /// The URL of the server's route `path`.
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}{path}", self.port, self.prefix)
    }

    /// The server's `/v1/models` entry, once it is loaded.
    pub fn info(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.info.get()
    }

    async fn read_info(
        &self,
        client: &reqwest::Client,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        let models = self.get_json(client, "/v1/models").await?;
        models["data"][0].as_object().cloned()
    }

    /// The JSON answer of the server's GET route `path` (the router's own questions).
    pub async fn get_json(
        &self,
        client: &reqwest::Client,
        path: &str,
    ) -> Option<serde_json::Value> {
        client
            .get(self.url(path))
            .bearer_auth(&self.key)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    /// Polls the server's `/health` until it answers 200 (loaded) or the process ends.
    async fn watch_health(self: Arc<Self>) {
        let client = reqwest::Client::new();
        let url = self.url("/health");
        let started = std::time::Instant::now();
        while self.state() == State::Loading {
            let healthy = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                if let Some(info) = self.read_info(&client).await {
                    let _ = self.info.set(info);
                }
                self.state.send_if_modified(|s| {
                    let loading = *s == State::Loading;
                    if loading {
                        *s = State::Loaded;
                    }
                    loading
                });
                tracing::info!(
                    model = %self.id,
                    port = self.port,
                    "loaded in {:.1}s",
                    started.elapsed().as_secs_f64()
                );
                return;
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }
}

/// How often a loading model's `/health` is asked.
const HEALTH_POLL: Duration = Duration::from_millis(50);

/// One request running on an instance.
#[derive(Debug)]
pub struct InFlight(Arc<Instance>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .keep_alive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1 = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The last log lines kept for a failure's message.
const TAIL_LINES: usize = 8;

/// Writes the child's log lines to the router's stderr, each after `[id] `, keeping the last
/// few.
async fn relay_log(
    id: String,
    stderr: tokio::process::ChildStderr,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[{id}] {line}");
        let text = console::strip_ansi_codes(&line).into_owned();
        if text.trim().is_empty() {
            continue;
        }
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_reads_no_llama_server_variables() {
        assert!(!inherited("LLAMA_ARG_PORT"));
        assert!(!inherited("LLAMA_API_KEY"));
        assert!(inherited("HF_HOME"));
        assert!(inherited("LLAMA_CACHE"));
    }
}
