//! The llama.cpp context, batch and sampler chains, held directly through `llama-cpp-sys-2`.
//!
//! Backend sampling (llama-server's `--backend-sampling`) attaches a sampler chain to one
//! sequence of the context with `llama_set_sampler`, so that the chain runs inside the decode
//! graph and only the chosen token comes back. llama-cpp-2 exposes neither the raw
//! `llama_context` nor the raw `llama_sampler`, so this module owns both itself, with a batch
//! to feed them. Everything else (model loading, vocabulary, host samplers) stays in
//! llama-cpp-2.
//!
//! Architecture invariant: with `llama_log.rs` (the log callback) and `lora.rs` (loading LoRA
//! adapters), this is the engine's only module with `unsafe`. Each block says why it is sound;
//! the types keep the pointers valid: a [`Context`] owns every chain attached to it, so a chain
//! can never be freed while the decode graph still points at it.

mod state;

use std::marker::PhantomData;
use std::num::NonZeroI32;
use std::ptr::NonNull;

pub mod embd;

use super::config::{ContextConfig, RopeScaling};
use super::llama_load::Threadpools;
use llama_cpp_2::DecodeError;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_sys_2 as sys;

/// llama.h's `LLAMA_TOKEN_NULL`: no token.
const LLAMA_TOKEN_NULL: sys::llama_token = -1;

// `LlamaModel` is `#[repr(transparent)]` over llama-cpp-2's `Ptr<llama_model>`, itself
// `#[repr(transparent)]` over `NonNull<llama_model>` (llama-cpp-2 0.1.160, model.rs and ptr.rs).
// Checked here so that a release changing the layout fails to build rather than misbehaves.
const _: () = assert!(
    size_of::<LlamaModel>() == size_of::<NonNull<sys::llama_model>>()
        && align_of::<LlamaModel>() == align_of::<NonNull<sys::llama_model>>()
);

/// The raw model pointer behind llama-cpp-2's model.
pub(super) fn model_ptr(model: &LlamaModel) -> *mut sys::llama_model {
    // SAFETY: `LlamaModel` is a transparent wrapper of exactly one `NonNull<llama_model>` (see
    // the assertion above), so reading the reference as that pointer reads an initialized,
    // aligned value. The pointer stays valid while the borrow of `model` lasts.
    let ptr = unsafe { *std::ptr::from_ref(model).cast::<NonNull<sys::llama_model>>() };
    ptr.as_ptr()
}

/// llama.cpp's name of the model's file type, as llama-server reports it (`Q4_K - Medium`).
pub fn ftype_name(model: &LlamaModel) -> String {
    // SAFETY: the model pointer is valid for the borrow; the name is a static C string (or null).
    unsafe {
        let name = sys::llama_ftype_name(sys::llama_model_ftype(model_ptr(model)));
        if name.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned()
    }
}

/// llama.cpp's vocabulary type (1 SPM, 2 BPE, 3 WPM, …).
pub fn vocab_type(model: &LlamaModel) -> i32 {
    // SAFETY: the model pointer is valid for the borrow; the vocabulary lives as long as it.
    unsafe { sys::llama_vocab_type(sys::llama_model_get_vocab(model_ptr(model))) as i32 }
}

/// How to size the context: the settings of the context itself, and the threads that run it.
#[derive(Debug, Clone)]
pub struct ContextParams {
    pub config: ContextConfig,
    /// The context size to ask for (the config's 0 already resolved).
    pub n_ctx: u32,
    pub n_threads: i32,
    pub n_threads_batch: i32,
}

