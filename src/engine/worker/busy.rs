//! Where the engine's time goes while it is busy: logged (at debug level, `--verbose`) each time
//! it falls idle.

use std::time::{Duration, Instant};

/// One busy period of the engine, from the first step after idle to the next idle: where its
/// time went, for `--verbose` (debug) logs.
pub(super) struct Busy {
    start: Instant,
    steps: u32,
    batch_tokens: u64,
    outputs: u64,
    /// In `llama_decode` (on a GPU the graph runs on after it returns).
    decode: Duration,
    /// Reading tokens: waiting for the graph, host sampling, detokenizing and sending.
    sample: Duration,
    /// Moving slots' states to and from the host prompt cache.
    pub(super) cache: Duration,
    /// Taking context checkpoints.
    pub(super) checkpoints: Duration,
    reserves: (u64, Duration),
}

impl super::Worker<'_> {
    /// The busy period under way, begun now if the engine was idle.
    pub(super) fn busy(&mut self) -> &mut Busy {
        self.busy.get_or_insert_with(Busy::new)
    }
}

impl Busy {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            steps: 0,
            batch_tokens: 0,
            outputs: 0,
            decode: Duration::ZERO,
            sample: Duration::ZERO,
            cache: Duration::ZERO,
            checkpoints: Duration::ZERO,
            reserves: crate::engine::llama_log::reserves(),
        }
    }

    /// Counts one decode step: its batch, the rows it read, the time in `llama_decode` and the
    /// time reading its results.
    pub(super) fn step(
        &mut self,
        batch_tokens: u64,
        outputs: u64,
        decode: Duration,
        sample: Duration,
    ) {
        self.steps += 1;
        self.batch_tokens += batch_tokens;
        self.outputs += outputs;
        self.decode += decode;
        self.sample += sample;
    }

    pub(super) fn log(&self) {
        let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
        let (n, t) = crate::engine::llama_log::reserves();
        tracing::debug!(
            wall_ms = ms(self.start.elapsed()),
            steps = self.steps,
            batch_tokens = self.batch_tokens,
            outputs = self.outputs,
            decode_ms = ms(self.decode),
            sample_ms = ms(self.sample),
            cache_ms = ms(self.cache),
            checkpoint_ms = ms(self.checkpoints),
            reserves = n - self.reserves.0,
            reserve_ms = ms(t.saturating_sub(self.reserves.1)),
            "engine idle"
        );
    }
}
