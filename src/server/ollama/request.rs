//! Ollama's requests mapped onto the bodies the OpenAI and llama-server routes read, so that
//! their schema, templates and checks apply unchanged: `/api/chat`'s messages become the chat
//! route's (`thinking` its `reasoning_content`, `tool_calls` with object arguments OpenAI's
//! with JSON text), `/api/generate`'s prompt a one-turn chat (or, `raw`, the completion
//! route's prompt), `format` a response format or JSON schema, and `options` llama-server's
//! sampling fields. What this server cannot do is refused, naming the field: images (no
//! multimodal model), a per-request `template` or `suffix`, `logprobs`.

use serde_json::{Map, Value, json};

use super::super::error::ApiError;
use super::super::fields::{Body, field_error, type_error};

/// `options` that are llama-server's sampling fields under another name, or the same one.
const SAMPLING_OPTIONS: [(&str, &str); 15] = [
    ("num_predict", "n_predict"),
    ("num_keep", "n_keep"),
    ("temperature", "temperature"),
    ("top_k", "top_k"),
    ("top_p", "top_p"),
    ("min_p", "min_p"),
    ("typical_p", "typical_p"),
    ("repeat_last_n", "repeat_last_n"),
    ("repeat_penalty", "repeat_penalty"),
    ("presence_penalty", "presence_penalty"),
    ("frequency_penalty", "frequency_penalty"),
    ("seed", "seed"),
    ("mirostat", "mirostat"),
    ("mirostat_tau", "mirostat_tau"),
    ("mirostat_eta", "mirostat_eta"),
];

/// `options` that Ollama applies when it loads a model. Here the command line loaded it, so
/// they change nothing, as for a request to an Ollama model already loaded with them.
const LOAD_OPTIONS: [&str; 12] = [
    "num_ctx",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "num_thread",
    "use_mmap",
    "use_mlock",
    "low_vram",
    "f16_kv",
    "vocab_only",
    "numa",
    "logits_all",
];

/// How the answer is written: through the chat template, or the prompt as it is (`raw`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Chat,
    Raw,
}

/// The chat route's body for an `/api/chat` request.
pub fn chat_body(body: &Body) -> Result<Body, ApiError> {
    let mut messages = Vec::new();
    match body.get(&["messages"]) {
        None | Some((_, Value::Null)) => {}
        Some((_, Value::Array(list))) => {
            for (i, message) in list.iter().enumerate() {
                messages.push(convert_message(message, i)?);
            }
        }
        Some((_, other)) => return Err(type_error("messages", "array", other)),
    }
    let mut chat = common(body, Route::Chat)?;
    chat.insert("messages".into(), messages.into());
    if let Some((_, tools)) = body.get(&["tools"]).filter(|(_, t)| !t.is_null()) {
        chat.insert("tools".into(), tools.clone());
    }
    Ok(Body(chat))
}

/// The body for an `/api/generate` request with a prompt: a chat of its `system` and `prompt`
/// through the template, or with `raw` the completion route's prompt as it is.
pub fn generate_body(body: &Body, prompt: &str) -> Result<(Route, Body), ApiError> {
    for field in ["suffix", "template"] {
        if body.str(&[field])?.is_some_and(|s| !s.is_empty()) {
            return Err(field_error(
                field,
                match field {
                    "suffix" => "not supported here: fill in the middle with /infill",
                    _ => "not supported: the server's chat template (--chat-template) applies",
                },
            ));
        }
    }
    refuse_images(body.0.get("images"), "images")?;
    let route = if body.bool(&["raw"])?.unwrap_or(false) {
        Route::Raw
    } else {
        Route::Chat
    };
    let mut out = common(body, route)?;
    match route {
        Route::Raw => {
            out.insert("prompt".into(), prompt.into());
        }
        Route::Chat => {
            let mut messages = Vec::new();
            if let Some(system) = body.str(&["system"])?.filter(|s| !s.is_empty()) {
                messages.push(json!({ "role": "system", "content": system }));
            }
            messages.push(json!({ "role": "user", "content": prompt }));
            out.insert("messages".into(), messages.into());
        }
    }
    Ok((route, Body(out)))
}

