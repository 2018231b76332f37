//! `POST /infill` on tiny models with fill-in-the-middle tokens, written here: the prompt's
//! layout token for token (repo-level, snippets, `--spm-infill`, truncation to the batch), the
//! 501 of a model without FIM tokens (the demo model), error JSON on bad input with the server
//! still serving, and (an ignored test that needs the reference llama-server) the same answers
//! as llama-server's for the same requests.

mod common;

use common::gguf_fixtures;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use common::{Server, assert_error};

/// A FIM model in `dir` (repo-level or not).
fn fim_model(dir: &Path, repo_level: bool) -> PathBuf {
    let path = dir.join(if repo_level {
        "fim-repo.gguf"
    } else {
        "fim.gguf"
    });
    gguf_fixtures::write_fim_llama(&path, repo_level);
    path
}

/// The settings both servers run the tiny model with; `-b 64` makes truncation easy to reach.
fn args(model: &Path, extra: &[&str]) -> Vec<String> {
    args_sized(model, "2048", "1", extra)
}

/// [`args`] with another context size and number of slots.
fn args_sized(model: &Path, n_ctx: &str, n_parallel: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["-c", n_ctx, "-b", "64", "-np", n_parallel, "-t", "1", "-m"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(model.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The number of tokens of `text`, special tokens parsed, as the server tokenizes.
fn n_tokens(server: &Server, text: &str) -> usize {
    let (status, body) = server.post(
        "/tokenize",
        &json!({ "content": text, "add_special": false, "parse_special": true }),
    );
    assert_eq!(status, 200, "{body}");
    body["tokens"].as_array().unwrap().len()
}

/// Asserts that an infill answer read exactly `want` as its prompt (special tokens as text;
/// the inputs hold none, so text and count pin the tokens).
fn assert_prompt(server: &Server, body: &Value, want: &str) {
    let (status, answer) = server.post("/infill", body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["prompt"], want, "prompt of {body}");
    assert_eq!(
        answer["tokens_evaluated"],
        n_tokens(server, want),
        "tokens of {body}"
    );
    assert_eq!(answer["stop"], true);
    assert!(answer["content"].is_string());
}

#[test]
fn the_prompt_is_laid_out_as_llama_server_does() {
    let dir = tempfile::tempdir().unwrap();
    let model = fim_model(dir.path(), true);
    let server = Server::start_with(&args(&model, &[]));
    let request = |extra: Value| {
        let mut body = json!({
            "input_prefix": "def add(a, b):\n    return ",
            "input_suffix": "\n\nprint(add(1, 2))\n",
            "prompt": "a +",
            "n_predict": 2,
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    assert_prompt(
        &server,
        &request(json!({})),
        "<|repo_name|>myproject\n<|file_sep|>filename\n<|fim_prefix|>def add(a, b):\n    return a +\
         <|fim_suffix|>\n\nprint(add<|fim_middle|>",
    );
    assert_prompt(
        &server,
        &request(json!({
            "input_extra": [
                { "filename": "util.py", "text": "X = 1\n" },
                { "text": "Y = 2\n" },
            ],
        })),
        "<|repo_name|>myproject\n<|file_sep|>util.py\nX = 1\n<|file_sep|>tmp\nY = 2\n\
         <|file_sep|>filename\n<|fim_prefix|>def add(a, b):\n    return a +\
         <|fim_suffix|>\n\nprint(add<|fim_middle|>",
    );
    // -b 64: the prefix keeps its last 48 tokens, the suffix its first 16 - 2 - 2 (the
    // prompt); in the first answers above, the suffix kept 16 - 2 - 3.
    let digits = "0123456789".repeat(10);
    assert_prompt(
        &server,
        &json!({
            "input_prefix": digits,
            "input_suffix": "abcdefghijklmnopqrstuvwxyz",
            "prompt": "XY",
            "n_predict": 1,
        }),
        &format!(
            "<|repo_name|>myproject\n<|file_sep|>filename\n<|fim_prefix|>{}XY\
             <|fim_suffix|>abcdefghijkl<|fim_middle|>",
            &digits[52..]
        ),
    );
    // Streamed as /completion streams (no `[DONE]`), the final chunk with the prompt.
    let (events, done) = server.stream(
        "/infill",
        &json!({ "input_prefix": "a", "input_suffix": "b", "n_predict": 3, "stream": true,
                 "temperature": 0 }),
    );
    assert!(!done);
    let last = events.last().unwrap();
    assert_eq!(last["stop"], true);
    assert_eq!(
        last["prompt"],
        "<|repo_name|>myproject\n<|file_sep|>filename\n<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>"
    );
    assert_eq!(
        events.len(),
        4,
        "three tokens and the final chunk: {events:?}"
    );
    // Token ids mixed with text (35 is the byte `#`).
    assert_prompt(
        &server,
        &json!({ "input_prefix": ["ab", 35, "cd"], "input_suffix": "", "n_predict": 1 }),
        "<|repo_name|>myproject\n<|file_sep|>filename\n<|fim_prefix|>ab#cd\
         <|fim_suffix|><|fim_middle|>",
    );
}

#[test]
fn spm_order_and_snippets_without_repo_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let model = fim_model(dir.path(), false);
    let server = Server::start_with(&args(&model, &["--spm-infill"]));
    assert_prompt(
        &server,
        &json!({
            "input_prefix": "fn main() {",
            "input_suffix": "}\n",
            "input_extra": [{ "filename": "lib.rs", "text": "pub fn f() {}" }],
            "n_predict": 1,
        }),
        "\n\n--- snippet ---\n\npub fn f() {}<|fim_suffix|>}\n<|fim_prefix|>fn main() {<|fim_middle|>",
    );
}

#[test]
fn bad_input_gets_llama_servers_errors_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let model = fim_model(dir.path(), true);
    let server = Server::start_with(&args(&model, &[]));
    let cases = [
        (
            json!({ "input_prefix": "a" }),
            "[json.exception.out_of_range.403] key 'input_suffix' not found",
        ),
        (
            json!({ "input_suffix": "a" }),
            "[json.exception.out_of_range.403] key 'input_prefix' not found",
        ),
        (
            json!({ "input_prefix": "a", "input_suffix": "b", "input_extra": "x" }),
            "\"input_extra\" must be an array of {\"filename\": string, \"text\": string}",
        ),
        (
            json!({ "input_prefix": "a", "input_suffix": "b", "input_extra": [{ "filename": "f" }] }),
            "extra_context chunk must contain a \"text\" field with a string value",
        ),
        (
            json!({ "input_prefix": "a", "input_suffix": "b",
                    "input_extra": [{ "text": "t", "filename": 3 }] }),
            "extra_context chunk's \"filename\" field must be a string",
        ),
        (
            json!({ "input_prefix": 5, "input_suffix": "b" }),
            "[json.exception.type_error.302] type must be string, but is number",
        ),
        (
            json!({ "input_prefix": [{}], "input_suffix": "b" }),
            "[json.exception.type_error.302] type must be number, but is object",
        ),
        (
            json!({ "input_prefix": [100000], "input_suffix": "b" }),
            "Prompt contains invalid tokens",
        ),
    ];
    for (body, want) in cases {
        let (status, answer) = server.post("/infill", &body);
        let message = assert_error(status, &answer, 400, "invalid_request_error");
        assert_eq!(message, want, "for {body}");
    }
    let (status, answer) = server.post_raw("/infill", "{not json");
    assert_error(status, &answer, 400, "invalid_request_error");
    assert_prompt(
        &server,
        &json!({ "input_prefix": "a", "input_suffix": "b", "n_predict": 1 }),
        "<|repo_name|>myproject\n<|file_sep|>filename\n<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>",
    );
}

#[test]
fn a_model_without_fim_tokens_is_refused() {
    let server = Server::start(&[]);
    let (status, answer) = server.post(
        "/infill",
        &json!({ "input_prefix": "a", "input_suffix": "b" }),
    );
    let message = assert_error(status, &answer, 501, "not_supported_error");
    assert_eq!(
        message,
        "Infill is not supported by this model: prefix token is missing. suffix token is \
         missing. middle token is missing. "
    );
    let (status, _) = server.post("/completion", &json!({ "prompt": "Hi", "n_predict": 1 }));
    assert_eq!(status, 200);
}

/// What must be equal between the two servers' answers to one request.
fn comparable(status: u16, answer: &Value) -> Value {
    if status != 200 {
        return json!({ "status": status, "error": answer["error"] });
    }
    json!({
        "status": status,
        "prompt": answer["prompt"],
        "tokens_evaluated": answer["tokens_evaluated"],
        "content": answer["content"],
        "tokens": answer["tokens"],
        "tokens_predicted": answer["tokens_predicted"],
    })
}

/// Requests for the differential run: layouts, truncation, mixed inputs and mistakes.
fn differential_requests() -> Vec<Value> {
    let digits = "0123456789".repeat(10);
    let greedy = |mut body: Value| {
        body["n_predict"] = json!(6);
        body["temperature"] = json!(0.0);
        body["return_tokens"] = json!(true);
        body
    };
    let mut requests: Vec<Value> = [
        json!({ "input_prefix": "def add(a, b):\n    return ", "input_suffix": "\n\nprint(1)\n" }),
        json!({ "input_prefix": "x = ", "input_suffix": "\n", "prompt": "[1, " }),
        json!({ "input_prefix": "", "input_suffix": "" }),
        json!({ "input_prefix": digits, "input_suffix": digits, "prompt": "XY" }),
        json!({ "input_prefix": ["ab", 35, "cd"], "input_suffix": [40, "z"] }),
        json!({ "input_prefix": [true, 1.7], "input_suffix": "b" }),
        json!({ "input_prefix": "<|fim_middle|>", "input_suffix": "b", "prompt": "<|fim_pad|>c" }),
        json!({ "input_prefix": "p", "input_suffix": "s", "input_extra": [
            { "filename": "a.py", "text": "A = 1\n" }, { "text": "B = 2\n" }] }),
        json!({ "input_prefix": "p", "input_suffix": "s", "input_extra": [] }),
        json!({ "input_prefix": "p", "input_suffix": "s", "input_extra": [
            { "filename": "long.py", "text": "# filler line\n".repeat(20) },
            { "filename": "last.py", "text": "LAST = True\n" }] }),
        json!({ "input_prefix": "p", "input_suffix": "s", "prompt": 5 }),
        json!({ "input_prefix": "p", "input_suffix": "s", "prompt": null }),
    ]
    .into_iter()
    .map(greedy)
    .collect();
    requests.extend([
        json!({}),
        json!({ "input_prefix": "a" }),
        json!({ "input_suffix": "a" }),
        json!({ "input_prefix": "a", "input_suffix": "b", "input_extra": "x" }),
        json!({ "input_prefix": "a", "input_suffix": "b", "input_extra": null }),
        json!({ "input_prefix": "a", "input_suffix": "b", "input_extra": [{ "filename": "f" }] }),
        json!({ "input_prefix": "a", "input_suffix": "b", "input_extra": ["t"] }),
        json!({ "input_prefix": "a", "input_suffix": "b",
                "input_extra": [{ "text": "t", "filename": 3 }] }),
        json!({ "input_prefix": "a", "input_suffix": "b",
                "input_extra": [{ "text": "t", "filename": null }] }),
        json!({ "input_prefix": 5, "input_suffix": "b" }),
        json!({ "input_prefix": null, "input_suffix": "b" }),
        json!({ "input_prefix": [{}], "input_suffix": "b" }),
        json!({ "input_prefix": "a", "input_suffix": "b", "n_predict": "x" }),
        json!({ "input_prefix": [100000], "input_suffix": "b" }),
        json!({ "input_prefix": "a", "input_suffix": [-5] }),
    ]);
    requests
}

/// Every request of [`differential_requests`] gets the same answer from gguf-serve and the
/// reference llama-server, on each FIM model and with `--spm-infill`; prints the count.
#[test]
#[ignore = "needs the reference llama-server: GGUF_SERVE_LLAMA_SERVER"]
fn infill_answers_as_llama_server() {
    let reference = common::reference_llama_server();
    let dir = tempfile::tempdir().unwrap();
    let (repo, plain) = (fim_model(dir.path(), true), fim_model(dir.path(), false));
    // The small contexts cut the extra context (to n_ctx - n_batch + 2 tokens, with -n -1).
    let runs = [
        args(&repo, &[]),
        args(&repo, &["--spm-infill"]),
        args(&plain, &[]),
        args_sized(&repo, "256", "1", &[]),
        args_sized(&plain, "512", "-1", &["-n", "32"]),
    ];
    let requests = differential_requests();
    let mut differences = Vec::new();
    for args in &runs {
        let answers = |server: &Server| -> Vec<Value> {
            requests
                .iter()
                .map(|body| {
                    let (status, answer) = server.post("/infill", body);
                    comparable(status, &answer)
                })
                .collect()
        };
        let ours = answers(&Server::start_with(args));
        let theirs = answers(&Server::start_program(&reference, args));
        for ((body, ours), theirs) in requests.iter().zip(ours).zip(theirs) {
            if ours != theirs {
                differences.push(format!(
                    "{args:?} {body}:\n  gguf-serve   {ours}\n  llama-server {theirs}"
                ));
            }
        }
    }
    println!(
        "{} requests x {} runs, {} differences",
        requests.len(),
        runs.len(),
        differences.len()
    );
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
