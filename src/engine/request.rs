//! The typed messages between the HTTP edge and the engine: a validated request in, events out.
//! Nothing here is JSON; the server builds these after checking every field.

use llama_cpp_2::token::LlamaToken;
use serde::Serialize;

use super::sampler::SamplingParams;

/// One generation, validated: the prompt is already tokenized and fits the context.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// Task id (`id_task` in `/slots`).
    pub id: u64,
    /// The HTTP request's span: the engine logs this task's lines inside it, so that they carry
    /// the request id the client sees.
    pub span: tracing::Span,
    pub prompt: Vec<LlamaToken>,
    pub params: TaskParams,
    /// Send the timings so far with every token (`timings_per_token`).
    pub timings_per_token: bool,
    /// One of `n` completions of the same prompt (`n > 1`): the group's first request reads
    /// the prompt, the others copy its cache and sample from its logits, as llama-server's
    /// child tasks do.
    pub group: Option<Group>,
    /// Generate, or read the prompt for its embedding or rerank score.
    pub kind: super::TaskKind,
}

/// Everything of a generation but its prompt and its place: what the HTTP edge reads from a
/// body, the engine runs, and `/slots` and results show back (llama-server's `task_params`).
#[derive(Debug, Clone)]
pub struct TaskParams {
    /// Tokens to generate at most (-1: until the context is full); see [`Self::max_tokens`].
    pub n_predict: i32,
    pub stop: Vec<String>,
    pub ignore_eos: bool,
    /// Reuse the longest common prefix with a slot's cached tokens.
    pub cache_prompt: bool,
    /// With `cache_prompt`: cached chunks of at least this many tokens that the prompt repeats
    /// after the common prefix are moved to their new positions (`n_cache_reuse`; 0: off).
    pub n_cache_reuse: u32,
    pub sampling: SamplingParams,
    /// Special tokens to emit as text (chat formats that parse them, e.g. harmony's
    /// `<|channel|>`); other special tokens render as nothing, as in llama-server.
    pub preserved_tokens: Vec<LlamaToken>,
    /// Pin to a slot (`id_slot`), or any.
    pub id_slot: Option<usize>,
    /// Report the probabilities of the `n_probs` most likely tokens at each step (0: none).
    pub n_probs: usize,
    /// Report them after the sampler chain (`post_sampling_probs`) rather than from the raw
    /// logits.
    pub post_sampling_probs: bool,
    /// Context shift: prompt tokens kept at the start when the context fills (-1: all of them).
    pub n_keep: i32,
    /// Context shift: tokens dropped after the kept ones (0: half of the rest).
    pub n_discard: u32,
    /// Stop at a line indented less than this many spaces or tabs (0: off).
    pub n_indent: u32,
    /// Stop at a newline once generation has taken this long, in ms (0: off).
    pub t_max_predict_ms: u64,
    /// LoRA adapter scales by id (`lora`); the adapters it does not name run at 0. Empty: the
    /// server's global scales.
    pub lora: super::LoraRequest,
}

impl TaskParams {
    /// Tokens to generate at most; `None` until the context is full. As llama-server, at least
    /// one token is generated (0 behaves as 1).
    pub fn max_tokens(&self) -> Option<u32> {
        u32::try_from(self.n_predict).ok()
    }
}

/// The completions of one prompt that share its reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// Shared by the group's requests (the first one's id).
    pub id: u64,
    pub size: usize,
    /// The request that reads the prompt.
    pub parent: bool,
}

/// Probabilities at one generation step: from the softmax of the raw logits (llama-server's
/// default), or after the sampler chain (`post_sampling_probs`).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenProbs {
    /// Probability of the token that was chosen.
    pub prob: f32,
    /// The most likely tokens, most likely first.
    pub top: Vec<(LlamaToken, f32)>,
    /// Whether these are post-sampling probabilities.
    pub post_sampling: bool,
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
    /// Nothing was generated (an empty prompt).
    None,
}

impl StopType {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Eos => "eos",
            Self::Word(_) => "word",
            Self::Limit => "limit",
            Self::None => "none",
        }
    }
}

/// llama-server's `timings` object. The first generated token comes from the prompt's last
/// decode, so the generation rates count the tokens after it.
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
    /// `predicted_ms` runs from the first generated token to the last (at least 1 µs once a
    /// token exists), as llama-server measures it.
    pub fn new(
        cache_n: usize,
        prompt_n: usize,
        prompt_ms: f64,
        predicted_n: usize,
        predicted_ms: f64,
    ) -> Self {
        let per = |ms: f64, n: usize| if n > 0 { ms / n as f64 } else { 0.0 };
        let rate = |ms: f64, n: usize| if ms > 0.0 { 1e3 * n as f64 / ms } else { 0.0 };
        let predicted_ms = if predicted_n > 0 {
            predicted_ms.max(0.001)
        } else {
            0.0
        };
        let steps = predicted_n.saturating_sub(1);
        Self {
            cache_n,
            prompt_n,
            prompt_ms,
            prompt_per_token_ms: per(prompt_ms, prompt_n),
            prompt_per_second: rate(prompt_ms, prompt_n),
            predicted_n,
            predicted_ms,
            predicted_per_token_ms: per(predicted_ms, steps),
            predicted_per_second: if steps > 0 {
                rate(predicted_ms, steps)
            } else {
                0.0
            },
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
    /// Tokens in the slot's KV cache at the end: the prompt and every generated token but the
    /// last (which was never decoded), as llama-server's `tokens_cached`.
    pub tokens_cached: usize,
    pub id_slot: usize,
    /// The context filled up before generation ended.
    pub truncated: bool,
    pub timings: Timings,
}

/// What the engine sends back for a request.
#[derive(Debug)]
pub enum Event {
    /// A sampled token and the text it released (possibly empty: held-back partial UTF-8, a
    /// possible stop string, or the end-of-generation token).
    Token {
        token: LlamaToken,
        text: String,
        /// Present when the request asked for `n_probs`.
        probs: Option<TokenProbs>,
        /// Present when the request asked for `timings_per_token`.
        timings: Option<Timings>,
    },
    /// Generation finished.
    Done(Box<Completion>),
    /// Generation failed or could not start.
    Error(super::EngineError),
    /// An embedding or rerank task's result (its only event).
    Embedding(Box<super::Embedding>),
}

/// One slot as `/slots` shows it.
#[derive(Debug, Clone)]
pub struct SlotInfo {
    pub id: usize,
    pub n_ctx: u32,
    pub is_processing: bool,
    /// The task the slot serves, or served last; `None` if it never served one.
    pub task: Option<SlotTask>,
}

/// The current (or last) task of a slot.
#[derive(Debug, Clone)]
pub struct SlotTask {
    pub id_task: u64,
    /// Tokens in the slot's KV cache now.
    pub n_prompt_tokens: usize,
    /// Prompt tokens this task decoded.
    pub n_prompt_tokens_processed: usize,
    /// Prompt tokens it reused from the cache.
    pub n_prompt_tokens_cache: usize,
    pub n_decoded: usize,
    /// Tokens still to generate (-1: until the context is full).
    pub n_remain: i64,
    pub has_next_token: bool,
    pub has_new_line: bool,
    pub params: TaskParams,
    /// The task samples inside the decode graph.
    pub backend_sampling: bool,
}
