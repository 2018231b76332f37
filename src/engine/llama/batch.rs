//! The batch [`Context::decode`](super::Context::decode) reads: llama.cpp's `llama_batch`,
//! allocated once for the worker's largest step and filled token by token, each token in one
//! sequence.

use llama_cpp_2::token::LlamaToken;
use llama_cpp_sys_2 as sys;

/// A batch of tokens for [`Context::decode`](super::Context::decode), each in one sequence.
pub struct Batch {
    pub(super) raw: sys::llama_batch,
    capacity: usize,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("n_tokens", &self.raw.n_tokens)
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// The batch has no room for another token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the batch is full ({0} tokens)")]
pub struct BatchFull(pub usize);

impl Batch {
    /// A batch with room for `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        let n = i32::try_from(capacity).expect("batch capacity fits in i32");
        // SAFETY: allocates arrays for `n` tokens with one sequence id each (embd 0: tokens).
        let raw = unsafe { sys::llama_batch_init(n, 0, 1) };
        Self { raw, capacity }
    }

    pub fn clear(&mut self) {
        self.raw.n_tokens = 0;
    }

    pub fn n_tokens(&self) -> i32 {
        self.raw.n_tokens
    }

    /// Adds a token of sequence `seq` at position `pos`; `output` asks for its logits (or its
    /// backend-sampled token).
    pub fn add(
        &mut self,
        token: LlamaToken,
        pos: i32,
        seq: i32,
        output: bool,
    ) -> Result<(), BatchFull> {
        let i = usize::try_from(self.raw.n_tokens).unwrap_or(usize::MAX);
        if i >= self.capacity {
            return Err(BatchFull(self.capacity));
        }
        // SAFETY: `i < capacity`, and `llama_batch_init(capacity, 0, 1)` allocated `capacity`
        // entries in each array and one sequence id behind each `seq_id[i]`.
        unsafe {
            *self.raw.token.add(i) = token.0;
            *self.raw.pos.add(i) = pos;
            *self.raw.n_seq_id.add(i) = 1;
            **self.raw.seq_id.add(i) = seq;
            *self.raw.logits.add(i) = i8::from(output);
        }
        self.raw.n_tokens += 1;
        Ok(())
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `llama_batch_init` and is freed once.
        unsafe { sys::llama_batch_free(self.raw) };
    }
}
