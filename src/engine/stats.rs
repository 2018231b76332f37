//! Counters the engine thread keeps for `/metrics`, in llama-server's terms: prompt and generated
//! tokens with the time spent on them, decode calls and the slots busy in each, the longest
//! sequence, and how many requests run or wait. Plain atomics: the engine writes, the server reads;
//! nothing of llama.cpp is shared.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Tokens, decode steps and microseconds (llama-server's `server_metrics::bucket`).
#[derive(Debug, Default)]
struct Bucket {
    count: AtomicU64,
    steps: AtomicU64,
    time_us: AtomicU64,
}

impl Bucket {
    fn add(&self, count: u64, steps: u64, time_us: u64) {
        self.count.fetch_add(count, Relaxed);
        self.steps.fetch_add(steps, Relaxed);
        self.time_us.fetch_add(time_us, Relaxed);
    }

    /// Steps per second (the first generated token comes with the prompt, so it is no step).
    fn rate(&self) -> f64 {
        let time = self.time_us.load(Relaxed);
        if time == 0 {
            0.0
        } else {
            self.steps.load(Relaxed) as f64 / time as f64 * 1e6
        }
    }

    fn reset(&self) {
        self.count.store(0, Relaxed);
        self.steps.store(0, Relaxed);
        self.time_us.store(0, Relaxed);
    }
}

/// The engine's counters.
#[derive(Debug, Default)]
pub struct EngineStats {
    prompt: Bucket,
    predict: Bucket,
    /// Since the last scrape, for the throughput gauges.
    prompt_window: Bucket,
    predict_window: Bucket,
    prompt_cached: AtomicU64,
    n_decode: AtomicU64,
    n_busy_slots: AtomicU64,
    n_tokens_max: AtomicU64,
    processing: AtomicU64,
    deferred: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    cache_restored: AtomicU64,
    cache_entries: AtomicU64,
    cache_bytes: AtomicU64,
    checkpoint_bytes: AtomicU64,
    checkpoints_restored: AtomicU64,
}

/// A reading of the counters, with the throughputs since the previous reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsSnapshot {
    pub prompt_tokens: u64,
    pub prompt_tokens_cached: u64,
    pub prompt_seconds: f64,
    pub predicted_tokens: u64,
    pub predicted_seconds: f64,
    pub n_decode: u64,
    pub n_tokens_max: u64,
    pub prompt_tokens_per_second: f64,
    pub predicted_tokens_per_second: f64,
    pub requests_processing: u64,
    pub requests_deferred: u64,
    pub busy_slots_per_decode: f64,
    /// Host prompt cache lookups that restored an entry, and those that found none.
    pub prompt_cache_hits: u64,
    pub prompt_cache_misses: u64,
    /// Tokens whose cells were restored from the host prompt cache.
    pub prompt_cache_restored_tokens: u64,
    pub prompt_cache_entries: u64,
    pub prompt_cache_bytes: u64,
    /// Bytes of the context checkpoints the slots hold (host memory, sliding-window models).
    pub context_checkpoint_bytes: u64,
    /// Prompts that restored a context checkpoint instead of being computed whole.
    pub context_checkpoints_restored: u64,
}

impl EngineStats {
    /// A finished request: prompt tokens decoded (and reused) and their time, tokens generated
    /// and theirs.
    pub fn request_done(
        &self,
        prompt_n: usize,
        cached_n: usize,
        prompt_ms: f64,
        predicted_n: usize,
        predicted_ms: f64,
    ) {
        let us = |ms: f64| (ms * 1e3).max(0.0) as u64;
        let prompt_n = prompt_n as u64;
        let steps = (predicted_n as u64).saturating_sub(1);
        for bucket in [&self.prompt, &self.prompt_window] {
            bucket.add(prompt_n, prompt_n, us(prompt_ms));
        }
        for bucket in [&self.predict, &self.predict_window] {
            bucket.add(predicted_n as u64, steps, us(predicted_ms));
        }
        self.prompt_cached.fetch_add(cached_n as u64, Relaxed);
    }

