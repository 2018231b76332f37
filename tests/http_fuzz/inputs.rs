//! The fuzz run's inputs: a small deterministic random source, random JSON values of every
//! type (huge, negative and odd numbers, unicode and control characters, nesting), GBNF
//! grammars from a tiny generator (repetition bounds at their edges included), JSON-schema
//! edge cases, and request bodies for each route: a plausible body with fields replaced by
//! random values, a random non-object, cut JSON, or bytes that are not JSON at all.

use serde_json::{Map, Value, json};

/// xorshift64*: reproducible from the seed the run prints.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Every field name a route reads (and a few it does not).
pub const FIELDS: &[&str] = &[
    "prompt",
    "messages",
    "n_predict",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "stop",
    "stream",
    "seed",
    "n_probs",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "grammar",
    "json_schema",
    "response_format",
    "tools",
    "tool_choice",
    "samplers",
    "dry_multiplier",
    "dry_base",
    "dry_allowed_length",
    "dry_penalty_last_n",
    "dry_sequence_breakers",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
    "n",
    "n_cmpl",
    "id_slot",
    "cache_prompt",
    "lora",
    "input_prefix",
    "input_suffix",
    "input_extra",
    "content",
    "tokens",
    "options",
    "format",
    "think",
    "raw",
    "system",
    "context",
    "images",
    "suffix",
    "template",
    "keep_alive",
    "truncate",
    "with_pieces",
    "add_special",
    "parse_special",
    "input",
    "query",
    "documents",
    "top_n",
    "encoding_format",
    "system",
    "model",
    "max_output_tokens",
    "instructions",
    "stream_options",
    "response_fields",
    "n_keep",
    "n_discard",
    "n_indent",
    "t_max_predict_ms",
    "ignore_eos",
    "preserved_tokens",
    "chat_template_kwargs",
    "reasoning_format",
    "repeat_penalty",
    "repeat_last_n",
    "presence_penalty",
    "frequency_penalty",
    "xtc_probability",
    "xtc_threshold",
    "min_keep",
    "post_sampling_probs",
    "return_tokens",
    "timings_per_token",
    "sse_ping_interval",
    "stop_sequences",
    "adaptive_target",
    "top_n_sigma",
    "dynatemp_range",
    "continue_final_message",
    "add_generation_prompt",
    "parallel_tool_calls",
    "thinking",
    "metadata",
    "reasoning",
    "text",
    "previous_response_id",
    "embd_normalize",
    "id",
    "scale",
    "filename",
];

const STRINGS: &[&str] = &[
    "",
    "a",
    "Hello",
    "héllo wörld",
    "日本語のテキスト",
    "🦀🔥👩‍👩‍👧",
    "\u{0}\u{1}\u{7f}",
    "\\",
    "\"",
    "<bos>",
    "<start_of_turn>user\n",
    "<|im_start|>",
    "\u{202e}rtl",
    "\u{fffd}",
    "null",
    "-1",
    "1e999",
    "NaN",
    "root ::= \"a\"",
    "{}",
    "[",
    "../../etc/passwd",
    "/tmp/x",
    "slot.bin",
    "user",
    "assistant",
    "system",
    "tool",
    "developer",
    "text",
    "function",
    "auto",
    "none",
    "required",
    "json_object",
    "json_schema",
    "save",
    "restore",
    "erase",
    "float",
    "base64",
];

/// A random JSON number: small, negative, huge, fractional, at the edges of i32/i64/u64/f64.
pub fn number(rng: &mut Rng) -> Value {
    match rng.below(12) {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(rng.below(10) as i64),
        3 => json!(-(rng.below(1000) as i64)),
        4 => json!(i32::MAX as i64 + rng.below(3) as i64 - 1),
        5 => json!(i64::MIN + rng.below(2) as i64),
        6 => json!(u64::MAX - rng.below(2) as u64),
        7 => json!(1e308),
        8 => json!(-1e308),
        9 => json!(rng.below(1000) as f64 / 7.0 - 50.0),
        10 => json!(5e-324),
        _ => json!(i32::MIN),
    }
}

