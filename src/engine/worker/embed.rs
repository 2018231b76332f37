//! Embedding and rerank tasks on the engine's slots and batches, as llama-server runs them.
//!
//! Such a task takes a slot like any request, but its batch is its own: llama.cpp gives either
//! logits or embeddings for a whole decode, so a step reads either generating slots or
//! embedding ones (the two take turns when both wait), and turns embeddings on for that decode
//! only. Every prompt token is an output (pooling reads them all). Unless the pooling reads
//! only the last token, an input is read in one ubatch (an encoder has no KV cache to read it
//! in parts), so an input waits for a batch with room for all of it. The task is stateless: it
//! reuses no cached prefix and leaves nothing in the cache.

use std::time::Instant;

use llama_cpp_2::DecodeError;

use super::Worker;
use crate::engine::llama::{Context, embd};
use crate::engine::request::{Event, GenerateRequest};
use crate::engine::{Embedding, EngineError, Pooling, TaskKind, normalize};

/// What the worker knows for embedding tasks, fixed at load.
pub(super) struct EmbedState {
    /// The context was created with embeddings (`--embedding`).
    enabled: bool,
    pooling: Pooling,
    /// An input may span several batches (see `EmbeddingInfo::can_split`).
    can_split: bool,
    /// The context has a KV cache (encoders have none, and give no logits).
    has_memory: bool,
    /// Tokens an embedding batch holds at most: the physical batch.
    n_ubatch: usize,
    n_embd_out: usize,
    n_cls_out: usize,
    /// The last step read embedding tasks (the kinds take turns).
    last_turn: bool,
}

impl EmbedState {
    pub(super) fn new(
        model: &llama_cpp_2::model::LlamaModel,
        ctx: &Context<'_>,
        enabled: bool,
        n_ubatch: usize,
    ) -> Self {
        let pooling = ctx.pooling();
        let has_memory = ctx.has_memory();
        Self {
            enabled,
            pooling,
            can_split: has_memory
                && (pooling == Pooling::Last || (pooling == Pooling::Rank && ctx.causal_attn())),
            has_memory,
            n_ubatch,
            n_embd_out: embd::n_embd_out(model),
            n_cls_out: embd::n_cls_out(model).max(1),
            last_turn: false,
        }
    }
}

