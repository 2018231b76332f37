//! Per-request ceilings, checked at the edge before a request reaches the engine: a request
//! can ask for nothing whose cost is unbounded. `n_predict` follows llama-server's `-n` (the
//! default, and a ceiling that larger or unlimited requests are cut to) under gguf-serve's
//! `--max-n-predict` (a hard limit: more is a 400; unlimited is capped to it). Stop strings are
//! bounded in number and length (the engine matches each against the generated text's tail at
//! every token, in time quadratic in its length), `logit_bias` by the vocabulary's size, and
//! `n_probs` is cut to the vocabulary as llama-server cuts it.

use serde_json::Value;

use crate::server::error::ApiError;
use crate::server::fields::{Body, field_error};
use crate::wording::limits as words;

/// Stop strings a request may give (the server's `-r` and a chat format's own are not counted).
pub const MAX_STOP_STRINGS: usize = 64;
/// Bytes a request's stop string may hold.
pub const MAX_STOP_BYTES: usize = 256;

/// The fields `n_predict` is read from, in llama-server's order.
const N_PREDICT: &[&str] = &["n_predict", "max_completion_tokens", "max_tokens"];

/// The request's `n_predict` (or its aliases), over the server's `-n` and `--max-n-predict`.
pub fn n_predict(body: &Body, server_n: i32, max_n_predict: i32) -> Result<i32, ApiError> {
    let ceiling = if max_n_predict >= 0 {
        i64::from(max_n_predict)
    } else {
        i64::from(i32::MAX)
    };
    let asked = body.int_in(N_PREDICT, -1, ceiling)?.map(|n| n as i32);
    let n = effective_n_predict(asked, server_n, max_n_predict);
    if let Some(asked) = asked
        && asked > n
        && asked >= 0
    {
        tracing::warn!("n_predict = {asked} exceeds server configuration, setting to {n}");
    }
    Ok(n)
}

/// Tokens a request may generate (-1: until the context is full). llama-server's `-n N` is the
/// default and, when positive, a ceiling: a request asking more gets N, and an unlimited one
/// (-1) stops after N too (`has_budget`). `--max-n-predict M` (checked before this, as a hard
/// limit) caps what is still unlimited to M.
pub fn effective_n_predict(asked: Option<i32>, server_n: i32, max_n_predict: i32) -> i32 {
    let n = asked.unwrap_or(server_n);
    let n = match server_n {
        s if s >= 0 && n < 0 => s,
        s if s > 0 && n > s => s,
        _ => n,
    };
    if n < 0 && max_n_predict >= 0 {
        max_n_predict
    } else {
        n
    }
}

/// Stop strings within [`MAX_STOP_STRINGS`] and [`MAX_STOP_BYTES`].
pub fn check_stops(field: &str, stops: &[String]) -> Result<(), ApiError> {
    if stops.len() > MAX_STOP_STRINGS {
        return Err(field_error(
            field,
            words::too_many_stops(MAX_STOP_STRINGS, stops.len()),
        ));
    }
    if let Some(long) = stops.iter().find(|s| s.len() > MAX_STOP_BYTES) {
        return Err(field_error(
            field,
            words::stop_too_long(MAX_STOP_BYTES, long.len()),
        ));
    }
    Ok(())
}

/// `logit_bias` with no more entries than the vocabulary has tokens (a longer list can only
/// repeat tokens; each entry costs the sampler at every step).
pub fn check_logit_bias_len(n_vocab: usize, entries: usize) -> Result<(), ApiError> {
    if entries > n_vocab {
        return Err(field_error(
            "logit_bias",
            words::logit_bias_too_large(n_vocab, entries),
        ));
    }
    Ok(())
}

/// How many entries a `logit_bias` value holds, before any is read.
pub fn logit_bias_entries(value: &Value) -> usize {
    match value {
        Value::Array(items) => items.len(),
        Value::Object(map) => map.len(),
        _ => 0,
    }
}

/// `n_probs` (or `logprobs`): negative is 0, and no more than the vocabulary, as llama-server
/// lists at most `min(n_vocab, n_probs)` tokens.
pub fn n_probs(asked: Option<i64>, default: usize, n_vocab: usize) -> usize {
    asked.map_or(default, |n| n.max(0) as usize).min(n_vocab)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn n_predict_under_the_servers_flags() {
        // (asked, -n, --max-n-predict, tokens the request may generate)
        let cases = [
            (None, -1, -1, -1),
            (Some(100), -1, -1, 100),
            (Some(-1), -1, -1, -1),
            (None, 50, -1, 50),
            (Some(100), 50, -1, 50),
            (Some(10), 50, -1, 10),
            (Some(-1), 50, -1, 50),
            (Some(0), 50, -1, 0),
            (None, 0, -1, 0),
            (Some(-1), 0, -1, 0),
            (None, -1, 200, 200),
            (Some(-1), -1, 200, 200),
            (Some(150), -1, 200, 150),
            (None, 50, 200, 50),
            (Some(-1), 50, 200, 50),
            (Some(0), -1, 0, 0),
        ];
        for (asked, server_n, max, want) in cases {
            assert_eq!(
                effective_n_predict(asked, server_n, max),
                want,
                "asked {asked:?}, -n {server_n}, --max-n-predict {max}"
            );
        }
    }

    #[test]
    fn n_predict_over_the_ceiling_is_refused() {
        let body = Body(json!({"max_tokens": 201}).as_object().unwrap().clone());
        assert_eq!(
            n_predict(&body, -1, 200).unwrap_err().message,
            "Field 'max_tokens': Value must be between -1 <= value <= 200, but got 201"
        );
        let body = Body(json!({"n_predict": 200}).as_object().unwrap().clone());
        assert_eq!(n_predict(&body, -1, 200).unwrap(), 200);
    }

    #[test]
    fn stops_are_bounded() {
        let many: Vec<String> = (0..=MAX_STOP_STRINGS).map(|i| i.to_string()).collect();
        assert_eq!(
            check_stops("stop", &many).unwrap_err().message,
            "Field 'stop': at most 64 stop strings are accepted, but got 65"
        );
        assert!(check_stops("stop", &many[..MAX_STOP_STRINGS]).is_ok());
        let long = vec!["x".repeat(MAX_STOP_BYTES + 1)];
        assert_eq!(
            check_stops("stop", &long).unwrap_err().message,
            "Field 'stop': a stop string may be at most 256 bytes long, but one is 257 bytes"
        );
        assert!(check_stops("stop", &["x".repeat(MAX_STOP_BYTES)]).is_ok());
    }

    #[test]
    fn logit_bias_and_n_probs_within_the_vocabulary() {
        assert!(check_logit_bias_len(10, 10).is_ok());
        assert_eq!(
            check_logit_bias_len(10, 11).unwrap_err().message,
            "Field 'logit_bias': at most 10 entries (the vocabulary's size) are accepted, but got 11"
        );
        assert_eq!(logit_bias_entries(&json!([[1, 2.0], [2, 1.0]])), 2);
        assert_eq!(logit_bias_entries(&json!({"1": 2.0})), 1);
        assert_eq!(logit_bias_entries(&json!(5)), 0);
        // (asked, server default, n_vocab, n_probs)
        for (asked, default, n_vocab, want) in [
            (None, 0, 100, 0),
            (Some(5), 0, 100, 5),
            (Some(-3), 0, 100, 0),
            (Some(i64::MAX), 0, 100, 100),
            (None, 7, 100, 7),
        ] {
            assert_eq!(n_probs(asked, default, n_vocab), want, "{asked:?}");
        }
    }
}
