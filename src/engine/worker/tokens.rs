//! After each decode: every slot with an output takes its next token (its row of logits scanned
//! side by side with the other host-sampled rows, then its samplers; or the token its backend
//! chain chose), hands it to its task, and the checks that end generation run, in
//! llama-server's order. Context shift lives here too: it keeps a full slot generating.

use std::panic::{AssertUnwindSafe, catch_unwind};

use llama_cpp_2::token::LlamaToken;

use super::Worker;
use crate::engine::EngineError;
use crate::engine::llama::Context;
use crate::engine::request::{Event, StopType, TokenProbs};
use crate::engine::sampler::{Picked, SamplerError, Scan, token_probs};
use crate::engine::slot::Task;

impl Worker<'_> {
    /// Scans the logits of every output sampled on the host (the pass over the whole
    /// vocabulary), side by side on several threads when several slots wait; indexed by slot.
    fn scan_host_rows(&mut self) -> Vec<Option<Picked>> {
        let mut picked: Vec<Option<Picked>> = vec![None; self.slots.len()];
        let waiting: Vec<(&mut Scan, i32, &mut Option<Picked>)> = self
            .slots
            .iter_mut()
            .zip(picked.iter_mut())
            .filter_map(|(slot, out)| {
                let task = slot.task.as_mut()?;
                let row = task.i_batch?;
                Some((task.sampler.as_mut()?.scan_mut(), row, out))
            })
            .collect();
        if waiting.len() < 2 {
            // One row: the plain path scans it, with no thread to start.
            drop(waiting);
            return picked;
        }
        let logits = self.ctx.logits_rows(waiting.iter().map(|w| w.1));
        let mut jobs: Vec<(&mut Scan, &[f32], &mut Option<Picked>)> = waiting
            .into_iter()
            .zip(logits)
            .map(|((scan, _, out), row)| (scan, row, out))
            .collect();
        in_parallel(&mut jobs, self.sampling_threads, |(scan, row, out)| {
            // A scan that panics leaves its row to the slot's own (guarded) sampling.
            **out = catch_unwind(AssertUnwindSafe(|| scan.scan(row))).ok();
        });
        picked
    }

    /// Takes the next token of every slot with an output in the last decode; returns how many.
    /// Each slot's work is guarded: a panic there ends only that slot's request.
    pub(super) fn sample_all(&mut self) -> u64 {
        let mut picked = self.scan_host_rows();
        let mut outputs = 0;
        for idx in 0..self.slots.len() {
            let picked = picked[idx].take();
            outputs += self.guarded(idx, |w| w.sample_slot(idx, picked));
        }
        outputs
    }

    /// Slot `idx`'s next token, if it had an output in the last decode (its row's scan is
    /// `picked`); returns how many outputs it used (its group's members count too).
    fn sample_slot(&mut self, idx: usize, picked: Option<Picked>) -> u64 {
        let slot = &mut self.slots[idx];
        let seq = slot.seq_id();
        let Some(task) = &mut slot.task else { return 0 };
        let Some(i) = task.i_batch.take() else {
            return 0;
        };
        let mut outputs = 1;
        let prompt_read = task.n_decoded() == 0;
        let (token, probs) = match next_token(&mut self.ctx, task, seq, i, picked) {
            Ok(next) => next,
            Err(err) => {
                self.end_with_error(idx, err);
                return outputs;
            }
        };
        if let Some(stop) = self.take_token(idx, token, probs) {
            self.finish(idx, stop);
        }
        if prompt_read {
            outputs += self.start_waiting(idx, i);
        }
        outputs
    }

    /// Ends slot `idx`'s task with an error (the slot keeps its cache).
    fn end_with_error(&mut self, idx: usize, err: EngineError) {
        let slot = &mut self.slots[idx];
        {
            let task = slot.release().expect("active");
            task.req
                .span
                .in_scope(|| tracing::warn!(slot = idx, "{err}"));
            let _ = task.tx.send(Event::Error(err));
        }
        self.orphan_waiting(idx);
    }

    /// Slot `parent` has just read its prompt: the group members waiting for it take a copy
    /// of its cache and sample their first token from the same logits (row `i`), as
    /// llama-server's child tasks do. Returns how many did.
    fn start_waiting(&mut self, parent: usize, i: i32) -> u64 {
        let parent_seq = self.slots[parent].seq_id();
        let mut started = 0;
        for idx in 0..self.slots.len() {
            let waiting = self.slots[idx]
                .task
                .as_ref()
                .is_some_and(|t| t.waiting_for == Some(parent));
            if !waiting {
                continue;
            }
            let cache = self.slots[parent].cache.clone();
            let n_cached = self.slots[parent].task.as_ref().map_or(0, |t| t.n_cached);
            let slot = &mut self.slots[idx];
            let seq = slot.seq_id();
            self.ctx.seq_rm(seq, None, None);
            self.ctx.seq_cp(parent_seq, seq);
            slot.cache = cache;
            slot.checkpoints.clear();
            let task = slot.task.as_mut().expect("checked above");
            task.waiting_for = None;
            task.n_cached = n_cached;
            started += 1;
            self.guarded(idx, |w| {
                let task = w.slots[idx].task.as_mut().expect("checked above");
                match next_token(&mut w.ctx, task, seq, i, None) {
                    Ok((token, probs)) => {
                        if let Some(stop) = w.take_token(idx, token, probs) {
                            w.finish(idx, stop);
                        }
                    }
                    Err(err) => w.end_with_error(idx, err),
                }
                0
            });
        }
        started
    }

    /// Hands a sampled token to slot `idx`'s task and decides whether generation goes on
    /// (llama-server's order of checks: stop string, full context, n_predict, indentation and
    /// time limits, then end of generation, which wins). `None`: go on (or the client left).
    fn take_token(
        &mut self,
        idx: usize,
        token: LlamaToken,
        probs: Option<TokenProbs>,
    ) -> Option<StopType> {
        let vocab = self.model.vocab();
        let slot = &mut self.slots[idx];
        let task = slot.task.as_mut().expect("active");
        if task.test_panic && task.n_decoded() > 0 {
            panic!("{}: the prompt holds the marker", crate::test_hook::ENV);
        }
        // `ignore_eos` bans these tokens; one chosen anyway (infill's fallback, every logit -inf)
        // still ends the generation, as in llama-server.
        let eog = vocab.is_eog(token);
        self.piece.clear();
        let special = self.special || task.req.params.preserved_tokens.contains(&token);
        if !eog || special {
            vocab.token_to_piece_into(token, &mut self.piece, special, None);
        }
        let Ok(stop) = task.push_token(token, &self.piece, probs) else {
            // The client went away: free the slot, keep what is cached.
            slot.release();
            return None;
        };
        if eog {
            return Some(StopType::Eos);
        }
        if stop.is_some() {
            return stop;
        }
        let full = slot.cache.len() + 1 >= self.n_ctx_slot as usize;
        let limit = task
            .req
            .params
            .max_tokens()
            .is_some_and(|n| task.n_decoded() >= n.max(1) as usize);
        if (full && !self.context_shift) || limit {
            return Some(StopType::Limit);
        }
        task.pending = Some(token);
        None
    }

    /// Ends slot `idx`'s task with its final event.
    fn finish(&mut self, idx: usize, stop: StopType) {
        let slot = &mut self.slots[idx];
        let n_cache = slot.cache.len();
        let full = n_cache + 1 >= self.n_ctx_slot as usize && stop == StopType::Limit;
        let mut task = slot.release().expect("active");
        let truncated = task.truncated || full;
        let done = task.completion(stop, slot.id, truncated, n_cache);
        let t = &done.timings;
        self.stats.request_done(
            t.prompt_n,
            t.cache_n,
            t.prompt_ms,
            t.predicted_n,
            t.predicted_ms,
        );
        self.stats.sequence_length(n_cache + 1);
        let graphs_reused = self.ctx.graphs_reused();
        task.req.span.in_scope(|| {
            tracing::info!(
                slot = idx,
                stop = done.stop_type.as_str(),
                prompt_n = done.timings.prompt_n,
                cache_n = done.timings.cache_n,
                predicted_n = done.timings.predicted_n,
                prompt_tps = format!("{:.1}", done.timings.prompt_per_second),
                predicted_tps = format!("{:.1}", done.timings.predicted_per_second),
                graphs_reused,
                "generation done"
            );
        });
        let _ = task.tx.send(Event::Done(Box::new(done)));
    }

    /// llama-server's context shift: a generating slot whose context is full drops `n_discard`
    /// tokens after its first `n_keep` and moves the rest down, so that generation goes on.
    pub(super) fn shift_context(&mut self, idx: usize) {
        let add_bos = self.model.vocab().should_add_bos();
        let slot = &mut self.slots[idx];
        let seq = slot.seq_id();
        let Some(task) = &mut slot.task else { return };
        let n_ctx = self.n_ctx_slot as usize;
        let mut n_keep = usize::try_from(task.req.params.n_keep).unwrap_or(task.req.prompt.len());
        if add_bos {
            n_keep += 1;
        }
        let n_keep = n_keep.min(n_ctx.saturating_sub(4));
        let n_past = slot.cache.len();
        let n_left = n_past.saturating_sub(n_keep);
        let n_discard = match task.req.params.n_discard {
            0 => n_left / 2,
            n => n as usize,
        }
        .min(n_left.saturating_sub(1));
        task.req.span.in_scope(|| {
            tracing::warn!(slot = idx, n_keep, n_left, n_discard, "context shift");
        });
        let (keep, discard) = (n_keep as u32, n_discard as u32);
        self.ctx.seq_rm(seq, Some(keep), Some(keep + discard));
        self.ctx
            .seq_add(seq, keep + discard, n_past as u32, -(discard as i32));
        slot.cache.drain(n_keep..n_keep + n_discard);
        // Positions moved: no checkpoint describes the cells any more.
        slot.checkpoints.clear();
        task.truncated = true;
    }
}

