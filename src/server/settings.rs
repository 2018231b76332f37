//! llama-server's `generation_settings`/`params` object: a request's settings as `/completion`
//! results, `/slots` and `/props` show them (`task_params::to_json`), in its key order. The
//! `full` form adds the stop strings, biases, grammar and preserved tokens.

use llama_cpp_2::token::LlamaToken;
use serde_json::{Value, json};

use super::request::Defaults;
use crate::engine::{LoraRequest, SamplingParams, SlotTask, TaskParams};

/// The settings one object describes.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    pub sampling: &'a SamplingParams,
    pub n_predict: i64,
    pub n_keep: i32,
    pub n_discard: u32,
    pub ignore_eos: bool,
    pub stream: bool,
    pub n_probs: usize,
    pub stop: &'a [String],
    pub preserved_tokens: &'a [LlamaToken],
    pub timings_per_token: bool,
    pub post_sampling_probs: bool,
    pub backend_sampling: bool,
    /// The request's own LoRA scales (`lora`), empty when it gave none.
    pub lora: &'a LoraRequest,
}

/// No LoRA scales of a request's own.
static NO_LORA: LoraRequest = LoraRequest::new();

impl<'a> Settings<'a> {
    /// A request's settings.
    pub fn of_task(task: &'a TaskParams, stream: bool, timings_per_token: bool) -> Self {
        Self {
            sampling: &task.sampling,
            n_predict: i64::from(task.n_predict),
            n_keep: task.n_keep,
            n_discard: task.n_discard,
            ignore_eos: task.ignore_eos,
            stream,
            n_probs: task.n_probs,
            stop: &task.stop,
            preserved_tokens: &task.preserved_tokens,
            timings_per_token,
            post_sampling_probs: task.post_sampling_probs,
            backend_sampling: false,
            lora: &task.lora,
        }
    }

    /// The server's defaults (`/props`); like llama-server, `n_predict` there is the task
    /// default -1, whatever `-n` says.
    pub fn of_defaults(defaults: &'a Defaults) -> Self {
        Self {
            sampling: &defaults.sampling,
            n_predict: -1,
            n_keep: defaults.n_keep,
            n_discard: 0,
            ignore_eos: defaults.ignore_eos,
            stream: false,
            n_probs: defaults.n_probs,
            stop: &defaults.stop,
            preserved_tokens: &[],
            timings_per_token: false,
            post_sampling_probs: false,
            backend_sampling: false,
            lora: &NO_LORA,
        }
    }

    /// A slot's current or last task (`/slots`).
    pub fn of_slot(task: &'a SlotTask) -> Self {
        Self {
            backend_sampling: task.backend_sampling,
            ..Self::of_task(&task.params, false, false)
        }
    }
}

/// The object, in llama-server's key order; `full` adds the fields of a final result.
pub fn generation_settings(s: &Settings<'_>, full: bool) -> Value {
    let p = s.sampling;
    let samplers: Vec<&str> = p.samplers.iter().map(|t| t.name()).collect();
    let mut o = serde_json::Map::new();
    let mut put = |k: &str, v: Value| {
        o.insert(k.to_string(), v);
    };
    put("seed", json!(p.seed));
    put("temperature", json!(p.temperature));
    put("dynatemp_range", json!(p.dynatemp_range));
    put("dynatemp_exponent", json!(p.dynatemp_exponent));
    put("top_k", json!(p.top_k));
    put("top_p", json!(p.top_p));
    put("min_p", json!(p.min_p));
    put("top_n_sigma", json!(p.top_n_sigma));
    put("xtc_probability", json!(p.xtc_probability));
    put("xtc_threshold", json!(p.xtc_threshold));
    put("typical_p", json!(p.typical_p));
    put("repeat_last_n", json!(p.repeat_last_n));
    put("repeat_penalty", json!(p.repeat_penalty));
    put("presence_penalty", json!(p.presence_penalty));
    put("frequency_penalty", json!(p.frequency_penalty));
    put("dry_multiplier", json!(p.dry_multiplier));
    put("dry_base", json!(p.dry_base));
    put("dry_allowed_length", json!(p.dry_allowed_length));
    put("dry_penalty_last_n", json!(p.dry_penalty_last_n));
    if full {
        put("dry_sequence_breakers", json!(p.dry_sequence_breakers));
    }
    put("mirostat", json!(p.mirostat));
    put("mirostat_tau", json!(p.mirostat_tau));
    put("mirostat_eta", json!(p.mirostat_eta));
    put("adaptive_target", json!(p.adaptive_target));
    put("adaptive_decay", json!(p.adaptive_decay));
    if full {
        put("stop", json!(s.stop));
    }
    put("max_tokens", json!(s.n_predict));
    put("n_predict", json!(s.n_predict));
    put("n_keep", json!(s.n_keep));
    put("n_discard", json!(s.n_discard));
    put("ignore_eos", json!(s.ignore_eos));
    put("stream", json!(s.stream));
    if full {
        let bias: Vec<Value> = p
            .logit_bias
            .iter()
            .map(|(t, b)| json!({ "bias": b, "token": t.0 }))
            .collect();
        put("logit_bias", json!(bias));
    }
    put("n_probs", json!(s.n_probs));
    put("min_keep", json!(p.min_keep));
    if full {
        put("grammar", json!(p.grammar.clone().unwrap_or_default()));
        put("grammar_lazy", json!(false));
        put("grammar_triggers", json!([]));
        let preserved: Vec<i32> = s.preserved_tokens.iter().map(|t| t.0).collect();
        put("preserved_tokens", json!(preserved));
    }
    put("chat_format", json!("Content-only"));
    put("reasoning_format", json!("deepseek"));
    put("reasoning_in_content", json!(false));
    put("generation_prompt", json!(""));
    put("samplers", json!(samplers));
    put("speculative.types", json!("none"));
    put("timings_per_token", json!(s.timings_per_token));
    put("post_sampling_probs", json!(s.post_sampling_probs));
    put("backend_sampling", json!(s.backend_sampling));
    let lora: Vec<Value> = (s.lora.iter())
        .map(|(id, scale)| json!({ "id": id, "scale": scale }))
        .collect();
    put("lora", Value::Array(lora));
    Value::Object(o)
}
