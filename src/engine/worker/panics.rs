//! A panic while one slot takes its token (sampling, detokenizing, the stop checks) ends that
//! slot's request with an error and frees the slot; the engine thread and the other slots go
//! on. `std::panic::catch_unwind` costs nothing until something panics: no allocation, no lock
//! on the per-token path. What the slot held is dropped with it (its cache, its sequence in the
//! KV cache, its backend chain), since a panic may have left them half-updated.
//!
//! The test hook (`crate::test_hook`, off unless the operator sets its variable) arms a task
//! whose prompt holds the marker, so that tests can make exactly one request panic.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use llama_cpp_2::token::LlamaToken;

use super::Worker;
use crate::engine::EngineError;
use crate::engine::request::Event;

impl Worker<'_> {
    /// Runs `work` for slot `idx`; if it panics, the slot's request ends with an error
    /// (`EngineError::Panicked`) and the slot is freed. Returns what `work` returned (0 after
    /// a panic).
    pub(super) fn guarded(&mut self, idx: usize, work: impl FnOnce(&mut Self) -> u64) -> u64 {
        match catch_unwind(AssertUnwindSafe(|| work(self))) {
            Ok(n) => n,
            Err(panic) => {
                self.slot_panicked(idx, panic);
                0
            }
        }
    }

    fn slot_panicked(&mut self, idx: usize, panic: Box<dyn Any + Send>) {
        let what = panic_message(&*panic);
        let slot = &mut self.slots[idx];
        let seq = slot.seq_id();
        if let Some(task) = slot.task.take() {
            task.req.span.in_scope(|| {
                tracing::error!(slot = idx, "the request's processing panicked: {what}");
            });
            let _ = task
                .tx
                .send(Event::Error(EngineError::Panicked(what.to_string())));
        }
        slot.last_used = std::time::Instant::now();
        self.ctx.detach(seq);
        self.clear_slot(idx);
        self.orphan_waiting(idx);
    }
}

/// The text a panic was raised with.
pub(super) fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic")
}

/// Whether the test hook is on and this prompt holds its marker (checked once per request, and
/// only when the hook is on).
pub(super) fn armed(model: &llama_cpp_2::model::LlamaModel, prompt: &[LlamaToken]) -> bool {
    let Some(marker) = crate::test_hook::marker() else {
        return false;
    };
    let vocab = model.vocab();
    let mut bytes = Vec::new();
    for &t in prompt {
        vocab.token_to_piece_into(t, &mut bytes, true, None);
    }
    String::from_utf8_lossy(&bytes).contains(marker)
}
