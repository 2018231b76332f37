//! `POST /infill`: fill-in-the-middle for editors. The body's `input_prefix`, `input_suffix`,
//! `input_extra` (other files of the project) and `prompt` become one prompt laid out with the
//! model's FIM tokens exactly as llama-server lays it out (`format_prompt_infill`); the rest of
//! the body is a `/completion` request, run through the same pipeline and answered in
//! `/completion`'s shape.
//!
//! The layout, repo-level when the model has `FIM_REP`/`FIM_SEP` tokens:
//! `[FIM_REP]myproject\n [FIM_SEP]file\n text … [FIM_SEP]filename\n [BOS] [FIM_PRE]prefix prompt
//! [FIM_SUF]suffix [FIM_MID]`; with `--spm-infill` the suffix part comes before the prefix part.
//! The prefix keeps its last 3/4 of a batch, the suffix its first quarter less the prompt, and
//! the extra context the last of what fits in the slot beside a batch and twice `-n`.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::response::Response;
use llama_cpp_2::token::LlamaToken;
use serde_json::Value;

use super::AppState;
use super::edge::{RawBody, RequestCtx};
use super::error::{ApiError, ErrorType};
use super::fields::{Body, as_int};
use super::request::{ChatSetup, Generation};
use super::{native, pipeline};
use crate::engine::LoadedModel;
use crate::wording::{infill as words, key_not_found, type_mismatch};

/// `POST /infill`.
pub async fn infill(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestCtx>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let model = Arc::clone(state.model()?);
    let fim = FimTokens::of(&model)?;
    let body = Body::parse(&body)?;
    let input = InfillInput::read(&body, &model)?;
    let config = &state.config;
    let room = Room {
        n_batch: i64::from(config.infill.n_batch),
        n_predict: i64::from(config.defaults.n_predict),
        n_ctx: i64::from(model.n_ctx_slot),
    };
    let prompt = layout(&fim, &input, &room, config.infill.spm, |text| {
        model.tokenize(text, false, false)
    });
    let generation = Generation::from_body(
        &body,
        &model,
        &config.defaults,
        vec![prompt],
        &ChatSetup::default(),
    )?;
    let adapter = native::adapter(&state, model, &generation);
    pipeline::respond(&state, &ctx, generation, adapter).await
}

/// The model's fill-in-the-middle tokens (`tokenizer.ggml.fim_*_token_id`, or found by their
/// text when the file names none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FimTokens {
    pub pre: LlamaToken,
    pub suf: LlamaToken,
    pub mid: LlamaToken,
    /// Opens the repo-level context.
    pub rep: Option<LlamaToken>,
    /// Opens each file of the repo-level context.
    pub sep: Option<LlamaToken>,
    /// The model's BOS, when its vocabulary adds one.
    pub bos: Option<LlamaToken>,
}

impl FimTokens {
    /// The model's FIM tokens; llama-server's 501 when the prefix, suffix or middle one is
    /// missing.
    fn of(model: &LoadedModel) -> Result<Self, ApiError> {
        let vocab = model.model.vocab();
        let some = |t: LlamaToken| (t.0 >= 0).then_some(t);
        let (pre, suf, mid) = (vocab.fim_pre(), vocab.fim_suf(), vocab.fim_mid());
        let missing: String = [(pre, "prefix"), (suf, "suffix"), (mid, "middle")]
            .iter()
            .filter(|(t, _)| t.0 < 0)
            .map(|(_, name)| format!("{name} token is missing. "))
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::new(
                ErrorType::NotSupported,
                format!("{}{missing}", words::UNSUPPORTED),
            ));
        }
        Ok(Self {
            pre,
            suf,
            mid,
            rep: some(vocab.fim_rep()),
            sep: some(vocab.fim_sep()),
            bos: if model.add_bos {
                some(vocab.bos())
            } else {
                None
            },
        })
    }
}

/// One file of the repo-level context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraChunk {
    pub filename: String,
    pub text: String,
}

/// The parts of an infill request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InfillInput {
    pub prefix: Vec<LlamaToken>,
    pub suffix: Vec<LlamaToken>,
    pub extra: Vec<ExtraChunk>,
    /// Goes after the prefix (the start of the middle, typed so far).
    pub prompt: Vec<LlamaToken>,
}

