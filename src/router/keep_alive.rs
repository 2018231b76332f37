//! Ollama's `keep_alive`: how long a model stays loaded after a request. A number is seconds;
//! a string is a Go duration (`"5m"`, `"1h30m"`, `"250ms"`, `"0"`); a negative value keeps the
//! model until the router stops or needs its room. `0` unloads it when its requests end, and a
//! request with nothing to generate and `keep_alive: 0` unloads it at once.

use std::time::Duration;

use serde_json::Value;

/// How long the model stays loaded once idle; `None`: until the router stops or needs the room.
pub type KeepAlive = Option<Duration>;

/// The body's `keep_alive`, if it has one (`Err`: Ollama's words for a value it refuses).
pub fn of(body: &Value) -> Result<Option<KeepAlive>, String> {
    let seconds = match body.get("keep_alive") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => go_duration(s)?,
        Some(other) => return Err(format!("invalid keep_alive {other}")),
    };
    Ok(Some(
        (seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(1e12))),
    ))
}

/// Go's `time.ParseDuration`, in seconds: a sign, then numbers each with its unit.
fn go_duration(text: &str) -> Result<f64, String> {
    let invalid = || format!("time: invalid duration \"{text}\"");
    let (sign, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0.0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration \"{text}\""))?;
        let value: f64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            unit => {
                return Err(format!(
                    "time: unknown unit \"{unit}\" in duration \"{text}\""
                ));
            }
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Ok(sign * total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_and_go_durations() {
        let secs = |s: f64| Ok(Some(Some(Duration::from_secs_f64(s))));
        let cases = [
            (json!({}), Ok(None)),
            (json!({ "keep_alive": null }), Ok(None)),
            (json!({ "keep_alive": 0 }), secs(0.0)),
            (json!({ "keep_alive": 30 }), secs(30.0)),
            (json!({ "keep_alive": 1.5 }), secs(1.5)),
            (json!({ "keep_alive": -1 }), Ok(Some(None))),
            (json!({ "keep_alive": "0" }), secs(0.0)),
            (json!({ "keep_alive": "5m" }), secs(300.0)),
            (json!({ "keep_alive": "1h30m" }), secs(5400.0)),
            (json!({ "keep_alive": "250ms" }), secs(0.25)),
            (json!({ "keep_alive": "1.5s" }), secs(1.5)),
            (json!({ "keep_alive": "-1m" }), Ok(Some(None))),
        ];
        for (body, want) in cases {
            assert_eq!(of(&body), want, "{body}");
        }
        for (bad, words) in [
            ("10", "missing unit"),
            ("5x", "unknown unit \"x\""),
            ("", "invalid duration"),
            ("m", "invalid duration"),
        ] {
            let err = of(&json!({ "keep_alive": bad })).unwrap_err();
            assert!(err.contains(words), "{bad:?}: {err}");
        }
        assert!(of(&json!({ "keep_alive": true })).is_err());
    }
}
