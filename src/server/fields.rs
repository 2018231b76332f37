//! Reading request fields with llama-server's rules: `null` means absent, and a value of the
//! wrong type is a 400 naming the field (`Field 'temperature': type must be number, but is
//! string`). Aliases are tried in order (`n_predict`, then `max_tokens`, …).

use serde_json::{Map, Value};

use super::error::ApiError;

/// A request body, checked to be a JSON object.
#[derive(Debug)]
pub struct Body(pub Map<String, Value>);

impl Body {
    /// Parses raw bytes; anything but a JSON object is a 400.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::invalid("request body must be a JSON object")),
            Err(e) => Err(ApiError::invalid(format!(
                "Failed to parse the request body as JSON: {e}"
            ))),
        }
    }

    /// The first present (non-null) field among `names`, with the name it was found under.
    pub fn get(&self, names: &[&'static str]) -> Option<(&'static str, &Value)> {
        names
            .iter()
            .find_map(|&n| self.0.get(n).filter(|v| !v.is_null()).map(|v| (n, v)))
    }

    pub fn f32(&self, names: &[&'static str]) -> Result<Option<f32>, ApiError> {
        self.get(names)
            .map(|(n, v)| {
                v.as_f64()
                    .map(|x| x as f32)
                    .ok_or_else(|| type_error(n, "number", v))
            })
            .transpose()
    }

    pub fn i64(&self, names: &[&'static str]) -> Result<Option<i64>, ApiError> {
        self.get(names)
            .map(|(n, v)| {
                v.as_i64()
                    .or_else(|| v.as_f64().filter(|x| x.fract() == 0.0).map(|x| x as i64))
                    .ok_or_else(|| type_error(n, "integer", v))
            })
            .transpose()
    }

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

    /// A string or an array of strings (`stop`).
    pub fn strings(&self, names: &[&'static str]) -> Result<Vec<String>, ApiError> {
        match self.get(names) {
            None => Ok(Vec::new()),
            Some((_, Value::String(s))) => Ok(vec![s.clone()]),
            Some((n, Value::Array(items))) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| type_error(n, "array of strings", v))
                })
                .collect(),
            Some((n, v)) => Err(type_error(n, "string or array of strings", v)),
        }
    }
}

/// JSON's name for a value's type, as nlohmann::json (llama-server) words it.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub fn type_error(field: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::invalid(format!(
        "Field '{field}': type must be {expected}, but is {}",
        type_name(got)
    ))
}
