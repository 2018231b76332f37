//! A request's sampling settings with llama-server's names and defaults, and its sampler types
//! (`samplers`, `--samplers`, `--sampling-seq`).

use llama_cpp_2::token::LlamaToken;

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
    /// adaptive-p: the probability the chosen tokens should average (< 0: it samples as `dist`).
    /// It runs only when `samplers` names it, in place of the final `dist`.
    pub adaptive_target: f32,
    /// adaptive-p: the decay of its moving average (history about 1 / (1 - decay) tokens).
    pub adaptive_decay: f32,
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
    /// Fill-in-the-middle: merges candidates that are prefixes of one another and prefers
    /// ending the fill when text tokens are unlikely.
    Infill,
    /// Chooses the token itself, near a moving target probability; wherever it is named, it
    /// runs last, in place of `dist` (as in llama.cpp's `common_sampler_init`).
    AdaptiveP,
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

    /// The samplers that run only when named.
    const NAMED_ONLY: [SamplerType; 2] = [Self::Infill, Self::AdaptiveP];

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
            Self::Infill => "infill",
            Self::AdaptiveP => "adaptive_p",
        }
    }

    /// A name as llama.cpp reads it: canonical, kebab-case, without the underscore, or an
    /// alias (`nucleus`, `temp`, `typ`); any case.
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.to_ascii_lowercase().replace('-', "_");
        Self::DEFAULT
            .into_iter()
            .chain(Self::NAMED_ONLY)
            .find(|s| s.name() == name || s.name().replace('_', "") == name)
            .or(match name.as_str() {
                "nucleus" => Some(Self::TopP),
                "temp" => Some(Self::Temperature),
                "typ" => Some(Self::TypicalP),
                _ => None,
            })
    }

    /// The letter of `--sampling-seq` (`edskypmxt`, and `i`, `a`).
    pub fn from_char(c: char) -> Option<Self> {
        Some(match c {
            'i' => Self::Infill,
            'a' => Self::AdaptiveP,
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
            adaptive_target: -1.0,
            adaptive_decay: 0.9,
            samplers: SamplerType::DEFAULT.to_vec(),
        }
    }
}

impl SamplingParams {
    /// Whether the one-pass path (top-k over the raw logits, then llama.cpp's tail samplers)
    /// samples exactly as llama-server's chain would: the default order, and none of the
    /// samplers it does not cover (DRY, top-n-sigma, XTC, Mirostat). Otherwise llama.cpp's whole
    /// chain runs over the full vocabulary ([`crate::engine::chain`]).
    pub fn fast_path(&self) -> bool {
        self.samplers == SamplerType::DEFAULT
            && self.dry_multiplier == 0.0
            && self.top_n_sigma <= 0.0
            && (self.xtc_probability <= 0.0 || self.xtc_threshold > 0.5)
            && self.mirostat == 0
    }
}
