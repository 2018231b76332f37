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

use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;

/// Sampling settings of one request (llama-server's names and defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    pub dynatemp_range: f32,
    pub dynatemp_exponent: f32,
    pub top_k: i32,
    pub top_p: f32,
    pub min_p: f32,
    pub typical_p: f32,
    pub repeat_last_n: i32,
    pub repeat_penalty: f32,
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    pub min_keep: usize,
    /// RNG seed; `u32::MAX` (llama-server's -1) picks a random one.
    pub seed: u32,
    /// Additive logit biases; `f32::NEG_INFINITY` bans a token.
    pub logit_bias: Vec<(LlamaToken, f32)>,
    /// A GBNF grammar the output must follow.
    pub grammar: Option<String>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            dynatemp_range: 0.0,
            dynatemp_exponent: 1.0,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            typical_p: 1.0,
            repeat_last_n: 64,
            repeat_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            min_keep: 0,
            seed: u32::MAX,
            logit_bias: Vec::new(),
            grammar: None,
        }
    }
}

/// Probabilities of the chosen token and of the `n` most likely ones, from the softmax over the
/// whole vocabulary of the raw logits.
pub fn token_probs(logits: &[f32], chosen: LlamaToken, n: usize) -> super::request::TokenProbs {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let prob = |l: f32| (l - max).exp() / sum;
    let mut top: Vec<(f32, i32)> = Vec::with_capacity(n * 8);
    let mut threshold = f32::NEG_INFINITY;
    for (i, &l) in logits.iter().enumerate() {
        if l > threshold {
            top.push((l, i as i32));
            if top.len() >= (n * 8).max(256) {
                top.select_nth_unstable_by(n - 1, |a, b| b.0.total_cmp(&a.0));
                top.truncate(n);
                threshold = top.iter().map(|e| e.0).fold(f32::INFINITY, f32::min);
            }
        }
    }
    top.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    top.truncate(n);
    super::request::TokenProbs {
        prob: logits.get(chosen.0 as usize).map_or(0.0, |&l| prob(l)),
        top: top
            .into_iter()
            .map(|(l, t)| (LlamaToken(t), prob(l)))
            .collect(),
    }
}

/// Top-k above this goes through the full candidate array: the one-pass selection only pays off
/// when k is small against the vocabulary.
const FAST_TOP_K_MAX: usize = 256;

/// The sampler state of one slot for one request.
pub struct Sampler {
    params: SamplingParams,
    n_vocab: usize,
    /// llama.cpp samplers after top-k (typical, top_p, min_p, temperature, dist).
    tail: LlamaSampler,
    /// The grammar, applied to the full candidate array before `tail` when present.
    grammar: Option<LlamaSampler>,
    /// Fixed biases: request logit_bias plus the model's suppressed tokens.
    bias: HashMap<i32, f32>,
    /// Generated tokens still inside the penalty window, oldest first.
    history: std::collections::VecDeque<LlamaToken>,
    // Scratch buffers reused every step.
    overrides: HashMap<i32, f32>,
    top: Vec<(f32, i32)>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// Why a sampler could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    #[error("invalid grammar: {0}")]
    Grammar(String),
}

impl Sampler {
    /// Builds the sampler for a request; `model` supplies the vocabulary for grammars.
    pub fn new(
        params: SamplingParams,
        model: &llama_cpp_2::model::LlamaModel,
        suppressed: &[LlamaToken],
    ) -> Result<Self, SamplerError> {
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
        let grammar = match &params.grammar {
            Some(gbnf) => Some(
                LlamaSampler::grammar(model, gbnf, "root")
                    .map_err(|e| SamplerError::Grammar(e.to_string()))?,
            ),
            None => None,
        };
        let bias = merged_bias(&params, suppressed);
        Ok(Self {
            n_vocab: usize::try_from(model.n_vocab()).unwrap_or(0),
            tail: LlamaSampler::chain_simple(tail),
            grammar,
            bias,
            history: std::collections::VecDeque::new(),
            overrides: HashMap::new(),
            top: Vec::new(),
            params,
        })
    }

