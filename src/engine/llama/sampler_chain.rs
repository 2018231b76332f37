//! Backend sampling's sampler chains: a [`ChainSpec`] says what a chain is made of, a
//! `SamplerChain` is the llama.cpp chain built from it, and the [`Context`] attaches one to a
//! sequence (`llama_set_sampler`), owns it while attached, and reads back the token it chose
//! (finishing on the host what could not run on the backend).

use std::ptr::NonNull;

use llama_cpp_2::token::LlamaToken;
use llama_cpp_sys_2 as sys;

use super::Context;

/// llama.h's `LLAMA_TOKEN_NULL`: no token.
const LLAMA_TOKEN_NULL: sys::llama_token = -1;

impl Context<'_> {
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
pub(super) struct SamplerChain {
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
