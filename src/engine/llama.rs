//! The llama.cpp context and batch, held directly through `llama-cpp-sys-2`.
//!
//! Backend sampling (llama-server's `--backend-sampling`) attaches a sampler chain to one
//! sequence of the context with `llama_set_sampler`, so that the chain runs inside the decode
//! graph and only the chosen token comes back. llama-cpp-2 exposes neither the raw
//! `llama_context` nor the raw `llama_sampler`, so this module owns the context itself, with a
//! batch to feed it. Everything else (model loading, vocabulary, host samplers) stays in
//! llama-cpp-2.
//!
//! Architecture invariant: this is the engine's only module with `unsafe`. Each block says why
//! it is sound.

use std::marker::PhantomData;
use std::num::NonZeroI32;
use std::ptr::NonNull;

use llama_cpp_2::DecodeError;
use llama_cpp_2::context::params::KvCacheType;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_sys_2 as sys;

// `LlamaModel` is `#[repr(transparent)]` over llama-cpp-2's `Ptr<llama_model>`, itself
// `#[repr(transparent)]` over `NonNull<llama_model>` (llama-cpp-2 0.1.160, model.rs and ptr.rs).
// Checked here so that a release changing the layout fails to build rather than misbehaves.
const _: () = assert!(
    size_of::<LlamaModel>() == size_of::<NonNull<sys::llama_model>>()
        && align_of::<LlamaModel>() == align_of::<NonNull<sys::llama_model>>()
);

/// The raw model pointer behind llama-cpp-2's model.
fn model_ptr(model: &LlamaModel) -> *mut sys::llama_model {
    // SAFETY: `LlamaModel` is a transparent wrapper of exactly one `NonNull<llama_model>` (see
    // the assertion above), so reading the reference as that pointer reads an initialized,
    // aligned value. The pointer stays valid while the borrow of `model` lasts.
    let ptr = unsafe { *std::ptr::from_ref(model).cast::<NonNull<sys::llama_model>>() };
    ptr.as_ptr()
}

/// How to size the context (llama.cpp's `llama_context_params` names).
#[derive(Debug, Clone)]
pub struct ContextParams {
    pub n_ctx: u32,
    pub n_batch: u32,
    pub n_ubatch: u32,
    pub n_seq_max: u32,
    pub n_threads: i32,
    pub n_threads_batch: i32,
    /// `Some(true)` on, `Some(false)` off, `None` auto.
    pub flash_attn: Option<bool>,
    pub type_k: KvCacheType,
    pub type_v: KvCacheType,
}

/// A llama.cpp context over a model.
pub struct Context<'m> {
    ctx: NonNull<sys::llama_context>,
    n_vocab: usize,
    _model: PhantomData<&'m LlamaModel>,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("n_ctx", &self.n_ctx())
            .finish_non_exhaustive()
    }
}

impl<'m> Context<'m> {
    /// Creates the context (one unified KV cache shared by `n_seq_max` sequences); `None` when
    /// llama.cpp refuses (its log says why).
    pub fn new(model: &'m LlamaModel, p: &ContextParams) -> Option<Self> {
        // SAFETY: returns a plain struct by value; no pointers are involved.
        let mut params = unsafe { sys::llama_context_default_params() };
        params.n_ctx = p.n_ctx;
        params.n_batch = p.n_batch;
        params.n_ubatch = p.n_ubatch.min(p.n_batch);
        params.n_seq_max = p.n_seq_max;
        params.n_threads = p.n_threads;
        params.n_threads_batch = p.n_threads_batch;
        params.kv_unified = true;
        params.flash_attn_type = match p.flash_attn {
            Some(true) => sys::LLAMA_FLASH_ATTN_TYPE_ENABLED,
            Some(false) => sys::LLAMA_FLASH_ATTN_TYPE_DISABLED,
            None => sys::LLAMA_FLASH_ATTN_TYPE_AUTO,
        };
        params.type_k = p.type_k.into();
        params.type_v = p.type_v.into();
        // SAFETY: the model pointer is valid for 'm, which outlives the context (the struct
        // borrows the model for 'm); `params` holds no pointers (no samplers, no callbacks).
        let ctx = unsafe { sys::llama_init_from_model(model_ptr(model), params) };
        let ctx = NonNull::new(ctx)?;
        // SAFETY: the model pointer is valid (see above); the vocabulary lives as long as it.
        let n_vocab =
            unsafe { sys::llama_vocab_n_tokens(sys::llama_model_get_vocab(model_ptr(model))) };
        Some(Self {
            ctx,
            n_vocab: usize::try_from(n_vocab).unwrap_or(0),
            _model: PhantomData,
        })
    }

