//! The typed messages between the HTTP edge and the engine: a validated request in, events out.
//! Nothing here is JSON; the server builds these after checking every field.

use llama_cpp_2::token::LlamaToken;
use serde::Serialize;

use super::sampler::SamplingParams;

/// One generation, validated: the prompt is already tokenized and fits the context.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// Request id for logs.
    pub id: u64,
    pub prompt: Vec<LlamaToken>,
    /// Tokens to generate at most; `None` until the context is full.
    pub n_predict: Option<u32>,
    pub stop: Vec<String>,
    pub ignore_eos: bool,
    /// Reuse the longest common prefix with a slot's cached tokens.
    pub cache_prompt: bool,
    pub sampling: SamplingParams,
    /// Special tokens to emit as text (chat formats that parse them, e.g. harmony's
    /// `<|channel|>`); other special tokens render as nothing, as in llama-server.
    pub preserved_tokens: Vec<LlamaToken>,
    /// Pin to a slot (`id_slot`), or any.
    pub id_slot: Option<usize>,
    /// Report the probabilities of the `n_probs` most likely tokens at each step (0: none).
    pub n_probs: usize,
}

/// Probabilities at one generation step, from the softmax of the raw logits (llama-server's
/// default, `post_sampling_probs: false`).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenProbs {
    /// Probability of the token that was chosen.
    pub prob: f32,
    /// The most likely tokens, most likely first.
    pub top: Vec<(LlamaToken, f32)>,
}

/// Why generation stopped (llama-server's `stop_type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopType {
    /// An end-of-generation token.
    Eos,
    /// A stop string matched (the string).
    Word(String),
    /// n_predict or the context was reached.
    Limit,
}

impl StopType {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Eos => "eos",
            Self::Word(_) => "word",
            Self::Limit => "limit",
        }
    }
}

/// llama-server's `timings` object.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Timings {
    pub cache_n: usize,
    pub prompt_n: usize,
    pub prompt_ms: f64,
    pub prompt_per_token_ms: f64,
    pub prompt_per_second: f64,
    pub predicted_n: usize,
    pub predicted_ms: f64,
    pub predicted_per_token_ms: f64,
    pub predicted_per_second: f64,
}

impl Timings {
    pub fn new(
        cache_n: usize,
        prompt_n: usize,
        prompt_ms: f64,
        predicted_n: usize,
        predicted_ms: f64,
    ) -> Self {
        let per = |ms: f64, n: usize| if n > 0 { ms / n as f64 } else { 0.0 };
        let rate = |ms: f64, n: usize| if ms > 0.0 { 1e3 * n as f64 / ms } else { 0.0 };
        Self {
            cache_n,
            prompt_n,
            prompt_ms,
            prompt_per_token_ms: per(prompt_ms, prompt_n),
            prompt_per_second: rate(prompt_ms, prompt_n),
            predicted_n,
            predicted_ms,
            predicted_per_token_ms: per(predicted_ms, predicted_n),
            predicted_per_second: rate(predicted_ms, predicted_n),
        }
    }
}

/// The end of a generation.
#[derive(Debug, Clone)]
pub struct Completion {
    pub stop_type: StopType,
    /// All text generated (stop string excluded).
    pub text: String,
    /// Text held back while it could have begun a stop string, released now: streams send it
    /// with the final event so that streamed text equals `text`.
    pub tail: String,
    pub tokens: Vec<LlamaToken>,
    pub tokens_predicted: usize,
    /// Prompt tokens (cached or not).
    pub tokens_evaluated: usize,
    pub tokens_cached: usize,
    pub id_slot: usize,
    /// The context filled up before generation ended.
    pub truncated: bool,
    pub timings: Timings,
}

/// What the engine sends back for a request.
#[derive(Debug)]
pub enum Event {
    /// A sampled token and the text it released (possibly empty: held-back partial UTF-8 or a
    /// possible stop string).
    Token {
        token: LlamaToken,
        text: String,
        /// Present when the request asked for `n_probs`.
        probs: Option<TokenProbs>,
    },
    /// Generation finished.
    Done(Box<Completion>),
    /// Generation failed or could not start.
    Error(super::EngineError),
}

/// One slot as `/slots` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SlotInfo {
    pub id: usize,
    pub id_task: i64,
    pub n_ctx: u32,
    pub is_processing: bool,
    /// Tokens held in the KV cache for this slot (the prompt cache).
    pub n_cached: usize,
    pub n_decoded: usize,
    /// The current request samples inside the decode graph.
    pub backend_sampling: bool,
}
