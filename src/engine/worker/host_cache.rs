//! Slots and the host prompt cache (`prompt_cache.rs`), as llama-server moves them: a slot
//! picked by least recent use, or one about to lose most of what it holds, is saved to the
//! cache and takes the entry that best matches the new prompt; slots idle for
//! `--cache-idle-after` while others work are saved and, in a unified KV cache, cleared, so that
//! attention spans only the cells of the slots at work; and when the KV cache is full, the
//! least recently used idle slot makes room.

use super::Worker;
use crate::engine::request::GenerateRequest;
use crate::engine::slot::Slot;

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

    /// Saves to the prompt cache the idle slots but `picked` (the one a request is starting
    /// on) that have been idle for `--cache-idle-after` while others work, least recently used
    /// first, and, with a unified KV cache (where their cells would widen every other slot's
    /// attention and take room), clears them. llama-server does this to every idle slot as
    /// each request starts. Here a turn of the engine's loop parks at least one and goes on
    /// while parking has taken less than the last decode step: a save is a device-to-host copy
    /// per layer for every run of the slot's cells, and after a burst of interleaved streams
    /// one slot can take longer to save than a step takes, so parking them all as they
    /// finish would stall the streams still running. The rest wait for the next step.
    pub(super) fn park_idle_slots(&mut self, picked: Option<usize>) {
        if !self.cache_idle_slots || self.prompt_cache.is_none() || self.parking_budget_spent() {
            return;
        }
        let mut idle: Vec<(std::time::Instant, usize)> = self
            .idle_holding()
            .filter(|s| {
                Some(s.id) != picked
                    // A parked slot is already in the cache: with one KV cache its cells
                    // still go; with one per sequence there is nothing left to do.
                    && (self.kv_unified || !s.parked)
                    && s.last_used.elapsed() >= self.cache_idle_after
            })
            .map(|s| (s.last_used, s.id))
            .collect();
        idle.sort();
        for (_, idx) in idle {
            if self.parking_budget_spent() {
                break;
            }
            let started = std::time::Instant::now();
            self.cache_slot(idx);
            if self.kv_unified {
                self.clear_slot(idx);
            }
            // At least a nanosecond, so that the first park counts as spending.
            self.parking_spent += started.elapsed().max(std::time::Duration::from_nanos(1));
        }
    }

    /// The engine has nothing to do: saves the least recently used idle slot that the prompt
    /// cache lacks (idle for `--cache-idle-after`), keeping its cells; false when there is none.
    /// Idle time is free, and the copy is then made: a step that parks the slot (with one KV
    /// cache) only clears it, and a request that takes the slot over finds it saved. Without
    /// this a wave of new conversations on slots that hold finished ones copies every one of
    /// them out before its prompt can start. The slot used last is left: it is the one a
    /// follow-up most likely continues in place (an agent's next turn, sent as soon as the
    /// answer is in), which a save under way would only delay. The engine looks for commands
    /// between saves, so a request that arrives waits for one save at most.
    pub(super) fn save_an_idle_slot(&mut self) -> bool {
        if !self.cache_idle_slots || self.prompt_cache.is_none() {
            return false;
        }
        let last = self
            .idle_holding()
            .max_by_key(|s| s.last_used)
            .map(|s| s.id);
        let Some(idx) = self
            .idle_holding()
            .filter(|s| !s.parked && Some(s.id) != last)
            .filter(|s| s.last_used.elapsed() >= self.cache_idle_after)
            .min_by_key(|s| s.last_used)
            .map(|s| s.id)
        else {
            return false;
        };
        self.cache_slot(idx);
        // Not a busy period: nothing waited for it.
        self.busy = None;
        true
    }

    /// The idle slots that hold cells: what parking, idle saves and a full KV cache choose from.
    fn idle_holding(&self) -> impl Iterator<Item = &Slot> {
        self.slots
            .iter()
            .filter(|s| s.task.is_none() && !s.cache.is_empty())
    }

    /// Whether parking has spent this turn's share: the last step's time, once at least one
    /// slot was parked.
    fn parking_budget_spent(&self) -> bool {
        !self.parking_spent.is_zero() && self.parking_spent >= self.last_step
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
            .idle_holding()
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
