//! The llama.cpp context, batch and sampler chains, held directly through `llama-cpp-sys-2`.
//!
//! Backend sampling (llama-server's `--backend-sampling`) attaches a sampler chain to one
//! sequence of the context with `llama_set_sampler`, so that the chain runs inside the decode
//! graph and only the chosen token comes back. llama-cpp-2 exposes neither the raw
//! `llama_context` nor the raw `llama_sampler`, so this module owns both itself, with a batch
//! to feed them, and the two host samplers llama-cpp-2 has no constructor for (adaptive-p,
//! infill). Everything else (model loading, vocabulary, the other host samplers) stays in
//! llama-cpp-2.
//!
//! Architecture invariant: with `llama_log.rs` (the log callback) and `lora.rs` (loading LoRA
//! adapters), this module (its submodules included) is the engine's only module with `unsafe`.
//! Each block says why it is sound; the types keep the pointers valid: a [`Context`] owns every
//! chain attached to it, so a chain can never be freed while the decode graph still points at
//! it.

mod batch;
mod host_sampler;
mod memory;
mod sampler_chain;
mod state;

use std::marker::PhantomData;
use std::num::NonZeroI32;
use std::ptr::NonNull;

pub mod embd;

pub use batch::Batch;
pub use host_sampler::HostSampler;
pub use sampler_chain::ChainSpec;
use sampler_chain::SamplerChain;

use super::config::{ContextConfig, RopeScaling};
use super::llama_load::Threadpools;
use llama_cpp_2::DecodeError;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_sys_2 as sys;

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

/// The window of the model's sliding-window layers as llama.cpp built them (0 if none). Not the
/// GGUF key: llama.cpp ignores it on Phi-3 (full attention), sets Llama 4's chunk of 8 192
/// itself, and answers 0 for DeepSeek-V4, whose compressed cache cannot be rolled back.
pub fn n_swa(model: &LlamaModel) -> u32 {
    // SAFETY: the model pointer is valid for the borrow; the call reads a hyperparameter.
    u32::try_from(unsafe { sys::llama_model_n_swa(model_ptr(model)) }).unwrap_or(0)
}

/// Whether the model keeps a recurrent state (Mamba, RWKV, or a hybrid's recurrent layers), which
/// llama.cpp cannot cut back to an earlier position.
pub fn has_recurrent_state(model: &LlamaModel) -> bool {
    let ptr = model_ptr(model);
    // SAFETY: the model pointer is valid for the borrow; the calls read its architecture.
    unsafe { sys::llama_model_is_recurrent(ptr) || sys::llama_model_is_hybrid(ptr) }
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

    /// Adds control vectors to every later decode: `data` holds `n_embd` values per layer from
    /// layer 1, applied to layers `start..=end`. False if llama.cpp refuses them (its log says
    /// why).
    pub fn set_control_vector(
        &mut self,
        n_embd: usize,
        data: &[f32],
        start: i32,
        end: i32,
    ) -> bool {
        let Ok(n_embd) = i32::try_from(n_embd) else {
            return false;
        };
        // SAFETY: the context is alive; `data` holds `data.len()` floats, which llama.cpp copies
        // into its own tensors before it returns.
        unsafe {
            sys::llama_set_adapter_cvec(
                self.ctx.as_ptr(),
                data.as_ptr(),
                data.len(),
                n_embd,
                start,
                end,
            ) == 0
        }
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
}

impl Drop for Context<'_> {
    fn drop(&mut self) {
        // SAFETY: `ctx` came from `llama_init_from_model` and is freed once. The attached
        // chains are still alive here (fields drop after this body), so nothing dangles while
        // llama.cpp tears the context down.
        unsafe { sys::llama_free(self.ctx.as_ptr()) };
    }
}