    /// Context size actually allocated (all sequences together).
    pub fn n_ctx(&self) -> u32 {
        // SAFETY: `ctx` is a live context owned by `self`.
        unsafe { sys::llama_n_ctx(self.ctx.as_ptr()) }
    }

    /// The largest batch one `decode` accepts.
    pub fn n_batch(&self) -> u32 {
        // SAFETY: `ctx` is a live context owned by `self`.
        unsafe { sys::llama_n_batch(self.ctx.as_ptr()) }
    }

    /// Runs the model over the batch.
    pub fn decode(&mut self, batch: &mut Batch) -> Result<(), DecodeError> {
        // SAFETY: `ctx` is live; `batch.raw` was made by `llama_batch_init` with room for
        // `capacity` tokens of one sequence each, and `Batch::add` fills only that many.
        let code = unsafe { sys::llama_decode(self.ctx.as_ptr(), batch.raw) };
        NonZeroI32::new(code).map_or(Ok(()), |e| Err(DecodeError::from(e)))
    }

    /// The logits of output `i` of the last decode (the whole vocabulary).
    pub fn logits_ith(&mut self, i: i32) -> &[f32] {
        // SAFETY: `ctx` is live and `&mut self` excludes other use while llama.cpp synchronizes.
        let data = unsafe { sys::llama_get_logits_ith(self.ctx.as_ptr(), i) };
        assert!(!data.is_null(), "llama.cpp has no logits for output {i}");
        // SAFETY: llama.cpp returned a row of `n_vocab` floats in its output buffer, which
        // stays untouched until the next decode; the slice borrows `self`, so no decode can
        // happen while it lives.
        unsafe { std::slice::from_raw_parts(data, self.n_vocab) }
    }

    /// Removes positions `p0..p1` (`None`: from the start, to the end) of a sequence from the
    /// KV cache; false if the cache cannot remove part of a sequence.
    pub fn seq_rm(&mut self, seq: i32, p0: Option<u32>, p1: Option<u32>) -> bool {
        let pos = |p: Option<u32>| p.map_or(-1, |p| i32::try_from(p).unwrap_or(i32::MAX));
        // SAFETY: `ctx` is live; its memory handle lives as long as it.
        unsafe {
            let mem = sys::llama_get_memory(self.ctx.as_ptr());
            sys::llama_memory_seq_rm(mem, seq, pos(p0), pos(p1))
        }
    }

    /// The smallest position of a sequence in the KV cache (-1 if it is empty).
    pub fn seq_pos_min(&self, seq: i32) -> i32 {
        // SAFETY: `ctx` is live; its memory handle lives as long as it.
        unsafe {
            let mem = sys::llama_get_memory(self.ctx.as_ptr());
            sys::llama_memory_seq_pos_min(mem, seq)
        }
    }
}

impl Drop for Context<'_> {
    fn drop(&mut self) {
        // SAFETY: `ctx` came from `llama_init_from_model` and is freed once.
        unsafe { sys::llama_free(self.ctx.as_ptr()) };
    }
}

/// A batch of tokens for [`Context::decode`], each in one sequence.
pub struct Batch {
    raw: sys::llama_batch,
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
