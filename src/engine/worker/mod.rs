//! The engine thread: loads the model (`load.rs`), owns the llama.cpp context, and runs the
//! decode loop.
//!
//! Each step builds one batch: the pending token of every generating slot, then prompt tokens of
//! slots still reading their prompt, up to `n_batch` (chunked prefill). One `llama_decode` runs
//! them all; then each slot with an output in the batch takes its next token: sampled here from
//! the logits (host sampling: the scans of the whole vocabulary side by side on several
//! threads, then each slot's samplers in turn), or read from the decode when the slot's request
//! has a sampler chain attached to the context (backend sampling, see `llama.rs`). A slot whose
//! client went away is freed before the next step. The loop blocks on the command channel only
//! when nothing is active.
//!
//! With backend sampling, chains stay attached to their sequence between requests: attaching
//! one re-reserves llama.cpp's graph, so a free slot whose chain equals what a request asks for
//! is preferred, and every sequence starts with the chain of llama-server's default sampling.

use std::collections::VecDeque;
use std::sync::Arc;

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

mod assign;
mod busy;
mod decode;
mod embed;
mod host_cache;
mod panics;
mod slot_state;
mod tokens;

use busy::Busy;

use super::backend_sampling::backend_chain;
use super::checkpoint::Rollback;
use super::llama::{self, Batch, ChainSpec, Context};
use super::load::{describe, load_model, new_context};
use super::lora::Loras;
use super::prompt_cache::PromptCache;
use super::request::{Event, GenerateRequest};
use super::sampler::SamplingParams;
use super::slot::Slot;
use super::{CheckpointLimits, Command, EngineConfig, EngineError, EngineStats, LoadedModel};

pub fn run(
    config: EngineConfig,
    max_queue: usize,
    rx: mpsc::UnboundedReceiver<Command>,
    ready: oneshot::Sender<Result<Arc<LoadedModel>, EngineError>>,
    stats: Arc<EngineStats>,
) {
    super::llama_log::install(config.verbose);
    // llama.cpp's backend stays initialized for as long as the engine runs.
    let _backend = match LlamaBackend::init() {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(EngineError::Context {
                n_ctx: 0,
                reason: e.to_string(),
            }));
            return;
        }
    };
    let model = match load_model(&config) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let ctx = match new_context(&model, &config)
        .and_then(|ctx| super::load::apply_control_vectors(&model, ctx, &config))
    {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let n_slots = config.context.n_parallel as usize;
    let loras = match Loras::load(&model, &config.lora, n_slots) {
        Ok(loras) => loras,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let info = Arc::new(describe(&model, &ctx, &config));
    let n_ctx_slot = info.n_ctx_slot;
    if ready.send(Ok(info)).is_err() {
        return;
    }
    let mut worker = Worker::new(&model, ctx, &config, max_queue, n_ctx_slot, stats);
    worker.loras = loras;
    worker.run(rx);
}

struct Worker<'m> {
    model: &'m LlamaModel,
    ctx: Context<'m>,
    slots: Vec<Slot>,
    queue: VecDeque<Queued>,
    max_queue: usize,
    batch: Batch,
    /// Sample in the decode graph for requests whose samplers all run there.
    backend_sampling: bool,
    n_batch: usize,
    n_ctx_slot: u32,
    /// How far back a sequence's memory can be cut: whether a cached prefix serves as it is.
    rollback: Rollback,
    /// Tokens that end generation, banned by `ignore_eos` as llama-server does.
    eog_tokens: Vec<LlamaToken>,
    suppressed: Vec<LlamaToken>,
    piece: Vec<u8>,
    /// Threads for scanning the logits of several slots at once.
    sampling_threads: usize,
    /// `--slot-prompt-similarity`: reuse a slot's cache only if the common prefix covers at
    /// least this fraction of the new prompt; otherwise take the least recently used slot.
    slot_prompt_similarity: f32,
    /// The host prompt cache (`--cache-ram`); `None` when it is off.
    prompt_cache: Option<PromptCache>,
    /// `--cache-idle-slots`: park idle slots in the prompt cache while others work.
    cache_idle_slots: bool,
    /// `--cache-idle-after`: how long a slot waits idle before it is parked.
    cache_idle_after: std::time::Duration,
    /// How long the last decode step took: what parking idle slots may spend per step.
    last_step: std::time::Duration,
    /// What parking idle slots has spent since this step's turn of the loop began.
    parking_spent: std::time::Duration,
    /// One KV cache shared by all slots (`--kv-unified`).
    kv_unified: bool,
    /// `--special`: special tokens appear in generated text.
    special: bool,
    /// `--context-shift`, where the KV cache can shift positions.
    context_shift: bool,
    /// Prompt tokens left at which a slot's chunk ends, as llama-server ends it to checkpoint
    /// memory it cannot cut back (`4 + n_ubatch` and `4` before the end, n_ubatch as
    /// `checkpoints.tail`): batches then hold the same rows, so CPU kernels round alike and
    /// greedy answers match llama-server's.
    prompt_tail_breaks: Vec<usize>,
    /// Context checkpoints per slot (none unless the model has sliding-window layers, which
    /// `--swa-full` makes whole, or a recurrent state), their tail within `n_batch`.
    checkpoints: CheckpointLimits,
    /// Where the time of the current busy period went (logged when the engine falls idle).
    busy: Option<Busy>,
    stats: Arc<EngineStats>,
    /// Slot actions (save, restore, erase) waiting for their slot to be free.
    slot_actions: VecDeque<slot_state::Deferred>,
    /// LoRA adapters and the scales each slot runs with.
    loras: Loras,
    /// Embedding and rerank tasks (`embed.rs`).
    embd: embed::EmbedState,
}

