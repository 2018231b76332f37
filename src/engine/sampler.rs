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
    /// Keep tokens within n standard deviations of the top logit (< 0: off).
    pub top_n_sigma: f32,
    pub xtc_probability: f32,
    pub xtc_threshold: f32,
    /// DRY ("don't repeat yourself") penalty multiplier (0: off).
    pub dry_multiplier: f32,
    pub dry_base: f32,
    pub dry_allowed_length: i32,
    pub dry_penalty_last_n: i32,
    pub dry_sequence_breakers: Vec<String>,
    /// 0 off, 1 Mirostat, 2 Mirostat 2.0.
    pub mirostat: i32,
    pub mirostat_tau: f32,
    pub mirostat_eta: f32,
    /// The samplers in the order they run (llama-server's `samplers`).
    pub samplers: Vec<SamplerType>,
}

/// One of llama-server's samplers, for `samplers` and `--samplers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerType {
    Penalties,
    Dry,
    TopNSigma,
    TopK,
    TypicalP,
    TopP,
    MinP,
    Xtc,
    Temperature,
}

impl SamplerType {
    /// llama-server's default order.
    pub const DEFAULT: [SamplerType; 9] = [
        Self::Penalties,
        Self::Dry,
        Self::TopNSigma,
        Self::TopK,
        Self::TypicalP,
        Self::TopP,
        Self::MinP,
        Self::Xtc,
        Self::Temperature,
    ];

    /// The canonical name (`top_k`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Penalties => "penalties",
            Self::Dry => "dry",
            Self::TopNSigma => "top_n_sigma",
            Self::TopK => "top_k",
            Self::TypicalP => "typ_p",
            Self::TopP => "top_p",
            Self::MinP => "min_p",
            Self::Xtc => "xtc",
            Self::Temperature => "temperature",
        }
    }

    /// A name as llama.cpp reads it: canonical, kebab-case, without the underscore, or an
    /// alias (`nucleus`, `temp`, `typ`); any case. `adaptive_p` and `infill` are not supported.
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.to_ascii_lowercase().replace('-', "_");
        Self::DEFAULT
            .into_iter()
            .find(|s| s.name() == name || s.name().replace('_', "") == name)
            .or(match name.as_str() {
                "nucleus" => Some(Self::TopP),
                "temp" => Some(Self::Temperature),
                "typ" => Some(Self::TypicalP),
                _ => None,
            })
    }

    /// The letter of `--sampling-seq` (`edskypmxt`).
    pub fn from_char(c: char) -> Option<Self> {
        Some(match c {
            'e' => Self::Penalties,
            'd' => Self::Dry,
            's' => Self::TopNSigma,
            'k' => Self::TopK,
            'y' => Self::TypicalP,
            'p' => Self::TopP,
            'm' => Self::MinP,
            'x' => Self::Xtc,
            't' => Self::Temperature,
            _ => return None,
        })
    }
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
            top_n_sigma: -1.0,
            xtc_probability: 0.0,
            xtc_threshold: 0.1,
            dry_multiplier: 0.0,
            dry_base: 1.75,
            dry_allowed_length: 2,
            dry_penalty_last_n: 64,
            dry_sequence_breakers: ["\n", ":", "\"", "*"].map(String::from).to_vec(),
            mirostat: 0,
            mirostat_tau: 5.0,
            mirostat_eta: 0.1,
            samplers: SamplerType::DEFAULT.to_vec(),
        }
    }
}

impl SamplingParams {
    /// Whether the one-pass path (top-k over the raw logits, then llama.cpp's tail samplers)
    /// samples exactly as llama-server's chain would: the default order, and none of the
    /// samplers it does not cover (DRY, top-n-sigma, XTC, Mirostat). Otherwise llama.cpp's whole
    /// chain runs over the full vocabulary ([`super::chain`]).
    pub fn fast_path(&self) -> bool {
        self.samplers == SamplerType::DEFAULT
            && self.dry_multiplier == 0.0
            && self.top_n_sigma <= 0.0
            && (self.xtc_probability <= 0.0 || self.xtc_threshold > 0.5)
            && self.mirostat == 0
    }
}