impl Worker<'_> {
    /// Whether the engine can serve this request, in llama-server's words when not; an
    /// embedding task is made stateless (no cached prefix).
    pub(super) fn admit(&self, req: &mut GenerateRequest) -> Result<(), EngineError> {
        let e = &self.embd;
        if !req.kind.needs_embeddings() {
            if !e.has_memory {
                return Err(EngineError::NotSupported(
                    "the current context does not support logits computation. skipping".into(),
                ));
            }
            return Ok(());
        }
        if !e.enabled {
            return Err(EngineError::NotSupported(
                "This server does not support embeddings. Start it with `--embeddings`".into(),
            ));
        }
        if !e.can_split && req.prompt.len() > e.n_ubatch {
            return Err(EngineError::Embedding(format!(
                "input ({} tokens) is too large to process. increase the physical batch size \
                 (current batch size: {})",
                req.prompt.len(),
                e.n_ubatch
            )));
        }
        req.params.cache_prompt = false;
        Ok(())
    }

    /// Whether this step reads embedding tasks: some wait, and either no generating task does
    /// or the last step was theirs.
    pub(super) fn embed_turn(&mut self) -> bool {
        let waiting = |embd: bool| {
            self.slots.iter().any(|s| {
                s.task
                    .as_ref()
                    .is_some_and(|t| t.req.kind.needs_embeddings() == embd)
            })
        };
        let turn = waiting(true) && (!self.embd.last_turn || !waiting(false));
        self.embd.last_turn = turn;
        turn
    }

    /// One decode of embedding tasks' prompts; each task whose prompt is read gets its
    /// result and frees its slot.
    pub(super) fn step_embed(&mut self) {
        self.batch.clear();
        let cap = self.embd.n_ubatch.min(self.n_batch);
        let mut in_batch = Vec::new();
        for slot in &mut self.slots {
            let seq = slot.seq_id();
            let Some(task) = slot.task.as_mut().filter(|t| t.req.kind.needs_embeddings()) else {
                continue;
            };
            let room = cap - self.batch.n_tokens() as usize;
            let left = task.req.prompt.len() - task.n_prompt_fed;
            if room == 0 || (!self.embd.can_split && left > room) {
                continue;
            }
            let first = self.batch.n_tokens();
            while task.in_prompt() && (self.batch.n_tokens() as usize) < cap {
                let token = task.req.prompt[task.n_prompt_fed];
                task.n_prompt_fed += 1;
                let pos = slot.cache.len() as i32;
                self.batch
                    .add(token, pos, seq, true)
                    .expect("batch has room");
                slot.cache.push(token);
            }
            task.i_batch = (!task.in_prompt()).then_some(first);
            in_batch.push(slot.id);
        }
        if self.batch.n_tokens() == 0 {
            return;
        }
        let busy_slots = self.slots.iter().filter(|s| s.task.is_some()).count();
        self.stats.decoded(busy_slots);
        let t0 = Instant::now();
        self.ctx.set_embeddings(true);
        let decoded = self.ctx.decode(&mut self.batch);
        self.ctx.set_embeddings(false);
        let t1 = Instant::now();
        if let Err(e) = decoded {
            self.fail_embed(&in_batch, &e);
            return;
        }
        let mut outputs = 0;
        for idx in in_batch {
            let done = self.slots[idx].task.as_mut().and_then(|t| t.i_batch.take());
            if let Some(first) = done {
                self.send_embedding(idx, first);
                outputs += 1;
            }
        }
        let batch_tokens = self.batch.n_tokens() as u64;
        self.busy()
            .step(batch_tokens, outputs, t1 - t0, t1.elapsed());
    }

    /// Reads slot `idx`'s result out of the last decode (its rows start at `first`), sends it
    /// and frees the slot, its cache emptied. As llama-server, a vector llama.cpp does not
    /// have reads as zeros (a score as -1e6).
    fn send_embedding(&mut self, idx: usize, first: i32) {
        let e = &self.embd;
        let seq = self.slots[idx].seq_id();
        let task = self.slots[idx].task.as_ref().expect("in the batch");
        let n_tokens = task.req.prompt.len();
        let kind = task.req.kind;
        let vectors = match kind {
            TaskKind::Rerank => {
                let last = first + n_tokens as i32 - 1;
                let score = match self.ctx.embeddings_seq(seq, e.n_cls_out) {
                    Some(v) => Some(v[0]),
                    None => self.ctx.embeddings_ith(last, 1).map(|v| v[0]),
                };
                vec![vec![score.unwrap_or(-1e6)]]
            }
            TaskKind::Embed { .. } if e.pooling == Pooling::None => (0..n_tokens as i32)
                .map(|i| {
                    self.ctx
                        .embeddings_ith(first + i, e.n_embd_out)
                        .map_or_else(|| vec![0.0; e.n_embd_out], <[f32]>::to_vec)
                })
                .collect(),
            TaskKind::Embed { normalize: norm } => {
                // Rank pooling keeps only the classifier's scores per sequence.
                let n = if e.pooling == Pooling::Rank {
                    e.n_cls_out
                } else {
                    e.n_embd_out
                };
                let pooled = self.ctx.embeddings_seq(seq, n);
                vec![pooled.map_or_else(|| vec![0.0; n], |v| normalize(v, norm))]
            }
            TaskKind::Generate => unreachable!("only embedding tasks are in an embedding batch"),
        };
        let task = self.slots[idx].release().expect("in the batch");
        self.clear_slot(idx);
        // As llama-server, an embedding's tokens count as prompt tokens in `/metrics`.
        let prompt_ms = task.t_start.elapsed().as_secs_f64() * 1e3;
        self.stats.request_done(n_tokens, 0, prompt_ms, 0, 0.0);
        task.req.span.in_scope(|| {
            tracing::info!(slot = idx, n_tokens, kind = ?kind, "embedding done");
        });
        let _ = task
            .tx
            .send(Event::Embedding(Box::new(Embedding { vectors, n_tokens })));
    }

    /// An embedding decode failed: the tasks it held end with the error.
    fn fail_embed(&mut self, in_batch: &[usize], err: &DecodeError) {
        for &idx in in_batch {
            let Some(task) = self.slots[idx].release() else {
                continue;
            };
            let error = EngineError::Decode(err.to_string());
            task.req
                .span
                .in_scope(|| tracing::warn!(slot = idx, "{error}"));
            let _ = task.tx.send(Event::Error(error));
            self.clear_slot(idx);
        }
    }
}