/// `/api/generate`'s `context`: the tokens of an earlier answer's conversation to go on from.
pub fn context(body: &Body) -> Result<Vec<i32>, ApiError> {
    match body.get(&["context"]) {
        None | Some((_, Value::Null)) => Ok(Vec::new()),
        Some((_, Value::Array(items))) => items
            .iter()
            .map(|v| {
                v.as_i64()
                    .and_then(|t| i32::try_from(t).ok())
                    .ok_or_else(|| type_error("context", "array of token ids", v))
            })
            .collect(),
        Some((_, other)) => Err(type_error("context", "array", other)),
    }
}

/// `stream`, which Ollama turns on unless the request turns it off.
pub fn stream(body: &Body) -> Result<bool, ApiError> {
    Ok(body.bool(&["stream"])?.unwrap_or(true))
}

/// `logprobs` and `top_logprobs`: with `logprobs: true`, how many alternatives each token's
/// entry lists (0 to 20, as Ollama checks it even without `logprobs`).
pub fn logprobs(body: &Body) -> Result<Option<usize>, ApiError> {
    let top = body.int(&["top_logprobs"])?.unwrap_or(0);
    let top = usize::try_from(top)
        .ok()
        .filter(|&n| n <= 20)
        .ok_or_else(|| ApiError::invalid("top_logprobs must be between 0 and 20"))?;
    Ok((body.bool(&["logprobs"])? == Some(true)).then_some(top))
}

/// What both routes share: `stream`, `format`, `think`, `options`, and `logprobs` (the
/// engine's `n_probs`: at least the chosen token's).
fn common(body: &Body, route: Route) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    if let Some(top) = logprobs(body)? {
        out.insert("n_probs".into(), top.max(1).into());
    }
    out.insert("stream".into(), stream(body)?.into());
    if let Some((_, format)) = body.get(&["format"]) {
        insert_format(&mut out, format, route)?;
    }
    if let Some((_, think)) = body.get(&["think"]) {
        match think {
            Value::Null => {}
            Value::Bool(on) => {
                out.insert(
                    "chat_template_kwargs".into(),
                    json!({ "enable_thinking": on }),
                );
            }
            // gpt-oss's levels.
            Value::String(level) if ["low", "medium", "high"].contains(&level.as_str()) => {
                out.insert("reasoning_effort".into(), level.as_str().into());
            }
            other => return Err(type_error("think", "boolean or low|medium|high", other)),
        }
    }
    match body.get(&["options"]) {
        None | Some((_, Value::Null)) => {}
        Some((_, Value::Object(options))) => insert_options(&mut out, options)?,
        Some((_, other)) => return Err(type_error("options", "object", other)),
    }
    Ok(out)
}

/// `format`: `"json"` for any JSON object, or a JSON schema; `""` for free text.
fn insert_format(
    out: &mut Map<String, Value>,
    format: &Value,
    route: Route,
) -> Result<(), ApiError> {
    let schema = match format {
        Value::Null => return Ok(()),
        Value::String(s) if s.is_empty() => return Ok(()),
        Value::String(s) if s == "json" => json!({ "type": "object" }),
        schema @ Value::Object(_) => schema.clone(),
        other => {
            return Err(type_error(
                "format",
                "\"json\" or a JSON schema object",
                other,
            ));
        }
    };
    match route {
        Route::Chat => {
            let format = json!({ "type": "json_schema", "json_schema": { "schema": schema } });
            out.insert("response_format".into(), format);
        }
        Route::Raw => {
            out.insert("json_schema".into(), schema);
        }
    }
    Ok(())
}

