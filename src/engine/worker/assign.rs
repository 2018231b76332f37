//! From the queue to a slot: how a request will sample (settled as it is queued), which free
//! slot it gets (the one it names, one whose cache holds enough of its prompt, or the least
//! recently used, preferring one that already holds its backend chain), the members of a
//! group started together, and the slots and queue entries of clients that went away.

use llama_cpp_2::token::LlamaToken;
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

    /// Gives queued requests to free slots, reusing the cached prefix where it pays. The other
    /// idle slots go to the host prompt cache first, so that what the new request restores or
    /// computes finds their room.
    pub(super) fn assign_queued(&mut self) {
        while let Some(pick) = self.queue.front().and_then(|q| self.pick_slot(q)) {
            let queued = self.queue.pop_front().expect("front exists");
            let group = queued.req.group;
            self.park_idle_slots(Some(pick.idx));
            if pick.swap && !queued.req.kind.needs_embeddings() {
                self.swap_in(pick.idx, &queued.req);
            }
            self.start(pick.idx, queued, None);
            if let Some(group) = group.filter(|g| g.parent) {
                self.start_group(pick.idx, group);
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

    /// The slot for a request, as llama-server's `get_available_slot` picks it: among the free
    /// slots (only the one it names, if it names one), the one whose cache holds the largest
    /// share of its prompt, above `--slot-prompt-similarity`; else the slot it names; else the
    /// least recently used, preferring one that already holds the request's sampler chain.
    /// The pick swaps with the host prompt cache when it is by use or would lose over half of
    /// what the slot holds.
    fn pick_slot(&self, queued: &Queued) -> Option<Pick> {
        let req = &queued.req;
        let free = || self.slots.iter().filter(|s| s.task.is_none());
        if let Some(group) = req.group.filter(|g| g.parent)
            && free().count() < group.size
        {
            // The group's members start together (llama-server defers such a request too).
            return None;
        }
        let named = req.params.id_slot;
        if let Some(id) = named
            && !free().any(|s| s.id == id)
        {
            return None;
        }
        if self.slot_prompt_similarity > 0.0 && !req.prompt.is_empty() {
            let n_prompt = req.prompt.len() as f32;
            let best = free()
                .filter(|s| named.is_none_or(|id| s.id == id) && !s.cache.is_empty())
                .map(|s| (common_prefix(&s.cache, &req.prompt), s))
                .filter(|&(lcp, _)| lcp as f32 / n_prompt > self.slot_prompt_similarity)
                // The first of equals, as llama-server keeps it.
                .max_by(|a, b| a.0.cmp(&b.0).then(b.1.id.cmp(&a.1.id)));
            if let Some((lcp, slot)) = best {
                let keep = lcp as f32 / slot.cache.len() as f32;
                return Some(Pick {
                    idx: slot.id,
                    swap: keep < 0.5,
                });
            }
        }
        if let Some(idx) = named {
            return Some(Pick { idx, swap: false });
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
            .map(|s| Pick {
                idx: s.id,
                swap: true,
            })
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
        // A member of a parallel group reads its prompt from the first member's slot.
        let reuse = req.params.cache_prompt && wait_for.is_none();
        let mut n_keep = if reuse {
            common_prefix(&self.slots[idx].cache, &req.prompt)
        } else {
            0
        };
        if self.loras.assign(idx, &req.params.lora) {
            // Cached tokens were computed with other adapter scales.
            n_keep = 0;
        } else if reuse {
            let min_chunk = req.params.n_cache_reuse as usize;
            if min_chunk > 0 && self.ctx.can_shift() {
                n_keep = self.reuse_chunks(idx, &req.prompt, n_keep, min_chunk);
            } else if min_chunk > 0 {
                // As llama-server: sliding-window caches shift only with --swa-full.
                tracing::warn!(
                    id = req.id,
                    "this model's KV cache cannot shift positions: n_cache_reuse ignored"
                );
            }
        }
        // The last prompt token must be decoded again to get logits for the first sample.
        n_keep = n_keep.min(req.prompt.len().saturating_sub(1));
        if n_keep > 0 {
            n_keep = self.keep_state(idx, n_keep);
        }
        if !self.ctx.seq_rm(seq, Some(n_keep as u32), None) {
            n_keep = 0;
            self.ctx.seq_rm(seq, None, None);
        }
        let slot = &mut self.slots[idx];
        slot.cache.truncate(n_keep);
        slot.checkpoints.truncate(n_keep);
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

    /// Sliding-window layers keep only the last `n_swa` positions, a recurrent state only the
    /// last position read: a prefix of `n_keep` tokens whose window has moved on, or that the
    /// state has read past, is reused only up to a context checkpoint that still holds it
    /// (restored here), or not at all (llama-server's same search). Returns the tokens kept.
    fn keep_state(&mut self, idx: usize, n_keep: usize) -> usize {
        let seq = self.slots[idx].seq_id();
        if !self.rollback.lost(self.ctx.seq_pos_min(seq), n_keep) {
            return n_keep;
        }
        let Some(checkpoint) = self.slots[idx].checkpoints.usable(n_keep, self.rollback) else {
            return 0;
        };
        if !self.ctx.set_seq_partial_state(seq, &checkpoint.state) {
            tracing::warn!(
                slot = idx,
                "could not restore a context checkpoint: prompt computed again"
            );
            return 0;
        }
        // As llama-server: from the checkpoint's last position on, computed again.
        let pos_next = checkpoint.pos_max.max(checkpoint.pos_min + 1).max(0) as usize;
        let kept = n_keep.min(pos_next).min(checkpoint.n_tokens);
        tracing::debug!(slot = idx, n_keep, kept, "context checkpoint restored");
        self.stats.checkpoint_restored();
        kept
    }

    /// `n_cache_reuse`: after the `n_past` tokens of common prefix, moves each chunk of at least
    /// `min_chunk` cached tokens that the prompt repeats to its place in the prompt (shifting
    /// the cells' positions, llama-server's KV shifting), so that a prompt that dropped or
    /// changed a middle part does not compute what follows again. Returns the tokens now reused;
    /// the slot's cache holds them first (what is past them is removed by the caller).
    fn reuse_chunks(
        &mut self,
        idx: usize,
        prompt: &[LlamaToken],
        n_past: usize,
        min_chunk: usize,
    ) -> usize {
        let slot = &mut self.slots[idx];
        let seq = slot.seq_id();
        let cache = &mut slot.cache;
        let pos = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
        let (mut head_c, mut head_p) = (n_past, n_past);
        while head_c < cache.len() && head_p < prompt.len() {
            let n_match = common_prefix(&cache[head_c..], &prompt[head_p..]);
            if n_match >= min_chunk {
                self.ctx.seq_rm(seq, Some(pos(head_p)), Some(pos(head_c)));
                let shift = i32::try_from(head_p).unwrap_or(i32::MAX)
                    - i32::try_from(head_c).unwrap_or(i32::MAX);
                self.ctx
                    .seq_add(seq, pos(head_c), pos(head_c + n_match), shift);
                cache.copy_within(head_c..head_c + n_match, head_p);
                head_c += n_match;
                head_p += n_match;
            } else {
                head_c += 1;
            }
        }
        if head_p > n_past {
            tracing::debug!(slot = idx, n_past, n_reused = head_p, "cached chunks moved");
        }
        head_p
    }
}

/// The slot a request gets, and whether the host prompt cache takes part: the slot's cells are
/// saved and the entry that best matches the prompt restored.
struct Pick {
    idx: usize,
    swap: bool,
}
