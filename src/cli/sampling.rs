//! The server-wide sampling defaults (`--temp`, `--top-k`, `--seed`, `--samplers`, …) and the
//! other per-request defaults llama-server takes on its command line (`-n`, `--keep`, `-r`,
//! `--cache-prompt`): every request starts from these, and `/props` shows them.

use anyhow::{Context, bail};
use clap::Args;
use llama_cpp_2::token::LlamaToken;

use crate::engine::{SamplerType, SamplingParams};
use crate::server::Defaults;

#[derive(Debug, Clone, Args)]
pub struct SamplingArgs {
    /// Tokens to predict when a request sets none; -1: until the context is full.
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, value_name = "N", allow_negative_numbers = true)]
    pub n_predict: i32,

    /// gguf-serve's own: the most tokens a request may ask for (`n_predict`, `max_tokens`, …);
    /// more is refused (400), and a request without a limit stops there (-1: no ceiling).
    #[arg(long = "max-n-predict", default_value_t = -1, value_name = "N", allow_negative_numbers = true)]
    pub max_n_predict: i32,

    /// Prompt tokens kept when the context shifts (-1: all).
    #[arg(
        long,
        default_value_t = 0,
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub keep: i32,

    /// A stop string for requests that give none (repeatable).
    #[arg(short = 'r', long = "reverse-prompt", value_name = "PROMPT")]
    pub reverse_prompt: Vec<String>,

    /// Process escapes (\n, \t, …) in --reverse-prompt and --dry-sequence-breaker (default on).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub escape: bool,

    /// Reuse the cached prompt of a slot by default (requests' `cache_prompt`).
    #[arg(long = "cache-prompt", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub cache_prompt: bool,

    /// Reuse chunks of at least N cached tokens that a prompt repeats further on, by shifting
    /// their KV cells to the new positions (requests' `n_cache_reuse`; 0: off).
    #[arg(long = "cache-reuse", default_value_t = 0, value_name = "N")]
    pub cache_reuse: u32,

    /// Samplers in order, separated by `;` (default penalties;dry;top_n_sigma;top_k;typ_p;top_p;min_p;xtc;temperature;
    /// also infill, adaptive_p).
    #[arg(long, value_name = "SAMPLERS")]
    pub samplers: Option<String>,

    /// The sampler order as letters (default edskypmxt; also i, a).
    #[arg(long = "sampling-seq", value_name = "SEQUENCE")]
    pub sampling_seq: Option<String>,

    /// RNG seed (-1: random).
    #[arg(short = 's', long, default_value_t = -1, value_name = "SEED", allow_negative_numbers = true)]
    pub seed: i64,

    /// Ignore the end of generation and go on (bans the end-of-generation tokens).
    #[arg(long = "ignore-eos")]
    pub ignore_eos: bool,

    /// Temperature.
    #[arg(long = "temp", default_value_t = 0.8, value_name = "N")]
    pub temperature: f32,

    /// Top-k (0: off).
    #[arg(long = "top-k", default_value_t = 40, value_name = "N")]
    pub top_k: i32,

    /// Top-p (1.0: off).
    #[arg(long = "top-p", default_value_t = 0.95, value_name = "N")]
    pub top_p: f32,

    /// Min-p (0.0: off).
    #[arg(long = "min-p", default_value_t = 0.05, value_name = "N")]
    pub min_p: f32,

    /// Top-n-sigma (-1: off).
    #[arg(long = "top-nsigma", default_value_t = -1.0, value_name = "N", allow_negative_numbers = true)]
    pub top_n_sigma: f32,

    /// XTC probability (0: off).
    #[arg(long = "xtc-probability", default_value_t = 0.0, value_name = "N")]
    pub xtc_probability: f32,

    /// XTC threshold (above 0.5: off).
    #[arg(long = "xtc-threshold", default_value_t = 0.1, value_name = "N")]
    pub xtc_threshold: f32,

    /// Locally typical sampling, p (1.0: off).
    #[arg(long = "typical", default_value_t = 1.0, value_name = "N")]
    pub typical_p: f32,

    /// Last n tokens the penalties look at (0: off, -1: the context).
    #[arg(
        long = "repeat-last-n",
        default_value_t = 64,
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub repeat_last_n: i32,

    /// Repetition penalty (1.0: off).
    #[arg(long = "repeat-penalty", default_value_t = 1.0, value_name = "N")]
    pub repeat_penalty: f32,

    /// Presence penalty (0.0: off).
    #[arg(
        long = "presence-penalty",
        default_value_t = 0.0,
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub presence_penalty: f32,

    /// Frequency penalty (0.0: off).
    #[arg(
        long = "frequency-penalty",
        default_value_t = 0.0,
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub frequency_penalty: f32,

    /// DRY multiplier (0.0: off).
    #[arg(long = "dry-multiplier", default_value_t = 0.0, value_name = "N")]
    pub dry_multiplier: f32,

    /// DRY base.
    #[arg(long = "dry-base", default_value_t = 1.75, value_name = "N")]
    pub dry_base: f32,

    /// DRY allowed length.
    #[arg(long = "dry-allowed-length", default_value_t = 2, value_name = "N")]
    pub dry_allowed_length: i32,

    /// DRY penalty window (0: off, -1: the context).
    #[arg(
        long = "dry-penalty-last-n",
        default_value_t = 64,
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub dry_penalty_last_n: i32,

    /// A DRY sequence breaker (repeatable; replaces the defaults; `none` for none).
    #[arg(long = "dry-sequence-breaker", value_name = "STRING")]
    pub dry_sequence_breaker: Vec<String>,

    /// Dynamic temperature range (0.0: off).
    #[arg(long = "dynatemp-range", default_value_t = 0.0, value_name = "N")]
    pub dynatemp_range: f32,

    /// Dynamic temperature exponent.
    #[arg(long = "dynatemp-exp", default_value_t = 1.0, value_name = "N")]
    pub dynatemp_exp: f32,

    /// Mirostat: 0 off, 1 Mirostat, 2 Mirostat 2.0.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub mirostat: i32,

    /// Mirostat learning rate (eta).
    #[arg(long = "mirostat-lr", default_value_t = 0.1, value_name = "N")]
    pub mirostat_lr: f32,

    /// Mirostat target entropy (tau).
    #[arg(long = "mirostat-ent", default_value_t = 5.0, value_name = "N")]
    pub mirostat_ent: f32,

    /// adaptive-p: the probability the chosen tokens should average (0.0 to 1.0; negative:
    /// off). The sampler runs where `--samplers` names it (`adaptive_p`), in place of `dist`.
    #[arg(long = "adaptive-target", default_value_t = -1.0, value_name = "N", allow_negative_numbers = true)]
    pub adaptive_target: f32,

    /// adaptive-p: the decay of its moving average; lower reacts faster (0.0 to 0.99).
    #[arg(long = "adaptive-decay", default_value_t = 0.9, value_name = "N")]
    pub adaptive_decay: f32,

    /// A logit bias, `TOKEN_ID+BIAS` or `TOKEN_ID-BIAS` (repeatable).
    #[arg(
        short = 'l',
        long = "logit-bias",
        value_name = "TOKEN_ID(+/-)BIAS",
        allow_hyphen_values = true
    )]
    pub logit_bias: Vec<String>,

    /// A GBNF grammar every request follows unless it gives its own.
    #[arg(long, value_name = "GRAMMAR")]
    pub grammar: Option<String>,

    /// A file holding that grammar.
    #[arg(long = "grammar-file", value_name = "FNAME")]
    pub grammar_file: Option<std::path::PathBuf>,

    /// A JSON schema every request's output follows unless it gives its own.
    #[arg(long = "json-schema", value_name = "SCHEMA")]
    pub json_schema: Option<String>,

    /// A file holding that JSON schema.
    #[arg(long = "json-schema-file", value_name = "FILE")]
    pub json_schema_file: Option<std::path::PathBuf>,
}

