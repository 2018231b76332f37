//! The one typed request of the HTTP edge. Every generation route — llama-server's
//! `/completion`, OpenAI's completions and chat — reads its body into a [`Generation`] here, with
//! llama-server's schema (`server-schema.cpp`): the same fields, aliases, defaults (the server's
//! own, from its flags), limits and error wording. Adapters only add what is theirs (a chat's
//! rendered prompt and grammar, through [`ChatSetup`]) before the pipeline runs it.

use llama_cpp_2::token::LlamaToken;
use serde_json::Value;

use super::error::ApiError;
use super::fields::{Body, as_int, field_error, type_error};
use crate::engine::{GenerateRequest, LoadedModel, SamplerType, SamplingParams};

/// The server-wide defaults a request starts from (llama-server's flags `--temp`, `-n`,
/// `--keep`, `-r`, `--cache-prompt`, …).
#[derive(Debug, Clone)]
pub struct Defaults {
    pub sampling: SamplingParams,
    pub n_predict: i32,
    pub n_keep: i32,
    pub cache_prompt: bool,
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
            n_keep: 0,
            cache_prompt: true,
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

/// Everything of an engine request but its prompt.
#[derive(Debug, Clone)]
pub struct TaskParams {
    pub n_predict: i32,
    pub stop: Vec<String>,
    pub ignore_eos: bool,
    pub cache_prompt: bool,
    pub sampling: SamplingParams,
    pub preserved_tokens: Vec<LlamaToken>,
    pub id_slot: Option<usize>,
    pub n_probs: usize,
    pub post_sampling_probs: bool,
    pub n_keep: i32,
    pub n_discard: u32,
    pub n_indent: u32,
    pub t_max_predict_ms: u64,
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
        let task = TaskParams::from_body(body, model, defaults, chat)?;
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
            for j in 0..self.n_cmpl {
                let mut sampling = self.task.sampling.clone();
                if sampling.seed != u32::MAX {
                    sampling.seed = sampling.seed.wrapping_add(j as u32);
                }
                let t = &self.task;
                out.push((
                    p * self.n_cmpl + j,
                    GenerateRequest {
                        id: next_id(),
                        span: span.clone(),
                        prompt: prompt.clone(),
                        n_predict: u32::try_from(t.n_predict).ok(),
                        stop: t.stop.clone(),
                        ignore_eos: t.ignore_eos,
                        cache_prompt: t.cache_prompt,
                        sampling,
                        preserved_tokens: t.preserved_tokens.clone(),
                        id_slot: t.id_slot,
                        n_probs: t.n_probs,
                        post_sampling_probs: t.post_sampling_probs,
                        n_keep: t.n_keep,
                        n_discard: t.n_discard,
                        n_indent: t.n_indent,
                        t_max_predict_ms: t.t_max_predict_ms,
                        timings_per_token: self.response.timings_per_token,
                    },
                ));
            }
        }
        out
    }
}

impl TaskParams {
    fn from_body(
        body: &Body,
        model: &LoadedModel,
        defaults: &Defaults,
        chat: &ChatSetup,
    ) -> Result<Self, ApiError> {
        let i32_max = i64::from(i32::MAX);
        let mut sampling = sampling(body, model, defaults)?;
        if let Some(grammar) = &chat.grammar {
            sampling.grammar = Some(grammar.clone());
        }
        let ignore_eos = body.bool(&["ignore_eos"])?.unwrap_or(defaults.ignore_eos);
        let mut stop = body
            .stop_strings(&["stop"])?
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| defaults.stop.clone());
        stop.extend(chat.stop.iter().cloned());
        let mut preserved_tokens = preserved_tokens(body, model)?;
        preserved_tokens.extend(chat.preserved_tokens.iter().copied());
        Ok(TaskParams {
            n_predict: body
                .int_in(
                    &["n_predict", "max_completion_tokens", "max_tokens"],
                    -1,
                    i32_max,
                )?
                .map_or(defaults.n_predict, |n| n as i32),
            stop,
            ignore_eos,
            cache_prompt: body
                .bool(&["cache_prompt"])?
                .unwrap_or(defaults.cache_prompt),
            sampling,
            preserved_tokens,
            id_slot: id_slot(body, model.n_slots)?,
            n_probs: match body.int(&["n_probs", "logprobs"])? {
                Some(n) => n.max(0) as usize,
                None => defaults.n_probs,
            },
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
        })
    }
}

