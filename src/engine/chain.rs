//! llama.cpp's whole sampler chain, built as llama-server's `common_sampler_init` builds it, for
//! the requests the one-pass path of `sampler.rs` does not cover: a custom sampler order, DRY,
//! top-n-sigma, XTC or Mirostat. It runs over the full vocabulary, as llama-server's chain does,
//! so it chooses the same token for the same seed.

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::logit_bias::LlamaLogitBias;

use super::llama::HostSampler;
use super::sampler::{SamplerType, SamplingParams, merged_bias};

/// llama-server's chain, applied sampler by sampler as llama.cpp's chain applies it: most
/// samplers are llama-cpp-2's, the two it lacks are [`HostSampler`]s.
#[derive(Debug)]
pub struct Chain(Vec<Link>);

#[derive(Debug)]
enum Link {
    Wrapped(LlamaSampler),
    Host(HostSampler),
}

impl From<LlamaSampler> for Link {
    fn from(sampler: LlamaSampler) -> Self {
        Self::Wrapped(sampler)
    }
}

impl Chain {
    /// Runs every sampler over the candidates, in order; the last one selects.
    pub fn apply(&mut self, candidates: &mut LlamaTokenDataArray) {
        for link in &mut self.0 {
            match link {
                Link::Wrapped(sampler) => candidates.apply_sampler(sampler),
                Link::Host(sampler) => sampler.apply(candidates),
            }
        }
    }

    /// Records a token in every sampler's state (penalties, DRY, Mirostat, adaptive-p).
    pub fn accept(&mut self, token: LlamaToken) {
        for link in &mut self.0 {
            match link {
                Link::Wrapped(sampler) => sampler.accept(token),
                Link::Host(sampler) => sampler.accept(token),
            }
        }
    }
}

/// The chain for `params`: logit biases (with the model's suppressed tokens), then the samplers
/// in the request's order and `dist` (or adaptive-p, when the order names it); with Mirostat,
/// temperature and Mirostat instead.
pub fn build(params: &SamplingParams, model: &LlamaModel, suppressed: &[LlamaToken]) -> Chain {
    let p = params;
    let n_vocab = model.n_vocab();
    let mut links: Vec<Link> = Vec::new();
    let bias: Vec<LlamaLogitBias> = merged_bias(p, suppressed)
        .into_iter()
        .map(|(t, b)| LlamaLogitBias::new(LlamaToken(t), b))
        .collect();
    if !bias.is_empty() {
        links.push(LlamaSampler::logit_bias(n_vocab, &bias).into());
    }
    match p.mirostat {
        0 => {
            for sampler in &p.samplers {
                links.push(match sampler {
                    SamplerType::Penalties => LlamaSampler::penalties(
                        n_vocab,
                        p.repeat_last_n,
                        p.repeat_penalty,
                        p.frequency_penalty,
                        p.presence_penalty,
                    )
                    .into(),
                    SamplerType::Dry => LlamaSampler::dry(
                        model,
                        p.dry_multiplier,
                        p.dry_base,
                        p.dry_allowed_length,
                        p.dry_penalty_last_n,
                        &p.dry_sequence_breakers,
                    )
                    .into(),
                    SamplerType::TopNSigma => LlamaSampler::top_n_sigma(p.top_n_sigma).into(),
                    SamplerType::TopK => LlamaSampler::top_k(p.top_k).into(),
                    SamplerType::TypicalP => LlamaSampler::typical(p.typical_p, p.min_keep).into(),
                    SamplerType::TopP => LlamaSampler::top_p(p.top_p, p.min_keep).into(),
                    SamplerType::MinP => LlamaSampler::min_p(p.min_p, p.min_keep).into(),
                    SamplerType::Xtc => {
                        LlamaSampler::xtc(p.xtc_probability, p.xtc_threshold, p.min_keep, p.seed)
                            .into()
                    }
                    SamplerType::Temperature => {
                        LlamaSampler::temp_ext(p.temperature, p.dynatemp_range, p.dynatemp_exponent)
                            .into()
                    }
                    SamplerType::Infill => Link::Host(HostSampler::infill(model)),
                    // It chooses the token, so it takes `dist`'s place at the end.
                    SamplerType::AdaptiveP => continue,
                });
            }
            links.push(if p.samplers.contains(&SamplerType::AdaptiveP) {
                Link::Host(HostSampler::adaptive_p(
                    p.adaptive_target,
                    p.adaptive_decay,
                    p.seed,
                ))
            } else {
                LlamaSampler::dist(p.seed).into()
            });
        }
        1 => {
            links.push(LlamaSampler::temp(p.temperature).into());
            links.push(
                LlamaSampler::mirostat(n_vocab, p.seed, p.mirostat_tau, p.mirostat_eta, 100).into(),
            );
        }
        _ => {
            links.push(LlamaSampler::temp(p.temperature).into());
            links.push(LlamaSampler::mirostat_v2(p.seed, p.mirostat_tau, p.mirostat_eta).into());
        }
    }
    Chain(links)
}
