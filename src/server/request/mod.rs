//! The one typed request of the HTTP edge. Every generation route — llama-server's
//! `/completion`, OpenAI's completions and chat — reads its body into a [`Generation`] here, with
//! llama-server's schema (`server-schema.cpp`): the same fields, aliases, defaults (the server's
//! own, from its flags), limits and error wording. Adapters only add what is theirs (a chat's
//! rendered prompt and grammar, through [`ChatSetup`]) before the pipeline runs it.

use llama_cpp_2::token::LlamaToken;
use serde_json::Value;

mod limits;
mod prompt;
mod sampling;

pub use prompt::prompts;
use sampling::sampling;

use super::error::ApiError;
use super::fields::{Body, as_int};
use crate::engine::{GenerateRequest, LoadedModel, SamplingParams, TaskParams};

/// The server-wide defaults a request starts from (llama-server's flags `--temp`, `-n`,
/// `--keep`, `-r`, `--cache-prompt`, …).
#[derive(Debug, Clone)]
pub struct Defaults {
    pub sampling: SamplingParams,
    pub n_predict: i32,
    /// `--max-n-predict`: the most tokens a request may ask for (-1: no limit).
    pub max_n_predict: i32,
    pub n_keep: i32,
    pub cache_prompt: bool,
    /// `--cache-reuse`: the least chunk of cached tokens to move to a new position (0: off).
    pub n_cache_reuse: u32,
    /// Stop strings of every request that gives none (`-r/--reverse-prompt`).
    pub stop: Vec<String>,
    pub ignore_eos: bool,
    pub n_probs: usize,
    pub sse_ping_interval: i64,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            sampling: SamplingParams::default(),
            n_predict: -1,
            max_n_predict: -1,
            n_keep: 0,
            cache_prompt: true,
            n_cache_reuse: 0,
            stop: Vec::new(),
            ignore_eos: false,
            n_probs: 0,
            sse_ping_interval: 30,
        }
    }
}

/// A generation request, validated: what to run and how to answer.
#[derive(Debug, Clone)]
pub struct Generation {
    /// One prompt per result (a request may hold several).
    pub prompts: Vec<Vec<LlamaToken>>,
    /// Completions per prompt (`n`).
    pub n_cmpl: usize,
    pub task: TaskParams,
    pub stream: bool,
    pub response: ResponseOptions,
}

/// How to shape the answer.
#[derive(Debug, Clone, Default)]
pub struct ResponseOptions {
    pub return_tokens: bool,
    pub timings_per_token: bool,
    /// Only these fields of each result (`generation_settings/n_predict` lifts a nested one).
    pub response_fields: Vec<String>,
    /// OpenAI's `stream_options.include_usage`.
    pub include_usage: bool,
    /// Seconds of silence after which a stream sends an SSE comment (-1: never).
    pub sse_ping_interval: i64,
}

/// What a chat adds to a generation: its grammar (a forced tool call or `response_format`),
/// the stop strings and special tokens its format needs.
#[derive(Debug, Clone, Default)]
pub struct ChatSetup {
    pub grammar: Option<String>,
    pub stop: Vec<String>,
    pub preserved_tokens: Vec<LlamaToken>,
}

impl Generation {
    /// Reads a completion body: its `prompt` (one or several) and every generation field.
    pub fn from_completion(
        body: &Body,
        model: &LoadedModel,
        defaults: &Defaults,
    ) -> Result<Self, ApiError> {
        let Some(prompt) = body.0.get("prompt") else {
            return Err(ApiError::invalid(
                "[json.exception.out_of_range.403] key 'prompt' not found",
            ));
        };
        let prompts = prompts(prompt, model)?;
        Self::from_body(body, model, defaults, prompts, &ChatSetup::default())
    }

    /// Reads the generation fields of a body for prompts already tokenized.
    pub fn from_body(
        body: &Body,
        model: &LoadedModel,
        defaults: &Defaults,
        prompts: Vec<Vec<LlamaToken>>,
        chat: &ChatSetup,
    ) -> Result<Self, ApiError> {
        let task = task_params(body, model, defaults, chat)?;
        let n_cmpl = body
            .int_in(&["n_cmpl", "n"], 1, i64::from(model.n_slots))?
            .unwrap_or(1) as usize;
        let response = ResponseOptions {
            return_tokens: body.bool(&["return_tokens"])?.unwrap_or(false),
            timings_per_token: body.bool(&["timings_per_token"])?.unwrap_or(false),
            response_fields: match body.get(&["response_fields"]) {
                Some((_, Value::Array(items))) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            },
            include_usage: match body.get(&["stream_options"]) {
                Some((_, Value::Object(o))) => {
                    Body(o.clone()).bool(&["include_usage"])?.unwrap_or(false)
                }
                _ => false,
            },
            sse_ping_interval: body
                .int_in(&["sse_ping_interval"], -1, i64::from(i32::MAX))?
                .unwrap_or(defaults.sse_ping_interval),
        };
        Ok(Generation {
            prompts,
            n_cmpl,
            task,
            stream: body.bool(&["stream"])?.unwrap_or(false),
            response,
        })
    }