/// `id_slot`: -1 (or a wrong type) is any slot; a number past the slots wraps around, as
/// llama-server's slot lookup does.
fn id_slot(body: &Body, n_slots: u32) -> Result<Option<usize>, ApiError> {
    Ok(match body.get(&["id_slot"]).and_then(|(_, v)| as_int(v)) {
        Some(n) if n >= 0 && n_slots > 0 => Some((n % i64::from(n_slots)) as usize),
        _ => None,
    })
}

/// The sampling fields, over the server's defaults; limits clamp or reject as llama-server's.
fn sampling(
    body: &Body,
    model: &LoadedModel,
    defaults: &Defaults,
) -> Result<SamplingParams, ApiError> {
    let mut p = defaults.sampling.clone();
    let f = |names: &[&'static str]| body.float(names).map(|v| v.map(|v| v as f32));
    let i32_max = i64::from(i32::MAX);
    macro_rules! clamped {
        ($field:ident, $name:literal, $min:expr, $max:expr) => {
            if let Some(v) = f(&[$name])? {
                p.$field = v.clamp($min, $max);
            }
        };
    }
    macro_rules! free {
        ($field:ident, $name:literal) => {
            if let Some(v) = f(&[$name])? {
                p.$field = v;
            }
        };
    }
    if let Some(k) = body.int(&["top_k"])? {
        p.top_k = k.clamp(0, i32_max) as i32;
    }
    clamped!(top_p, "top_p", 0.0, 1.0);
    clamped!(min_p, "min_p", 0.0, 1.0);
    free!(top_n_sigma, "top_n_sigma");
    clamped!(xtc_probability, "xtc_probability", 0.0, 1.0);
    clamped!(xtc_threshold, "xtc_threshold", 0.0, 1.0);
    free!(typical_p, "typical_p");
    clamped!(temperature, "temperature", 0.0, f32::INFINITY);
    free!(dynatemp_range, "dynatemp_range");
    free!(dynatemp_exponent, "dynatemp_exponent");
    if let Some(n) = body.int_in(&["repeat_last_n"], 0, i32_max)? {
        p.repeat_last_n = n as i32;
    }
    free!(repeat_penalty, "repeat_penalty");
    free!(frequency_penalty, "frequency_penalty");
    free!(presence_penalty, "presence_penalty");
    free!(dry_multiplier, "dry_multiplier");
    if let Some(v) = f(&["dry_base"])? {
        // Below 1 means "the server's default", as llama-server reads it.
        p.dry_base = if v < 1.0 {
            defaults.sampling.dry_base
        } else {
            v
        };
    }
    if let Some(n) = body.int_in(&["dry_allowed_length"], 0, i32_max)? {
        p.dry_allowed_length = n as i32;
    }
    if let Some(n) = body.int_in(&["dry_penalty_last_n"], 0, i32_max)? {
        p.dry_penalty_last_n = n as i32;
    }
    if let Some(m) = body.int(&["mirostat"])? {
        p.mirostat = m.clamp(0, 2) as i32;
    }
    free!(mirostat_tau, "mirostat_tau");
    free!(mirostat_eta, "mirostat_eta");
    if let Some(target) = f(&["adaptive_target"])?
        && target.min(1.0) >= 0.0
    {
        return Err(ApiError::new(
            super::error::ErrorType::NotSupported,
            "Field 'adaptive_target': the adaptive-p sampler is not supported by gguf-serve yet",
        ));
    }
    body.float_in(&["adaptive_decay"], 0.0, 0.99)?;
    if let Some(seed) = body.int(&["seed"])? {
        // -1 (or any negative) is llama.cpp's "random"; larger values wrap as in C.
        p.seed = if seed < 0 { u32::MAX } else { seed as u32 };
    }
    if let Some(n) = body.int_in(&["min_keep"], 0, i32_max)? {
        p.min_keep = n as usize;
    }
    if let Some((name, v)) = body.get(&["dry_sequence_breakers"]) {
        let breakers: Vec<String> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if breakers.is_empty() {
            return Err(field_error(
                name,
                "Error: dry_sequence_breakers must be a non-empty array of strings",
            ));
        }
        p.dry_sequence_breakers = breakers;
    }
    if let Some((name, v)) = body.get(&["samplers"]) {
        p.samplers = samplers(name, v)?;
    }
    if body.get(&["logit_bias"]).is_some() {
        p.logit_bias = logit_bias(body, model);
    }
    if let Some(grammar) = grammar(body)? {
        p.grammar = Some(grammar);
    }
    Ok(p)
}

/// `samplers`: an array of names or a string of letters; unknown ones are skipped, as
/// llama-server does (which logs them), except the two samplers gguf-serve lacks.
pub fn samplers(name: &str, value: &Value) -> Result<Vec<SamplerType>, ApiError> {
    let unsupported = |what: &str| {
        ApiError::new(
            super::error::ErrorType::NotSupported,
            format!("Field '{name}': the {what} sampler is not supported by gguf-serve yet"),
        )
    };
    let mut out = Vec::new();
    match value {
        Value::Array(items) => {
            for item in items {
                let Some(text) = item.as_str() else {
                    return Err(type_error(name, "string", item));
                };
                match SamplerType::from_name(text) {
                    Some(s) => out.push(s),
                    None if text.eq_ignore_ascii_case("adaptive_p") => {
                        return Err(unsupported("adaptive-p"));
                    }
                    None if text.eq_ignore_ascii_case("infill") => {
                        return Err(unsupported("infill"));
                    }
                    None => tracing::warn!("unknown sampler {text:?} skipped"),
                }
            }
        }
        Value::String(chars) => {
            for c in chars.chars() {
                match SamplerType::from_char(c) {
                    Some(s) => out.push(s),
                    None if c == 'a' => return Err(unsupported("adaptive-p")),
                    None if c == 'i' => return Err(unsupported("infill")),
                    None => tracing::warn!("unknown sampler letter {c:?} skipped"),
                }
            }
        }
        _ => return Ok(SamplerType::DEFAULT.to_vec()),
    }
    Ok(out)
}

/// `logit_bias` in every form llama-server takes: `[[id, bias]]`, `[["text", bias]]`,
/// `{"id": bias}`, `{"text": bias}`; a bias of `false` bans. Entries of any other shape, and ids
/// out of the vocabulary, are skipped, as llama-server skips them.
fn logit_bias(body: &Body, model: &LoadedModel) -> Vec<(LlamaToken, f32)> {
    let Some((_, value)) = body.get(&["logit_bias"]) else {
        return Vec::new();
    };
    let bias_of = |v: &Value| match v {
        Value::Bool(false) => Some(f32::NEG_INFINITY),
        Value::Number(n) => n.as_f64().map(|b| b as f32),
        _ => None,
    };
    let in_vocab = |id: i64| {
        i32::try_from(id)
            .ok()
            .filter(|&t| model.is_valid_token(t))
            .map(LlamaToken)
    };
    let mut out = Vec::new();
    let add_text = |text: &str, bias: f32, out: &mut Vec<(LlamaToken, f32)>| {
        out.extend(
            model
                .tokenize(text, false, false)
                .into_iter()
                .map(|t| (t, bias)),
        );
    };
    match value {
        Value::Array(pairs) => {
            for pair in pairs {
                let Some([key, bias]) = pair.as_array().map(Vec::as_slice) else {
                    continue;
                };
                let Some(bias) = bias_of(bias) else { continue };
                match key {
                    Value::Number(n) if n.is_i64() || n.is_u64() => {
                        out.extend(n.as_i64().and_then(in_vocab).map(|t| (t, bias)));
                    }
                    Value::String(text) => add_text(text, bias, &mut out),
                    _ => {}
                }
            }
        }
        Value::Object(map) => {
            for (key, bias) in map {
                let Some(bias) = bias_of(bias) else { continue };
                match strtol(key) {
                    Some(id) => out.extend(in_vocab(id).map(|t| (t, bias))),
                    None => add_text(key, bias, &mut out),
                }
            }
        }
        _ => {}
    }
    out
}

/// C's `strtol(key, &end, 10)` with `*end == 0`: the whole key (after leading whitespace) is
/// a decimal integer; an empty key reads as 0.
fn strtol(key: &str) -> Option<i64> {
    let t = key.trim_start();
    if t.is_empty() {
        return Some(0);
    }
    t.parse().ok()
}

/// `json_schema` (converted to a grammar; `{}` is any object) unless `grammar` is given too,
/// which then wins, as llama-server reads them.
fn grammar(body: &Body) -> Result<Option<String>, ApiError> {
    if let Some((_, schema)) = body.get(&["json_schema"])
        && !body.0.contains_key("grammar")
    {
        let mut schema = schema.clone();
        if schema.as_object().is_some_and(|o| o.is_empty()) {
            schema["type"] = "object".into();
        }
        let text = serde_json::to_string(&schema).unwrap_or_default();
        return llama_cpp_2::json_schema_to_grammar(&text)
            .map(Some)
            .map_err(|e| field_error("json_schema", format!("\"json_schema\": {e}")));
    }
    Ok(body
        .str(&["grammar"])?
        .filter(|g| !g.is_empty())
        .map(str::to_string))
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

/// A request's prompts, as llama-server reads `prompt`: a string, token ids, or a mix of both
/// (one prompt; a string gets BOS only at the very start); an array without any number is
/// several prompts, each of those forms.
pub fn prompts(value: &Value, model: &LoadedModel) -> Result<Vec<Vec<LlamaToken>>, ApiError> {
    let many = match value {
        Value::Array(items) => !items.iter().any(Value::is_number),
        _ => false,
    };
    let prompts = if many {
        let items = value.as_array().expect("checked");
        if items.is_empty() {
            return Err(ApiError::invalid("\"prompt\" must not be empty"));
        }
        items
            .iter()
            .map(|item| prompt(item, model))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        vec![prompt(value, model)?]
    };
    Ok(prompts)
}

/// One prompt: a string, token ids, ids mixed with strings, or `{"prompt_string": …}`.
fn prompt(value: &Value, model: &LoadedModel) -> Result<Vec<LlamaToken>, ApiError> {
    let invalid = || {
        ApiError::invalid(
            "\"prompt\" elements must be a string, a list of tokens, a JSON object containing a \
             prompt string, or a list of mixed strings & tokens.",
        )
    };
    let mut tokens = Vec::new();
    match value {
        Value::String(text) => tokens = model.tokenize(text, true, true),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(text) => tokens.extend(model.tokenize(text, i == 0, true)),
                    Value::Number(n) if n.is_i64() || n.is_u64() => {
                        let id = n
                            .as_i64()
                            .and_then(|id| i32::try_from(id).ok())
                            .filter(|&t| model.is_valid_token(t))
                            .ok_or_else(|| ApiError::invalid("Prompt contains invalid tokens"))?;
                        tokens.push(LlamaToken(id));
                    }
                    _ => return Err(invalid()),
                }
            }
        }
        Value::Object(o) => match o.get("prompt_string") {
            Some(Value::String(text)) if o.get("multimodal_data").is_none() => {
                tokens = model.tokenize(text, true, true);
            }
            Some(Value::String(_)) => {
                return Err(ApiError::invalid(
                    "Multimodal data provided, but model does not support multimodal requests.",
                ));
            }
            _ => return Err(invalid()),
        },
        _ => return Err(invalid()),
    }
    Ok(tokens)
}
