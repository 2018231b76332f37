//! One decode step: a context shift for slots that are full, the batch of every generating
//! slot's pending token, then prompt chunks as far as `n_batch` allows (one LoRA setting per
//! decode), one `llama_decode`, and the tokens read back (`tokens.rs`); embedding steps go to
//! `embed.rs`. A decode that finds the KV cache full clears an idle slot and tries again, then
//! lets this step's prompt chunks wait for room while generating streams go on, and fails the
//! request holding the most cells only when those do not fit either; a decode that fails
//! otherwise ends the requests that were in its batch.

use std::time::{Duration, Instant};

use llama_cpp_2::DecodeError;

use super::Worker;
use crate::engine::EngineError;
use crate::engine::checkpoint::Checkpoint;
use crate::engine::request::Event;

impl Worker<'_> {
    /// One decode step over every active slot.
    pub(super) fn step(&mut self) {
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
        // Then prompt chunks, as far as the batch allows: (slot, tokens fed before its chunk).
        let mut chunks: Vec<(usize, usize)> = Vec::new();
        let mut checkpointing = Duration::ZERO;
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
            let start = task.n_prompt_fed;
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
            if task.n_prompt_fed > start {
                chunks.push((slot.id, start));
            }
            // A chunk that brings the prompt within a ubatch of its end: the window as it was
            // before the chunk is checkpointed (llama-server takes it before the decode too),
            // unless the slot holds that checkpoint already (a chunk that found the KV cache
            // full comes back: the same tokens, the same state).
            let left = task.req.prompt.len() - task.n_prompt_fed;
            if self.checkpoints.max > 0
                && task.n_prompt_fed > start
                && left < self.checkpoints.tail
                && !slot.checkpoints.holds(start)
            {
                let started = Instant::now();
                let (pos_min, pos_max) = (self.ctx.seq_pos_min(seq), self.ctx.seq_pos_max(seq));
                if pos_min >= 0
                    && let Some(state) = self.ctx.seq_partial_state(seq)
                {
                    let checkpoint = Checkpoint {
                        n_tokens: start,
                        pos_min,
                        pos_max,
                        task: task.req.id,
                        state,
                    };
                    slot.checkpoints.add(checkpoint, self.checkpoints);
                }
                checkpointing += started.elapsed();
            }
        }
        if self.batch.n_tokens() == 0 {
            return;
        }
        // A checkpoint is taken only with a prompt chunk in the batch, so none is left out here.
        self.busy().checkpoints += checkpointing;
        let busy_slots = self.slots.iter().filter(|s| s.task.is_some()).count();
        self.stats.decoded(busy_slots);
        self.loras.apply(&mut self.ctx);
        let t0 = Instant::now();
        let mut decoded = self.ctx.decode(&mut self.batch);
        // A full KV cache computed nothing: room made by an idle slot lets the batch go on.
        while matches!(decoded, Err(DecodeError::NoKvCacheSlot)) && self.clear_an_idle_slot() {
            decoded = self.ctx.decode(&mut self.batch);
        }
        if matches!(decoded, Err(DecodeError::NoKvCacheSlot)) {
            decoded = self.decode_in_a_full_cache(&chunks);
        }
        let t1 = Instant::now();
        if let Err(e) = decoded {
            self.fail_batch(&e);
            return;
        }
        let outputs = self.sample_all();
        let batch_tokens = self.batch.n_tokens() as u64;
        self.busy()
            .step(batch_tokens, outputs, t1 - t0, t1.elapsed());
    }

    /// The KV cache is full and no idle slot is left to clear. This step's prompt chunks are
    /// taken back (their requests wait, and are fed at a later step, once a finished stream has
    /// made room) and the streams that are generating decode their tokens alone. When even
    /// those do not fit, or none is generating, the request that holds the most cells fails and
    /// the rest go on. llama-server halves its batch here and, at one token, fails every request.
    fn decode_in_a_full_cache(&mut self, chunks: &[(usize, usize)]) -> Result<(), DecodeError> {
        for &(idx, start) in chunks {
            let slot = &mut self.slots[idx];
            let task = slot.task.as_mut().expect("fed this step");
            let fed = task.n_prompt_fed - start;
            task.n_prompt_fed = start;
            task.i_batch = None;
            slot.cache.truncate(slot.cache.len() - fed);
            task.req.span.in_scope(|| {
                tracing::debug!(slot = idx, "no room in the KV cache: the prompt waits")
            });
        }
        let mut failed_one = false;
        loop {
            self.batch.clear();
            for slot in &mut self.slots {
                let Some(task) = slot
                    .task
                    .as_mut()
                    .filter(|t| t.i_batch.is_some() && !t.req.kind.needs_embeddings())
                else {
                    continue;
                };
                let token = *slot
                    .cache
                    .last()
                    .expect("a generating slot holds its token");
                task.i_batch = Some(self.batch.n_tokens());
                let pos = slot.cache.len() as i32 - 1;
                self.batch
                    .add(token, pos, slot.seq_id(), true)
                    .expect("batch sized for n_parallel");
            }
            if self.batch.n_tokens() > 0 {
                match self.ctx.decode(&mut self.batch) {
                    Err(DecodeError::NoKvCacheSlot) => {}
                    decoded => return decoded,
                }
            } else if failed_one {
                // Nothing generating, and room made: the prompts left try again next step.
                return Ok(());
            }
            let Some(largest) = self
                .slots
                .iter()
                .filter(|s| s.task.is_some())
                .max_by_key(|s| s.cache.len())
                .map(|s| s.id)
            else {
                return Ok(());
            };
            self.fail_slot(largest, Self::decode_error(&DecodeError::NoKvCacheSlot));
            failed_one = true;
        }
    }

    fn decode_error(err: &DecodeError) -> EngineError {
        match err {
            DecodeError::NoKvCacheSlot => EngineError::ContextFull(
                "no room left in the KV cache for this request; reduce the prompt, n_predict or --parallel, or raise --ctx-size".into(),
            ),
            other => EngineError::Decode(other.to_string()),
        }
    }

    /// A decode failed: the tasks in this batch cannot go on. Free what they hold.
    fn fail_batch(&mut self, err: &DecodeError) {
        for idx in 0..self.slots.len() {
            // Slots of other LoRA scales waited for their turn: not in this batch.
            let in_batch = self.loras.batchable(idx)
                && self.slots[idx].task.as_ref().is_some_and(|t| {
                    t.waiting_for.is_none() && (t.i_batch.is_some() || t.n_prompt_fed > t.n_cached)
                });
            if in_batch {
                self.fail_slot(idx, Self::decode_error(err));
            }
        }
    }

    /// Ends slot `idx`'s request with `error` and frees its cells.
    fn fail_slot(&mut self, idx: usize, error: EngineError) {
        let Some(task) = self.slots[idx].release() else {
            return;
        };
        task.req
            .span
            .in_scope(|| tracing::warn!(slot = idx, "{error}"));
        let _ = task.tx.send(Event::Error(error));
        self.clear_slot(idx);
        self.ctx.detach(self.slots[idx].seq_id());
        self.orphan_waiting(idx);
    }
}
