//! Request fields shared by the native and OpenAI routes, turned into a typed
//! [`GenerateRequest`]: sampling settings with llama-server's names, aliases and defaults, stop
//! strings, the prompt (text or token ids) and its length against the context.

use llama_cpp_2::token::LlamaToken;
use serde_json::Value;

use super::error::ApiError;
use super::fields::{Body, type_error};
use crate::engine::{GenerateRequest, LoadedModel, SamplingParams};

/// Sampling settings from a request body; absent fields keep llama-server's defaults.
pub fn sampling(body: &Body, model: &LoadedModel) -> Result<SamplingParams, ApiError> {
    let mut p = SamplingParams::default();
    macro_rules! set {
        ($field:ident, f32, $names:expr) => {
            if let Some(v) = body.f32($names)? {
                p.$field = v;
            }
        };
        ($field:ident, i32, $names:expr) => {
            if let Some(v) = body.i64($names)? {
                p.$field = v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
            }
        };
    }
    set!(temperature, f32, &["temperature"]);
    set!(dynatemp_range, f32, &["dynatemp_range"]);
    set!(dynatemp_exponent, f32, &["dynatemp_exponent"]);
    set!(top_k, i32, &["top_k"]);
    set!(top_p, f32, &["top_p"]);
    set!(min_p, f32, &["min_p"]);
    set!(typical_p, f32, &["typical_p"]);
    set!(repeat_last_n, i32, &["repeat_last_n"]);
    set!(repeat_penalty, f32, &["repeat_penalty"]);
    set!(frequency_penalty, f32, &["frequency_penalty"]);
    set!(presence_penalty, f32, &["presence_penalty"]);
    if let Some(n) = body.i64(&["min_keep"])? {
        p.min_keep = n.max(0) as usize;
    }
    if p.repeat_last_n == -1 {
        p.repeat_last_n = model.n_ctx_slot as i32;
    }
    if let Some(seed) = body.i64(&["seed"])? {
        // -1 (or any negative) is llama.cpp's "random"; larger values wrap as in C.
        p.seed = if seed < 0 { u32::MAX } else { seed as u32 };
    }
    p.logit_bias = logit_bias(body, model)?;
    p.grammar = grammar(body)?;
    for (name, value) in [
        ("dry_multiplier", 0.0),
        ("xtc_probability", 0.0),
        ("mirostat", 0.0),
    ] {
        if body.f32(&[name])?.is_some_and(|v| v != value) {
            return Err(ApiError::new(
                super::error::ErrorType::NotSupported,
                format!("Field '{name}': this sampler is not supported by gguf-serve yet"),
            ));
        }
    }
    Ok(p)
}

/// `logit_bias` as llama-server takes it: `[[token, bias], …]` or `{"token": bias}`; a bias of
/// `false` bans the token.
fn logit_bias(body: &Body, model: &LoadedModel) -> Result<Vec<(LlamaToken, f32)>, ApiError> {
    let Some((name, value)) = body.get(&["logit_bias"]) else {
        return Ok(Vec::new());
    };
    let bias_of = |v: &Value| match v {
        Value::Bool(false) => Ok(f32::NEG_INFINITY),
        Value::Number(n) => Ok(n.as_f64().unwrap_or(0.0) as f32),
        other => Err(type_error(name, "number or false", other)),
    };
    let token_of = |id: i64| {
        i32::try_from(id)
            .ok()
            .filter(|&t| model.is_valid_token(t))
            .map(LlamaToken)
            .ok_or_else(|| ApiError::invalid(format!("Field '{name}': token {id} is out of range")))
    };
    match value {
        Value::Array(pairs) => pairs
            .iter()
            .map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([Value::Number(t), b]) => {
                    Ok((token_of(t.as_i64().unwrap_or(-1))?, bias_of(b)?))
                }
                _ => Err(type_error(name, "array of [token, bias] pairs", pair)),
            })
            .collect(),
        Value::Object(map) => map
            .iter()
            .map(|(k, b)| {
                let id = k.parse::<i64>().map_err(|_| {
                    ApiError::invalid(format!("Field '{name}': key {k:?} is not a token id"))
                })?;
                Ok((token_of(id)?, bias_of(b)?))
            })
            .collect(),
        other => Err(type_error(name, "array or object", other)),
    }
}

