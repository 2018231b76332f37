//! What a benchmark sends: synthetic prompts (deterministic, distinct per request so that no
//! request hits another's prompt cache), or prompts read from a JSONL file; and the JSON body
//! each endpoint expects.

use std::path::Path;

use serde_json::{Value, json};

use super::{BenchError, Endpoint};

/// One request of a benchmark, before it is turned into an endpoint's JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRequest {
    pub prompt: Prompt,
    /// Overrides the run's `--max-tokens` for this request.
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Plain text: the prompt of `/completion`, or one user message for chat.
    Text(String),
    /// OpenAI chat messages, sent as they are (chat only).
    Messages(Vec<Value>),
}

/// Sampling and caching settings shared by every request of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestOptions {
    pub endpoint: Endpoint,
    pub max_tokens: u32,
    pub temperature: f32,
    /// llama-server's `top_p`; `None` leaves the server's default.
    pub top_p: Option<f32>,
    pub stream: bool,
    /// llama-server's `cache_prompt`; `None` leaves the server's default (on).
    pub cache_prompt: Option<bool>,
    /// llama-server's `ignore_eos`: generate exactly `max_tokens`. Sent only when on, since
    /// OpenAI-compatible servers may reject unknown fields.
    pub ignore_eos: bool,
    pub seed: Option<u64>,
    /// `model` field, which OpenAI-compatible servers require (llama-server ignores it).
    pub model: Option<String>,
}

/// Words that are one token each in common vocabularies, so a prompt of N words is about N tokens.
pub(super) const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "time",
    "people",
    "year",
    "way",
    "day",
    "man",
    "thing",
    "woman",
    "life",
    "child",
    "world",
    "school",
    "state",
    "family",
    "student",
    "group",
    "country",
    "problem",
    "hand",
    "part",
    "place",
    "case",
    "week",
    "company",
    "system",
    "program",
    "question",
    "work",
    "government",
    "number",
    "night",
    "point",
    "home",
    "water",
    "room",
    "mother",
    "area",
    "money",
    "story",
    "fact",
    "month",
    "lot",
    "right",
    "study",
    "book",
    "eye",
    "job",
    "word",
    "business",
    "issue",
    "side",
    "kind",
    "head",
    "house",
    "service",
    "friend",
    "father",
    "power",
    "hour",
    "game",
    "line",
    "end",
    "member",
    "law",
    "car",
    "city",
    "name",
    "team",
    "minute",
    "idea",
    "kid",
    "body",
    "back",
    "parent",
    "face",
    "others",
    "level",
    "office",
    "door",
    "health",
    "person",
    "art",
    "war",
    "history",
    "party",
    "result",
    "change",
    "morning",
    "reason",
    "research",
    "girl",
    "guy",
    "moment",
    "air",
    "teacher",
    "force",
    "education",
    "river",
    "green",
    "small",
    "large",
    "good",
    "new",
    "old",
    "great",
    "high",
];

/// A deterministic prompt of about `n_tokens` tokens, different for every `index`: it starts with
/// the index so two requests share no prefix, then pseudo-random common words.
pub fn synthetic_prompt(index: usize, n_tokens: usize) -> String {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut prompt = format!("{index}:");
    for _ in 1..n_tokens.max(1) {
        let word = WORDS[(splitmix64(&mut state) % WORDS.len() as u64) as usize];
        prompt.push(' ');
        prompt.push_str(word);
    }
    prompt
}

/// `n` synthetic requests of about `n_tokens` prompt tokens each, the prompts of indexes `first`
/// on (runs from different indexes share no prompt).
pub fn synthetic_requests(first: usize, n: usize, n_tokens: usize) -> Vec<BenchRequest> {
    (first..first.saturating_add(n))
        .map(|index| BenchRequest {
            prompt: Prompt::Text(synthetic_prompt(index, n_tokens)),
            max_tokens: None,
        })
        .collect()
}

/// SplitMix64: a tiny, well-mixed generator; enough for varied words, and stable across releases.
pub(super) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Reads a JSONL file of requests (see [`parse_requests`]).
pub fn load_requests(path: &Path, endpoint: Endpoint) -> Result<Vec<BenchRequest>, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_requests(&text, endpoint).map_err(|(line, reason)| BenchError::RequestsFile {
        path: path.to_owned(),
        line,
        reason,
    })
}