/// A request waiting for a slot.
struct Queued {
    req: GenerateRequest,
    tx: mpsc::UnboundedSender<Event>,
    /// The sampler chain to run in the decode graph; `None`: sample on the host.
    chain: Option<ChainSpec>,
}

impl<'m> Worker<'m> {
    fn new(
        model: &'m LlamaModel,
        ctx: Context<'m>,
        config: &EngineConfig,
        max_queue: usize,
        n_ctx_slot: u32,
        stats: Arc<EngineStats>,
    ) -> Self {
        let n_batch = ctx.n_batch() as usize;
        let n_ubatch = config.context.n_ubatch.min(config.context.n_batch) as usize;
        let checkpoint_limits = CheckpointLimits {
            tail: config.checkpoints.tail.min(n_batch),
            ..config.checkpoints
        };
        // Sliding-window layers keep only their window (unless --swa-full makes them whole); a
        // recurrent state (of a hybrid's layers too) only its last position.
        let windowed = llama::n_swa(model) > 0 && !config.context.swa_full;
        let rollback = if llama::has_recurrent_state(model) {
            Rollback::Recurrent
        } else if windowed {
            Rollback::Window(llama::n_swa(model))
        } else {
            Rollback::Any
        };
        // A hybrid whose attention slides too (LFM2 with a window): its checkpoints hold the
        // recurrent state only, not the window's cells before them, which llama.cpp may have
        // handed on; such prompts are computed again instead.
        let checkpointed =
            rollback.needs_checkpoints() && !(windowed && rollback == Rollback::Recurrent);
        let vocab = model.vocab();
        let eog_tokens = (0..model.n_vocab())
            .map(LlamaToken)
            .filter(|&t| vocab.is_eog(t))
            .collect();
        let suppressed = vocab.suppress_tokens().to_vec();
        // llama-server's token limit is the whole context.
        let prompt_cache = PromptCache::new(config.cache_ram_mib, ctx.n_ctx() as usize);
        match &prompt_cache {
            Some(cache) => tracing::info!(
                limit_mib = cache.limit_bytes().map_or(-1, |b| (b >> 20) as i64),
                idle_slots = config.cache_idle_slots,
                "host prompt cache on (--cache-ram 0 turns it off)"
            ),
            None => tracing::info!("host prompt cache off"),
        }
        let mut worker = Self {
            model,
            slots: (0..config.context.n_parallel as usize)
                .map(|id| Slot::new(id, n_ctx_slot))
                .collect(),
            queue: VecDeque::new(),
            max_queue,
            batch: Batch::new(n_batch.max(config.context.n_parallel as usize)),
            backend_sampling: config.backend_sampling,
            n_batch,
            n_ctx_slot,
            rollback,
            eog_tokens,
            suppressed,
            piece: Vec::with_capacity(64),
            sampling_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            slot_prompt_similarity: config.slot_prompt_similarity,
            prompt_cache,
            cache_idle_slots: config.cache_idle_slots,
            cache_idle_after: config.cache_idle_after,
            last_step: std::time::Duration::ZERO,
            parking_spent: std::time::Duration::ZERO,
            kv_unified: config.context.kv_unified,
            special: config.special,
            context_shift: config.context_shift,
            prompt_tail_breaks: if checkpointed {
                vec![n_batch.min(4 + checkpoint_limits.tail), n_batch.min(4)]
            } else {
                Vec::new()
            },
            checkpoints: if checkpointed {
                checkpoint_limits
            } else {
                CheckpointLimits {
                    max: 0,
                    ..checkpoint_limits
                }
            },
            busy: None,
            stats,
            slot_actions: VecDeque::new(),
            loras: Loras::default(),
            embd: embed::EmbedState::new(model, &ctx, config.context.embeddings, n_ubatch),
            ctx,
        };
        if worker.context_shift && !worker.ctx.can_shift() {
            tracing::warn!("this model's KV cache cannot shift positions: --context-shift is off");
            worker.context_shift = false;
        }
        if worker.backend_sampling {
            worker.attach_default_chains();
        }
        if config.warmup || worker.backend_sampling {
            worker.warm_up();
        }
        // Embeddings are on only for the decodes of embedding tasks.
        worker.ctx.set_embeddings(false);
        worker
    }

