//! The engine thread: loads the model (`load.rs`), owns the llama.cpp context, and runs the
//! decode loop.
//!
//! Each step builds one batch: the pending token of every generating slot, then prompt tokens of
//! slots still reading their prompt, up to `n_batch` (chunked prefill). One `llama_decode` runs
//! them all; then each slot with an output in the batch takes its next token: sampled here from
//! the logits (host sampling), or read from the decode when the slot's request has a sampler
//! chain attached to the context (backend sampling, see `llama.rs`). A slot whose client went
//! away is released, and its chain detached, before the next step. The loop blocks on the
//! command channel only when nothing is active.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use llama_cpp_2::DecodeError;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::{mpsc, oneshot};

use super::backend_sampling::{backend_chain, backend_unsupported};
use super::llama::{Batch, Context};
use super::load::{describe, load_model, n_swa, new_context};
use super::request::{Event, GenerateRequest, StopType, TokenProbs};
use super::sampler::{Sampler, token_probs};
use super::slot::{Slot, Task, common_prefix};
use super::{Command, EngineConfig, EngineError, LoadedModel};

/// llama-server's `--slot-prompt-similarity`: reuse a slot's cache only if the common prefix
/// covers at least this fraction of the new prompt; otherwise take the least recently used slot.
const SLOT_PROMPT_SIMILARITY: f32 = 0.1;

pub fn run(
    config: EngineConfig,
    max_queue: usize,
    rx: mpsc::UnboundedReceiver<Command>,
    ready: oneshot::Sender<Result<Arc<LoadedModel>, EngineError>>,
) {
    super::llama_log::install(config.verbose);
    let backend = match LlamaBackend::init() {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(EngineError::Context {
                n_ctx: 0,
                reason: e.to_string(),
            }));
            return;
        }
    };
    let model = match load_model(&backend, &config) {
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
    let info = Arc::new(describe(&model, &ctx, &config));
    let n_ctx_slot = info.n_ctx_slot;
    if ready.send(Ok(info)).is_err() {
        return;
    }
    let mut worker = Worker::new(&model, ctx, &config, max_queue, n_ctx_slot);
    worker.run(rx);
}

struct Worker<'m> {
    model: &'m LlamaModel,
    ctx: Context<'m>,
    slots: Vec<Slot>,
    queue: VecDeque<(GenerateRequest, mpsc::UnboundedSender<Event>)>,
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
}

impl<'m> Worker<'m> {
    fn new(
        model: &'m LlamaModel,
        ctx: Context<'m>,
        config: &EngineConfig,
        max_queue: usize,
        n_ctx_slot: u32,
    ) -> Self {
        let n_batch = ctx.n_batch() as usize;
        let vocab = model.vocab();
        let eog_tokens = (0..model.n_vocab())
            .map(LlamaToken)
            .filter(|&t| vocab.is_eog(t))
            .collect();
        let suppressed = vocab.suppress_tokens().to_vec();
        Self {
            model,
            slots: (0..config.n_parallel as usize)
                .map(|id| Slot::new(id, n_ctx_slot))
                .collect(),
            queue: VecDeque::new(),
            max_queue,
            batch: Batch::new(n_batch.max(config.n_parallel as usize)),
            backend_sampling: config.backend_sampling,
            n_batch,
            n_ctx_slot,
            n_swa: n_swa(model),
            eog_tokens,
            suppressed,
            piece: Vec::with_capacity(64),
            ctx,
        }
    }

    fn run(&mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        loop {
            let idle = self.queue.is_empty() && self.slots.iter().all(|s| s.task.is_none());
            if idle {
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
            self.step();
        }
        for slot in &mut self.slots {
            if let Some(task) = slot.task.take() {
                self.ctx.detach(slot.seq_id());
                let _ = task.tx.send(Event::Error(EngineError::ShuttingDown));
            }
        }
        for (_, tx) in self.queue.drain(..) {
            let _ = tx.send(Event::Error(EngineError::ShuttingDown));
        }
    }

    /// Handles one command; false means stop.
    fn handle(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Generate(req, tx) => {
                if self.max_queue > 0 && self.queue.len() >= self.max_queue {
                    let _ = tx.send(Event::Error(EngineError::QueueFull(self.queue.len())));
                } else {
                    self.queue.push_back((*req, tx));
                }
            }
            Command::Slots(reply) => {
                let _ = reply.send(self.slots.iter().map(Slot::info).collect());
            }
            Command::Shutdown => return false,
        }
        true
    }

