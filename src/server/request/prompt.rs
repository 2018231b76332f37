//! A request's `prompt`, as llama-server reads it: a string, token ids, ids mixed with strings,
//! `{"prompt_string": …}`, or an array of those (several prompts, several results).

use llama_cpp_2::token::LlamaToken;
use serde_json::Value;

use crate::engine::LoadedModel;
use crate::server::error::ApiError;

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