/// `options`: sampling ones as llama-server's fields, load-time ones accepted as they change
/// nothing here, and any other refused by name.
fn insert_options(
    out: &mut Map<String, Value>,
    options: &Map<String, Value>,
) -> Result<(), ApiError> {
    for (name, value) in options {
        if value.is_null() || LOAD_OPTIONS.contains(&name.as_str()) {
            continue;
        }
        if name == "stop" {
            out.insert("stop".into(), value.clone());
            continue;
        }
        let Some((_, field)) = SAMPLING_OPTIONS.iter().find(|(o, _)| o == name) else {
            return Err(field_error(
                &format!("options.{name}"),
                "not a sampling option this server knows",
            ));
        };
        // Ollama's -2 is "until the context is full", where generation stops anyway.
        let value = match (name.as_str(), value.as_i64()) {
            ("num_predict", Some(n)) if n < -1 => json!(-1),
            _ => value.clone(),
        };
        out.insert((*field).into(), value);
    }
    Ok(())
}

/// One Ollama message as the chat route's.
fn convert_message(message: &Value, i: usize) -> Result<Value, ApiError> {
    let path = format!("messages[{i}]");
    let Value::Object(fields) = message else {
        return Err(type_error(&path, "object", message));
    };
    refuse_images(fields.get("images"), &format!("{path}.images"))?;
    let role = match fields.get("role") {
        Some(Value::String(role)) => role.as_str(),
        Some(other) => return Err(type_error(&format!("{path}.role"), "string", other)),
        None => return Err(field_error(&format!("{path}.role"), "is required")),
    };
    let mut out = Map::new();
    out.insert("role".into(), role.into());
    let content = match fields.get("content") {
        None | Some(Value::Null) => Value::String(String::new()),
        Some(text @ Value::String(_)) => text.clone(),
        Some(other) => return Err(type_error(&format!("{path}.content"), "string", other)),
    };
    out.insert("content".into(), content);
    if let Some(thinking) = fields.get("thinking").and_then(Value::as_str)
        && !thinking.is_empty()
    {
        out.insert("reasoning_content".into(), thinking.into());
    }
    if let Some(name) = fields.get("tool_name").and_then(Value::as_str) {
        out.insert("name".into(), name.into());
    }
    match fields.get("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(calls)) => {
            let calls = calls
                .iter()
                .enumerate()
                .map(|(j, call)| convert_tool_call(call, &format!("{path}.tool_calls[{j}]"), j))
                .collect::<Result<Vec<_>, _>>()?;
            out.insert("tool_calls".into(), calls.into());
        }
        Some(other) => {
            return Err(type_error(&format!("{path}.tool_calls"), "array", other));
        }
    }
    Ok(Value::Object(out))
}

/// `{"function": {"name", "arguments": {…}}}` as OpenAI's call, with its arguments as text.
fn convert_tool_call(call: &Value, path: &str, index: usize) -> Result<Value, ApiError> {
    let function = call.get("function").unwrap_or(&Value::Null);
    let Some(name) = function.get("name").and_then(Value::as_str) else {
        return Err(field_error(&format!("{path}.function.name"), "is required"));
    };
    let arguments = match function.get("arguments") {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(text)) => text.clone(),
        Some(object) => object.to_string(),
    };
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .map_or_else(|| format!("call_{index}"), String::from);
    Ok(json!({
        "id": id,
        "type": "function",
        "function": { "name": name, "arguments": arguments },
    }))
}