    /// Frees slots (and queue entries) whose client has gone; their cache stays for reuse.
    fn release_cancelled(&mut self) {
        self.queue.retain(|(_, tx)| !tx.is_closed());
        for slot in &mut self.slots {
            if slot.task.as_ref().is_some_and(|t| t.tx.is_closed()) {
                let task = slot.task.take().expect("checked above");
                self.ctx.release(slot.seq_id());
                tracing::info!(
                    id = task.req.id,
                    slot = slot.id,
                    n_decoded = task.n_decoded(),
                    "request cancelled by client"
                );
                slot.last_used = Instant::now();
            }
        }
    }

    /// Gives queued requests to free slots, reusing the cached prefix where it pays.
    fn assign_queued(&mut self) {
        while let Some(idx) = self.queue.front().and_then(|(req, _)| self.pick_slot(req)) {
            let (req, tx) = self.queue.pop_front().expect("front exists");
            self.start(idx, req, tx);
        }
    }

    fn pick_slot(&self, req: &GenerateRequest) -> Option<usize> {
        let free = || self.slots.iter().filter(|s| s.task.is_none());
        if let Some(id) = req.id_slot {
            return free().find(|s| s.id == id).map(|s| s.id);
        }
        if req.cache_prompt {
            let best = free()
                .map(|s| (common_prefix(&s.cache, &req.prompt), s.id))
                .max_by_key(|&(lcp, _)| lcp);
            if let Some((lcp, id)) = best {
                if lcp > 0 && lcp as f32 >= SLOT_PROMPT_SIMILARITY * req.prompt.len() as f32 {
                    return Some(id);
                }
            }
        }
        free().min_by_key(|s| s.last_used).map(|s| s.id)
    }

    fn start(&mut self, idx: usize, mut req: GenerateRequest, tx: mpsc::UnboundedSender<Event>) {
        if req.ignore_eos {
            req.sampling
                .logit_bias
                .extend(self.eog_tokens.iter().map(|&t| (t, f32::NEG_INFINITY)));
        }
        let seq = self.slots[idx].seq_id();
        let sampler = if self.attach_chain(seq, &req) {
            None
        } else {
            match Sampler::new(req.sampling.clone(), self.model, &self.suppressed) {
                Ok(s) => Some(s),
                Err(e) => {
                    let _ = tx.send(Event::Error(e.into()));
                    return;
                }
            }
        };
        let slot = &mut self.slots[idx];
        let mut n_keep = if req.cache_prompt {
            common_prefix(&slot.cache, &req.prompt)
        } else {
            0
        };
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
        task.n_cached = n_keep;
        task.n_prompt_fed = n_keep;
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

    /// Attaches a sampler chain for the request to the slot's sequence when backend sampling
    /// is on and every sampler the request needs runs there; false means host sampling.
    fn attach_chain(&mut self, seq: i32, req: &GenerateRequest) -> bool {
        if !self.backend_sampling {
            return false;
        }
        if let Some(reason) = backend_unsupported(&req.sampling, req.n_probs) {
            tracing::debug!(id = req.id, reason, "host sampling for this request");
            self.ctx.detach(seq);
            return false;
        }
        // A fresh chain per request (llama.cpp initializes a chain for the backend only once),
        // unless the sequence keeps an equal stateless one.
        let chain = backend_chain(&req.sampling, self.model.n_vocab(), &self.suppressed);
        let attached = self.ctx.attach(seq, chain).is_ok();
        if !attached {
            tracing::debug!(
                id = req.id,
                reason = "llama.cpp cannot run the chain on the backend",
                "host sampling for this request"
            );
        }
        attached
    }

    /// One decode step over every active slot.
    fn step(&mut self) {
        self.batch.clear();
        // Generating slots first: one token each.
        for slot in &mut self.slots {
            let seq = slot.seq_id();
            let Some(task) = &mut slot.task else { continue };
            task.i_batch = None;
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
            let Some(task) = &mut slot.task else { continue };
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
            }
        }
        if self.batch.n_tokens() == 0 {
            return;
        }
        if let Err(e) = self.ctx.decode(&mut self.batch) {
            self.fail_batch(&e);
            return;
        }
        self.sample_all();
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
        for slot in &mut self.slots {
            let in_batch = slot
                .task
                .as_ref()
                .is_some_and(|t| t.i_batch.is_some() || t.n_prompt_fed > t.n_cached);
            if in_batch {
                let task = slot.task.take().expect("checked");
                tracing::warn!(id = task.req.id, slot = slot.id, "{}", error());
                let _ = task.tx.send(Event::Error(error()));
                slot.cache.clear();
                self.ctx.detach(slot.seq_id());
                self.ctx.seq_rm(slot.seq_id(), None, None);
            }
        }
    }

