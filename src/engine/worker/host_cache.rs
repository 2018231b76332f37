//! Slots and the host prompt cache (`prompt_cache.rs`), as llama-server moves them: a slot
//! picked by least recent use, or one about to lose most of what it holds, is saved to the
//! cache and takes the entry that best matches the new prompt; slots idle for
//! `--cache-idle-after` while others work are saved and, in a unified KV cache, cleared, so that
//! attention spans only the cells of the slots at work; and when the KV cache is full, the
//! least recently used idle slot makes room.

use super::Worker;
use crate::engine::request::GenerateRequest;

impl Worker<'_> {
    /// Saves slot `idx`'s cells to the prompt cache, unless it is empty, already offered
    /// ([`Slot::parked`](crate::engine::slot::Slot::parked)) or already there.
    fn cache_slot(&mut self, idx: usize) -> bool {
        let Some(cache) = self.prompt_cache.as_mut() else {
            return false;
        };
        let slot = &self.slots[idx];
        if slot.cache.is_empty() || slot.parked {
            return false;
        }
        let seq = slot.seq_id();
        let started = std::time::Instant::now();
        let size = self.ctx.seq_state_size(seq);
        let ctx = &mut self.ctx;
        let scales = self.loras.slot_scales(idx);
        let saved = cache.store(&slot.cache, scales, &slot.checkpoints, size, || {
            ctx.seq_state(seq, size)
        });
        if saved {
            tracing::debug!(
                slot = idx,
                n_tokens = slot.cache.len(),
                size_mib = size as f64 / (1 << 20) as f64,
                entries = cache.len(),
                cache_mib = cache.bytes() as f64 / (1 << 20) as f64,
                ms = started.elapsed().as_secs_f64() * 1e3,
                "slot saved to the prompt cache"
            );
            self.report_cache();
        }
        self.slots[idx].parked = true;
        self.busy().cache += started.elapsed();
        saved
    }

    /// Before `req` starts on slot `idx`: saves what the slot holds, then restores the cached
    /// entry that keeps more of the prompt than the slot does, if any and if the request reuses
    /// cached prompts (llama-server's `get_available_slot` with `update_cache`).
    pub(super) fn swap_in(&mut self, idx: usize, req: &GenerateRequest) {
        if self.prompt_cache.is_none() {
            return;
        }
        // About to be overwritten: offered again, in case the entry it was saved as has been
        // evicted or restored elsewhere since (once per request, not once per idle slot).
        self.slots[idx].parked = false;
        self.cache_slot(idx);
        if !req.params.cache_prompt {
            return;
        }
        let prompt = &req.prompt;
        let scales = self.loras.scales_for(&req.params.lora);
        let cache = self.prompt_cache.as_mut().expect("checked above");
        let Some(entry) = cache.take_best(&self.slots[idx].cache, prompt, &scales) else {
            self.stats.prompt_cache_lookup(None);
            return;
        };
        let seq = self.slots[idx].seq_id();
        self.slots[idx].cache.clear();
        self.slots[idx].checkpoints.clear();
        // Each attempt counts as prompt cache time; a slot saved to make room counts its own.
        let restore = |w: &mut Self| {
            let started = std::time::Instant::now();
            let restored = w.ctx.set_seq_state(seq, &entry.state);
            w.busy().cache += started.elapsed();
            restored
        };
        let started = std::time::Instant::now();
        let mut restored = restore(self);
        while !restored && self.clear_an_idle_slot() {
            restored = restore(self);
        }
        if restored {
            tracing::debug!(
                slot = idx,
                n_tokens = entry.tokens.len(),
                ms = started.elapsed().as_secs_f64() * 1e3,
                "slot restored from the prompt cache"
            );
            self.stats.prompt_cache_lookup(Some(entry.tokens.len()));
            self.report_cache();
            self.slots[idx].cache = entry.tokens;
            self.slots[idx].checkpoints = entry.checkpoints;
            // Taken out of the cache: the slot alone holds it now.
            self.slots[idx].parked = false;
            self.loras.restored(idx, entry.lora);
        } else {
            tracing::warn!(
                slot = idx,
                n_tokens = entry.tokens.len(),
                "could not restore a prompt cache entry (no room in the KV cache?): kept for later"
            );
            self.stats.prompt_cache_lookup(None);
            let cache = self.prompt_cache.as_mut().expect("checked above");
            cache.put_back(entry);
            self.report_cache();
        }
    }

    /// Saves to the prompt cache every idle slot but `picked` (the one a request is starting
    /// on) that has been idle for `--cache-idle-after` while others work and, with a unified
    /// KV cache (where its cells would widen every other slot's attention and take room),
    /// clears it. llama-server does this to every idle slot as each request starts; a slot
    /// whose conversation comes back within the delay (a chat client's or an agent's next
    /// turn) is then saved and restored for nothing, each copy a pass over its cells.
    pub(super) fn park_idle_slots(&mut self, picked: Option<usize>) {
        if !self.cache_idle_slots || self.prompt_cache.is_none() {
            return;
        }
        for idx in 0..self.slots.len() {
            let slot = &self.slots[idx];
            if Some(idx) == picked
                || slot.task.is_some()
                || slot.cache.is_empty()
                || slot.last_used.elapsed() < self.cache_idle_after
            {
                continue;
            }
            self.cache_slot(idx);
            if self.kv_unified {
                self.clear_slot(idx);
            }
        }
    }

    /// The KV cache is full: saves the least recently used idle slot that holds cells to the
    /// prompt cache and clears it; false if there is none (llama-server's
    /// `try_clear_idle_slots`, which takes the first idle slot and does not save it).
    pub(super) fn clear_an_idle_slot(&mut self) -> bool {
        if !self.kv_unified {
            // Each slot has its own cells: clearing one makes no room for another.
            return false;
        }
        let Some(idx) = self
            .slots
            .iter()
            .filter(|s| s.task.is_none() && !s.cache.is_empty())
            .min_by_key(|s| s.last_used)
            .map(|s| s.id)
        else {
            return false;
        };
        tracing::warn!(
            slot = idx,
            n_tokens = self.slots[idx].cache.len(),
            "the KV cache is full: clearing an idle slot"
        );
        self.cache_slot(idx);
        self.clear_slot(idx);
        true
    }

    /// Publishes what the prompt cache holds.
    fn report_cache(&self) {
        if let Some(cache) = &self.prompt_cache {
            self.stats.prompt_cache_held(cache.len(), cache.bytes());
        }
    }
}