/// Images need a multimodal model, which this server does not load.
fn refuse_images(images: Option<&Value>, path: &str) -> Result<(), ApiError> {
    match images {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) if items.is_empty() => Ok(()),
        Some(_) => Err(field_error(
            path,
            "not supported: this server has no multimodal model",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Body {
        Body(value.as_object().unwrap().clone())
    }

    #[test]
    fn a_chat_maps_onto_the_chat_route() {
        let chat = chat_body(&body(json!({
            "model": "m",
            "messages": [
                { "role": "system", "content": "be brief" },
                { "role": "user", "content": "hi" },
                {
                    "role": "assistant",
                    "content": "",
                    "thinking": "they said hi",
                    "tool_calls": [{ "function": { "name": "f", "arguments": { "a": 1 } } }],
                },
                { "role": "tool", "content": "42", "tool_name": "f" },
            ],
            "tools": [{ "type": "function", "function": { "name": "f" } }],
            "format": "json",
            "think": true,
            "options": { "num_predict": -2, "temperature": 0, "stop": ["x"], "num_ctx": 8192 },
        })))
        .unwrap()
        .0;
        assert_eq!(chat["stream"], true, "Ollama streams unless told not to");
        assert_eq!(chat["messages"][2]["reasoning_content"], "they said hi");
        let call = &chat["messages"][2]["tool_calls"][0];
        assert_eq!(call["function"]["arguments"], "{\"a\":1}");
        assert_eq!(call["id"], "call_0");
        assert_eq!(chat["messages"][3]["name"], "f");
        assert_eq!(chat["tools"][0]["function"]["name"], "f");
        assert_eq!(
            chat["response_format"]["json_schema"]["schema"]["type"],
            "object"
        );
        assert_eq!(chat["chat_template_kwargs"]["enable_thinking"], true);
        assert_eq!(chat["n_predict"], -1);
        assert_eq!(chat["temperature"], 0);
        assert_eq!(chat["stop"], json!(["x"]));
        assert!(
            !chat.contains_key("num_ctx"),
            "a load-time option changes nothing"
        );
    }

    #[test]
    fn generate_is_a_one_turn_chat_or_raw() {
        let request = body(json!({ "system": "s", "prompt": "p", "stream": false }));
        let (route, chat) = generate_body(&request, "p").unwrap();
        assert_eq!(route, Route::Chat);
        assert_eq!(
            chat.0["messages"],
            json!([
                { "role": "system", "content": "s" },
                { "role": "user", "content": "p" },
            ])
        );
        assert_eq!(chat.0["stream"], false);
        let raw = body(json!({ "prompt": "p", "raw": true, "format": { "type": "object" } }));
        let (route, completion) = generate_body(&raw, "p").unwrap();
        assert_eq!(route, Route::Raw);
        assert_eq!(completion.0["prompt"], "p");
        assert_eq!(completion.0["json_schema"], json!({ "type": "object" }));
        assert_eq!(
            context(&body(json!({ "context": [1, 2] }))).unwrap(),
            [1, 2]
        );
    }

    #[test]
    fn what_cannot_be_done_is_refused_by_name() {
        let refused = |value: Value| {
            let request = body(value);
            let error = match request.0.get("messages") {
                Some(_) => chat_body(&request).unwrap_err(),
                None => generate_body(&request, "p").unwrap_err(),
            };
            error.message
        };
        let cases = [
            (
                json!({ "messages": [{ "role": "user", "content": "hi", "images": ["aGk="] }] }),
                "messages[0].images",
            ),
            (json!({ "prompt": "p", "images": ["aGk="] }), "'images'"),
            (json!({ "prompt": "p", "suffix": "s" }), "'suffix'"),
            (
                json!({ "prompt": "p", "template": "{{ .Prompt }}" }),
                "'template'",
            ),
            (
                json!({ "prompt": "p", "options": { "tfs_z": 1 } }),
                "options.tfs_z",
            ),
            (json!({ "messages": "hi" }), "'messages'"),
            (json!({ "prompt": "p", "format": 1 }), "'format'"),
            (json!({ "prompt": "p", "think": "max" }), "'think'"),
            (
                json!({ "prompt": "p", "logprobs": true, "top_logprobs": 21 }),
                "top_logprobs must be between 0 and 20",
            ),
            (
                json!({ "prompt": "p", "top_logprobs": -1 }),
                "top_logprobs must be between 0 and 20",
            ),
        ];
        for (request, named) in cases {
            let message = refused(request.clone());
            assert!(message.contains(named), "{request}: {message}");
        }
        assert!(context(&body(json!({ "context": ["a"] }))).is_err());
    }
}
