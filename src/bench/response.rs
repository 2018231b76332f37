//! Reads what a server answered: llama-server's `/completion` JSON (`content`, `tokens_predicted`,
//! `timings`), OpenAI chat completions (`choices`, `usage`) and the streamed chunks of both. Each
//! server fills a different subset, so every count has a fallback chain, ending with counting the
//! streamed chunks that carried text. The answer's text is kept too: a conversation sends it back
//! as its history.

use serde_json::Value;

use super::{Endpoint, ServerTimings};

/// Token counts, timings and text of one finished response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseTokens {
    pub output_tokens: u64,
    pub prompt_tokens: Option<u64>,
    pub cached_tokens: Option<u64>,
    pub timings: Option<ServerTimings>,
    /// The answer: `/completion`'s `content`, or the chat message's `content` (reasoning and tool
    /// calls left out, as a client's history leaves them out).
    pub content: String,
}

/// The counts a JSON object states about itself; `None` where it is silent.
#[derive(Debug, Clone, Default, PartialEq)]
struct Stated {
    output_tokens: Option<u64>,
    prompt_tokens: Option<u64>,
    cached_tokens: Option<u64>,
    timings: Option<ServerTimings>,
}

impl Stated {
    fn of(v: &Value) -> Self {
        let timings = v.get("timings").and_then(ServerTimings::from_json);
        let usage = v.get("usage");
        let count = |v: Option<&Value>| v.and_then(Value::as_u64);
        Self {
            output_tokens: count(usage.and_then(|u| u.get("completion_tokens")))
                .or_else(|| count(v.get("tokens_predicted")))
                .or_else(|| timings.as_ref().map(|t| t.predicted_n)),
            prompt_tokens: count(usage.and_then(|u| u.get("prompt_tokens")))
                .or_else(|| count(v.get("tokens_evaluated"))),
            cached_tokens: count(
                usage.and_then(|u| u.pointer("/prompt_tokens_details/cached_tokens")),
            )
            .or_else(|| timings.as_ref().map(|t| t.cache_n)),
            timings,
        }
    }

    /// Later chunks refine earlier ones; a field a later chunk omits keeps its earlier value.
    fn merge(&mut self, later: Stated) {
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.prompt_tokens = later.prompt_tokens.or(self.prompt_tokens);
        self.cached_tokens = later.cached_tokens.or(self.cached_tokens);
        self.timings = later.timings.or(self.timings.take());
    }
}

/// The message of an error object (`{"error": {"message": …}}` or `{"error": "…"}`), if `v` is one.
pub fn error_message(v: &Value) -> Option<String> {
    let error = v.get("error")?;
    Some(match error.get("message").and_then(Value::as_str) {
        Some(message) => message.to_owned(),
        None => error
            .as_str()
            .map_or_else(|| error.to_string(), str::to_owned),
    })
}

/// The message to report for a non-2xx response: the server's error message if it sent one.
pub fn http_error(status: u16, body: &str) -> String {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| error_message(&v))
        .unwrap_or_else(|| body.trim().chars().take(200).collect());
    format!("HTTP {status}: {message}")
}

/// Reads a whole (non-streamed) response body.
pub fn parse_response(endpoint: Endpoint, body: &str) -> Result<ResponseTokens, String> {
    let v: Value =
        serde_json::from_str(body).map_err(|err| format!("response is not JSON: {err}"))?;
    if let Some(message) = error_message(&v) {
        return Err(message);
    }
    let has_text = match endpoint {
        Endpoint::Completion => v.get("content").is_some(),
        Endpoint::Chat => v.pointer("/choices/0/message").is_some(),
    };
    if !has_text {
        return Err(format!(
            "response has no {}",
            match endpoint {
                Endpoint::Completion => "`content`",
                Endpoint::Chat => "`choices[0].message`",
            }
        ));
    }
    let stated = Stated::of(&v);
    let content = match endpoint {
        Endpoint::Completion => v.get("content"),
        Endpoint::Chat => v.pointer("/choices/0/message/content"),
    };
    Ok(ResponseTokens {
        output_tokens: stated.output_tokens.unwrap_or(0),
        prompt_tokens: stated.prompt_tokens,
        cached_tokens: stated.cached_tokens,
        timings: stated.timings,
        content: content
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    })
}

/// Folds the events of one streamed response.
#[derive(Debug)]
pub struct StreamFold {
    endpoint: Endpoint,
    /// Chunks that carried generated text: the token count of last resort.
    text_chunks: u64,
    stated: Stated,
    /// The answer's text so far.
    content: String,
    /// The chunk that ends the stream arrived (`stop: true`, a `finish_reason` or `[DONE]`).
    finished: bool,
}