/// Parses JSONL requests: one object per line with `prompt` (a string) or `messages` (chat
/// only), and optionally `max_tokens` (or llama-server's `n_predict`). Blank lines are skipped.
/// Errors carry the 1-based line number.
pub fn parse_requests(
    text: &str,
    endpoint: Endpoint,
) -> Result<Vec<BenchRequest>, (usize, String)> {
    let mut requests = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let request = parse_request(line, endpoint).map_err(|reason| (i + 1, reason))?;
        requests.push(request);
    }
    if requests.is_empty() {
        return Err((0, "no requests in the file".to_owned()));
    }
    Ok(requests)
}

fn parse_request(line: &str, endpoint: Endpoint) -> Result<BenchRequest, String> {
    let v: Value = serde_json::from_str(line).map_err(|err| format!("not JSON: {err}"))?;
    let object = v.as_object().ok_or("not a JSON object")?;
    let prompt = match (object.get("prompt"), object.get("messages")) {
        (Some(Value::String(text)), None) => Prompt::Text(text.clone()),
        (None, Some(Value::Array(messages))) if endpoint == Endpoint::Chat => {
            Prompt::Messages(messages.clone())
        }
        (None, Some(Value::Array(_))) => {
            return Err("`messages` needs --endpoint chat".to_owned());
        }
        (Some(_), Some(_)) => return Err("has both `prompt` and `messages`".to_owned()),
        (Some(_), None) => return Err("`prompt` must be a string".to_owned()),
        (None, Some(_)) => return Err("`messages` must be an array".to_owned()),
        (None, None) => return Err("needs `prompt` or `messages`".to_owned()),
    };
    let max_tokens = match object.get("max_tokens").or_else(|| object.get("n_predict")) {
        None => None,
        Some(n) => Some(
            n.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or("`max_tokens` must be a non-negative integer")?,
        ),
    };
    Ok(BenchRequest { prompt, max_tokens })
}