impl InfillInput {
    /// Reads the body as llama-server does: `input_extra` checked first, then `prompt` (a
    /// string; anything else counts as empty), then the prefix and suffix (required; a
    /// string or an array of strings and token ids; special tokens in their text stay text).
    fn read(body: &Body, model: &LoadedModel) -> Result<Self, ApiError> {
        let extra = match body.0.get("input_extra") {
            None => Vec::new(),
            Some(Value::Array(chunks)) => {
                chunks.iter().map(extra_chunk).collect::<Result<_, _>>()?
            }
            Some(_) => return Err(ApiError::invalid(words::EXTRA_NOT_ARRAY)),
        };
        let prompt = match body.0.get("prompt") {
            Some(Value::String(text)) => model.tokenize(text, false, true),
            _ => Vec::new(),
        };
        let part = |key: &str| match body.0.get(key) {
            Some(value) => mixed_tokens(value, model),
            None => Err(ApiError::invalid(key_not_found(key))),
        };
        // llama-server reads the suffix first (the C++ arguments are evaluated right to left).
        let suffix = part("input_suffix")?;
        let prefix = part("input_prefix")?;
        Ok(Self {
            prefix,
            suffix,
            extra,
            prompt,
        })
    }
}

/// One `input_extra` element: `{"text": string, "filename"?: string}` (`tmp` by default).
fn extra_chunk(chunk: &Value) -> Result<ExtraChunk, ApiError> {
    let text = chunk.get("text").and_then(Value::as_str);
    let Some(text) = text else {
        return Err(ApiError::invalid(words::CHUNK_TEXT));
    };
    let filename = match chunk.get("filename") {
        None => "tmp",
        Some(Value::String(name)) => name,
        Some(_) => return Err(ApiError::invalid(words::CHUNK_FILENAME)),
    };
    Ok(ExtraChunk {
        filename: filename.to_string(),
        text: text.to_string(),
    })
}

/// A prefix or suffix: a string, or an array of strings and token ids (llama-server's
/// `tokenize_mixed`, without BOS and without parsing special tokens).
fn mixed_tokens(value: &Value, model: &LoadedModel) -> Result<Vec<LlamaToken>, ApiError> {
    let text = |s: &str| model.tokenize(s, false, false);
    match value {
        Value::String(s) => Ok(text(s)),
        Value::Array(items) => {
            let mut tokens = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => tokens.extend(text(s)),
                    other => {
                        let id = as_int(other)
                            .ok_or_else(|| ApiError::invalid(type_mismatch("number", other)))?;
                        let id = i32::try_from(id)
                            .ok()
                            .filter(|&id| model.is_valid_token(id))
                            .ok_or_else(|| ApiError::invalid(words::INVALID_TOKENS))?;
                        tokens.push(LlamaToken(id));
                    }
                }
            }
            Ok(tokens)
        }
        other => Err(ApiError::invalid(type_mismatch("string", other))),
    }
}

/// The room the layout may take: llama-server's `-b` and `-n` (the server's, not the
/// request's) and the slot's context.
#[derive(Debug, Clone, Copy)]
pub struct Room {
    pub n_batch: i64,
    pub n_predict: i64,
    pub n_ctx: i64,
}

/// The prompt of an infill request (see the module's doc); `tokenize` reads text without BOS
/// and without special tokens.
pub fn layout(
    fim: &FimTokens,
    input: &InfillInput,
    room: &Room,
    spm: bool,
    tokenize: impl Fn(&str) -> Vec<LlamaToken>,
) -> Vec<LlamaToken> {
    let mut extra = Vec::new();
    if let Some(rep) = fim.rep {
        extra.push(rep);
        extra.extend(tokenize("myproject\n"));
    }
    for chunk in &input.extra {
        match fim.sep {
            Some(sep) => {
                extra.push(sep);
                extra.extend(tokenize(&format!("{}\n", chunk.filename)));
            }
            None => extra.extend(tokenize("\n\n--- snippet ---\n\n")),
        }
        extra.extend(tokenize(&chunk.text));
    }
    if let Some(sep) = fim.sep {
        extra.push(sep);
        extra.extend(tokenize("filename\n"));
    }

    let len = |v: &[LlamaToken]| v.len() as i64;
    let n_prefix_take = len(&input.prefix).min(3 * (room.n_batch / 4));
    let n_suffix_take =
        len(&input.suffix).min((room.n_batch / 4 - (2 + len(&input.prompt))).max(0));
    let n_extra_take = (room.n_ctx - room.n_batch - 2 * room.n_predict)
        .max(0)
        .min(len(&extra));

    let prefix_kept = &input.prefix[(len(&input.prefix) - n_prefix_take) as usize..];
    let mut prefix = vec![fim.pre];
    prefix.extend_from_slice(prefix_kept);
    prefix.extend_from_slice(&input.prompt);
    let mut suffix = vec![fim.suf];
    suffix.extend_from_slice(&input.suffix[..n_suffix_take as usize]);
    let (first, second) = if spm {
        (suffix, prefix)
    } else {
        (prefix, suffix)
    };

    let mut tokens = extra[(len(&extra) - n_extra_take) as usize..].to_vec();
    tokens.extend(fim.bos);
    tokens.extend(first);
    tokens.extend(second);
    tokens.push(fim.mid);
    tokens
}

#[cfg(test)]
mod tests;
