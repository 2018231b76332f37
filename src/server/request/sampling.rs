//! The sampling fields of a request, over the server's defaults: llama-server's names, clamps
//! and hard limits, `samplers` as names or letters, `logit_bias` in every form it takes, and
//! `json_schema`/`grammar`.

use llama_cpp_2::token::LlamaToken;
use serde_json::Value;

use super::Defaults;
use crate::engine::{LoadedModel, SamplerType, SamplingParams};
use crate::server::error::ApiError;
use crate::server::fields::{Body, field_error, type_error};

/// The sampling fields, over the server's defaults; limits clamp or reject as llama-server's.
pub fn sampling(
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
    clamped!(adaptive_target, "adaptive_target", f32::MIN, 1.0);
    if let Some(decay) = body.float_in(&["adaptive_decay"], 0.0, 0.99)? {
        p.adaptive_decay = decay as f32;
    }
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
    if let Some((_, value)) = body.get(&["logit_bias"]) {
        let n_vocab = model.n_vocab.max(0) as usize;
        super::limits::check_logit_bias_len(n_vocab, super::limits::logit_bias_entries(value))?;
        p.logit_bias = logit_bias(body, model);
        // Text keys may tokenize to many tokens each.
        super::limits::check_logit_bias_len(n_vocab, p.logit_bias.len())?;
    }
    if let Some(grammar) = grammar(body)? {
        p.grammar = Some(grammar);
    }
    Ok(p)
}

/// `samplers`: an array of names or a string of letters; unknown ones are skipped, as
/// llama-server skips them (and logs them).
pub fn samplers(name: &str, value: &Value) -> Result<Vec<SamplerType>, ApiError> {
    let mut out = Vec::new();
    match value {
        Value::Array(items) => {
            for item in items {
                let Some(text) = item.as_str() else {
                    return Err(type_error(name, "string", item));
                };
                match SamplerType::from_name(text) {
                    Some(s) => out.push(s),
                    None => tracing::warn!("unknown sampler {text:?} skipped"),
                }
            }
        }
        Value::String(chars) => {
            for c in chars.chars() {
                match SamplerType::from_char(c) {
                    Some(s) => out.push(s),
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
