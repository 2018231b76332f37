//! Token selection for one slot, with llama-server's sampler chain and defaults (penalties → top_k
//! → typical → top_p → min_p → temperature → dist), but cheaper on large vocabularies.
//!
//! llama-server copies every logit into a candidate array each step (201k entries for gpt-oss,
//! 262k for Gemma 3) before its top-k cuts it to 40. Here top-k runs first, over the raw logits in
//! one pass, and only the survivors go through llama.cpp's own samplers — the same samplers, fed
//! the same candidates in the same order, so the same token comes out for the same seed. Greedy
//! requests are an argmax. Penalties, logit biases and suppressed tokens touch few tokens, so
//! they are applied as sparse overrides instead of to the whole vocabulary.
//! Requests that need the whole distribution (a grammar, top_k disabled) take the full path.
//!
//! With backend sampling, `backend_sampling.rs` builds the same chain to run inside the decode
//! graph instead.

use std::collections::HashMap;

mod gbnf;
mod params;
mod scan;

pub use gbnf::check as check_grammar;
pub use params::{SamplerType, SamplingParams};
pub use scan::{Picked, Scan, token_probs};

use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;

/// Top-k above this goes through the full candidate array: the one-pass selection only pays off
/// when k is small against the vocabulary.
pub(super) const FAST_TOP_K_MAX: usize = 256;

/// The sampler state of one slot for one request: the [`Scan`] over the whole vocabulary, then
/// llama.cpp's samplers over what it leaves.
pub struct Sampler {
    scan: Scan,
    /// llama.cpp samplers after top-k (typical, top_p, min_p, temperature, dist).
    tail: LlamaSampler,
    /// The grammar, applied to the full candidate array before `tail` when present.
    grammar: Option<LlamaSampler>,
    /// The candidates the chain left at the last step, with their probabilities, most likely
    /// first; kept only when `post_sampling_probs` asks for them.
    kept: Option<Vec<(LlamaToken, f32)>>,
    /// llama.cpp's whole chain, for requests off the one-pass path ([`SamplingParams::fast_path`]).
    chain: Option<super::chain::Chain>,
    /// The grammar rejected even the token sampled with it applied (every candidate's logit was
    /// -inf or NaN, as extreme penalties or temperatures make them): accepting that token would
    /// leave llama.cpp's grammar with no stack, which aborts the process at the next step.
    grammar_stuck: bool,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("params", &self.scan.params)
            .finish_non_exhaustive()
    }
}

/// Why a sampler could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    #[error("invalid grammar: {0}")]
    Grammar(String),
    /// See [`Sampler::grammar_stuck`].
    #[error(
        "the grammar allows none of the tokens left after sampling (the sampling parameters made \
         every logit infinite or NaN)"
    )]
    GrammarStuck,
}

impl Sampler {
    /// Builds the sampler for a request; `model` supplies the vocabulary for grammars.
    pub fn new(
        params: SamplingParams,
        model: &llama_cpp_2::model::LlamaModel,
        suppressed: &[LlamaToken],
    ) -> Result<Self, SamplerError> {
        let grammar = match &params.grammar {
            Some(text) => {
                gbnf::check(text).map_err(SamplerError::Grammar)?;
                Some(
                    LlamaSampler::grammar(model, text, "root")
                        .map_err(|e| SamplerError::Grammar(e.to_string()))?,
                )
            }
            None => None,
        };
        let n_vocab = usize::try_from(model.n_vocab()).unwrap_or(0);
        let chain = (!params.fast_path()).then(|| super::chain::build(&params, model, suppressed));
        let mut sampler = Self::build(params, n_vocab, grammar, suppressed);
        sampler.scan.full_chain = chain.is_some();
        sampler.chain = chain;
        Ok(sampler)
    }

    fn build(
        params: SamplingParams,
        n_vocab: usize,
        grammar: Option<LlamaSampler>,
        suppressed: &[LlamaToken],
    ) -> Self {
        let mut tail = Vec::new();
        if params.typical_p < 1.0 {
            tail.push(LlamaSampler::typical(params.typical_p, params.min_keep));
        }
        if params.top_p < 1.0 {
            tail.push(LlamaSampler::top_p(params.top_p, params.min_keep));
        }
        if params.min_p > 0.0 {
            tail.push(LlamaSampler::min_p(params.min_p, params.min_keep));
        }
        tail.push(LlamaSampler::temp_ext(
            params.temperature,
            params.dynatemp_range,
            params.dynatemp_exponent,
        ));
        tail.push(LlamaSampler::dist(params.seed));
        let bias = merged_bias(&params, suppressed);
        Self {
            scan: Scan {
                n_vocab,
                bias,
                history: std::collections::VecDeque::new(),
                overrides: HashMap::new(),
                top: Vec::new(),
                full_chain: false,
                params,
            },
            tail: LlamaSampler::chain_simple(tail),
            grammar,
            kept: None,
            chain: None,
            grammar_stuck: false,
        }
    }

