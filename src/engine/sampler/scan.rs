//! The part of sampling that reads every logit, as plain Rust: biases and penalties applied as
//! sparse overrides, then an argmax or the top k in one vectorized pass. Apart from llama.cpp's
//! samplers so that the worker can scan the rows of several slots on several threads.

use std::collections::HashMap;

use multiversion::multiversion;

use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;

use super::SamplingParams;
use super::{FAST_TOP_K_MAX, penalties_on};

/// Probabilities of the chosen token and of the `n` most likely ones, from the softmax over the
/// whole vocabulary of the raw logits.
pub fn token_probs(
    logits: &[f32],
    chosen: LlamaToken,
    n: usize,
) -> crate::engine::request::TokenProbs {
    let max = max_of(logits);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let prob = |l: f32| (l - max).exp() / sum;
    let mut top = Vec::new();
    select_top(logits, n, &mut top);
    top.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    top.truncate(n);
    crate::engine::request::TokenProbs {
        prob: logits.get(chosen.0 as usize).map_or(0.0, |&l| prob(l)),
        top: top
            .into_iter()
            .map(|(l, t)| (LlamaToken(t), prob(l)))
            .collect(),
        post_sampling: false,
    }
}

/// The part of sampling that reads every logit: biases and penalties, then argmax (greedy) or
/// the top k. Plain Rust over the logits and nothing of llama.cpp, so the worker can run the
/// scans of several slots on several threads.
#[derive(Debug)]
pub struct Scan {
    pub(super) params: SamplingParams,
    pub(super) n_vocab: usize,
    /// Fixed biases: request logit_bias plus the model's suppressed tokens.
    pub(super) bias: HashMap<i32, f32>,
    /// Generated tokens still inside the penalty window, oldest first.
    pub(super) history: std::collections::VecDeque<LlamaToken>,
    // Scratch buffers reused every step.
    pub(super) overrides: HashMap<i32, f32>,
    pub(super) top: Vec<(f32, i32)>,
    /// llama.cpp's whole chain samples this request: the scan has nothing to do.
    pub(super) full_chain: bool,
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

    pub(super) fn argmax(&self, logits: &[f32]) -> LlamaToken {
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
    pub(super) fn full_candidates(&self, logits: &[f32]) -> LlamaTokenDataArray {
        let data = (0..self.n_vocab.min(logits.len()))
            .map(|i| LlamaTokenData::new(LlamaToken(i as i32), self.logit(logits, i), 0.0))
            .collect();
        LlamaTokenDataArray::new(data, false)
    }
}

/// Logits scanned together: wide enough for the compiler to keep several SIMD registers busy.
const LANE: usize = 32;

// The scans below are compiled once per SIMD level (`multiversion`'s `simd` targets: AVX-512,
// AVX2, SSE4.1 on x86-64; NEON on arm64) and the best one the CPU has is chosen at run time,
// so a bundle built for the x86-64-v2 baseline still scans with AVX2 or AVX-512.

/// The largest of `xs` (NaNs ignored; `-inf` if none), in a form the compiler vectorizes: the
/// per-lane `if x > m { x } else { m }` is one `maxps`, where a scalar running maximum is a
/// chain of dependent compares and branches.
#[multiversion(targets = "simd")]
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
#[multiversion(targets = "simd")]
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
#[multiversion(targets = "simd")]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sampler::Sampler;

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
