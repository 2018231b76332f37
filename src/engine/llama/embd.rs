//! What embedding and rerank tasks need of the context, beyond llama-cpp-2: turning
//! embeddings on per batch (`llama_set_embeddings`, as llama-server does for each batch),
//! reading pooled and per-token vectors back, and the facts that decide how an input may be
//! batched (the pooling, causal attention, whether the context has a KV cache at all: BERT-style
//! encoders have none and read each input in one ubatch).

use llama_cpp_2::model::LlamaModel;
use llama_cpp_sys_2 as sys;

use super::{Context, model_ptr};
use crate::engine::Pooling;

impl Context<'_> {
    /// Whether the next decode produces embeddings (else logits).
    pub fn set_embeddings(&mut self, on: bool) {
        // SAFETY: `ctx` is a live context owned by `self`; the call sets a flag.
        unsafe { sys::llama_set_embeddings(self.ctx.as_ptr(), on) }
    }

    /// The pooling the context applies (the model's own unless `--pooling` chose one).
    pub fn pooling(&self) -> Pooling {
        // SAFETY: `ctx` is a live context owned by `self`; the call reads a parameter.
        Pooling::from_llama(unsafe { sys::llama_pooling_type(self.ctx.as_ptr()) })
    }

    /// Whether attention is causal (decoders) or sees the whole input (BERT-style encoders).
    pub fn causal_attn(&self) -> bool {
        // SAFETY: as above.
        unsafe { sys::llama_get_causal_attn(self.ctx.as_ptr()) }
    }

    /// Whether the context has a KV cache; encoders have none, so an input cannot be read in
    /// parts, and no logits can be sampled.
    pub fn has_memory(&self) -> bool {
        // SAFETY: as above; the handle is only compared with null.
        !unsafe { sys::llama_get_memory(self.ctx.as_ptr()) }.is_null()
    }

    /// Output `i`'s vector of the last decode (`n` floats), if llama.cpp has one.
    pub fn embeddings_ith(&mut self, i: i32, n: usize) -> Option<&[f32]> {
        // SAFETY: `ctx` is live and `&mut self` excludes other use while llama.cpp synchronizes;
        // a non-null row holds the model's `n_embd_out` floats (`n` is at most that), which stay
        // untouched until the next decode, which the borrow of `self` excludes.
        unsafe {
            let data = sys::llama_get_embeddings_ith(self.ctx.as_ptr(), i);
            (!data.is_null()).then(|| std::slice::from_raw_parts(data, n))
        }
    }

    /// Sequence `seq`'s pooled vector of the last decode (`n` floats), if llama.cpp has one.
    pub fn embeddings_seq(&mut self, seq: i32, n: usize) -> Option<&[f32]> {
        // SAFETY: as in `embeddings_ith`; a pooled row holds `n_embd_out` floats (for rank
        // pooling, `n_cls_out`), and callers ask for at most that many.
        unsafe {
            let data = sys::llama_get_embeddings_seq(self.ctx.as_ptr(), seq);
            (!data.is_null()).then(|| std::slice::from_raw_parts(data, n))
        }
    }
}

/// Length of the vectors the model outputs (its `n_embd`, or a projection's).
pub fn n_embd_out(model: &LlamaModel) -> usize {
    // SAFETY: the model pointer is valid for the borrow; the call reads a hyperparameter.
    usize::try_from(unsafe { sys::llama_model_n_embd_out(model_ptr(model)) }).unwrap_or(0)
}

/// How many scores a reranker's classification head gives (rank pooling's vector length).
pub fn n_cls_out(model: &LlamaModel) -> usize {
    // SAFETY: as above.
    unsafe { sys::llama_model_n_cls_out(model_ptr(model)) as usize }
}

/// The model's rerank prompt (`tokenizer.chat_template.rerank`, with `{query}` and
/// `{document}`), if it has one.
pub fn rerank_template(model: &LlamaModel) -> Option<String> {
    // SAFETY: the model pointer is valid for the borrow; the name is a NUL-terminated literal;
    // a non-null result is a C string owned by the model, copied out at once.
    unsafe {
        let text = sys::llama_model_chat_template(model_ptr(model), c"rerank".as_ptr());
        (!text.is_null()).then(|| {
            std::ffi::CStr::from_ptr(text)
                .to_string_lossy()
                .into_owned()
        })
    }
}