/// Probabilities of the chosen token and of the `n` most likely ones, from the softmax over the
/// whole vocabulary of the raw logits.
pub fn token_probs(logits: &[f32], chosen: LlamaToken, n: usize) -> super::request::TokenProbs {
    let max = max_of(logits);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let prob = |l: f32| (l - max).exp() / sum;
    let mut top = Vec::new();
    select_top(logits, n, &mut top);
    top.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    top.truncate(n);
    super::request::TokenProbs {
        prob: logits.get(chosen.0 as usize).map_or(0.0, |&l| prob(l)),
        top: top
            .into_iter()
            .map(|(l, t)| (LlamaToken(t), prob(l)))
            .collect(),
        post_sampling: false,
    }
}

/// Top-k above this goes through the full candidate array: the one-pass selection only pays off
/// when k is small against the vocabulary.
const FAST_TOP_K_MAX: usize = 256;

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
    chain: Option<LlamaSampler>,
}

/// The part of sampling that reads every logit: biases and penalties, then argmax (greedy) or
/// the top k. Plain Rust over the logits and nothing of llama.cpp, so the worker can run the
/// scans of several slots on several threads.
#[derive(Debug)]
pub struct Scan {
    params: SamplingParams,
    n_vocab: usize,
    /// Fixed biases: request logit_bias plus the model's suppressed tokens.
    bias: HashMap<i32, f32>,
    /// Generated tokens still inside the penalty window, oldest first.
    history: std::collections::VecDeque<LlamaToken>,
    // Scratch buffers reused every step.
    overrides: HashMap<i32, f32>,
    top: Vec<(f32, i32)>,
    /// llama.cpp's whole chain samples this request: the scan has nothing to do.
    full_chain: bool,
}

/// What a [`Scan`] found in one row of logits.
#[derive(Debug, Clone, PartialEq)]
pub enum Picked {
    /// Greedy: the token.
    Token(LlamaToken),
    /// The top k after overrides, by logit descending (ties by token id).
    TopK,
    /// Top-k is off or large: the tail needs the whole vocabulary.
    All,
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
}

impl Sampler {
    /// Builds the sampler for a request; `model` supplies the vocabulary for grammars.
    pub fn new(
        params: SamplingParams,
        model: &llama_cpp_2::model::LlamaModel,
        suppressed: &[LlamaToken],
    ) -> Result<Self, SamplerError> {
        let grammar = match &params.grammar {
            Some(gbnf) => Some(
                LlamaSampler::grammar(model, gbnf, "root")
                    .map_err(|e| SamplerError::Grammar(e.to_string()))?,
            ),
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
        }
    }

    /// Keeps each step's final candidates for [`Sampler::post_sampling_probs`].
    pub fn keep_candidates(&mut self) {
        self.kept = Some(Vec::new());
    }