    /// Keeps each step's final candidates for [`Sampler::post_sampling_probs`].
    pub fn keep_candidates(&mut self) {
        self.kept = Some(Vec::new());
    }

    /// llama-server's `post_sampling_probs`: the chosen token's probability after the chain,
    /// and the `n` most likely candidates the chain left, stopping at the first that has none.
    pub fn post_sampling_probs(
        &self,
        chosen: LlamaToken,
        n: usize,
    ) -> crate::engine::request::TokenProbs {
        let kept = self.kept.as_deref().unwrap_or_default();
        crate::engine::request::TokenProbs {
            prob: kept
                .iter()
                .find(|(t, _)| *t == chosen)
                .map_or(0.0, |&(_, p)| p),
            top: kept
                .iter()
                .take(n)
                .take_while(|(_, p)| *p > 0.0)
                .copied()
                .collect(),
            post_sampling: true,
        }
    }

    /// Records what a step's chain left, when asked to; greedy leaves only its choice.
    fn keep(&mut self, candidates: Option<&LlamaTokenDataArray>, chosen: LlamaToken) {
        let Some(kept) = &mut self.kept else { return };
        kept.clear();
        match candidates {
            None => kept.push((chosen, 1.0)),
            Some(array) => {
                kept.extend(array.data.iter().map(|d| (d.id(), d.p())));
                kept.sort_by(|a, b| b.1.total_cmp(&a.1));
            }
        }
    }

    /// Picks the next token from one row of logits.
    pub fn sample(&mut self, logits: &[f32]) -> LlamaToken {
        let picked = self.scan.scan(logits);
        self.finish(picked, logits)
    }

    /// The scan of the whole row, which [`Sampler::finish`] completes: apart so that the
    /// scans of several slots can run side by side.
    pub fn scan_mut(&mut self) -> &mut Scan {
        &mut self.scan
    }

    /// Completes sampling from what the scan of this row picked: the tail samplers over the
    /// top k, then the grammar's check.
    pub fn finish(&mut self, picked: Picked, logits: &[f32]) -> LlamaToken {
        if self.chain.is_some() {
            return self.finish_chain(logits);
        }
        let token = self.finish_free(picked, logits);
        let Some(grammar) = &mut self.grammar else {
            return token;
        };
        // llama-server's order: sample freely, then ask the grammar; only a rejected token pays
        // for constraining the whole vocabulary (262k candidates on Gemma 3).
        if grammar_accepts(grammar, token) {
            return token;
        }
        let params = &self.scan.params;
        let mut candidates = self.scan.full_candidates(logits);
        if let Some(grammar) = &mut self.grammar {
            candidates.apply_sampler(grammar);
        }
        let greedy = params.temperature <= 0.0;
        if greedy {
            candidates.apply_sampler(&mut LlamaSampler::greedy());
        } else {
            if params.top_k > 0 {
                candidates.apply_sampler(&mut LlamaSampler::top_k(params.top_k));
            }
            candidates.apply_sampler(&mut self.tail);
        }
        let chosen = candidates.selected_token().unwrap_or(token);
        self.keep((!greedy).then_some(&candidates), chosen);
        self.check_grammar(chosen);
        chosen
    }

    /// After a sample with the grammar applied: whether the grammar takes the token (a rare
    /// path: only a freely sampled token that the grammar rejected comes here).
    fn check_grammar(&mut self, chosen: LlamaToken) {
        if let Some(grammar) = &mut self.grammar
            && !grammar_accepts(grammar, chosen)
        {
            self.grammar_stuck = true;
        }
    }

    /// Whether the last token is one the grammar rejects: the request cannot go on (and the
    /// token must not be accepted).
    pub fn grammar_stuck(&self) -> bool {
        self.grammar_stuck
    }