    /// The engine requests, one per result, with their result index: prompt p's completion j
    /// is `p * n + j`; completion j > 0 of a seeded request uses seed + j (llama-server's
    /// children).
    pub fn engine_requests(
        &self,
        mut next_id: impl FnMut() -> u64,
        span: &tracing::Span,
    ) -> Vec<(usize, GenerateRequest)> {
        let mut out = Vec::with_capacity(self.prompts.len() * self.n_cmpl);
        for (p, prompt) in self.prompts.iter().enumerate() {
            let mut group_id = 0;
            for j in 0..self.n_cmpl {
                let id = next_id();
                if j == 0 {
                    group_id = id;
                }
                let group = (self.n_cmpl > 1).then_some(crate::engine::Group {
                    id: group_id,
                    size: self.n_cmpl,
                    parent: j == 0,
                });
                let mut params = self.task.clone();
                if params.sampling.seed != u32::MAX {
                    params.sampling.seed = params.sampling.seed.wrapping_add(j as u32);
                }
                out.push((
                    p * self.n_cmpl + j,
                    GenerateRequest {
                        id,
                        span: span.clone(),
                        prompt: prompt.clone(),
                        params,
                        timings_per_token: self.response.timings_per_token,
                        group,
                        kind: crate::engine::TaskKind::Generate,
                    },
                ));
            }
        }
        out
    }
}

/// Every field of an engine request but its prompt.
fn task_params(
    body: &Body,
    model: &LoadedModel,
    defaults: &Defaults,
    chat: &ChatSetup,
) -> Result<TaskParams, ApiError> {
    let i32_max = i64::from(i32::MAX);
    let mut sampling = sampling(body, model, defaults)?;
    if let Some(grammar) = &chat.grammar {
        sampling.grammar = Some(grammar.clone());
    }
    // Here, not only on the engine thread (which checks again before llama.cpp parses it): a
    // grammar llama.cpp would work on without bound is refused before it is queued.
    if let Some(grammar) = &sampling.grammar {
        crate::engine::check_grammar(grammar)
            .map_err(|e| ApiError::invalid(format!("invalid grammar: {e}")))?;
    }
    let ignore_eos = body.bool(&["ignore_eos"])?.unwrap_or(defaults.ignore_eos);
    let stop_asked = body.stop_strings(&["stop"])?;
    if let Some(stops) = &stop_asked {
        limits::check_stops("stop", stops)?;
    }
    let mut stop = stop_asked
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| defaults.stop.clone());
    stop.extend(chat.stop.iter().cloned());
    let mut preserved_tokens = preserved_tokens(body, model)?;
    preserved_tokens.extend(chat.preserved_tokens.iter().copied());
    Ok(TaskParams {
        n_predict: limits::n_predict(body, defaults.n_predict, defaults.max_n_predict)?,
        stop,
        ignore_eos,
        cache_prompt: body
            .bool(&["cache_prompt"])?
            .unwrap_or(defaults.cache_prompt),
        n_cache_reuse: body
            .int_in(&["n_cache_reuse"], 0, i32_max)?
            .map_or(defaults.n_cache_reuse, |n| n as u32),
        sampling,
        preserved_tokens,
        id_slot: id_slot(body, model.n_slots)?,
        n_probs: limits::n_probs(
            body.int(&["n_probs", "logprobs"])?,
            defaults.n_probs,
            model.n_vocab.max(0) as usize,
        ),
        post_sampling_probs: body.bool(&["post_sampling_probs"])?.unwrap_or(false),
        n_keep: body
            .int_in(&["n_keep"], -1, i32_max)?
            .map_or(defaults.n_keep, |n| n as i32),
        n_discard: body.int_in(&["n_discard"], 0, i32_max)?.unwrap_or(0) as u32,
        n_indent: body.int_in(&["n_indent"], 0, i32_max)?.unwrap_or(0) as u32,
        t_max_predict_ms: body
            .int_in(&["t_max_predict_ms"], -1, i64::MAX)?
            .unwrap_or(-1)
            .max(0) as u64,
        lora: body.lora()?,
    })
}

/// `id_slot`: -1 (or a wrong type) is any slot; a number past the slots wraps around, as
/// llama-server's slot lookup does.
fn id_slot(body: &Body, n_slots: u32) -> Result<Option<usize>, ApiError> {
    Ok(match body.get(&["id_slot"]).and_then(|(_, v)| as_int(v)) {
        Some(n) if n >= 0 && n_slots > 0 => Some((n % i64::from(n_slots)) as usize),
        _ => None,
    })
}

/// `preserved_tokens`: strings that are one token each, kept as text in the output.
fn preserved_tokens(body: &Body, model: &LoadedModel) -> Result<Vec<LlamaToken>, ApiError> {
    Ok(body
        .strings(&["preserved_tokens"])?
        .unwrap_or_default()
        .iter()
        .filter_map(|text| match model.tokenize(text, false, true).as_slice() {
            [token] => Some(*token),
            _ => None,
        })
        .collect())
}
