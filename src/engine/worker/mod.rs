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
use std::time::Instant;

use llama_cpp_2::DecodeError;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::{mpsc, oneshot};

mod busy;
mod embed;
mod panics;
mod slot_state;
mod tokens;

use busy::Busy;

use super::backend_sampling::{backend_chain, backend_unsupported};
use super::llama::{Batch, ChainSpec, Context};
use super::load::{describe, load_model, n_swa, new_context};
use super::lora::Loras;
use super::request::{Event, GenerateRequest};
use super::sampler::{Sampler, SamplingParams, penalties_on};
use super::slot::{Slot, Task, common_prefix};
use super::{Command, EngineConfig, EngineError, EngineStats, LoadedModel};

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
    let ctx = match new_context(&model, &config) {
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
    n_swa: u32,
    /// Tokens that end generation, banned by `ignore_eos` as llama-server does.
    eog_tokens: Vec<LlamaToken>,
    suppressed: Vec<LlamaToken>,
    piece: Vec<u8>,
    /// Threads for scanning the logits of several slots at once.
    sampling_threads: usize,
    /// `--slot-prompt-similarity`: reuse a slot's cache only if the common prefix covers at
    /// least this fraction of the new prompt; otherwise take the least recently used slot.
    slot_prompt_similarity: f32,
    /// `--special`: special tokens appear in generated text.
    special: bool,
    /// `--context-shift`, where the KV cache can shift positions.
    context_shift: bool,
    /// Prompt tokens left at which a slot's chunk ends, as llama-server ends it to checkpoint
    /// sliding-window caches (`4 + n_ubatch` and `4` before the end): batches then hold the
    /// same rows, so CPU kernels round alike and greedy answers match llama-server's.
    prompt_tail_breaks: Vec<usize>,
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
        let vocab = model.vocab();
        let eog_tokens = (0..model.n_vocab())
            .map(LlamaToken)
            .filter(|&t| vocab.is_eog(t))
            .collect();
        let suppressed = vocab.suppress_tokens().to_vec();
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
            n_swa: n_swa(model),
            eog_tokens,
            suppressed,
            piece: Vec::with_capacity(64),
            sampling_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            slot_prompt_similarity: config.slot_prompt_similarity,
            special: config.special,
            context_shift: config.context_shift,
            prompt_tail_breaks: if n_swa(model) > 0 && !config.context.swa_full {
                let n_ubatch = config.context.n_ubatch.min(config.context.n_batch) as usize;
                vec![n_batch.min(4 + n_ubatch), n_batch.min(4)]
            } else {
                Vec::new()
            },
            busy: None,
            stats,
            slot_actions: VecDeque::new(),
            loras: Loras::default(),
            embd: embed::EmbedState::new(
                model,
                &ctx,
                config.context.embeddings,
                config.context.n_ubatch.min(config.context.n_batch) as usize,
            ),
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
                match rx.blocking_recv() {
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
            self.assign_queued();
            let processing = self.slots.iter().filter(|s| s.task.is_some()).count();
            self.stats.load(processing, self.queue.len());
            self.step();
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

    /// Settles how a request will sample: `ignore_eos` bans the end-of-generation tokens (as
    /// llama-server does), and with backend sampling, the chain to run in the decode graph if
    /// every sampler it needs can run there.
    fn prepare(&self, mut req: GenerateRequest, tx: mpsc::UnboundedSender<Event>) -> Queued {
        // -1 windows (from `--repeat-last-n -1`, `--dry-penalty-last-n -1`) span the context.
        let n_ctx = self.n_ctx_slot as i32;
        for window in [
            &mut req.params.sampling.repeat_last_n,
            &mut req.params.sampling.dry_penalty_last_n,
        ] {
            if *window < 0 {
                *window = n_ctx;
            }
        }
        if req.params.ignore_eos {
            req.params
                .sampling
                .logit_bias
                .extend(self.eog_tokens.iter().map(|&t| (t, f32::NEG_INFINITY)));
        }
        let chain = if !self.backend_sampling {
            None
        } else if req.group.is_some() || req.kind.needs_embeddings() {
            // A group's members sample from its first member's logits, on the host.
            None
        } else if let Some(reason) = backend_unsupported(&req.params.sampling, req.params.n_probs) {
            tracing::debug!(id = req.id, reason, "host sampling for this request");
            None
        } else {
            Some(backend_chain(
                &req.params.sampling,
                self.model.n_vocab(),
                &self.suppressed,
            ))
        };
        Queued { req, tx, chain }
    }

    /// Frees slots (and queue entries) whose client has gone; their cache stays for reuse.
    fn release_cancelled(&mut self) {
        self.queue.retain(|q| !q.tx.is_closed());
        for idx in 0..self.slots.len() {
            let slot = &mut self.slots[idx];
            if slot.task.as_ref().is_some_and(|t| t.tx.is_closed()) {
                let task = slot.release().expect("checked above");
                task.req.span.in_scope(|| {
                    tracing::info!(
                        slot = idx,
                        n_decoded = task.n_decoded(),
                        "request cancelled by client"
                    );
                });
                self.orphan_waiting(idx);
            }
        }
    }

    /// The group members waiting for slot `parent`, whose task ended before its prompt was
    /// read: they read the prompt themselves.
    fn orphan_waiting(&mut self, parent: usize) {
        for slot in &mut self.slots {
            if let Some(task) = slot.task.as_mut().filter(|t| t.waiting_for == Some(parent)) {
                task.waiting_for = None;
                task.n_prompt_fed = 0;
                task.n_cached = 0;
            }
        }
    }

    /// Gives queued requests to free slots, reusing the cached prefix where it pays.
    fn assign_queued(&mut self) {
        while let Some(idx) = self.queue.front().and_then(|q| self.pick_slot(q)) {
            let queued = self.queue.pop_front().expect("front exists");
            let group = queued.req.group;
            self.start(idx, queued, None);
            if let Some(group) = group.filter(|g| g.parent) {
                self.start_group(idx, group);
            }
        }
    }

    /// Gives the queued members of a group free slots, waiting for slot `parent` to read
    /// their shared prompt (the group's first member had all the slots it needs).
    fn start_group(&mut self, parent: usize, group: super::Group) {
        let mut members = Vec::new();
        let mut i = 0;
        while i < self.queue.len() {
            if self.queue[i]
                .req
                .group
                .is_some_and(|g| g.id == group.id && !g.parent)
            {
                members.push(self.queue.remove(i).expect("index in range"));
            } else {
                i += 1;
            }
        }
        for queued in members {
            let Some(idx) = self
                .slots
                .iter()
                .filter(|s| s.task.is_none())
                .min_by_key(|s| s.last_used)
                .map(|s| s.id)
            else {
                // Not enough slots after all: the member waits its turn like any request.
                let mut queued = queued;
                queued.req.group = None;
                self.queue.push_front(queued);
                continue;
            };
            self.start(idx, queued, Some(parent));
        }
    }

    /// The slot for a request: the one it names; else the free slot whose cache holds enough
    /// of its prompt; else the least recently used free slot, among those already holding the
    /// request's sampler chain if any does.
    fn pick_slot(&self, queued: &Queued) -> Option<usize> {
        let req = &queued.req;
        let free = || self.slots.iter().filter(|s| s.task.is_none());
        if let Some(group) = req.group.filter(|g| g.parent)
            && free().count() < group.size
        {
            // The group's members start together (llama-server defers such a request too).
            return None;
        }
        if let Some(id) = req.params.id_slot {
            return free().find(|s| s.id == id).map(|s| s.id);
        }
        if req.params.cache_prompt {
            let best = free()
                .map(|s| (common_prefix(&s.cache, &req.prompt), s.id))
                .max_by_key(|&(lcp, _)| lcp);
            if let Some((lcp, id)) = best
                && lcp > 0
                && lcp as f32 >= self.slot_prompt_similarity * req.prompt.len() as f32
            {
                return Some(id);
            }
        }
        let holds_chain = |s: &&Slot| {
            queued
                .chain
                .as_ref()
                .is_some_and(|c| self.ctx.has_chain(s.seq_id(), c))
        };
        free()
            .filter(holds_chain)
            .min_by_key(|s| s.last_used)
            .or_else(|| free().min_by_key(|s| s.last_used))
            .map(|s| s.id)
    }

    /// Starts a request on slot `idx`; `wait_for` is the slot of its group's first member,
    /// whose prompt (cache and logits) it will take instead of reading it.
    fn start(&mut self, idx: usize, queued: Queued, wait_for: Option<usize>) {
        let Queued { req, tx, chain } = queued;
        let seq = self.slots[idx].seq_id();
        let on_backend = match chain {
            Some(chain) => {
                let attached = self.ctx.attach(seq, chain);
                if !attached {
                    tracing::debug!(
                        id = req.id,
                        reason = "llama.cpp cannot run the chain on the backend",
                        "host sampling for this request"
                    );
                } else if penalties_on(&req.params.sampling) {
                    // The chain's penalties look back at the prompt too, as on the host.
                    let window = usize::try_from(req.params.sampling.repeat_last_n).unwrap_or(0);
                    let start = req.prompt.len().saturating_sub(window);
                    for &token in &req.prompt[start..] {
                        self.ctx.accept(seq, token);
                    }
                }
                attached
            }
            None => {
                self.ctx.detach(seq);
                false
            }
        };
        let sampler = if on_backend {
            None
        } else {
            match Sampler::new(req.params.sampling.clone(), self.model, &self.suppressed) {
                Ok(mut s) => {
                    if req.params.post_sampling_probs {
                        s.keep_candidates();
                    }
                    s.accept_prompt(&req.prompt);
                    Some(s)
                }
                Err(e) => {
                    let _ = tx.send(Event::Error(e.into()));
                    return;
                }
            }
        };
        let slot = &mut self.slots[idx];
        let mut n_keep = if req.params.cache_prompt && wait_for.is_none() {
            common_prefix(&slot.cache, &req.prompt)
        } else {
            0
        };
        if self.loras.assign(idx, &req.params.lora) {
            // Cached tokens were computed with other adapter scales.
            n_keep = 0;
        }
        // The last prompt token must be decoded again to get logits for the first sample.
        n_keep = n_keep.min(req.prompt.len().saturating_sub(1));
        if n_keep > 0 && self.n_swa > 0 {
            // Sliding-window layers only keep the last n_swa positions: a prefix whose window
            // has been evicted cannot be reused (llama-server's same check).
            let pos_min = self.ctx.seq_pos_min(seq);
            if pos_min > (n_keep as i32 - self.n_swa as i32).max(0) {
                n_keep = 0;
            }
        }
        if !self.ctx.seq_rm(seq, Some(n_keep as u32), None) {
            n_keep = 0;
            self.ctx.seq_rm(seq, None, None);
        }
        slot.cache.truncate(n_keep);
        let mut task = Task::new(req, tx, sampler);
        task.test_panic = panics::armed(self.model, &task.req.prompt);
        task.n_cached = n_keep;
        task.n_prompt_fed = n_keep;
        if wait_for.is_some() {
            // Nothing to read: the prompt comes from the first member's slot.
            task.waiting_for = wait_for;
            task.n_prompt_fed = task.req.prompt.len();
        }
        tracing::debug!(
            id = task.req.id,
            slot = slot.id,
            n_prompt = task.req.prompt.len(),
            n_cached = n_keep,
            backend_sampling = task.sampler.is_none(),
            "slot assigned"
        );
        slot.task = Some(task);
    }

    /// One decode step over every active slot.
    fn step(&mut self) {
        if self.embed_turn() {
            self.step_embed();
            return;
        }
        if self.context_shift {
            for idx in 0..self.slots.len() {
                let slot = &self.slots[idx];
                let generating = slot.task.as_ref().is_some_and(|t| t.pending.is_some());
                if generating && slot.cache.len() + 1 >= self.n_ctx_slot as usize {
                    self.shift_context(idx);
                }
            }
        }
        self.batch.clear();
        // One LoRA setting per decode: slots with other scales wait for their turn.
        let active = self.slots.iter().filter(|s| s.task.is_some());
        self.loras.pick_batch(active.map(|s| s.id));
        // Generating slots first: one token each.
        for slot in &mut self.slots {
            let seq = slot.seq_id();
            let Some(task) = slot
                .task
                .as_mut()
                .filter(|t| !t.req.kind.needs_embeddings())
            else {
                continue;
            };
            task.i_batch = None;
            if !self.loras.batchable(slot.id) {
                continue;
            }
            if let Some(token) = task.pending.take() {
                task.i_batch = Some(self.batch.n_tokens());
                let pos = slot.cache.len() as i32;
                self.batch
                    .add(token, pos, seq, true)
                    .expect("batch sized for n_parallel");
                slot.cache.push(token);
            }
        }
        // Then prompt chunks, as far as the batch allows.
        for slot in &mut self.slots {
            let seq = slot.seq_id();
            let Some(task) = slot
                .task
                .as_mut()
                .filter(|t| !t.req.kind.needs_embeddings())
            else {
                continue;
            };
            if !self.loras.batchable(slot.id) {
                continue;
            }
            while task.in_prompt() && (self.batch.n_tokens() as usize) < self.n_batch {
                let token = task.req.prompt[task.n_prompt_fed];
                task.n_prompt_fed += 1;
                let last = !task.in_prompt();
                if last {
                    task.i_batch = Some(self.batch.n_tokens());
                }
                let pos = slot.cache.len() as i32;
                self.batch
                    .add(token, pos, seq, last)
                    .expect("batch has room");
                slot.cache.push(token);
                let left = task.req.prompt.len() - task.n_prompt_fed;
                if self.prompt_tail_breaks.contains(&left) {
                    break;
                }
            }
        }
        if self.batch.n_tokens() == 0 {
            return;
        }
        if self.busy.is_none() {
            self.busy = Some(Busy::new());
        }
        let busy_slots = self.slots.iter().filter(|s| s.task.is_some()).count();
        self.stats.decoded(busy_slots);
        self.loras.apply(&mut self.ctx);
        let t0 = Instant::now();
        let decoded = self.ctx.decode(&mut self.batch);
        let t1 = Instant::now();
        if let Err(e) = decoded {
            self.fail_batch(&e);
            return;
        }
        let outputs = self.sample_all();
        let busy = self.busy.as_mut().expect("set above");
        busy.steps += 1;
        busy.batch_tokens += self.batch.n_tokens() as u64;
        busy.outputs += outputs;
        busy.decode += t1 - t0;
        busy.sample += t1.elapsed();
    }

    /// A decode failed: the tasks in this batch cannot go on. Free what they hold.
    fn fail_batch(&mut self, err: &DecodeError) {
        let error = || {
            match err {
            DecodeError::NoKvCacheSlot => EngineError::ContextFull(
                "no room left in the KV cache for this request; reduce the prompt, n_predict or --parallel, or raise --ctx-size".into(),
            ),
            other => EngineError::Decode(other.to_string()),
        }
        };
        for idx in 0..self.slots.len() {
            let slot = &mut self.slots[idx];
            // Slots of other LoRA scales waited for their turn: not in this batch.
            let in_batch = self.loras.batchable(idx)
                && slot.task.as_ref().is_some_and(|t| {
                    t.waiting_for.is_none() && (t.i_batch.is_some() || t.n_prompt_fed > t.n_cached)
                });
            if in_batch {
                let task = slot.release().expect("checked");
                task.req
                    .span
                    .in_scope(|| tracing::warn!(slot = idx, "{}", error()));
                let _ = task.tx.send(Event::Error(error()));
                slot.cache.clear();
                self.ctx.detach(slot.seq_id());
                self.ctx.seq_rm(slot.seq_id(), None, None);
                self.orphan_waiting(idx);
            }
        }
    }
}
