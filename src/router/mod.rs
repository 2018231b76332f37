//! Several models on one server: llama-server's router mode (`--models-dir` without `--model`).
//! Each model runs in its own `gguf-serve` process on a loopback port (`instance.rs`), started
//! when a request names it (or on `POST /models/load`), and the router forwards requests by
//! their `"model"` field (`?model=` for GET) and streams the answers back (`proxy.rs`).
//! Unlike llama-server, which only counts models (`--models-max`), the router places them by a
//! memory plan (`placement.rs`): each model's planned memory per device, against what the
//! devices had free at start, and a model that does not fit beside the loaded ones unloads the
//! least recently used idle ones first.

pub mod catalog;
mod http;
pub mod instance;
mod keep_alive;
pub mod placement;
mod proxy;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use catalog::Entry;
pub use http::run;
use instance::{Instance, Launch, State};
use placement::{Memory, Placement, Resident};

use crate::server::{ApiError, ErrorType, ServerConfig};

/// A model's plan: the memory it takes and how it would be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The file its server would load (the quant chosen, for a folder).
    pub file: PathBuf,
    pub memory: Memory,
    /// One line: the file, quant and offload chosen.
    pub summary: String,
}

/// Plans a model (a file or folder) against the devices as they were when the router started.
pub type Planner = dyn Fn(&Path) -> Result<Planned, String> + Send + Sync;

/// The router's settings.
pub struct RouterConfig {
    /// Where the models were found: `--models-dir`, or the Hugging Face cache.
    pub models_dir: PathBuf,
    pub catalog: Vec<Entry>,
    /// `--models-max` (0: no limit).
    pub max_models: usize,
    /// `--models-autoload`: load a model when a request names it.
    pub autoload: bool,
    /// What the models may use together, per device.
    pub capacity: Memory,
    /// How to start a model's server, less the model's own flags.
    pub launch: Launch,
    pub planner: Box<Planner>,
    /// The HTTP side: addresses, keys, CORS, TLS, the API prefix, timeouts.
    pub server: ServerConfig,
}

/// The router's state: the models, their servers and their plans.
pub struct Router {
    config: RouterConfig,
    instances: tokio::sync::Mutex<BTreeMap<String, Arc<Instance>>>,
    /// Stopped servers whose processes may still be exiting (their memory not yet free).
    stopping: Mutex<Vec<Arc<Instance>>>,
    plans: Mutex<HashMap<String, Result<Planned, String>>>,
    /// Each model's entry in Ollama's `/api/tags` (none: it cannot be served here), read once
    /// from the header of its planned file, as its plan is made once.
    tags: Mutex<HashMap<String, Option<serde_json::Value>>>,
    clock: AtomicU64,
    client: reqwest::Client,
}

impl Router {
    pub fn new(config: RouterConfig) -> Router {
        Router {
            config,
            instances: tokio::sync::Mutex::new(BTreeMap::new()),
            stopping: Mutex::new(Vec::new()),
            plans: Mutex::new(HashMap::new()),
            tags: Mutex::new(HashMap::new()),
            clock: AtomicU64::new(1),
            client: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
        }
    }

    fn entry(&self, id: &str) -> Option<&Entry> {
        self.config.catalog.iter().find(|e| e.id == id)
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// The model's plan, made once.
    fn plan(&self, entry: &Entry) -> Result<Planned, String> {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        plans
            .entry(entry.id.clone())
            .or_insert_with(|| (self.config.planner)(&entry.path))
            .clone()
    }

    /// The model's entry in Ollama's `/api/tags`, under its id.
    async fn ollama_tag(&self, entry: &Entry) -> Option<serde_json::Value> {
        let lock = || self.tags.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tag) = lock().get(&entry.id) {
            return tag.clone();
        }
        let file = self.plan(entry).ok()?.file;
        let id = entry.id.clone();
        let tag = tokio::task::spawn_blocking(move || {
            crate::server::ModelFile::read_path(&file, None).map(|f| f.tag(&id))
        })
        .await
        .ok()
        .and_then(Result::ok);
        lock().insert(entry.id.clone(), tag.clone());
        tag
    }

    /// The model's server, if one is running or has run.
    pub async fn instance(&self, id: &str) -> Option<Arc<Instance>> {
        self.instances.lock().await.get(id).cloned()
    }

    /// The server `/models` shows for model `id`: the one running or last run, or one still
    /// exiting after it was stopped (so that `unloaded` means its memory is free).
    pub async fn listed(&self, id: &str) -> Option<Arc<Instance>> {
        let stopping = self
            .stopping
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .rev()
            .find(|i| i.id == id && i.state().is_running())
            .cloned();
        match stopping {
            Some(exiting) => Some(exiting),
            None => self.instance(id).await,
        }
    }