impl SamplingArgs {
    /// The requests' defaults these flags give; `n_ctx` resolves `-1` windows.
    pub fn defaults(&self, sse_ping_interval: i64) -> anyhow::Result<Defaults> {
        let escape = |s: &str| {
            if self.escape {
                process_escapes(s)
            } else {
                s.to_string()
            }
        };
        let mut sampling = SamplingParams {
            temperature: self.temperature,
            dynatemp_range: self.dynatemp_range,
            dynatemp_exponent: self.dynatemp_exp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            typical_p: self.typical_p,
            repeat_last_n: self.repeat_last_n,
            repeat_penalty: self.repeat_penalty,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            seed: if self.seed < 0 {
                u32::MAX
            } else {
                self.seed as u32
            },
            top_n_sigma: self.top_n_sigma,
            xtc_probability: self.xtc_probability,
            xtc_threshold: self.xtc_threshold,
            dry_multiplier: self.dry_multiplier,
            dry_base: self.dry_base,
            dry_allowed_length: self.dry_allowed_length,
            dry_penalty_last_n: self.dry_penalty_last_n,
            mirostat: self.mirostat.clamp(0, 2),
            mirostat_tau: self.mirostat_ent,
            mirostat_eta: self.mirostat_lr,
            adaptive_target: self.adaptive_target,
            adaptive_decay: self.adaptive_decay,
            ..SamplingParams::default()
        };
        anyhow::ensure!(
            self.max_n_predict < 0 || self.n_predict <= self.max_n_predict,
            "--n-predict {}: above --max-n-predict {}",
            self.n_predict,
            self.max_n_predict
        );
        anyhow::ensure!(
            self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0,
            "--repeat-penalty {}: must be finite and greater than 0",
            self.repeat_penalty
        );
        if !self.dry_sequence_breaker.is_empty() {
            sampling.dry_sequence_breakers = self
                .dry_sequence_breaker
                .iter()
                .filter(|b| *b != "none")
                .map(|b| escape(b))
                .collect();
        }
        if let Some(names) = &self.samplers {
            sampling.samplers = names
                .split(';')
                .filter(|n| !n.is_empty())
                .map(|n| {
                    SamplerType::from_name(n).with_context(|| {
                        format!("--samplers: unknown or unsupported sampler {n:?}")
                    })
                })
                .collect::<anyhow::Result<_>>()?;
        } else if let Some(letters) = &self.sampling_seq {
            sampling.samplers = letters
                .chars()
                .map(|c| {
                    SamplerType::from_char(c).with_context(|| {
                        format!("--sampling-seq: unknown or unsupported sampler letter {c:?}")
                    })
                })
                .collect::<anyhow::Result<_>>()?;
        }
        for bias in &self.logit_bias {
            sampling.logit_bias.push(parse_logit_bias(bias)?);
        }
        sampling.grammar = self.grammar()?;
        Ok(Defaults {
            sampling,
            n_predict: self.n_predict,
            max_n_predict: self.max_n_predict.max(-1),
            n_keep: self.keep,
            cache_prompt: self.cache_prompt,
            n_cache_reuse: self.cache_reuse,
            stop: self.reverse_prompt.iter().map(|r| escape(r)).collect(),
            ignore_eos: self.ignore_eos,
            n_probs: 0,
            sse_ping_interval,
        })
    }