/// The JSON body of `request` for the run's endpoint.
pub fn request_body(request: &BenchRequest, options: &RequestOptions) -> Value {
    let max_tokens = request.max_tokens.unwrap_or(options.max_tokens);
    let mut body = match (options.endpoint, &request.prompt) {
        (Endpoint::Completion, Prompt::Text(text)) => json!({
            "prompt": text,
            "n_predict": max_tokens,
        }),
        // parse_requests refuses messages for /completion; join them rather than panic.
        (Endpoint::Completion, Prompt::Messages(messages)) => json!({
            "prompt": messages.iter().filter_map(|m| m.get("content")?.as_str()).collect::<Vec<_>>().join("\n"),
            "n_predict": max_tokens,
        }),
        (Endpoint::Chat, Prompt::Text(text)) => json!({
            "messages": [{"role": "user", "content": text}],
            "max_tokens": max_tokens,
        }),
        (Endpoint::Chat, Prompt::Messages(messages)) => json!({
            "messages": messages,
            "max_tokens": max_tokens,
        }),
    };
    body["temperature"] = json!(options.temperature);
    if let Some(top_p) = options.top_p {
        body["top_p"] = json!(top_p);
    }
    body["stream"] = json!(options.stream);
    if options.stream && options.endpoint == Endpoint::Chat {
        body["stream_options"] = json!({"include_usage": true});
    }
    if let Some(cache_prompt) = options.cache_prompt {
        body["cache_prompt"] = json!(cache_prompt);
    }
    if options.ignore_eos {
        body["ignore_eos"] = json!(true);
    }
    if let Some(seed) = options.seed {
        body["seed"] = json!(seed);
    }
    if let Some(model) = &options.model {
        body["model"] = json!(model);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_requests_start_at_their_first_index() {
        let prompts = |first, n| -> Vec<Prompt> {
            synthetic_requests(first, n, 16)
                .into_iter()
                .map(|r| r.prompt)
                .collect()
        };
        let text = |i| Prompt::Text(synthetic_prompt(i, 16));
        assert_eq!(prompts(0, 2), [text(0), text(1)]);
        assert_eq!(prompts(64, 2), [text(64), text(65)]);
    }

    #[test]
    fn synthetic_prompts_are_deterministic_distinct_and_sized() {
        assert_eq!(synthetic_prompt(3, 64), synthetic_prompt(3, 64));
        let prompts: Vec<String> = (0..50).map(|i| synthetic_prompt(i, 64)).collect();
        for (i, a) in prompts.iter().enumerate() {
            assert_eq!(a.split(' ').count(), 64, "{a}");
            for b in &prompts[i + 1..] {
                // Distinct from the first word on: no shared prefix for the prompt cache.
                assert_ne!(a.split(' ').next(), b.split(' ').next());
            }
        }
        // Bodies differ too, not only the index.
        let body = |p: &str| p.split_once(' ').unwrap().1.to_owned();
        assert_ne!(body(&prompts[0]), body(&prompts[1]));
        assert_eq!(synthetic_prompt(7, 0), "7:");
        assert_eq!(synthetic_prompt(7, 1), "7:");
    }

    /// Input, endpoint, expected (prompt, max_tokens) per request or (line, error).
    type Case<'a> = (
        &'a str,
        Endpoint,
        Result<Vec<(Prompt, Option<u32>)>, (usize, &'a str)>,
    );

    #[test]
    fn parse_requests_table() {
        let chat = Endpoint::Chat;
        let completion = Endpoint::Completion;
        let text = |s: &str| Prompt::Text(s.to_owned());
        let cases: &[Case] = &[
            (
                "{\"prompt\":\"a\"}\n\n{\"prompt\":\"b\",\"max_tokens\":5}\n",
                completion,
                Ok(vec![(text("a"), None), (text("b"), Some(5))]),
            ),
            (
                r#"{"prompt":"a","n_predict":3}"#,
                completion,
                Ok(vec![(text("a"), Some(3))]),
            ),
            (
                r#"{"messages":[{"role":"user","content":"hi"}]}"#,
                chat,
                Ok(vec![(
                    Prompt::Messages(vec![json!({"role":"user","content":"hi"})]),
                    None,
                )]),
            ),
            (
                r#"{"messages":[{"role":"user","content":"hi"}]}"#,
                completion,
                Err((1, "`messages` needs --endpoint chat")),
            ),
            ("{\"prompt\":\"a\"}\nnope", chat, Err((2, "not JSON"))),
            ("[1]", chat, Err((1, "not a JSON object"))),
            (
                r#"{"prompt":1}"#,
                chat,
                Err((1, "`prompt` must be a string")),
            ),
            (
                r#"{"text":"a"}"#,
                chat,
                Err((1, "needs `prompt` or `messages`")),
            ),
            (
                r#"{"prompt":"a","messages":[]}"#,
                chat,
                Err((1, "has both")),
            ),
            (
                r#"{"prompt":"a","max_tokens":-1}"#,
                chat,
                Err((1, "`max_tokens` must be")),
            ),
            ("\n  \n", chat, Err((0, "no requests"))),
        ];
        for (input, endpoint, want) in cases {
            let got = parse_requests(input, *endpoint);
            match (got, want) {
                (Ok(got), Ok(want)) => {
                    let got: Vec<_> = got.into_iter().map(|r| (r.prompt, r.max_tokens)).collect();
                    assert_eq!(&got, want, "{input}");
                }
                (Err((line, reason)), Err((want_line, want_reason))) => {
                    assert_eq!(line, *want_line, "{input}");
                    assert!(reason.contains(want_reason), "{input}: {reason}");
                }
                (got, _) => panic!("{input}: {got:?}"),
            }
        }
    }

    fn options(endpoint: Endpoint) -> RequestOptions {
        RequestOptions {
            endpoint,
            max_tokens: 16,
            temperature: 0.0,
            top_p: None,
            stream: true,
            cache_prompt: None,
            ignore_eos: false,
            seed: None,
            model: None,
        }
    }

    #[test]
    fn request_bodies_table() {
        let text = BenchRequest {
            prompt: Prompt::Text("hi".to_owned()),
            max_tokens: None,
        };
        let short = BenchRequest {
            max_tokens: Some(2),
            ..text.clone()
        };
        let all_options = RequestOptions {
            stream: false,
            cache_prompt: Some(false),
            ignore_eos: true,
            seed: Some(42),
            model: Some("m".to_owned()),
            ..options(Endpoint::Completion)
        };
        let cases = [
            (
                &text,
                options(Endpoint::Completion),
                json!({"prompt": "hi", "n_predict": 16, "temperature": 0.0, "stream": true}),
            ),
            (
                &short,
                all_options,
                json!({"prompt": "hi", "n_predict": 2, "temperature": 0.0, "stream": false,
                       "cache_prompt": false, "ignore_eos": true, "seed": 42, "model": "m"}),
            ),
            (
                &text,
                options(Endpoint::Chat),
                json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 16,
                       "temperature": 0.0, "stream": true,
                       "stream_options": {"include_usage": true}}),
            ),
        ];
        for (request, options, want) in cases {
            assert_eq!(request_body(request, &options), want);
        }
    }
}