impl StreamFold {
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            text_chunks: 0,
            stated: Stated::default(),
            content: String::new(),
            finished: false,
        }
    }

    /// Takes one event's data; `Ok(true)` when it carried generated text (for time to first token).
    pub fn push(&mut self, data: &str) -> Result<bool, String> {
        if data.trim() == "[DONE]" {
            self.finished = true;
            return Ok(false);
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|err| format!("stream event is not JSON ({err}): {data:.200}"))?;
        if let Some(message) = error_message(&v) {
            return Err(message);
        }
        let has_text = match self.endpoint {
            Endpoint::Completion => {
                self.finished |= v.get("stop").and_then(Value::as_bool) == Some(true);
                self.content.push_str(text(v.get("content")));
                non_empty(v.get("content"))
            }
            Endpoint::Chat => {
                let choices = v.get("choices").and_then(Value::as_array);
                choices.into_iter().flatten().any(|choice| {
                    self.finished |= choice.get("finish_reason").is_some_and(|r| !r.is_null());
                    let delta = choice.get("delta");
                    let field = |name| delta.and_then(|d| d.get(name));
                    if choice.get("index").and_then(Value::as_u64).unwrap_or(0) == 0 {
                        self.content.push_str(text(field("content")));
                    }
                    non_empty(field("content"))
                        || non_empty(field("reasoning_content"))
                        || field("tool_calls").is_some_and(|t| !t.is_null())
                })
            }
        };
        self.text_chunks += u64::from(has_text);
        self.stated.merge(Stated::of(&v));
        Ok(has_text)
    }

    /// Ends the stream; an error when it stopped before its last chunk.
    pub fn finish(self) -> Result<ResponseTokens, String> {
        if !self.finished {
            return Err(format!(
                "stream ended early, after {} chunks with text",
                self.text_chunks
            ));
        }
        Ok(ResponseTokens {
            output_tokens: self.stated.output_tokens.unwrap_or(self.text_chunks),
            prompt_tokens: self.stated.prompt_tokens,
            cached_tokens: self.stated.cached_tokens,
            timings: self.stated.timings,
            content: self.content,
        })
    }
}

fn non_empty(v: Option<&Value>) -> bool {
    !text(v).is_empty()
}