    /// The loaded server of model `id`, starting it first when `autoload` allows (llama-server's
    /// checks and wording: a missing or unknown name, a model not loaded).
    pub async fn ready(&self, id: &str, autoload: bool) -> Result<Arc<Instance>, ApiError> {
        let invalid = |m: String| ApiError::new(ErrorType::InvalidRequest, m);
        if id.is_empty() {
            return Err(invalid("model name is missing from the request".into()));
        }
        if self.entry(id).is_none() {
            return Err(invalid(format!("model '{id}' not found")));
        }
        let instance = match self.instance(id).await {
            Some(i) if i.state().is_running() => i,
            _ if !autoload => return Err(invalid("model is not loaded".into())),
            _ => self.load(id).await?,
        };
        instance.ready().await.map_err(|state| failed(id, &state))?;
        Ok(instance)
    }

    /// Starts model `id`'s server, first unloading what the memory plan says must go; returns
    /// it loading (or the one already running).
    pub async fn load(&self, id: &str) -> Result<Arc<Instance>, ApiError> {
        let entry = self
            .entry(id)
            .ok_or_else(|| ApiError::new(ErrorType::NotFound, "model is not found"))?
            .clone();
        let mut instances = self.instances.lock().await;
        if let Some(running) = instances.get(id).filter(|i| i.state().is_running()) {
            return Ok(Arc::clone(running));
        }
        let planned = self.plan(&entry).map_err(|why| {
            ApiError::new(
                ErrorType::Unavailable,
                format!("model '{id}' cannot be loaded on this machine: {why}"),
            )
        })?;
        let residents: Vec<Resident> = instances
            .values()
            .filter(|i| i.state().is_running())
            .map(|i| Resident {
                id: i.id.clone(),
                memory: i.memory.clone(),
                busy: i.busy(),
                last_used: i.last_used(),
            })
            .collect();
        let unload = match placement::place(
            &self.config.capacity,
            &residents,
            &planned.memory,
            self.config.max_models,
        ) {
            Placement::Unload(ids) => ids,
            Placement::Full(why) => {
                return Err(ApiError::new(
                    ErrorType::Unavailable,
                    format!("model '{id}' cannot be loaded now: {why}"),
                ));
            }
        };
        for other in &unload {
            if let Some(victim) = instances.remove(other) {
                tracing::info!(model = %other, "unloading to make room for {id}");
                self.stop(victim);
            }
        }
        // The memory of every server stopped so far is free before the next one starts.
        self.wait_stopped().await;
        let port = crate::server::free_loopback_port()
            .map_err(|e| ApiError::server(format!("no free port: {e}")))?;
        tracing::info!(model = %id, port, "loading: {}", planned.summary);
        let flags = model_flags(&entry, port);
        let launch = &self.config.launch;
        let instance = Instance::start(id, port, planned.memory, launch, &flags, self.tick())
            .map_err(|e| ApiError::server(format!("cannot start the server of '{id}': {e}")))?;
        instances.insert(id.to_owned(), Arc::clone(&instance));
        Ok(instance)
    }

    /// Stops model `id`'s server (`Err` if it is not running).
    pub async fn unload(&self, id: &str) -> Result<(), ApiError> {
        let mut instances = self.instances.lock().await;
        match instances.get(id) {
            Some(i) if i.state().is_running() => {}
            _ => {
                return Err(ApiError::new(
                    ErrorType::InvalidRequest,
                    "model is not running",
                ));
            }
        }
        if let Some(instance) = instances.remove(id) {
            self.stop(instance);
        }
        Ok(())
    }

    fn stop(&self, instance: Arc<Instance>) {
        instance.stop();
        self.stopping
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(instance);
    }

    /// Unloads the models idle for longer than their `keep_alive`, as they expire.
    pub async fn unload_expired(&self) {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let now = std::time::Instant::now();
            let mut instances = self.instances.lock().await;
            let expired: Vec<String> = (instances.iter())
                .filter(|(_, i)| i.expired(now))
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                tracing::info!(model = %id, "unloading: idle for longer than its keep_alive");
                if let Some(instance) = instances.remove(&id) {
                    self.stop(instance);
                }
            }
        }
    }

    /// Stops every server and waits for them to exit.
    pub async fn shutdown(&self) {
        let instances = std::mem::take(&mut *self.instances.lock().await);
        for instance in instances.into_values() {
            self.stop(instance);
        }
        self.wait_stopped().await;
    }

    /// Waits until every server stopped so far has exited.
    async fn wait_stopped(&self) {
        let stopping: Vec<Arc<Instance>> =
            std::mem::take(&mut *self.stopping.lock().unwrap_or_else(|e| e.into_inner()));
        for instance in stopping {
            instance.exited().await;
        }
    }
}

/// The error for a model whose server ended (or was stopped) before it was ready.
fn failed(id: &str, state: &State) -> ApiError {
    match state {
        State::Failed { exit_code, message } => ApiError::server(format!(
            "model '{id}' failed to load (exit code {}): {message}",
            exit_code.map_or("none".into(), |c| c.to_string())
        )),
        _ => ApiError::new(
            ErrorType::Unavailable,
            format!("model '{id}' was unloaded while the request waited for it"),
        ),
    }
}

/// A model's own flags for its server: its path, a loopback port, its name.
fn model_flags(entry: &Entry, port: u16) -> Vec<std::ffi::OsString> {
    vec![
        "--model".into(),
        entry.path.clone().into_os_string(),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string().into(),
        "--alias".into(),
        entry.id.clone().into(),
    ]
}