    /// `--grammar`, `--grammar-file`, or a `--json-schema(-file)` converted to a grammar.
    fn grammar(&self) -> anyhow::Result<Option<String>> {
        let read = |path: &std::path::Path| {
            std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot read the file", path.display()))
        };
        let schema = match (&self.json_schema, &self.json_schema_file) {
            (Some(schema), _) => Some(schema.clone()),
            (None, Some(path)) => Some(read(path)?),
            (None, None) => None,
        };
        if let Some(schema) = schema {
            let grammar = llama_cpp_2::json_schema_to_grammar(&schema)
                .map_err(|e| anyhow::anyhow!("--json-schema: {e}"))?;
            return Ok(Some(grammar));
        }
        Ok(match (&self.grammar, &self.grammar_file) {
            (Some(grammar), _) => Some(grammar.clone()),
            (None, Some(path)) => Some(read(path)?),
            (None, None) => None,
        })
    }
}

/// `-l 15043+1` or `-l 15043-1.5`.
fn parse_logit_bias(text: &str) -> anyhow::Result<(LlamaToken, f32)> {
    let bad = || anyhow::anyhow!("--logit-bias {text}: expected TOKEN_ID+BIAS or TOKEN_ID-BIAS");
    let split = text
        .char_indices()
        .skip(1)
        .find(|&(_, c)| c == '+' || c == '-')
        .map(|(i, _)| i)
        .ok_or_else(bad)?;
    let (id, rest) = text.split_at(split);
    let id: i32 = id.trim().parse().map_err(|_| bad())?;
    let sign = if rest.starts_with('-') { -1.0 } else { 1.0 };
    let bias: f32 = rest[1..].trim().parse().map_err(|_| bad())?;
    if id < 0 {
        bail!("--logit-bias {text}: token ids are not negative");
    }
    Ok((LlamaToken(id), sign * bias))
}

/// llama.cpp's escapes: `\n`, `\r`, `\t`, `\'`, `\"`, `\\` (and `\xHH`).
fn process_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('\'') => out.push('\''),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('x') => {
                let hex: String = chars.clone().take(2).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) if hex.len() == 2 => {
                        chars.nth(1);
                        out.push(char::from(b));
                    }
                    _ => out.push_str("\\x"),
                }
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logit_biases_and_escapes() {
        assert_eq!(
            parse_logit_bias("15043+1").unwrap(),
            (LlamaToken(15043), 1.0)
        );
        assert_eq!(parse_logit_bias("7-2.5").unwrap(), (LlamaToken(7), -2.5));
        assert!(parse_logit_bias("7").is_err());
        assert!(parse_logit_bias("x+1").is_err());
        assert_eq!(process_escapes(r"a\nb\t\\c\x41"), "a\nb\t\\cA");
    }
}