/// A string field's text; empty when absent, null or not a string.
fn text(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMINGS: &str = r#"{"cache_n":0,"prompt_n":5,"prompt_ms":10.0,"prompt_per_token_ms":2.0,
        "prompt_per_second":500.0,"predicted_n":3,"predicted_ms":30.0,"predicted_per_token_ms":10.0,
        "predicted_per_second":100.0}"#;

    fn fold(endpoint: Endpoint, events: &[String]) -> (Vec<bool>, Result<ResponseTokens, String>) {
        let mut fold = StreamFold::new(endpoint);
        let mut text = Vec::new();
        for event in events {
            match fold.push(event) {
                Ok(t) => text.push(t),
                Err(err) => return (text, Err(err)),
            }
        }
        (text, fold.finish())
    }

    #[test]
    fn completion_stream_from_llama_server() {
        let events = vec![
            r#"{"index":0,"content":"Hel","tokens":[1],"stop":false}"#.to_owned(),
            r#"{"index":0,"content":"lo","tokens":[2],"stop":false}"#.to_owned(),
            r#"{"index":0,"content":"!","tokens":[3],"stop":false}"#.to_owned(),
            format!(
                r#"{{"index":0,"content":"","stop":true,"tokens_predicted":3,"tokens_evaluated":5,"timings":{TIMINGS}}}"#
            ),
        ];
        let (text, got) = fold(Endpoint::Completion, &events);
        assert_eq!(text, [true, true, true, false]);
        let got = got.unwrap();
        assert_eq!((got.output_tokens, got.prompt_tokens), (3, Some(5)));
        assert_eq!(got.content, "Hello!");
        // timings.cache_n, as the only statement of cached tokens.
        assert_eq!(got.cached_tokens, Some(0));
        let t = got.timings.unwrap();
        assert_eq!((t.prompt_n, t.predicted_n), (5, 3));
        assert_eq!(t.predicted_per_second, Some(100.0));
    }

    #[test]
    fn chat_stream_from_llama_server() {
        let events = vec![
            r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}]}"#.to_owned(),
            r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"Hi"}}]}"#.to_owned(),
            r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"content":" there"}}]}"#.to_owned(),
            r#"{"choices":[{"finish_reason":"length","index":0,"delta":{}}]}"#.to_owned(),
            format!(
                r#"{{"choices":[],"usage":{{"completion_tokens":2,"prompt_tokens":9,"total_tokens":11,"prompt_tokens_details":{{"cached_tokens":6}}}},"timings":{TIMINGS}}}"#
            ),
            "[DONE]".to_owned(),
        ];
        let (text, got) = fold(Endpoint::Chat, &events);
        assert_eq!(text, [false, true, true, false, false, false]);
        let got = got.unwrap();
        // usage wins over timings.predicted_n and timings.cache_n.
        assert_eq!((got.output_tokens, got.prompt_tokens), (2, Some(9)));
        assert_eq!(got.cached_tokens, Some(6));
        assert_eq!(got.content, "Hi there");
        assert!(got.timings.is_some());
    }

    #[test]
    fn chat_stream_without_usage_counts_chunks() {
        let events: Vec<String> = [
            r#"{"choices":[{"delta":{"content":"a"}}]}"#,
            r#"{"choices":[{"delta":{"reasoning_content":"b"}}]}"#,
            r#"{"choices":[{"delta":{"content":""},"finish_reason":"stop"}]}"#,
        ]
        .map(str::to_owned)
        .to_vec();
        let got = fold(Endpoint::Chat, &events).1.unwrap();
        assert_eq!((got.output_tokens, got.prompt_tokens), (2, None));
        // Reasoning is not part of the answer a client sends back.
        assert_eq!((got.content.as_str(), got.cached_tokens), ("a", None));
    }

    #[test]
    fn stream_failures_table() {
        let cases: &[(&str, Endpoint, &[&str], &str)] = &[
            (
                "error event",
                Endpoint::Completion,
                &[
                    r#"{"content":"a"}"#,
                    r#"{"error":{"code":500,"message":"boom","type":"server_error"}}"#,
                ],
                "boom",
            ),
            (
                "not json",
                Endpoint::Chat,
                &["{oops"],
                "stream event is not JSON",
            ),
            (
                "cut short",
                Endpoint::Completion,
                &[r#"{"content":"a","stop":false}"#],
                "stream ended early, after 1 chunks with text",
            ),
            (
                "chat without done",
                Endpoint::Chat,
                &[],
                "stream ended early",
            ),
        ];
        for (name, endpoint, events, want) in cases {
            let events: Vec<String> = events.iter().map(|e| (*e).to_owned()).collect();
            let err = fold(*endpoint, &events).1.unwrap_err();
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    /// Name, endpoint, body, expected (output tokens, prompt tokens, has timings) or error.
    type Case<'a> = (
        &'a str,
        Endpoint,
        &'a str,
        Result<(u64, Option<u64>, bool), &'a str>,
    );

    #[test]
    fn whole_responses_table() {
        let completion = format!(
            r#"{{"content":"abc","tokens_predicted":7,"tokens_evaluated":4,"timings":{TIMINGS}}}"#
        );
        let cases: &[Case] = &[
            (
                "llama completion",
                Endpoint::Completion,
                &completion,
                Ok((7, Some(4), true)),
            ),
            (
                "openai chat",
                Endpoint::Chat,
                r#"{"choices":[{"message":{"content":"x"}}],"usage":{"completion_tokens":5,"prompt_tokens":3}}"#,
                Ok((5, Some(3), false)),
            ),
            (
                "completion with timings only",
                Endpoint::Completion,
                r#"{"content":"x","timings":{"predicted_n":9,"prompt_n":2}}"#,
                Ok((9, None, true)),
            ),
            (
                "error object",
                Endpoint::Chat,
                r#"{"error":{"code":400,"message":"bad request","type":"invalid_request_error"}}"#,
                Err("bad request"),
            ),
            (
                "error string",
                Endpoint::Chat,
                r#"{"error":"nope"}"#,
                Err("nope"),
            ),
            (
                "wrong shape",
                Endpoint::Chat,
                r#"{"content":"x"}"#,
                Err("response has no `choices[0].message`"),
            ),
            (
                "not json",
                Endpoint::Completion,
                "<html>",
                Err("response is not JSON"),
            ),
        ];
        for (name, endpoint, body, want) in cases {
            let got = parse_response(*endpoint, body)
                .map(|r| (r.output_tokens, r.prompt_tokens, r.timings.is_some()));
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{name}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{name}: {got}"),
                (got, _) => panic!("{name}: {got:?}"),
            }
        }
    }

    #[test]
    fn whole_responses_keep_the_answer_and_cached_tokens() {
        let chat = parse_response(
            Endpoint::Chat,
            r#"{"choices":[{"message":{"content":"x y"}}],"usage":{"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":2}}}"#,
        )
        .unwrap();
        assert_eq!(
            (chat.content.as_str(), chat.cached_tokens),
            ("x y", Some(2))
        );
        let completion = parse_response(
            Endpoint::Completion,
            r#"{"content":" z","timings":{"cache_n":4}}"#,
        )
        .unwrap();
        assert_eq!(
            (completion.content.as_str(), completion.cached_tokens),
            (" z", Some(4))
        );
    }

    #[test]
    fn http_error_table() {
        let cases = [
            (
                503,
                r#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#,
                "HTTP 503: Loading model",
            ),
            (404, "Not Found\n", "HTTP 404: Not Found"),
            (500, "", "HTTP 500: "),
        ];
        for (status, body, want) in cases {
            assert_eq!(http_error(status, body), want);
        }
    }
}