    /// Picks the next token from one row of logits.
    pub fn sample(&mut self, logits: &[f32]) -> LlamaToken {
        self.collect_overrides(logits);
        let token = self.sample_free(logits);
        let Some(grammar) = &mut self.grammar else {
            return token;
        };
        // llama-server's order: sample freely, then ask the grammar; only a rejected token pays
        // for constraining the whole vocabulary (262k candidates on Gemma 3).
        let mut single =
            LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 0.0, 0.0)], false);
        single.apply_sampler(grammar);
        if single
            .data
            .first()
            .is_some_and(|d| d.logit() > f32::NEG_INFINITY)
        {
            return token;
        }
        let mut candidates = self.full_candidates(logits);
        if let Some(grammar) = &mut self.grammar {
            candidates.apply_sampler(grammar);
        }
        if self.params.temperature <= 0.0 {
            candidates.apply_sampler(&mut LlamaSampler::greedy());
        } else {
            if self.params.top_k > 0 {
                candidates.apply_sampler(&mut LlamaSampler::top_k(self.params.top_k));
            }
            candidates.apply_sampler(&mut self.tail);
        }
        candidates.selected_token().unwrap_or(token)
    }

    /// The chain without the grammar: argmax when greedy, top-k first when it is small.
    fn sample_free(&mut self, logits: &[f32]) -> LlamaToken {
        if self.params.temperature <= 0.0 {
            return self.argmax(logits);
        }
        let k = usize::try_from(self.params.top_k).unwrap_or(0);
        let mut candidates = if (1..=FAST_TOP_K_MAX).contains(&k) {
            self.top_k_candidates(logits, k)
        } else {
            let mut all = self.full_candidates(logits);
            if k > 0 {
                all.apply_sampler(&mut LlamaSampler::top_k(self.params.top_k));
            }
            all
        };
        candidates.apply_sampler(&mut self.tail);
        candidates
            .selected_token()
            .unwrap_or_else(|| self.argmax(logits))
    }

    /// Records the token that was chosen: penalties look back at it, grammars advance.
    pub fn accept(&mut self, token: LlamaToken) {
        if let Some(grammar) = &mut self.grammar {
            grammar.accept(token);
        }
        let window = usize::try_from(self.params.repeat_last_n).unwrap_or(0);
        if window > 0 {
            if self.history.len() == window {
                self.history.pop_front();
            }
            self.history.push_back(token);
        }
    }

    /// Adjusted logits of the few tokens that biases and penalties change (llama.cpp's
    /// penalties sampler arithmetic, applied to the bias-adjusted logit).
    fn collect_overrides(&mut self, logits: &[f32]) {
        self.overrides.clear();
        for (&token, &b) in &self.bias {
            if let Some(&l) = logits.get(token as usize) {
                self.overrides.insert(token, l + b);
            }
        }
        let p = &self.params;
        if !penalties_on(p) || self.history.is_empty() {
            return;
        }
        let mut counts: HashMap<i32, u32> = HashMap::new();
        for t in &self.history {
            *counts.entry(t.0).or_insert(0) += 1;
        }
        for (token, count) in counts {
            let Some(&raw) = logits.get(token as usize) else {
                continue;
            };
            let mut l = self.overrides.get(&token).copied().unwrap_or(raw);
            if l <= 0.0 {
                l *= p.repeat_penalty;
            } else {
                l /= p.repeat_penalty;
            }
            l -= count as f32 * p.frequency_penalty + p.presence_penalty;
            self.overrides.insert(token, l);
        }
    }

    fn logit(&self, logits: &[f32], token: usize) -> f32 {
        match self.overrides.get(&(token as i32)) {
            Some(&l) => l,
            None => logits[token],
        }
    }

    fn argmax(&self, logits: &[f32]) -> LlamaToken {
        let mut best = (f32::NEG_INFINITY, 0usize);
        for (i, &l) in logits.iter().enumerate().take(self.n_vocab) {
            if l > best.0 {
                best = (l, i);
            }
        }
        if self.overrides.is_empty() {
            return LlamaToken(best.1 as i32);
        }
        if self.overrides.contains_key(&(best.1 as i32)) {
            // The raw winner was penalised or banned (rare): rescan with adjusted logits.
            best = (f32::NEG_INFINITY, 0);
            for i in 0..self.n_vocab.min(logits.len()) {
                let l = self.logit(logits, i);
                if l > best.0 {
                    best = (l, i);
                }
            }
        } else {
            for (&t, &l) in &self.overrides {
                if l > best.0 || (l == best.0 && (t as usize) < best.1) {
                    best = (l, t as usize);
                }
            }
        }
        LlamaToken(best.1 as i32)
    }

    /// The `k` best tokens after overrides, sorted by logit (descending), in one pass.
    fn top_k_candidates(&mut self, logits: &[f32], k: usize) -> LlamaTokenDataArray {
        // Select k + |overrides| raw winners: enough to hold the k best non-overridden tokens.
        let want = k + self.overrides.len();
        let cap = (want * 8).max(1024);
        let top = &mut self.top;
        top.clear();
        let mut threshold = f32::NEG_INFINITY;
        for (i, &l) in logits.iter().enumerate().take(self.n_vocab) {
            if l > threshold {
                top.push((l, i as i32));
                if top.len() >= cap {
                    top.select_nth_unstable_by(want - 1, |a, b| b.0.total_cmp(&a.0));
                    top.truncate(want);
                    threshold = top.iter().map(|e| e.0).fold(f32::INFINITY, f32::min);
                }
            }
        }
        top.retain(|(_, t)| !self.overrides.contains_key(t));
        top.extend(self.overrides.iter().map(|(&t, &l)| (l, t)));
        // Descending by logit; ties by token id, as a stable sort over the vocabulary would.
        top.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        top.truncate(k);
        LlamaTokenDataArray::new(
            top.iter()
                .map(|&(l, t)| LlamaTokenData::new(LlamaToken(t), l, 0.0))
                .collect(),
            true,
        )
    }

    /// Every token of the vocabulary with its adjusted logit.
    fn full_candidates(&self, logits: &[f32]) -> LlamaTokenDataArray {
        let data = (0..self.n_vocab.min(logits.len()))
            .map(|i| LlamaTokenData::new(LlamaToken(i as i32), self.logit(logits, i), 0.0))
            .collect();
        LlamaTokenDataArray::new(data, false)
    }
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
pub(super) fn penalties_on(p: &SamplingParams) -> bool {
    p.repeat_last_n > 0
        && (p.repeat_penalty != 1.0 || p.frequency_penalty != 0.0 || p.presence_penalty != 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalties_need_a_window_and_a_setting() {
        let cases = [
            (64, 1.0, 0.0, 0.0, false),
            (64, 1.1, 0.0, 0.0, true),
            (64, 1.0, 0.5, 0.0, true),
            (64, 1.0, 0.0, 0.5, true),
            (0, 1.1, 0.0, 0.0, false),
            (-5, 1.1, 0.0, 0.0, false),
        ];
        for (last_n, repeat, freq, present, on) in cases {
            let p = SamplingParams {
                repeat_last_n: last_n,
                repeat_penalty: repeat,
                frequency_penalty: freq,
                presence_penalty: present,
                ..SamplingParams::default()
            };
            assert_eq!(penalties_on(&p), on, "{last_n} {repeat} {freq} {present}");
        }
    }
}
