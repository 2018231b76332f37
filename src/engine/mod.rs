//! The engine: one thread owns the llama.cpp context and decodes every active slot together.
//!
//! HTTP handlers never touch llama.cpp state. They send a [`Command`] over a channel and read
//! [`Event`]s back from a per-request channel; dropping that receiver (a client that went away)
//! cancels the request at the next decode step. The model itself (weights, vocabulary) is
//! immutable and shared read-only through [`LoadedModel`], so handlers tokenize and render
//! templates without a round trip to the engine thread.
//!
//! Architecture invariant: only `worker/` holds a llama.cpp context, and only `llama.rs` and
//! its files under `llama/` (the context, its batch, KV cache and backend sampler chains, its
//! sequence state files), `llama_load.rs` (loading with llama.cpp's own parameters),
//! `llama_log.rs` (the log callback), `device_lost.rs` (ggml's abort callback, for a lost RPC
//! worker) and `lora.rs` (LoRA adapters) make raw `llama-cpp-sys-2` calls.

mod backend_sampling;
mod chain;
mod checkpoint;
mod config;
pub mod control_vector;
mod device_lost;
mod embedding;
mod llama;
mod llama_load;
mod llama_log;
mod load;
mod lora;
mod pooling;
mod prompt_cache;
mod request;
mod sampler;
mod slot;
mod slot_file;
mod stats;
mod text;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;

use std::thread::JoinHandle;

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::{mpsc, oneshot};

pub use checkpoint::Limits as CheckpointLimits;
pub use config::{
    ContextConfig, CpuParams, EngineConfig, KvOverride, KvValue, LazyMode, LoadMode, ModelParams,
    Numa, RopeParams, RopeScaling, SplitMode, TensorOverride, parse_cpu_mask, parse_cpu_range,
    parse_kv_overrides, parse_tensor_overrides,
};
pub use device_lost::lost as device_lost;
pub use embedding::{Embedding, EmbeddingInfo, Pooling, TaskKind, normalize};
pub use llama_log::{DeviceLayers, DeviceMemory};
pub use lora::{LoraAdapter, LoraAdapterConfig, LoraRequest, parse_lora, parse_lora_scaled};
pub use request::{
    Completion, Event, GenerateRequest, Group, SlotInfo, SlotTask, StopType, TaskParams, Timings,
    TokenProbs,
};
pub use sampler::{SamplerType, SamplingParams, check_grammar};
pub use slot_file::{SlotAction, SlotActionDone, SlotActionError};
pub use stats::{EngineStats, StatsSnapshot};

/// What the server needs to know about the loaded model, and the shared read-only model.
#[derive(Debug)]
pub struct LoadedModel {
    pub model: Arc<LlamaModel>,
    pub path: PathBuf,
    /// Context size actually allocated (all slots together).
    pub n_ctx: u32,
    /// Context each slot may use (the unified cache lets one slot use all of it).
    pub n_ctx_slot: u32,
    pub n_ctx_train: u32,
    pub n_vocab: i32,
    pub n_params: u64,
    pub size: u64,
    pub n_slots: u32,
    pub chat_template: Option<String>,
    pub bos_token: String,
    pub eos_token: String,
    pub add_bos: bool,
    pub add_eos: bool,
    /// What llama.cpp allocated, per device (the host last), as it logged while loading.
    pub memory: Vec<DeviceMemory>,
    /// Where llama.cpp placed each layer, per device (RPC workers' devices included).
    pub layers: Vec<DeviceLayers>,
    /// Requests sample inside the decode graph where they can (`--sampling backend`).
    pub backend_sampling: bool,
    /// llama.cpp's name of the file type (`Q4_K - Medium`).
    pub ftype: String,
    /// llama.cpp's vocabulary type (1 SPM, 2 BPE, …).
    pub vocab_type: i32,
    pub n_embd: i32,
    /// Embeddings and reranking: the context's pooling and the limits on inputs.
    pub embedding: EmbeddingInfo,
}

impl LoadedModel {
    /// Tokenizes text the way llama-server does for prompts (`parse_special`: special tokens
    /// written in the text become special tokens).
    pub fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<LlamaToken> {
        // Room for a token per byte, as llama-server's `common_tokenize` makes: llama-cpp-2's
        // `tokenize` guesses half that, and a text of more tokens (byte-level vocabularies, CJK,
        // symbols) is then tokenized twice, measured at 1.3-1.9x the time on 42k tokens.
        let mut tokens = Vec::with_capacity(text.len() + 2);
        self.model
            .vocab()
            .tokenize_into(text.as_bytes(), &mut tokens, add_special, parse_special);
        tokens.shrink_to_fit();
        tokens
    }

    /// The bytes of one token (special tokens rendered).
    pub fn token_bytes(&self, token: LlamaToken) -> Vec<u8> {
        self.token_piece(token, true)
    }

    /// The bytes of one token; special tokens render as nothing unless `special`.
    pub fn token_piece(&self, token: LlamaToken, special: bool) -> Vec<u8> {
        self.model.vocab().token_to_piece(token, special, None)
    }