    /// Gives every sequence the chain of llama-server's default sampling, so that requests
    /// with default settings (most clients send at most a temperature) never wait for llama.cpp
    /// to re-reserve its graph (the warm-up reserves it once).
    fn attach_default_chains(&mut self) {
        let default = backend_chain(
            &SamplingParams::default(),
            self.model.n_vocab(),
            &self.suppressed,
        );
        for slot in &self.slots {
            if !self.ctx.attach(slot.seq_id(), default.clone()) {
                tracing::debug!("llama.cpp cannot run the default sampler chain on the backend");
                return;
            }
        }
    }

    /// llama-server's warm-up: one decode of BOS and EOS, then an empty cache, so that the
    /// first request does not pay for first-use costs (and backend chains are reserved).
    fn warm_up(&mut self) {
        let vocab = self.model.vocab();
        let tokens: Vec<LlamaToken> = [vocab.bos(), vocab.eos()]
            .into_iter()
            .filter(|t| t.0 >= 0)
            .collect();
        let tokens = if tokens.is_empty() {
            vec![LlamaToken(0)]
        } else {
            tokens
        };
        self.batch.clear();
        let last = tokens.len() - 1;
        let added = tokens
            .iter()
            .enumerate()
            .all(|(i, &t)| self.batch.add(t, i as i32, 0, i == last).is_ok());
        let warmed = added && self.ctx.decode(&mut self.batch).is_ok();
        self.batch.clear();
        self.ctx.seq_rm(0, None, None);
        if !warmed {
            tracing::warn!("the warm-up decode failed");
        }
    }

    fn run(&mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        loop {
            self.run_deferred_slot_actions();
            let idle = self.queue.is_empty() && self.slots.iter().all(|s| s.task.is_none());
            if idle {
                self.stats.load(0, 0);
                if let Some(busy) = self.busy.take() {
                    busy.log();
                }
                // Idle slots are saved while no command waits.
                let cmd = loop {
                    match rx.try_recv() {
                        Ok(cmd) => break Some(cmd),
                        Err(TryRecvError::Disconnected) => break None,
                        Err(TryRecvError::Empty) if self.save_an_idle_slot() => {}
                        Err(TryRecvError::Empty) => break rx.blocking_recv(),
                    }
                };
                match cmd {
                    Some(cmd) => {
                        if !self.handle(cmd) {
                            break;
                        }
                    }
                    None => break,
                }
            }
            let mut stop = false;
            while let Ok(cmd) = rx.try_recv() {
                if !self.handle(cmd) {
                    stop = true;
                    break;
                }
            }
            if stop {
                break;
            }
            self.release_cancelled();
            self.parking_spent = std::time::Duration::ZERO;
            self.assign_queued();
            let processing = self.slots.iter().filter(|s| s.task.is_some()).count();
            if processing > 0 {
                self.park_idle_slots(None);
            }
            self.stats.load(processing, self.queue.len());
            let started = std::time::Instant::now();
            self.step();
            self.last_step = started.elapsed();
            if self.checkpoints.max > 0 {
                let bytes = self.slots.iter().map(|s| s.checkpoints.bytes()).sum();
                self.stats.checkpoints_held(bytes);
            }
        }
        for slot in &mut self.slots {
            if let Some(task) = slot.task.take() {
                let _ = task.tx.send(Event::Error(EngineError::ShuttingDown));
            }
        }
        for queued in self.queue.drain(..) {
            let _ = queued.tx.send(Event::Error(EngineError::ShuttingDown));
        }
    }

    /// Empties slot `idx`: its cells and the tokens they hold.
    fn clear_slot(&mut self, idx: usize) {
        let slot = &mut self.slots[idx];
        slot.cache.clear();
        slot.checkpoints.clear();
        slot.parked = false;
        self.ctx.seq_rm(slot.seq_id(), None, None);
    }

    /// Handles one command; false means stop.
    fn handle(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Generate(mut req, tx) => {
                if let Err(e) = self.admit(&mut req) {
                    let _ = tx.send(Event::Error(e));
                } else if self.max_queue > 0 && self.queue.len() >= self.max_queue {
                    let _ = tx.send(Event::Error(EngineError::QueueFull(self.queue.len())));
                } else {
                    let queued = self.prepare(*req, tx);
                    self.queue.push_back(queued);
                }
            }
            Command::Slots(reply) => {
                let _ = reply.send(self.slots.iter().map(Slot::info).collect());
            }
            Command::SlotAction(action, reply) => self.slot_action(action, reply),
            Command::LoraAdapters(reply) => {
                let _ = reply.send(self.loras.list());
            }
            Command::SetLoraAdapters(scales, reply) => {
                self.loras.set_global(&scales);
                let _ = reply.send(());
            }
            Command::Shutdown => return false,
        }
        true
    }
}
