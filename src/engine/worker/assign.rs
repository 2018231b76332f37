//! From the queue to a slot: how a request will sample (settled as it is queued), which free
//! slot it gets (the one it names, one whose cache holds enough of its prompt, or the least
//! recently used, preferring one that already holds its backend chain), the members of a
//! group started together, and the slots and queue entries of clients that went away.

use tokio::sync::mpsc;

use super::{Queued, Worker, panics};
use crate::engine::Group;
use crate::engine::backend_sampling::{backend_chain, backend_unsupported};
use crate::engine::request::{Event, GenerateRequest};
use crate::engine::sampler::{Sampler, penalties_on};
use crate::engine::slot::{Slot, Task, common_prefix};

impl Worker<'_> {
    /// Settles how a request will sample: `ignore_eos` bans the end-of-generation tokens (as
    /// llama-server does), and with backend sampling, the chain to run in the decode graph if
    /// every sampler it needs can run there.
    pub(super) fn prepare(
        &self,
        mut req: GenerateRequest,
        tx: mpsc::UnboundedSender<Event>,
    ) -> Queued {
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
    pub(super) fn release_cancelled(&mut self) {
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
    pub(super) fn orphan_waiting(&mut self, parent: usize) {
        for slot in &mut self.slots {
            if let Some(task) = slot.task.as_mut().filter(|t| t.waiting_for == Some(parent)) {
                task.waiting_for = None;
                task.n_prompt_fed = 0;
                task.n_cached = 0;
            }
        }
    }

    /// Gives queued requests to free slots, reusing the cached prefix where it pays.
    pub(super) fn assign_queued(&mut self) {
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
    fn start_group(&mut self, parent: usize, group: Group) {
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
}