pub fn string(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => "x".repeat(rng.below(2000)),
        1 => (0..rng.below(40))
            .map(|_| char::from_u32(rng.below(0x3_0000) as u32).unwrap_or('?'))
            .collect(),
        _ => rng.pick(STRINGS).to_string(),
    }
}

/// Any JSON value, nested up to `depth`.
pub fn value(rng: &mut Rng, depth: usize) -> Value {
    let kinds = if depth == 0 { 4 } else { 6 };
    match rng.below(kinds) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => number(rng),
        3 => json!(string(rng)),
        4 => Value::Array((0..rng.below(5)).map(|_| value(rng, depth - 1)).collect()),
        _ => {
            let mut map = Map::new();
            for _ in 0..rng.below(5) {
                let key = if rng.chance(70) {
                    rng.pick(FIELDS).to_string()
                } else {
                    string(rng)
                };
                map.insert(key, value(rng, depth - 1));
            }
            Value::Object(map)
        }
    }
}

/// A GBNF grammar from a small generator: literals, classes, alternations, groups, rule
/// references (defined or not, recursive or not) and repetitions with bounds at their edges.
pub fn grammar(rng: &mut Rng) -> String {
    let n_rules = 1 + rng.below(3);
    let names: Vec<String> = (0..n_rules)
        .map(|i| {
            if i == 0 {
                "root".into()
            } else {
                format!("r{i}")
            }
        })
        .collect();
    let mut out = String::new();
    for name in &names {
        out.push_str(&format!("{name} ::= {}\n", alternation(rng, &names, 2)));
    }
    if rng.chance(10) {
        // Cut somewhere: the parser must report, not loop.
        let mut cut = rng.below(out.len() + 1);
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

fn alternation(rng: &mut Rng, names: &[String], depth: usize) -> String {
    let alts: Vec<String> = (0..1 + rng.below(3))
        .map(|_| sequence(rng, names, depth))
        .collect();
    alts.join(" | ")
}

fn sequence(rng: &mut Rng, names: &[String], depth: usize) -> String {
    let items: Vec<String> = (0..1 + rng.below(3))
        .map(|_| {
            let item = match rng.below(if depth == 0 { 4 } else { 5 }) {
                0 => format!("{:?}", rng.pick(&["a", "b", "yes", "no", "{", "\\n", "é"])),
                1 => rng
                    .pick(&[
                        "[a-z]",
                        "[0-9]",
                        "[^\"]",
                        "[a-]",
                        "[]",
                        "[\\x00-\\x7f]",
                        ".",
                    ])
                    .to_string(),
                2 => rng.pick(names).clone(),
                3 => rng.pick(&["undefined", "root", "ws", "r9"]).to_string(),
                _ => format!("({})", alternation(rng, names, depth - 1)),
            };
            let repeat = match rng.below(10) {
                0 => "*".to_string(),
                1 => "+".to_string(),
                2 => "?".to_string(),
                3 => format!("{{{}}}", rng.below(5)),
                4 => {
                    let (m, n) = (rng.below(5), rng.below(5));
                    format!("{{{m},{n}}}")
                }
                5 => format!("{{{},}}", rng.below(3)),
                6 => rng
                    .pick(&[
                        "{0,0}",
                        "{1000}",
                        "{0,1000}",
                        "{99999999999}",
                        "{-1}",
                        "{,}",
                        "{",
                    ])
                    .to_string(),
                _ => String::new(),
            };
            format!("{item}{repeat}")
        })
        .collect();
    items.join(" ")
}

/// JSON-schema edge cases and random schemas.
pub fn schema(rng: &mut Rng) -> Value {
    let edge = [
        json!({}),
        json!({"type": "object"}),
        json!({"type": "string", "minLength": 5, "maxLength": 2}),
        json!({"type": "string", "maxLength": 100000}),
        json!({"type": "array", "minItems": 1000, "items": {"type": "integer"}}),
        json!({"type": "array", "minItems": 3, "maxItems": 1}),
        json!({"type": "integer", "minimum": 10, "maximum": -10}),
        json!({"type": "integer", "minimum": -1e308, "maximum": 1e308}),
        json!({"type": "string", "pattern": "^(a+)+$"}),
        json!({"type": "string", "pattern": "(((("}),
        json!({"type": "string", "pattern": "a{2,1}"}),
        json!({"$ref": "#/$defs/x", "$defs": {"x": {"$ref": "#/$defs/x"}}}),
        json!({"$ref": "#/nowhere"}),
        json!({"$ref": "http://example.com/schema.json"}),
        json!({"enum": []}),
        json!({"anyOf": []}),
        json!({"type": ["string", "null", 5]}),
        json!({"type": "object", "properties": {"a": {"type": "object", "properties":
              {"b": {"type": "array", "items": {"type": "object"}}}}}, "required": ["a", "z"]}),
        json!({"type": "string", "format": "date-time"}),
        json!({"const": {"a": [1, 2, {"b": null}]}}),
        json!({"type": "number", "multipleOf": 0}),
        json!({"not": {}}),
    ];
    if rng.chance(70) {
        rng.pick(&edge).clone()
    } else {
        value(rng, 3)
    }
}

/// A plausible body for a route, before mutation.
pub fn base_body(rng: &mut Rng, route: &str) -> Value {
    let prompt = if rng.chance(80) {
        json!(
            rng.pick(&["Hi", "The sky is", "1, 2, 3,", "日本"])
                .to_string()
        )
    } else {
        value(rng, 2)
    };
    let msgs = json!([{ "role": "user", "content": prompt.clone() }]);
    let options = json!({ "num_predict": 4 });
    let mut body = match route {
        "/api/chat" => json!({"model": "m", "messages": msgs, "options": options}),
        "/api/generate" => json!({"model": "m", "prompt": prompt, "options": options}),
        "/api/embed" => json!({"model": "m", "input": prompt}),
        "/api/embeddings" | "/api/show" => json!({"model": "m", "prompt": prompt}),
        r if r.contains("messages") => json!({"model": "m", "max_tokens": 4, "messages": msgs}),
        r if r.contains("chat") => json!({"messages": msgs, "max_tokens": 4}),
        r if r.contains("responses") => json!({"input": prompt, "max_output_tokens": 4}),
        "/tokenize" => json!({"content": prompt, "with_pieces": rng.chance(50)}),
        "/detokenize" => json!({"tokens": [1, 2, rng.below(300_000)]}),
        "/apply-template" => json!({"messages": msgs}),
        "/infill" => json!({"input_prefix": "def f(", "input_suffix": ")", "n_predict": 4}),
        r if r.contains("embedding") => json!({"input": prompt, "content": "x"}),
        r if r.contains("rerank") => json!({"query": "q", "documents": ["a", "b"]}),
        "/lora-adapters" => json!([{"id": 0, "scale": 1.0}]),
        "/props" => json!({"n_predict": 4}),
        _ => json!({"prompt": prompt, "n_predict": 4}),
    };
    if rng.chance(20)
        && let Some(map) = body.as_object_mut()
    {
        map.insert("grammar".into(), json!(grammar(rng)));
    }
    if rng.chance(15)
        && let Some(map) = body.as_object_mut()
    {
        map.insert("json_schema".into(), schema(rng));
    }
    if rng.chance(10)
        && let Some(map) = body.as_object_mut()
    {
        let schema = schema(rng);
        map.insert(
            "response_format".into(),
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}),
        );
    }
    if rng.chance(30)
        && let Some(map) = body.as_object_mut()
    {
        map.insert("stream".into(), json!(true));
    }
    body
}

/// A body for a route: mostly a plausible body with 1–3 fields set to random values; else a
/// random non-object, cut JSON, or random bytes.
pub fn body(rng: &mut Rng, route: &str) -> Vec<u8> {
    match rng.below(20) {
        0 => value(rng, 3).to_string().into_bytes(),
        1 => {
            let text = base_body(rng, route).to_string();
            let cut = rng.below(text.len());
            text.as_bytes()[..cut].to_vec()
        }
        2 => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
        3 => Vec::new(),
        _ => {
            let mut body = base_body(rng, route);
            if let Some(map) = body.as_object_mut() {
                for _ in 0..1 + rng.below(3) {
                    let field = rng.pick(FIELDS).to_string();
                    let v = if rng.chance(50) {
                        value(rng, 2)
                    } else {
                        number(rng)
                    };
                    map.insert(field, v);
                }
            }
            body.to_string().into_bytes()
        }
    }
}