/// The next token of a task whose output is row `i` of the last decode, with its probabilities
/// if asked: sampled here from the logits (completing what the scan of the row `picked`), or
/// read from the decode when the sequence's chain ran there. An error when the backend chain
/// chose no token, or when the grammar allows no token the sampling left (the request ends:
/// accepting a token its grammar rejects would abort llama.cpp).
fn next_token(
    ctx: &mut Context<'_>,
    task: &mut Task,
    seq: i32,
    i: i32,
    picked: Option<Picked>,
) -> Result<(LlamaToken, Option<TokenProbs>), EngineError> {
    let Some(sampler) = &mut task.sampler else {
        // Backend sampling: this row's logits were not copied back; never read them.
        let token = ctx
            .backend_token(seq, i)
            .ok_or_else(|| EngineError::Decode("the backend sampler chose no token".into()))?;
        // Penalties and the RNG advance on the chain, as in llama-server.
        ctx.accept(seq, token);
        return Ok((token, None));
    };
    let logits = ctx.logits_ith(i);
    let token = match picked {
        Some(picked) => sampler.finish(picked, logits),
        None => sampler.sample(logits),
    };
    if sampler.grammar_stuck() {
        return Err(SamplerError::GrammarStuck.into());
    }
    let n_probs = task.req.params.n_probs;
    let probs = (n_probs > 0).then(|| {
        if task.req.params.post_sampling_probs {
            sampler.post_sampling_probs(token, n_probs)
        } else {
            token_probs(logits, token, n_probs)
        }
    });
    Ok((token, probs))
}

/// Runs `f` over every job, on up to `threads` threads (this one included), at least two jobs
/// to a thread: starting a thread costs about what scanning one row does. The helpers are named
/// `sampling`, so that per-thread CPU time (top -H, /proc/PID/task) tells them from the engine.
fn in_parallel<T: Send>(jobs: &mut [T], threads: usize, f: impl Fn(&mut T) + Sync) {
    let per_thread = jobs.len().div_ceil(threads.max(1)).max(2);
    let mut chunks = jobs.chunks_mut(per_thread);
    let Some(first) = chunks.next() else { return };
    std::thread::scope(|s| {
        for chunk in chunks {
            let f = &f;
            // As `Scope::spawn`, which panics too when the OS refuses a thread.
            std::thread::Builder::new()
                .name("sampling".into())
                .spawn_scoped(s, move || chunk.iter_mut().for_each(f))
                .expect("failed to spawn a sampling thread");
        }
        first.iter_mut().for_each(&f);
    });
}