    /// llama-server's `post_sampling_probs`: the chosen token's probability after the chain,
    /// and the `n` most likely candidates the chain left, stopping at the first that has none.
    pub fn post_sampling_probs(&self, chosen: LlamaToken, n: usize) -> super::request::TokenProbs {
        let kept = self.kept.as_deref().unwrap_or_default();
        super::request::TokenProbs {
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
        chosen
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
        candidates.apply_sampler(chain);
        let mut token = candidates
            .selected_token()
            .unwrap_or_else(|| self.scan.argmax(logits));
        if let Some(grammar) = &mut self.grammar {
            let mut single =
                LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 0.0, 0.0)], false);
            single.apply_sampler(grammar);
            if single
                .data
                .first()
                .is_none_or(|d| d.logit() == f32::NEG_INFINITY)
            {
                candidates = raw(self.scan.n_vocab);
                candidates.apply_sampler(grammar);
                candidates.apply_sampler(self.chain.as_mut().expect("present"));
                token = candidates.selected_token().unwrap_or(token);
            }
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

impl Scan {
    /// Reads one row of logits: the greedy token, or the top k kept for the tail.
    pub fn scan(&mut self, logits: &[f32]) -> Picked {
        if self.full_chain {
            return Picked::All;
        }
        self.collect_overrides(logits);
        if self.params.temperature <= 0.0 {
            return Picked::Token(self.argmax(logits));
        }
        let k = usize::try_from(self.params.top_k).unwrap_or(0);
        if (1..=FAST_TOP_K_MAX).contains(&k) {
            self.top_k(logits, k);
            Picked::TopK
        } else {
            Picked::All
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
        let mut best = first_max(&logits[..self.n_vocab.min(logits.len())]);
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

    /// Leaves in `self.top` the `k` best tokens after overrides, sorted by logit (descending),
    /// in one pass.
    fn top_k(&mut self, logits: &[f32], k: usize) {
        // Select k + |overrides| raw winners: enough to hold the k best non-overridden tokens.
        let want = k + self.overrides.len();
        let top = &mut self.top;
        select_top(&logits[..self.n_vocab.min(logits.len())], want, top);
        top.retain(|(_, t)| !self.overrides.contains_key(t));
        top.extend(self.overrides.iter().map(|(&t, &l)| (l, t)));
        // Descending by logit; ties by token id, as a stable sort over the vocabulary would.
        top.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        top.truncate(k);
    }

    /// Every token of the vocabulary with its adjusted logit.
    fn full_candidates(&self, logits: &[f32]) -> LlamaTokenDataArray {
        let data = (0..self.n_vocab.min(logits.len()))
            .map(|i| LlamaTokenData::new(LlamaToken(i as i32), self.logit(logits, i), 0.0))
            .collect();
        LlamaTokenDataArray::new(data, false)
    }
}

/// Logits scanned together: wide enough for the compiler to keep several SIMD registers busy.
const LANE: usize = 32;

/// The largest of `xs` (NaNs ignored; `-inf` if none), in a form the compiler vectorizes: the
/// per-lane `if x > m { x } else { m }` is one `maxps`, where a scalar running maximum is a
/// chain of dependent compares and branches.
fn max_of(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANE];
    let chunks = xs.chunks_exact(LANE);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (m, &x) in acc.iter_mut().zip(chunk) {
            *m = if x > *m { x } else { *m };
        }
    }
    for (m, &x) in acc.iter_mut().zip(rest) {
        *m = if x > *m { x } else { *m };
    }
    acc.into_iter()
        .fold(f32::NEG_INFINITY, |a, b| if b > a { b } else { a })
}

/// Leaves in `top` (unordered) the `want` largest logits with their token ids, and possibly a
/// few more: one pass, in which whole lanes below the running threshold are skipped after one
/// vector compare (most of them, once the first few hundred logits have set it).
fn select_top(logits: &[f32], want: usize, top: &mut Vec<(f32, i32)>) {
    top.clear();
    if want == 0 {
        return;
    }
    // A small buffer keeps the threshold close behind the want-th best seen so far.
    let cap = (want * 2).max(64);
    let mut threshold = f32::NEG_INFINITY;
    for (c, lane) in logits.chunks(LANE).enumerate() {
        if !any(lane, |x| x > threshold) {
            continue;
        }
        for (j, &l) in lane.iter().enumerate() {
            if l > threshold {
                top.push((l, (c * LANE + j) as i32));
                if top.len() >= cap {
                    top.select_nth_unstable_by(want - 1, |a, b| b.0.total_cmp(&a.0));
                    top.truncate(want);
                    threshold = top.iter().map(|e| e.0).fold(f32::INFINITY, f32::min);
                }
            }
        }
    }
}

/// Whether any of `xs` passes `test`: every element is tested and the results or-ed, which the
/// compiler turns into vector compares, where an early exit would test one element at a time.
#[inline(always)]
fn any(xs: &[f32], test: impl Fn(f32) -> bool) -> bool {
    xs.iter().fold(false, |found, &x| found | test(x))
}

/// The largest of `xs` and the first index holding it, as a scalar scan with a strict `>`
/// finds them (NaNs ignored; `(-inf, 0)` if nothing is larger than `-inf`).
fn first_max(xs: &[f32]) -> (f32, usize) {
    let max = max_of(xs);
    if max == f32::NEG_INFINITY {
        return (max, 0);
    }
    let (c, lane) = xs
        .chunks(LANE)
        .enumerate()
        .find(|(_, lane)| any(lane, |x| x == max))
        .expect("the maximum is in some lane");
    let j = lane.iter().position(|&x| x == max).expect("in this lane");
    (max, c * LANE + j)
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

    /// Logits shaped like a language model's: most tokens far below a few likely ones.
    fn logits(n: usize, seed: u64) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let u = (x >> 40) as f32 / (1u64 << 24) as f32;
                -8.0 + 12.0 * u * u * u * u
            })
            .collect()
    }

    #[test]
    fn vectorized_scans_match_a_scalar_scan() {
        let scalar = |xs: &[f32]| {
            let mut best = (f32::NEG_INFINITY, 0usize);
            for (i, &l) in xs.iter().enumerate() {
                if l > best.0 {
                    best = (l, i);
                }
            }
            best
        };
        let mut cases: Vec<Vec<f32>> = vec![
            vec![],
            vec![f32::NEG_INFINITY; 70],
            vec![f32::NAN, 1.0, f32::NAN, 1.0],
            vec![2.0; 100],
        ];
        for (n, seed) in [(1, 1), (31, 2), (32, 3), (33, 4), (1000, 5), (201_088, 6)] {
            let mut row = logits(n, seed);
            cases.push(row.clone());
            // The maximum repeated further on: the first one wins.
            if n > 40 {
                let (m, i) = scalar(&row);
                row[n - 1] = m;
                row[(i + 37) % n] = m;
                cases.push(row);
            }
        }
        for xs in &cases {
            let (m, i) = first_max(xs);
            let (want_m, want_i) = scalar(xs);
            assert_eq!(
                (m.to_bits(), i),
                (want_m.to_bits(), want_i),
                "n = {}",
                xs.len()
            );
        }
    }

    /// The lane-skipping top-k selects what sorting the whole row does, overrides included.
    #[test]
    fn top_k_candidates_match_a_full_sort() {
        let n = 50_000;
        for (seed, k) in [(1, 1), (2, 40), (3, 256)] {
            let row = logits(n, seed);
            let mut sampler = Sampler::build(SamplingParams::default(), n, None, &[]);
            let scan = &mut sampler.scan;
            // Ban the best raw token, lift a poor one to the top.
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            scan.overrides.insert(order[0] as i32, f32::NEG_INFINITY);
            scan.overrides.insert(order[n / 2] as i32, 100.0);
            scan.top_k(&row, k);
            let got: Vec<i32> = scan.top.iter().map(|e| e.1).collect();
            let mut want: Vec<(f32, i32)> =
                (0..n).map(|i| (scan.logit(&row, i), i as i32)).collect();
            want.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let want: Vec<i32> = want.iter().take(k).map(|e| e.1).collect();
            assert_eq!(got, want, "k = {k}");
        }
    }

    #[test]
    fn token_probs_are_the_softmax_of_the_best_tokens() {
        let row = logits(10_000, 9);
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = row.iter().map(|&l| f64::from((l - max).exp())).sum();
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        let chosen = order[3];
        let probs = token_probs(&row, LlamaToken(chosen as i32), 5);
        let want = |t: usize| (f64::from((row[t] - max).exp()) / sum) as f32;
        assert!((probs.prob - want(chosen)).abs() < 1e-6);
        assert_eq!(probs.top.len(), 5);
        for (&(token, p), &t) in probs.top.iter().zip(&order) {
            assert_eq!(token.0 as usize, t);
            assert!((p - want(t)).abs() < 1e-6, "{p} {}", want(t));
        }
        // More asked than the vocabulary holds: all of it, best first.
        let small = [0.5, 2.0, -1.0];
        let probs = token_probs(&small, LlamaToken(1), 10);
        let ids: Vec<i32> = probs.top.iter().map(|e| e.0.0).collect();
        assert_eq!(ids, [1, 0, 2]);
    }

    #[test]
    #[ignore = "timing: cargo test --release --lib sampling_speed -- --ignored --nocapture"]
    fn sampling_speed() {
        let n = 201_088;
        let rows: Vec<Vec<f32>> = (0..16).map(|s| logits(n, s)).collect();
        for (name, temperature) in [("greedy", 0.0), ("default", 0.8)] {
            let params = SamplingParams {
                temperature,
                ..SamplingParams::default()
            };
            let mut sampler = Sampler::build(params, n, None, &[]);
            let t = std::time::Instant::now();
            let reps = 200;
            for r in 0..reps {
                std::hint::black_box(sampler.sample(&rows[r % rows.len()]));
            }
            println!(
                "{name}: {:.1} us per sample",
                t.elapsed().as_secs_f64() * 1e6 / reps as f64
            );
        }
    }

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