    /// Whether a token id exists in the vocabulary.
    pub fn is_valid_token(&self, token: i32) -> bool {
        (0..self.n_vocab).contains(&token)
    }

    /// Detokenizes to text, special tokens written out (`<bos>…`, as llama-server echoes a
    /// prompt), replacing invalid UTF-8.
    pub fn detokenize(&self, tokens: &[LlamaToken]) -> String {
        let bytes: Vec<u8> = tokens.iter().flat_map(|&t| self.token_bytes(t)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Messages to the engine thread.
#[derive(Debug)]
pub enum Command {
    /// Generate for a request; events go to the sender until `Event::Done` or `Event::Error`.
    Generate(Box<GenerateRequest>, mpsc::UnboundedSender<Event>),
    /// Report every slot's state (for `/slots` and `/props`).
    Slots(oneshot::Sender<Vec<SlotInfo>>),
    /// Save, restore or erase a slot's prompt cache (waits while the slot is busy).
    SlotAction(
        SlotAction,
        oneshot::Sender<Result<SlotActionDone, SlotActionError>>,
    ),
    /// The LoRA adapters with their global scales (`GET /lora-adapters`).
    LoraAdapters(oneshot::Sender<Vec<LoraAdapter>>),
    /// Sets the adapters' global scales (`POST /lora-adapters`).
    SetLoraAdapters(LoraRequest, oneshot::Sender<()>),
    /// Finish the thread: active requests end with an error.
    Shutdown,
}

/// Why the engine could not start or serve a request.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "{path}: llama.cpp could not load the model (see the log above; the file may be truncated or of an unsupported architecture)"
    )]
    Load { path: PathBuf },
    #[error("{0}")]
    Config(String),
    #[error("{path}: {reason}")]
    Lora { path: PathBuf, reason: String },
    #[error("could not create a llama.cpp context of {n_ctx} tokens: {reason}")]
    Context { n_ctx: u32, reason: String },
    #[error("the engine has stopped")]
    Stopped,
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("too many requests are waiting ({0}); retry later")]
    QueueFull(usize),
    #[error("{0}")]
    Sampler(#[from] sampler::SamplerError),
    #[error("llama_decode failed: {0}")]
    Decode(String),
    #[error("the context is full: {0}")]
    ContextFull(String),
    /// An embedding or rerank task failed (llama-server's words).
    #[error("{0}")]
    Embedding(String),
    /// A task this model or context cannot serve at all, such as generating with an encoder
    /// (llama-server's words).
    #[error("{0}")]
    NotSupported(String),
    /// The request's processing panicked on the engine thread (a bug); the request ended,
    /// the others go on.
    #[error("the request's processing panicked: {0}")]
    Panicked(String),
    /// An RPC worker's connection failed; the engine can serve nothing more
    /// (`device_lost.rs`).
    #[error("{0}")]
    DeviceLost(String),
}

/// Resolves when the model is loaded (or failed to load).
pub type Ready = oneshot::Receiver<Result<Arc<LoadedModel>, EngineError>>;

/// The handlers' side of the engine: cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    tx: mpsc::UnboundedSender<Command>,
    /// What the engine thread counts, for `/metrics`.
    pub stats: Arc<EngineStats>,
}

impl Engine {
    /// Starts the engine thread, which loads the model; `ready` receives the model (or the load
    /// error) when loading is done.
    pub fn spawn(config: EngineConfig, max_queue: usize) -> (Self, Ready, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let stats = Arc::new(EngineStats::default());
        device_lost::install();
        let worker_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || worker::run(config, max_queue, rx, ready_tx, worker_stats))
            .expect("spawning the engine thread");
        (Self { tx, stats }, ready_rx, thread)
    }

    /// Queues a request; its events arrive on the returned receiver.
    pub fn generate(
        &self,
        request: GenerateRequest,
    ) -> Result<mpsc::UnboundedReceiver<Event>, EngineError> {
        if let Some(reason) = device_lost::lost() {
            return Err(EngineError::DeviceLost(reason.to_owned()));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        device_lost::track(&tx);
        self.tx
            .send(Command::Generate(Box::new(request), tx))
            .map_err(|_| EngineError::Stopped)?;
        Ok(rx)
    }

    /// The state of every slot.
    pub async fn slots(&self) -> Result<Vec<SlotInfo>, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Slots(tx))
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Saves, restores or erases a slot's prompt cache, once the slot is free.
    pub async fn slot_action(&self, action: SlotAction) -> Result<SlotActionDone, SlotActionError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::SlotAction(action, tx))
            .map_err(|_| SlotActionError::Stopped)?;
        rx.await.map_err(|_| SlotActionError::Stopped)?
    }

    /// The LoRA adapters and their global scales.
    pub async fn lora_adapters(&self) -> Result<Vec<LoraAdapter>, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::LoraAdapters(tx))
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Sets the LoRA adapters' global scales: those named, the others 0.
    pub async fn set_lora_adapters(&self, scales: LoraRequest) -> Result<(), EngineError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::SetLoraAdapters(scales, tx))
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Asks the engine thread to finish.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown);
    }
}