/// A llama.cpp context over a model, with the sampler chains attached to its sequences.
pub struct Context<'m> {
    ctx: NonNull<sys::llama_context>,
    n_vocab: usize,
    /// The chain attached to each sequence, if any: the context holds raw pointers to these.
    chains: Vec<Option<SamplerChain>>,
    /// Scratch for finishing a chain on the host (see [`Context::backend_token`]).
    candidates: Vec<sys::llama_token_data>,
    /// The CPU thread pools the context runs on; freed after the context (fields drop after
    /// `Drop::drop` frees it).
    _threadpools: Option<Threadpools>,
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
    /// Creates the context over its thread pools; `None` when llama.cpp refuses (its log says
    /// why).
    pub fn new(
        model: &'m LlamaModel,
        p: &ContextParams,
        threadpools: Option<Threadpools>,
    ) -> Option<Self> {
        let c = &p.config;
        // SAFETY: returns a plain struct by value; no pointers are involved.
        let mut params = unsafe { sys::llama_context_default_params() };
        params.n_ctx = p.n_ctx;
        params.n_batch = c.n_batch;
        params.n_ubatch = c.n_ubatch.min(c.n_batch);
        params.n_seq_max = c.n_parallel;
        params.n_threads = p.n_threads;
        params.n_threads_batch = p.n_threads_batch;
        params.kv_unified = c.kv_unified;
        // llama.cpp's context default keeps whole-context caches for sliding-window layers;
        // llama-server (and the planner) size them to the window unless `--swa-full`: 0.8 GiB
        // instead of 1.5 on gpt-oss-20b at n_ctx 32768.
        params.swa_full = c.swa_full;
        // Logits for at most one row per sequence, as llama-server: the worst-case graph then
        // holds n_seq_max rows of the output layer, not n_ubatch (on a 262k vocabulary, 4 MiB
        // of compute buffer instead of 512).
        params.n_outputs_max = c.n_parallel;
        params.flash_attn_type = match c.flash_attn {
            Some(true) => sys::LLAMA_FLASH_ATTN_TYPE_ENABLED,
            Some(false) => sys::LLAMA_FLASH_ATTN_TYPE_DISABLED,
            None => sys::LLAMA_FLASH_ATTN_TYPE_AUTO,
        };
        params.type_k = c.type_k.into();
        params.type_v = c.type_v.into();
        params.offload_kqv = c.offload_kqv;
        params.op_offload = c.op_offload;
        params.no_perf = c.no_perf;
        let rope = &c.rope;
        params.rope_scaling_type = match rope.scaling {
            None => sys::LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED,
            Some(RopeScaling::None) => sys::LLAMA_ROPE_SCALING_TYPE_NONE,
            Some(RopeScaling::Linear) => sys::LLAMA_ROPE_SCALING_TYPE_LINEAR,
            Some(RopeScaling::Yarn) => sys::LLAMA_ROPE_SCALING_TYPE_YARN,
        };
        params.rope_freq_base = rope.freq_base;
        params.rope_freq_scale = rope.freq_scale;
        params.yarn_orig_ctx = rope.yarn_orig_ctx;
        params.yarn_ext_factor = rope.yarn_ext_factor;
        params.yarn_attn_factor = rope.yarn_attn_factor;
        params.yarn_beta_slow = rope.yarn_beta_slow;
        params.yarn_beta_fast = rope.yarn_beta_fast;
        // One output per sequence per decode, as the worker batches: this also lets the
        // penalties sampler run on the backend (it cannot with more outputs per sequence).
        params.n_outputs_max_per_seq = 1;
        if c.embeddings {
            // An embedding batch outputs every token (llama-server's limits with embeddings).
            params.embeddings = true;
            params.n_outputs_max = c.n_batch;
            params.pooling_type = c.pooling.to_llama();
        }
        // SAFETY: the model pointer is valid for 'm, which outlives the context (the struct
        // borrows the model for 'm); `params` holds no pointers (no samplers, no callbacks).
        let ctx = unsafe { sys::llama_init_from_model(model_ptr(model), params) };
        let ctx = NonNull::new(ctx)?;
        if let Some(pools) = &threadpools {
            pools.attach(ctx);
        }
        // SAFETY: the model pointer is valid (see above); the vocabulary lives as long as it.
        let n_vocab =
            unsafe { sys::llama_vocab_n_tokens(sys::llama_model_get_vocab(model_ptr(model))) };
        Some(Self {
            ctx,
            n_vocab: usize::try_from(n_vocab).unwrap_or(0),
            chains: (0..c.n_parallel).map(|_| None).collect(),
            candidates: Vec::new(),
            _threadpools: threadpools,
            _model: PhantomData,
        })
    }

    /// The context each sequence may use (all of it with a unified cache, else its share).
    pub fn n_ctx_seq(&self) -> u32 {
        // SAFETY: `ctx` is a live context owned by `self`.
        unsafe { sys::llama_n_ctx_seq(self.ctx.as_ptr()) }
    }

    /// How many decodes so far reused the previous step's graph instead of building one
    /// (llama.cpp reuses it when the batch has the same shape: the steady state of decoding).
    pub fn graphs_reused(&self) -> i32 {
        // SAFETY: `ctx` is a live context owned by `self`; the call only reads counters.
        unsafe { sys::llama_perf_context(self.ctx.as_ptr()) }.n_reused
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

    /// Sets the LoRA adapters of every later decode, each at its scale (0: off); llama.cpp
    /// keeps its graph when they are unchanged.
    pub fn set_adapters_lora(
        &mut self,
        adapters: &mut [*mut sys::llama_adapter_lora],
        scales: &mut [f32],
    ) {
        assert_eq!(adapters.len(), scales.len(), "one scale per adapter");
        // SAFETY: the context is alive; the adapters were loaded for this context's model and
        // live as long as it (the model frees them); both arrays hold `adapters.len()` items
        // and llama.cpp copies what it keeps.
        unsafe {
            sys::llama_set_adapters_lora(
                self.ctx.as_ptr(),
                adapters.as_mut_ptr(),
                adapters.len(),
                scales.as_mut_ptr(),
            );
        }
    }

    /// Runs the model over the batch (and the attached chains over their outputs).
    pub fn decode(&mut self, batch: &mut Batch) -> Result<(), DecodeError> {
        // SAFETY: `ctx` is live; `batch.raw` was made by `llama_batch_init` with room for
        // `capacity` tokens of one sequence each, and `Batch::add` fills only that many.
        // Every attached chain is owned by `self.chains`, so alive during the decode.
        let code = unsafe { sys::llama_decode(self.ctx.as_ptr(), batch.raw) };
        NonZeroI32::new(code).map_or(Ok(()), |e| Err(DecodeError::from(e)))
    }

    /// The logits of output `i` of the last decode (the whole vocabulary). Only for rows of
    /// sequences without an attached chain: llama.cpp does not copy raw logits for a batch
    /// whose outputs all belong to sequences with chains.
    pub fn logits_ith(&mut self, i: i32) -> &[f32] {
        // SAFETY: `&mut self` excludes other use of the context while llama.cpp synchronizes,
        // and the slice borrows `self`, so no decode can happen while it lives.
        unsafe { self.logits_row(i) }
    }

    /// The logits of several outputs of the last decode at once, in the order asked, so that
    /// they can be read side by side (see [`Context::logits_ith`]).
    pub fn logits_rows(&mut self, rows: impl IntoIterator<Item = i32>) -> Vec<&[f32]> {
        // SAFETY: as in `logits_ith`: every row borrows `self`, which excludes a decode.
        rows.into_iter()
            .map(|i| unsafe { self.logits_row(i) })
            .collect()
    }

    /// Output `i`'s row of logits, which llama.cpp copies out of the last decode.
    ///
    /// # Safety
    /// No other call may use the context while this one runs, and the caller must tie the
    /// returned slice to a borrow of `self` that excludes the next decode.
    unsafe fn logits_row<'a>(&self, i: i32) -> &'a [f32] {
        // SAFETY: `ctx` is live; the caller excludes concurrent use.
        let data = unsafe { sys::llama_get_logits_ith(self.ctx.as_ptr(), i) };
        assert!(!data.is_null(), "llama.cpp has no logits for output {i}");
        // SAFETY: llama.cpp returned a row of `n_vocab` floats in its output buffer, which stays
        // untouched until the next decode; the caller keeps the slice from outliving that.
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

    /// Copies every cell of sequence `src` to sequence `dst` (a group's shared prompt).
    pub fn seq_cp(&mut self, src: i32, dst: i32) {
        // SAFETY: `ctx` is live; its memory handle lives as long as it.
        unsafe {
            let mem = sys::llama_get_memory(self.ctx.as_ptr());
            sys::llama_memory_seq_cp(mem, src, dst, -1, -1);
        }
    }

    /// Adds `delta` to the positions `p0..p1` of a sequence (a context shift).
    pub fn seq_add(&mut self, seq: i32, p0: u32, p1: u32, delta: i32) {
        let pos = |p: u32| i32::try_from(p).unwrap_or(i32::MAX);
        // SAFETY: `ctx` is live; its memory handle lives as long as it.
        unsafe {
            let mem = sys::llama_get_memory(self.ctx.as_ptr());
            sys::llama_memory_seq_add(mem, seq, pos(p0), pos(p1), delta);
        }
    }

    /// Whether the KV cache can shift positions (some architectures cannot).
    pub fn can_shift(&self) -> bool {
        // SAFETY: `ctx` is live; its memory handle lives as long as it.
        unsafe { sys::llama_memory_can_shift(sys::llama_get_memory(self.ctx.as_ptr())) }
    }

    /// The smallest position of a sequence in the KV cache (-1 if it is empty).
    pub fn seq_pos_min(&self, seq: i32) -> i32 {
        // SAFETY: `ctx` is live; its memory handle lives as long as it.
        unsafe {
            let mem = sys::llama_get_memory(self.ctx.as_ptr());
            sys::llama_memory_seq_pos_min(mem, seq)
        }
    }

    /// Attaches the chain `spec` describes to a sequence, so that the next decodes sample its
    /// outputs on the backend; false if llama.cpp cannot run it there (the sequence then has
    /// no chain). Each change of the attached chains makes llama.cpp re-reserve its graph at
    /// the next decode, which on an H100 costs about as much as a 500-token prompt. So a chain
    /// stays attached after its request, and a sequence that already holds an equal chain
    /// keeps it, reset: its penalties forget their tokens and its RNG starts again from the
    /// seed, so it chooses exactly as a fresh chain would.
    pub fn attach(&mut self, seq: i32, spec: ChainSpec) -> bool {
        let n_vocab = i32::try_from(self.n_vocab).unwrap_or(i32::MAX);
        let Some(entry) = usize::try_from(seq)
            .ok()
            .and_then(|s| self.chains.get_mut(s))
        else {
            return false;
        };
        if let Some(chain) = entry.as_ref().filter(|c| c.spec == spec) {
            // SAFETY: the chain is alive (owned by `self.chains`); reset only touches its
            // host-side state, which the next decode reads again.
            unsafe { sys::llama_sampler_reset(chain.ptr.as_ptr()) };
            return true;
        }
        let chain = SamplerChain::build(spec, n_vocab);
        // SAFETY: `ctx` is live; the chain is freshly built and was never attached (llama.cpp
        // aborts on a second backend init). On success the context keeps the pointer, and
        // `self.chains` keeps the chain alive until it is replaced, detached or the context is
        // freed; the chain it replaces is dropped only after llama.cpp let go of it here.
        let attached =
            unsafe { sys::llama_set_sampler(self.ctx.as_ptr(), seq, chain.ptr.as_ptr()) };
        // Either way llama.cpp no longer points at the sequence's previous chain, if any. On
        // failure llama.cpp did not initialize the chain for the backend.
        *entry = attached.then_some(chain);
        attached
    }

    /// Whether the sequence holds a chain built from `spec` (attaching it again is free).
    pub fn has_chain(&self, seq: i32, spec: &ChainSpec) -> bool {
        usize::try_from(seq)
            .ok()
            .and_then(|s| self.chains.get(s)?.as_ref())
            .is_some_and(|c| &c.spec == spec)
    }

    /// Detaches and frees the chain of a sequence, if it has one: its next outputs are
    /// sampled on the host, from the logits.
    pub fn detach(&mut self, seq: i32) {
        let Some(entry) = usize::try_from(seq)
            .ok()
            .and_then(|s| self.chains.get_mut(s))
        else {
            return;
        };
        if entry.is_some() {
            // SAFETY: `ctx` is live; a null sampler detaches. The chain is freed only after
            // the context has dropped its pointer.
            unsafe { sys::llama_set_sampler(self.ctx.as_ptr(), seq, std::ptr::null_mut()) };
            *entry = None;
        }
    }

    /// The token the sequence's chain chose for output `i` of the last decode. If only a
    /// prefix of the chain could run on the backend, the rest runs here over the candidates it
    /// left (as llama.cpp's `common_sampler_sample` does). `None` if the sequence has no chain
    /// or llama.cpp produced nothing to sample from.
    pub fn backend_token(&mut self, seq: i32, i: i32) -> Option<LlamaToken> {
        let chain = self.chains.get(usize::try_from(seq).ok()?)?.as_ref()?.ptr;
        let ctx = self.ctx.as_ptr();
        // SAFETY: `ctx` is live and `&mut self` excludes other use while llama.cpp synchronizes.
        let token = unsafe { sys::llama_get_sampled_token_ith(ctx, i) };
        if token != LLAMA_TOKEN_NULL {
            return Some(LlamaToken(token));
        }
        // SAFETY: `ctx` is live. The pointers llama.cpp returns index its output buffers and
        // hold `count` entries each (the counts come from the same row); they stay valid until
        // the next decode, and are only read here.
        unsafe {
            let ids = sys::llama_get_sampled_candidates_ith(ctx, i);
            let logits = sys::llama_get_sampled_logits_ith(ctx, i);
            if ids.is_null() || logits.is_null() {
                return None;
            }
            let n = sys::llama_get_sampled_logits_count_ith(ctx, i)
                .min(sys::llama_get_sampled_candidates_count_ith(ctx, i))
                as usize;
            let ids = std::slice::from_raw_parts(ids, n);
            let logits = std::slice::from_raw_parts(logits, n);
            self.candidates.clear();
            self.candidates.extend(
                ids.iter()
                    .zip(logits)
                    .map(|(&id, &logit)| sys::llama_token_data { id, logit, p: 0.0 }),
            );
        }
        let mut array = sys::llama_token_data_array {
            data: self.candidates.as_mut_ptr(),
            size: self.candidates.len(),
            selected: -1,
            sorted: false,
        };
        // SAFETY: the chain is alive (owned by `self.chains`); `array` points at
        // `self.candidates`, which outlives the call. The chain skips its backend prefix.
        unsafe { sys::llama_sampler_apply(chain.as_ptr(), &raw mut array) };
        let selected = usize::try_from(array.selected).ok()?;
        self.candidates.get(selected).map(|d| LlamaToken(d.id))
    }

    /// Records the token chosen for a sequence: its chain's penalties and RNG advance.
    pub fn accept(&mut self, seq: i32, token: LlamaToken) {
        let Some(Some(chain)) = usize::try_from(seq).ok().and_then(|s| self.chains.get(s)) else {
            return;
        };
        // SAFETY: the chain is alive (owned by `self.chains`).
        unsafe { sys::llama_sampler_accept(chain.ptr.as_ptr(), token.0) };
    }
}

impl Drop for Context<'_> {
    fn drop(&mut self) {
        // SAFETY: `ctx` came from `llama_init_from_model` and is freed once. The attached
        // chains are still alive here (fields drop after this body), so nothing dangles while
        // llama.cpp tears the context down.
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

/// What a backend sampler chain is made of: its samplers in order, with their parameters
/// (floats by their bits, so that equal means the same chain). Two chains with equal specs,
/// both reset, choose alike: an attached chain can serve any request whose spec equals its
/// own (see [`Context::attach`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainSpec(Vec<Step>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Sorted by token.
    LogitBias(Vec<(i32, u32)>),
    Penalties {
        last_n: i32,
        repeat: u32,
        freq: u32,
        present: u32,
    },
    TopK(i32),
    TopP(u32, usize),
    MinP(u32, usize),
    Temp(u32),
    TempExt(u32, u32, u32),
    Dist(u32),
    Greedy,
}

impl ChainSpec {
    /// Additive biases (`f32::NEG_INFINITY` bans a token).
    pub fn logit_bias(&mut self, biases: &[(LlamaToken, f32)]) {
        let mut raw: Vec<(i32, u32)> = biases.iter().map(|&(t, b)| (t.0, b.to_bits())).collect();
        raw.sort_unstable();
        self.0.push(Step::LogitBias(raw));
    }

    /// Repetition, frequency and presence penalties over the last `last_n` accepted tokens.
    pub fn penalties(&mut self, last_n: i32, repeat: f32, freq: f32, present: f32) {
        self.0.push(Step::Penalties {
            last_n,
            repeat: repeat.to_bits(),
            freq: freq.to_bits(),
            present: present.to_bits(),
        });
    }

    pub fn top_k(&mut self, k: i32) {
        self.0.push(Step::TopK(k));
    }

    pub fn top_p(&mut self, p: f32, min_keep: usize) {
        self.0.push(Step::TopP(p.to_bits(), min_keep));
    }

    pub fn min_p(&mut self, p: f32, min_keep: usize) {
        self.0.push(Step::MinP(p.to_bits(), min_keep));
    }

    pub fn temp(&mut self, t: f32) {
        self.0.push(Step::Temp(t.to_bits()));
    }

    pub fn temp_ext(&mut self, t: f32, delta: f32, exponent: f32) {
        self.0.push(Step::TempExt(
            t.to_bits(),
            delta.to_bits(),
            exponent.to_bits(),
        ));
    }

    /// Draws from the distribution; `u32::MAX` (llama.cpp's default seed) picks a random seed
    /// at every reset.
    pub fn dist(&mut self, seed: u32) {
        self.0.push(Step::Dist(seed));
    }

    /// The most likely token.
    pub fn greedy(&mut self) {
        self.0.push(Step::Greedy);
    }
}

/// A llama.cpp sampler chain built from a [`ChainSpec`], owned by the [`Context`] it is
/// attached to.
struct SamplerChain {
    ptr: NonNull<sys::llama_sampler>,
    spec: ChainSpec,
}

impl SamplerChain {
    fn build(spec: ChainSpec, n_vocab: i32) -> Self {
        // SAFETY: plain constructor calls; the chain params hold no pointers.
        let ptr =
            unsafe { sys::llama_sampler_chain_init(sys::llama_sampler_chain_default_params()) };
        let ptr = NonNull::new(ptr).expect("llama_sampler_chain_init returned null");
        let f = f32::from_bits;
        for step in &spec.0 {
            // SAFETY: plain constructors; `llama_sampler_init_logit_bias` copies the biases
            // before it returns.
            let smpl = unsafe {
                match step {
                    Step::LogitBias(biases) => {
                        let raw: Vec<sys::llama_logit_bias> = biases
                            .iter()
                            .map(|&(token, bias)| sys::llama_logit_bias {
                                token,
                                bias: f(bias),
                            })
                            .collect();
                        let n = i32::try_from(raw.len()).expect("fewer biases than i32::MAX");
                        sys::llama_sampler_init_logit_bias(n_vocab, n, raw.as_ptr())
                    }
                    &Step::Penalties {
                        last_n,
                        repeat,
                        freq,
                        present,
                    } => sys::llama_sampler_init_penalties(
                        n_vocab,
                        last_n,
                        f(repeat),
                        f(freq),
                        f(present),
                    ),
                    &Step::TopK(k) => sys::llama_sampler_init_top_k(k),
                    &Step::TopP(p, min_keep) => sys::llama_sampler_init_top_p(f(p), min_keep),
                    &Step::MinP(p, min_keep) => sys::llama_sampler_init_min_p(f(p), min_keep),
                    &Step::Temp(t) => sys::llama_sampler_init_temp(f(t)),
                    &Step::TempExt(t, delta, exponent) => {
                        sys::llama_sampler_init_temp_ext(f(t), f(delta), f(exponent))
                    }
                    &Step::Dist(seed) => sys::llama_sampler_init_dist(seed),
                    Step::Greedy => sys::llama_sampler_init_greedy(),
                }
            };
            assert!(!smpl.is_null(), "llama.cpp returned a null sampler");
            // SAFETY: the chain is alive and takes ownership of the fresh sampler, freeing it
            // with the chain.
            unsafe { sys::llama_sampler_chain_add(ptr.as_ptr(), smpl) };
        }
        Self { ptr, spec }
    }
}

impl Drop for SamplerChain {
    fn drop(&mut self) {
        // SAFETY: the chain came from `llama_sampler_chain_init` and is freed once, with the
        // samplers it owns. A `Context` drops an attached chain only after detaching it (or
        // after freeing the context), so llama.cpp holds no pointer to it any more.
        unsafe { sys::llama_sampler_free(self.ptr.as_ptr()) };
    }
}
