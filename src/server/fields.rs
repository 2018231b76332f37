//! Reading request fields as llama-server's schema does (`server-schema.cpp`): `null` means
//! absent, aliases are tried in order (`n_predict`, then `max_completion_tokens`, …), numbers
//! read as nlohmann::json reads them (an integer field takes 1.5 as 1 and `true` as 1), limits
//! either clamp or reject, and every mistake is a 400 naming the field in llama-server's words:
//! `Field 'temperature': [json.exception.type_error.302] type must be number, but is string`,
//! `Field 'n': Value must be between 1 <= value <= 4, but got 5`.

use serde_json::{Map, Value};

use super::error::ApiError;
use crate::engine::LoraRequest;
use crate::wording::{LORA_NOT_ARRAY, field_message, type_mismatch};

/// A request body, checked to be a JSON object.
#[derive(Debug, Clone)]
pub struct Body(pub Map<String, Value>);

impl Body {
    /// Parses raw bytes; anything but a JSON object is a 400.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        match parse_value(bytes)? {
            Value::Object(map) => Ok(Self(map)),
            other => Err(ApiError::invalid(format!(
                "[json.exception.type_error.304] cannot use at() with {}",
                type_name(&other)
            ))),
        }
    }

    /// `lora`: an array of `{id, scale}` (see [`lora_entries`]); absent or null, empty.
    pub fn lora(&self) -> Result<LoraRequest, ApiError> {
        match self.get(&["lora"]) {
            None => Ok(LoraRequest::new()),
            Some((_, Value::Array(items))) => Ok(lora_entries(items)),
            Some((n, _)) => Err(field_error(n, LORA_NOT_ARRAY)),
        }
    }

    /// The first present (non-null) field among `names`, with the name it was found under.
    pub fn get(&self, names: &[&'static str]) -> Option<(&'static str, &Value)> {
        names
            .iter()
            .find_map(|&n| self.0.get(n).filter(|v| !v.is_null()).map(|v| (n, v)))
    }

    /// A number read as an integer (truncated; booleans are 0 and 1).
    pub fn int(&self, names: &[&'static str]) -> Result<Option<i64>, ApiError> {
        self.get(names)
            .map(|(n, v)| as_int(v).ok_or_else(|| type_error(n, "number", v)))
            .transpose()
    }

    /// An integer that must lie in `min..=max`.
    pub fn int_in(
        &self,
        names: &[&'static str],
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, ApiError> {
        let value = self.int(names)?;
        self.in_range(names, value, min, max, |x| x.to_string())
    }

    /// A number (booleans are 0 and 1).
    pub fn float(&self, names: &[&'static str]) -> Result<Option<f64>, ApiError> {
        self.get(names)
            .map(|(n, v)| as_float(v).ok_or_else(|| type_error(n, "number", v)))
            .transpose()
    }

    /// A number that must lie in `min..=max` (llama-server prints the bounds as C's `%f`).
    pub fn float_in(
        &self,
        names: &[&'static str],
        min: f64,
        max: f64,
    ) -> Result<Option<f64>, ApiError> {
        let value = self.float(names)?;
        self.in_range(names, value, min, max, |x| format!("{x:.6}"))
    }

    /// llama-server's hard limit on a field: `Field 'x': Value must be between MIN <= value
    /// <= MAX, but got V`, each number printed by `show`.
    fn in_range<T: PartialOrd + Copy>(
        &self,
        names: &[&'static str],
        value: Option<T>,
        min: T,
        max: T,
        show: impl Fn(T) -> String,
    ) -> Result<Option<T>, ApiError> {
        match (value, self.get(names)) {
            (Some(v), Some((name, _))) if !(min..=max).contains(&v) => Err(field_error(
                name,
                format!(
                    "Value must be between {} <= value <= {}, but got {}",
                    show(min),
                    show(max),
                    show(v)
                ),
            )),
            _ => Ok(value),
        }
    }

    /// A JSON boolean (nothing else converts).
    pub fn bool(&self, names: &[&'static str]) -> Result<Option<bool>, ApiError> {
        self.get(names)
            .map(|(n, v)| v.as_bool().ok_or_else(|| type_error(n, "boolean", v)))
            .transpose()
    }

    pub fn str(&self, names: &[&'static str]) -> Result<Option<&str>, ApiError> {
        self.get(names)
            .map(|(n, v)| v.as_str().ok_or_else(|| type_error(n, "string", v)))
            .transpose()
    }

    /// `stop`: a string, or an array whose strings count (empty ones skipped; anything else in
    /// it is an error); other types are ignored, as llama-server does.
    pub fn stop_strings(&self, names: &[&'static str]) -> Result<Option<Vec<String>>, ApiError> {
        match self.get(names) {
            None => Ok(None),
            Some((_, Value::String(s))) => Ok(Some(vec![s.clone()])),
            Some((n, Value::Array(items))) => items
                .iter()
                .filter(|v| v.as_str() != Some(""))
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| type_error(n, "string", v))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Ok(None),
        }
    }

    /// An array of strings.
    pub fn strings(&self, names: &[&'static str]) -> Result<Option<Vec<String>>, ApiError> {
        match self.get(names) {
            None => Ok(None),
            Some((n, Value::Array(items))) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| type_error(n, "string", v))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some((n, v)) => Err(type_error(n, "array", v)),
        }
    }
}

/// Parses raw bytes as any JSON value, with nlohmann::json's words for a syntax error.
pub fn parse_value(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice::<Value>(bytes)
        .map_err(|e| ApiError::invalid(parse_error(&e, bytes.is_empty())))
}

/// llama-server's `parse_lora_request`, which never fails: an entry's `id` is -1 unless it is
/// a number, its `scale` 0 unless it is a number (booleans count as 0 and 1, as nlohmann reads
/// them), and a later entry for the same id wins.
pub fn lora_entries(items: &[Value]) -> LoraRequest {
    items
        .iter()
        .map(|entry| {
            let id = entry.get("id").and_then(as_int).unwrap_or(-1);
            let scale = entry.get("scale").and_then(as_float).unwrap_or(0.0);
            (id, scale as f32)
        })
        .collect()
}

/// nlohmann::json's integer reading: numbers (floats truncated) and booleans.
pub fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|u| u.min(i64::MAX as u64) as i64))
            .or_else(|| n.as_f64().map(|f| f as i64)),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// nlohmann::json's floating-point reading: numbers and booleans.
pub fn as_float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

pub use crate::wording::type_name;

/// `Field 'x': [json.exception.type_error.302] type must be T, but is U`.
pub fn type_error(field: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::invalid(field_message(field, type_mismatch(expected, got)))
}

/// `Field 'x': WHAT`, llama-server's wrapping of every field's error.
pub fn field_error(field: &str, what: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(field_message(field, what))
}

/// A body that is not JSON, worded as nlohmann::json's parse errors.
fn parse_error(e: &serde_json::Error, empty: bool) -> String {
    if empty {
        return "[json.exception.parse_error.101] parse error at line 1, column 1: attempting to \
                parse an empty input; check that your input is not empty"
            .into();
    }
    format!(
        "[json.exception.parse_error.101] parse error at line {}, column {}: syntax error while \
         parsing value - {e}",
        e.line(),
        e.column()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Body {
        Body(v.as_object().unwrap().clone())
    }

    #[test]
    fn numbers_read_as_llama_server_reads_them() {
        let b = body(json!({ "a": 1.9, "b": true, "c": "x", "d": null, "e": 3 }));
        assert_eq!(b.int(&["a"]).unwrap(), Some(1));
        assert_eq!(b.int(&["b"]).unwrap(), Some(1));
        assert_eq!(b.int(&["d"]).unwrap(), None, "null is absent");
        assert_eq!(b.int(&["d", "e"]).unwrap(), Some(3), "aliases in order");
        assert_eq!(
            b.int(&["c"]).unwrap_err().message,
            "Field 'c': [json.exception.type_error.302] type must be number, but is string"
        );
        assert_eq!(
            b.bool(&["e"]).unwrap_err().message,
            "Field 'e': [json.exception.type_error.302] type must be boolean, but is number"
        );
        assert_eq!(
            b.int_in(&["e"], 1, 2).unwrap_err().message,
            "Field 'e': Value must be between 1 <= value <= 2, but got 3"
        );
        assert_eq!(
            b.float_in(&["a"], 0.0, 0.99).unwrap_err().message,
            "Field 'a': Value must be between 0.000000 <= value <= 0.990000, but got 1.900000"
        );
    }

    #[test]
    fn bodies_that_are_not_objects() {
        assert_eq!(
            Body::parse(b"[1]").unwrap_err().message,
            "[json.exception.type_error.304] cannot use at() with array"
        );
        assert!(
            Body::parse(b"{x")
                .unwrap_err()
                .message
                .starts_with("[json.exception.parse_error.101] parse error at line 1, column 2")
        );
        assert!(
            Body::parse(b"")
                .unwrap_err()
                .message
                .contains("empty input")
        );
    }

    #[test]
    fn stop_strings_take_llama_servers_shapes() {
        let b = body(json!({ "s": "x", "a": ["y", "", "z"], "n": 5, "bad": ["y", 1] }));
        assert_eq!(b.stop_strings(&["s"]).unwrap(), Some(vec!["x".into()]));
        assert_eq!(
            b.stop_strings(&["a"]).unwrap(),
            Some(vec!["y".into(), "z".into()])
        );
        assert_eq!(b.stop_strings(&["n"]).unwrap(), None);
        assert!(b.stop_strings(&["bad"]).is_err());
    }
}