    /// One `llama_decode` with `busy` slots in it.
    pub fn decoded(&self, busy: usize) {
        self.n_decode.fetch_add(1, Relaxed);
        self.n_busy_slots.fetch_add(busy as u64, Relaxed);
    }

    /// A sequence reached `n` tokens.
    pub fn sequence_length(&self, n: usize) {
        self.n_tokens_max.fetch_max(n as u64, Relaxed);
    }

    /// Requests being generated and waiting for a slot, now.
    pub fn load(&self, processing: usize, deferred: usize) {
        self.processing.store(processing as u64, Relaxed);
        self.deferred.store(deferred as u64, Relaxed);
    }

    /// A host prompt cache lookup: the tokens of the entry restored, or `None`.
    pub fn prompt_cache_lookup(&self, restored: Option<usize>) {
        match restored {
            Some(n) => {
                self.cache_hits.fetch_add(1, Relaxed);
                self.cache_restored.fetch_add(n as u64, Relaxed);
            }
            None => {
                self.cache_misses.fetch_add(1, Relaxed);
            }
        }
    }

    /// What the host prompt cache holds now.
    pub fn prompt_cache_held(&self, entries: usize, bytes: usize) {
        self.cache_entries.store(entries as u64, Relaxed);
        self.cache_bytes.store(bytes as u64, Relaxed);
    }

    /// The host prompt cache's entries and bytes now.
    pub fn prompt_cache_now(&self) -> (u64, u64) {
        (
            self.cache_entries.load(Relaxed),
            self.cache_bytes.load(Relaxed),
        )
    }

    /// The slots' context checkpoints hold `bytes` now.
    pub fn checkpoints_held(&self, bytes: usize) {
        self.checkpoint_bytes.store(bytes as u64, Relaxed);
    }

    /// A prompt restored a context checkpoint.
    pub fn checkpoint_restored(&self) {
        self.checkpoints_restored.fetch_add(1, Relaxed);
    }

    /// Bytes of the slots' context checkpoints now.
    pub fn checkpoints_now(&self) -> u64 {
        self.checkpoint_bytes.load(Relaxed)
    }

    /// Reads the counters; the throughput gauges start a new window.
    pub fn snapshot(&self) -> StatsSnapshot {
        let n_decode = self.n_decode.load(Relaxed);
        let snapshot = StatsSnapshot {
            prompt_tokens: self.prompt.count.load(Relaxed),
            prompt_tokens_cached: self.prompt_cached.load(Relaxed),
            prompt_seconds: self.prompt.time_us.load(Relaxed) as f64 / 1e6,
            predicted_tokens: self.predict.count.load(Relaxed),
            predicted_seconds: self.predict.time_us.load(Relaxed) as f64 / 1e6,
            n_decode,
            n_tokens_max: self.n_tokens_max.load(Relaxed),
            prompt_tokens_per_second: self.prompt_window.rate(),
            predicted_tokens_per_second: self.predict_window.rate(),
            requests_processing: self.processing.load(Relaxed),
            requests_deferred: self.deferred.load(Relaxed),
            busy_slots_per_decode: self.n_busy_slots.load(Relaxed) as f64 / n_decode.max(1) as f64,
            prompt_cache_hits: self.cache_hits.load(Relaxed),
            prompt_cache_misses: self.cache_misses.load(Relaxed),
            prompt_cache_restored_tokens: self.cache_restored.load(Relaxed),
            prompt_cache_entries: self.cache_entries.load(Relaxed),
            prompt_cache_bytes: self.cache_bytes.load(Relaxed),
            context_checkpoint_bytes: self.checkpoint_bytes.load(Relaxed),
            context_checkpoints_restored: self.checkpoints_restored.load(Relaxed),
        };
        self.prompt_window.reset();
        self.predict_window.reset();
        snapshot
    }
}