    fn sample_all(&mut self) {
        let vocab = self.model.vocab();
        for slot in &mut self.slots {
            let seq = slot.seq_id();
            let Some(task) = &mut slot.task else { continue };
            let Some(i) = task.i_batch.take() else {
                continue;
            };
            if task.t_prompt_done.is_none() {
                task.t_prompt_done = Some(Instant::now());
            }
            let stop = if task.req.n_predict == Some(0) {
                Some(StopType::Limit)
            } else {
                let Some((token, probs)) = next_token(&mut self.ctx, task, seq, i) else {
                    let task = slot.task.take().expect("active");
                    self.ctx.detach(seq);
                    let err = EngineError::Decode("the backend sampler chose no token".into());
                    tracing::warn!(id = task.req.id, slot = slot.id, "{err}");
                    let _ = task.tx.send(Event::Error(err));
                    slot.last_used = Instant::now();
                    continue;
                };
                if vocab.is_eog(token) && !task.req.ignore_eos {
                    task.generated.push(token);
                    Some(StopType::Eos)
                } else {
                    self.piece.clear();
                    let special = task.req.preserved_tokens.contains(&token);
                    vocab.token_to_piece_into(token, &mut self.piece, special, None);
                    match task.push_token(token, &self.piece, probs) {
                        Err(()) => {
                            // The client went away: free the slot, keep what is cached.
                            slot.task = None;
                            self.ctx.release(seq);
                            slot.last_used = Instant::now();
                            continue;
                        }
                        Ok(Some(stop)) => Some(stop),
                        Ok(None) => {
                            let limit = task
                                .req
                                .n_predict
                                .is_some_and(|n| task.n_decoded() >= n as usize);
                            let full = slot.cache.len() + 1 >= self.n_ctx_slot as usize;
                            if limit || full {
                                Some(StopType::Limit)
                            } else {
                                task.pending = Some(token);
                                None
                            }
                        }
                    }
                }
            };
            if let Some(stop) = stop {
                let mut task = slot.task.take().expect("active");
                self.ctx.release(seq);
                let truncated =
                    slot.cache.len() + 1 >= self.n_ctx_slot as usize && stop == StopType::Limit;
                let done = task.completion(stop, slot.id, truncated);
                tracing::info!(
                    id = task.req.id,
                    slot = slot.id,
                    stop = done.stop_type.as_str(),
                    prompt_n = done.timings.prompt_n,
                    cache_n = done.timings.cache_n,
                    predicted_n = done.timings.predicted_n,
                    prompt_tps = format!("{:.1}", done.timings.prompt_per_second),
                    predicted_tps = format!("{:.1}", done.timings.predicted_per_second),
                    graphs_reused = self.ctx.graphs_reused(),
                    "request done"
                );
                let _ = task.tx.send(Event::Done(Box::new(done)));
                slot.last_used = Instant::now();
            }
        }
    }
}

/// The next token of a task whose output is row `i` of the last decode, with its probabilities
/// if asked: sampled here from the logits, or read from the decode when the sequence's chain
/// ran there. `None`: the backend chain chose no token.
fn next_token(
    ctx: &mut Context<'_>,
    task: &mut Task,
    seq: i32,
    i: i32,
) -> Option<(LlamaToken, Option<TokenProbs>)> {
    let Some(sampler) = &mut task.sampler else {
        // Backend sampling: this row's logits were not copied back; never read them.
        let token = ctx.backend_token(seq, i)?;
        // Penalties and the RNG advance on the chain, as in llama-server.
        ctx.accept(seq, token);
        return Some((token, None));
    };
    let logits = ctx.logits_ith(i);
    let token = sampler.sample(logits);
    let n_probs = task.req.n_probs;
    let probs = (n_probs > 0).then(|| token_probs(logits, token, n_probs));
    Some((token, probs))
}
