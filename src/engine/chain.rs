//! llama.cpp's whole sampler chain, built as llama-server's `common_sampler_init` builds it, for
//! the requests the one-pass path of `sampler.rs` does not cover: a custom sampler order, DRY,
//! top-n-sigma, XTC or Mirostat. It runs over the full vocabulary, as llama-server's chain does,
//! so it chooses the same token for the same seed.

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::logit_bias::LlamaLogitBias;

use super::sampler::{SamplerType, SamplingParams, merged_bias};

/// The chain for `params`: logit biases (with the model's suppressed tokens), then the samplers
/// in the request's order and `dist`; with Mirostat, temperature and Mirostat instead.
pub fn build(
    params: &SamplingParams,
    model: &LlamaModel,
    suppressed: &[LlamaToken],
) -> LlamaSampler {
    let p = params;
    let n_vocab = model.n_vocab();
    let mut samplers = Vec::new();
    let bias: Vec<LlamaLogitBias> = merged_bias(p, suppressed)
        .into_iter()
        .map(|(t, b)| LlamaLogitBias::new(LlamaToken(t), b))
        .collect();
    if !bias.is_empty() {
        samplers.push(LlamaSampler::logit_bias(n_vocab, &bias));
    }
    match p.mirostat {
        0 => {
            for sampler in &p.samplers {
                samplers.push(match sampler {
                    SamplerType::Penalties => LlamaSampler::penalties(
                        n_vocab,
                        p.repeat_last_n,
                        p.repeat_penalty,
                        p.frequency_penalty,
                        p.presence_penalty,
                    ),
                    SamplerType::Dry => LlamaSampler::dry(
                        model,
                        p.dry_multiplier,
                        p.dry_base,
                        p.dry_allowed_length,
                        p.dry_penalty_last_n,
                        &p.dry_sequence_breakers,
                    ),
                    SamplerType::TopNSigma => LlamaSampler::top_n_sigma(p.top_n_sigma),
                    SamplerType::TopK => LlamaSampler::top_k(p.top_k),
                    SamplerType::TypicalP => LlamaSampler::typical(p.typical_p, p.min_keep),
                    SamplerType::TopP => LlamaSampler::top_p(p.top_p, p.min_keep),
                    SamplerType::MinP => LlamaSampler::min_p(p.min_p, p.min_keep),
                    SamplerType::Xtc => {
                        LlamaSampler::xtc(p.xtc_probability, p.xtc_threshold, p.min_keep, p.seed)
                    }
                    SamplerType::Temperature => {
                        LlamaSampler::temp_ext(p.temperature, p.dynatemp_range, p.dynatemp_exponent)
                    }
                });
            }
            samplers.push(LlamaSampler::dist(p.seed));
        }
        1 => {
            samplers.push(LlamaSampler::temp(p.temperature));
            samplers.push(LlamaSampler::mirostat(
                n_vocab,
                p.seed,
                p.mirostat_tau,
                p.mirostat_eta,
                100,
            ));
        }
        _ => {
            samplers.push(LlamaSampler::temp(p.temperature));
            samplers.push(LlamaSampler::mirostat_v2(
                p.seed,
                p.mirostat_tau,
                p.mirostat_eta,
            ));
        }
    }
    LlamaSampler::chain_simple(samplers)
}