/// `json_schema` (converted to a grammar, taking precedence) or `grammar` (GBNF).
fn grammar(body: &Body) -> Result<Option<String>, ApiError> {
    if let Some((_, schema)) = body.get(&["json_schema"]) {
        if body.get(&["grammar"]).is_none() {
            let text = serde_json::to_string(schema).unwrap_or_default();
            return llama_cpp_2::json_schema_to_grammar(&text)
                .map(Some)
                .map_err(|e| ApiError::invalid(format!("\"json_schema\": {e}")));
        }
    }
    Ok(body
        .str(&["grammar"])?
        .filter(|g| !g.is_empty())
        .map(str::to_string))
}

/// A prompt: a string, token ids, or a mix of both (strings tokenized with BOS and special
/// tokens parsed, as llama-server does).
pub fn prompt(value: &Value, model: &LoadedModel) -> Result<Vec<LlamaToken>, ApiError> {
    let mut tokens = Vec::new();
    match value {
        Value::String(text) => tokens = model.tokenize(text, true, true),
        Value::Array(items) if items.iter().all(Value::is_array) && !items.is_empty() => {
            return Err(ApiError::new(
                super::error::ErrorType::NotSupported,
                "\"prompt\": several prompts in one request are not supported yet; send one request per prompt",
            ));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(text) => tokens.extend(model.tokenize(text, i == 0, true)),
                    Value::Number(n) => {
                        let id = n
                            .as_i64()
                            .and_then(|id| i32::try_from(id).ok())
                            .filter(|&t| model.is_valid_token(t));
                        let id = id.ok_or_else(|| {
                            ApiError::invalid(format!(
                                "\"prompt\": token {n} is out of the vocabulary (0..{})",
                                model.n_vocab
                            ))
                        })?;
                        tokens.push(LlamaToken(id));
                    }
                    other => {
                        return Err(type_error(
                            "prompt",
                            "string, token id or array of them",
                            other,
                        ));
                    }
                }
            }
        }
        other => return Err(type_error("prompt", "string or array", other)),
    }
    if tokens.is_empty() {
        return Err(ApiError::invalid("\"prompt\" is empty"));
    }
    Ok(tokens)
}

/// How many top tokens to report per step: `n_probs` (native), `logprobs: N` (completions), or
/// `logprobs: true` with `top_logprobs: N` (chat).
fn n_probs(body: &Body) -> Result<usize, ApiError> {
    let n = match body.get(&["logprobs"]) {
        Some((_, Value::Bool(true))) => body.i64(&["top_logprobs"])?.unwrap_or(0).max(1),
        Some((_, Value::Bool(false))) => 0,
        _ => body.i64(&["n_probs", "logprobs"])?.unwrap_or(0),
    };
    Ok(n.clamp(0, 100) as usize)
}

/// The full request: sampling, limits and the prompt, checked against the context.
pub fn generate_request(
    body: &Body,
    model: &LoadedModel,
    prompt: Vec<LlamaToken>,
    id: u64,
    default_n_predict: i32,
) -> Result<GenerateRequest, ApiError> {
    if prompt.len() >= model.n_ctx_slot as usize {
        return Err(ApiError::exceed_context(prompt.len(), model.n_ctx_slot));
    }
    let n_predict = body
        .i64(&["n_predict", "max_completion_tokens", "max_tokens"])?
        .unwrap_or(i64::from(default_n_predict));
    let id_slot = match body.i64(&["id_slot"])? {
        None | Some(-1) => None,
        Some(n) if (0..i64::from(model.n_slots)).contains(&n) => Some(n as usize),
        Some(n) => {
            return Err(ApiError::invalid(format!(
                "Field 'id_slot': no slot {n} (the server has {})",
                model.n_slots
            )));
        }
    };
    Ok(GenerateRequest {
        id,
        prompt,
        n_predict: u32::try_from(n_predict).ok(),
        stop: body.strings(&["stop"])?,
        ignore_eos: body.bool(&["ignore_eos"])?.unwrap_or(false),
        cache_prompt: body.bool(&["cache_prompt"])?.unwrap_or(true),
        sampling: sampling(body, model)?,
        preserved_tokens: Vec::new(),
        id_slot,
        n_probs: n_probs(body)?,
    })
}