    /// llama.cpp's whole chain over the raw logits; as llama-server, a token the grammar rejects
    /// is sampled again with the grammar applied first.
    fn finish_chain(&mut self, logits: &[f32]) -> LlamaToken {
        let raw = |n: usize| {
            let data = (0..n.min(logits.len()))
                .map(|i| LlamaTokenData::new(LlamaToken(i as i32), logits[i], 0.0))
                .collect();
            LlamaTokenDataArray::new(data, false)
        };
        let chain = self.chain.as_mut().expect("checked by the caller");
        let mut candidates = raw(self.scan.n_vocab);
        chain.apply(&mut candidates);
        let mut token = candidates
            .selected_token()
            .unwrap_or_else(|| self.scan.argmax(logits));
        if let Some(grammar) = &mut self.grammar
            && !grammar_accepts(grammar, token)
        {
            candidates = raw(self.scan.n_vocab);
            candidates.apply_sampler(grammar);
            self.chain.as_mut().expect("present").apply(&mut candidates);
            token = candidates.selected_token().unwrap_or(token);
            self.check_grammar(token);
        }
        self.keep(Some(&candidates), token);
        token
    }

    /// The chain without the grammar.
    fn finish_free(&mut self, picked: Picked, logits: &[f32]) -> LlamaToken {
        let scan = &self.scan;
        let mut candidates = match picked {
            Picked::Token(token) => {
                self.keep(None, token);
                return token;
            }
            Picked::TopK => LlamaTokenDataArray::new(
                scan.top
                    .iter()
                    .map(|&(l, t)| LlamaTokenData::new(LlamaToken(t), l, 0.0))
                    .collect(),
                true,
            ),
            Picked::All => {
                let mut all = scan.full_candidates(logits);
                if scan.params.top_k > 0 {
                    all.apply_sampler(&mut LlamaSampler::top_k(scan.params.top_k));
                }
                all
            }
        };
        candidates.apply_sampler(&mut self.tail);
        let chosen = candidates
            .selected_token()
            .unwrap_or_else(|| self.scan.argmax(logits));
        self.keep(Some(&candidates), chosen);
        chosen
    }

    /// Records the token that was chosen: penalties look back at it, grammars advance.
    pub fn accept(&mut self, token: LlamaToken) {
        if let Some(grammar) = &mut self.grammar {
            grammar.accept(token);
        }
        self.remember(token);
    }

    /// Takes the prompt into the penalties' (and DRY's) history, as llama-server does when a
    /// slot starts: a repetition of the prompt is a repetition too. The grammar never sees it.
    pub fn accept_prompt(&mut self, prompt: &[LlamaToken]) {
        if self.chain.is_some() {
            prompt.iter().for_each(|&t| self.remember(t));
        } else if penalties_on(&self.scan.params) {
            let window = usize::try_from(self.scan.params.repeat_last_n).unwrap_or(0);
            let start = prompt.len().saturating_sub(window);
            prompt[start..].iter().for_each(|&t| self.remember(t));
        }
    }

    /// A token the penalties look back at (in the chain, or in the scan's window).
    fn remember(&mut self, token: LlamaToken) {
        if let Some(chain) = &mut self.chain {
            // Penalties, DRY and Mirostat keep their state in the chain.
            chain.accept(token);
            return;
        }
        let window = usize::try_from(self.scan.params.repeat_last_n).unwrap_or(0);
        if window > 0 {
            let history = &mut self.scan.history;
            if history.len() == window {
                history.pop_front();
            }
            history.push_back(token);
        }
    }
}

/// Whether the grammar accepts `token` next: it is checked alone, so that only a rejected token
/// pays for constraining the whole vocabulary.
fn grammar_accepts(grammar: &mut LlamaSampler, token: LlamaToken) -> bool {
    let mut single = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 0.0, 0.0)], false);
    single.apply_sampler(grammar);
    single
        .data
        .first()
        .is_some_and(|d| d.logit() > f32::NEG_INFINITY)
}

/// The request's logit biases plus the model's suppressed tokens (banned), summed per token as
/// llama.cpp's logit_bias sampler applies them.
pub(super) fn merged_bias(params: &SamplingParams, suppressed: &[LlamaToken]) -> HashMap<i32, f32> {
    let mut bias: HashMap<i32, f32> = suppressed
        .iter()
        .map(|t| (t.0, f32::NEG_INFINITY))
        .collect();
    for (token, b) in &params.logit_bias {
        *bias.entry(token.0).or_insert(0.0) += b;
    }
    bias
}

/// Whether the penalties change anything (a window and a non-neutral setting).
pub(crate) fn penalties_on(p: &SamplingParams) -> bool {
    p.repeat_last_n > 0
        && (p.repeat_penalty != 1.0 || p.frequency_penalty != 0.0 || p.presence_penalty != 0.0)
}
