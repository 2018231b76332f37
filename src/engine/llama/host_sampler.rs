//! The host samplers llama-cpp-2 has no constructor for (adaptive-p, infill), owned here and
//! applied to llama-cpp-2's candidate arrays, so that [`crate::engine::chain`] can put them in
//! llama-server's chain beside llama-cpp-2's own samplers.

use std::ptr::NonNull;

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_sys_2 as sys;

use super::model_ptr;

/// One llama.cpp sampler, owned (freed on drop).
pub struct HostSampler {
    ptr: NonNull<sys::llama_sampler>,
    /// The candidates in llama.cpp's layout, reused between steps.
    scratch: Vec<sys::llama_token_data>,
}

impl std::fmt::Debug for HostSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSampler").finish_non_exhaustive()
    }
}

impl HostSampler {
    /// llama.cpp's adaptive-p sampler: it chooses the token (as `dist` does), steering the
    /// chosen tokens' probability towards `target` (a negative target samples as `dist`).
    pub fn adaptive_p(target: f32, decay: f32, seed: u32) -> Self {
        // SAFETY: a plain constructor; it takes no pointers.
        Self::owning(unsafe { sys::llama_sampler_init_adaptive_p(target, decay, seed) })
    }

    /// llama.cpp's infill sampler for the model's vocabulary.
    pub fn infill(model: &LlamaModel) -> Self {
        // SAFETY: the model pointer is valid for the borrow, and the vocabulary it returns
        // lives as long as the model. The sampler keeps that pointer, as llama-cpp-2's grammar
        // sampler keeps it: the engine's worker builds a request's samplers from the model it
        // borrows and drops them with its slots, within that borrow.
        Self::owning(unsafe {
            sys::llama_sampler_init_infill(sys::llama_model_get_vocab(model_ptr(model)))
        })
    }

    fn owning(ptr: *mut sys::llama_sampler) -> Self {
        Self {
            ptr: NonNull::new(ptr).expect("llama.cpp returned a null sampler"),
            scratch: Vec::new(),
        }
    }

    /// Applies the sampler to the candidates, as `LlamaTokenDataArray::apply_sampler` applies
    /// llama-cpp-2's own: it may reorder, shrink, rescore them and select one.
    pub fn apply(&mut self, candidates: &mut LlamaTokenDataArray) {
        self.scratch.clear();
        self.scratch
            .extend(candidates.data.iter().map(|d| sys::llama_token_data {
                id: d.id().0,
                logit: d.logit(),
                p: d.p(),
            }));
        let data = self.scratch.as_mut_ptr();
        let mut array = sys::llama_token_data_array {
            data,
            size: self.scratch.len(),
            selected: candidates
                .selected
                .and_then(|s| i64::try_from(s).ok())
                .unwrap_or(-1),
            sorted: candidates.sorted,
        };
        // SAFETY: the sampler is alive; `array` points at `scratch`, which outlives the call
        // and holds `size` initialized entries. llama.cpp's samplers work in place: they may
        // lower `size` and reorder entries, never move `data` (checked below).
        unsafe { sys::llama_sampler_apply(self.ptr.as_ptr(), &raw mut array) };
        assert!(
            std::ptr::eq(array.data, data) && array.size <= self.scratch.len(),
            "a llama.cpp sampler moved or grew the candidates"
        );
        self.scratch.truncate(array.size);
        candidates.data.clear();
        candidates.data.extend(
            self.scratch
                .iter()
                .map(|d| LlamaTokenData::new(LlamaToken(d.id), d.logit, d.p)),
        );
        candidates.sorted = array.sorted;
        candidates.selected = usize::try_from(array.selected)
            .ok()
            .filter(|&s| s < candidates.data.len());
    }

    /// Records the chosen token (adaptive-p updates its moving average with it).
    pub fn accept(&mut self, token: LlamaToken) {
        // SAFETY: the sampler is alive.
        unsafe { sys::llama_sampler_accept(self.ptr.as_ptr(), token.0) };
    }
}

impl Drop for HostSampler {
    fn drop(&mut self) {
        // SAFETY: the sampler came from a llama.cpp constructor and is freed once, here.
        unsafe { sys::llama_sampler_free(self.ptr.as_ptr()) };
    }
}
