//! Backend sampling: the request's sampler chain, built as llama.cpp samplers, runs inside the
//! decode graph (attached to the slot's sequence by the worker) and only the chosen token comes
//! back. This module decides which requests can (every sampler they need has a backend
//! implementation, and nothing needs the raw logits) and builds their chain in the host
//! sampler's order and with its semantics, so that greedy output is the same token for token.

use llama_cpp_2::token::LlamaToken;

use super::llama::ChainSpec;
use super::sampler::{SamplingParams, merged_bias, penalties_on};

/// Why a request's sampling cannot run inside the decode graph, or `None` if it can: every
/// sampler it needs has a backend implementation in llama.cpp, and nothing needs the raw logits.
pub fn backend_unsupported(params: &SamplingParams, n_probs: usize) -> Option<&'static str> {
    if params.grammar.is_some() {
        Some("a grammar (or json_schema) has no backend implementation")
    } else if n_probs > 0 {
        Some("n_probs needs the raw logits, which backend sampling does not copy back")
    } else if params.typical_p < 1.0 {
        Some("typical_p has no backend implementation")
    } else if !params.fast_path() {
        Some("a custom sampler order, DRY, top-n-sigma, XTC or Mirostat runs on the host")
    } else {
        None
    }
}

/// The request's chain for backend sampling, in the host sampler's order and with its
/// semantics: logit biases (and suppressed tokens), penalties when they change anything,
/// then greedy when the temperature is 0 or less, else top_k, top_p, min_p, temperature
/// (temp_ext with a dynatemp range) and dist(seed). Only for requests that
/// [`backend_unsupported`] accepts.
pub fn backend_chain(
    params: &SamplingParams,
    n_vocab: i32,
    suppressed: &[LlamaToken],
) -> ChainSpec {
    let mut chain = ChainSpec::default();
    let bias: Vec<(LlamaToken, f32)> = merged_bias(params, suppressed)
        .into_iter()
        .map(|(t, b)| (LlamaToken(t), b))
        .collect();
    if !bias.is_empty() {
        chain.logit_bias(&bias);
    }
    let p = params;
    if penalties_on(p) {
        chain.penalties(
            p.repeat_last_n,
            p.repeat_penalty,
            p.frequency_penalty,
            p.presence_penalty,
        );
    }
    if p.temperature <= 0.0 {
        chain.greedy();
        return chain;
    }
    if p.top_k > 0 {
        // ggml's top_k requires k <= n_vocab; a larger k keeps everything either way.
        chain.top_k(p.top_k.min(n_vocab));
    }
    if p.top_p < 1.0 {
        chain.top_p(p.top_p, p.min_keep);
    }
    if p.min_p > 0.0 {
        chain.min_p(p.min_p, p.min_keep);
    }
    if p.dynatemp_range > 0.0 {
        chain.temp_ext(p.temperature, p.dynatemp_range, p.dynatemp_exponent);
    } else {
        chain.temp(p.temperature);
    }
    chain.dist(p.seed);
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_sampling_covers_llama_server_defaults_only() {
        let default = SamplingParams::default();
        let grammar = SamplingParams {
            grammar: Some("root ::= \"a\"".into()),
            ..SamplingParams::default()
        };
        let typical = SamplingParams {
            typical_p: 0.9,
            ..SamplingParams::default()
        };
        let penalties = SamplingParams {
            repeat_penalty: 1.1,
            frequency_penalty: 0.5,
            logit_bias: vec![(LlamaToken(1), -1.0)],
            ..SamplingParams::default()
        };
        let greedy = SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        };
        let cases: &[(&str, &SamplingParams, usize, bool)] = &[
            ("defaults", &default, 0, true),
            ("greedy", &greedy, 0, true),
            ("penalties and biases", &penalties, 0, true),
            ("n_probs", &default, 5, false),
            ("grammar", &grammar, 0, false),
            ("typical_p", &typical, 0, false),
        ];
        for &(name, params, n_probs, backend) in cases {
            assert_eq!(
                backend_unsupported(params, n_probs).is_none(),
                backend,
                "{name}"
            );
        }
    }
}
