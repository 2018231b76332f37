//! `gguf-serve run`: the model loaded as `serve` loads it, a prompt answered once (from the
//! arguments or piped in) with the same greedy text as the API gives, a chat at a terminal
//! (`tests/python/run_chat.py`, on a pseudo-terminal), and errors a user can act on.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

use common::{Server, binary, demo_args};

/// The demo model's flags for these runs: greedy, short answers.
const FLAGS: [&str; 6] = ["--chat-template", "gemma", "--temp", "0", "-n", "12"];

/// The API's answers to a conversation's turns, from a server started with the same flags
/// and asked as `run` asks (so that each prompt finds the same cache).
fn api_answers(turns: &[&str]) -> Vec<String> {
    let server = Server::start(&FLAGS);
    let mut messages = Vec::new();
    let mut answers = Vec::new();
    for turn in turns {
        messages.push(json!({ "role": "user", "content": turn }));
        let (status, body) = server.post("/v1/chat/completions", &json!({ "messages": messages }));
        assert_eq!(status, 200, "{body}");
        let answer = body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned();
        messages.push(json!({ "role": "assistant", "content": answer }));
        answers.push(answer);
    }
    answers
}

/// `run` on the demo model with these extra arguments and this standard input; (status,
/// stdout, stderr).
fn run(extra: &[&str], stdin: &str) -> (i32, String, String) {
    let mut args = demo_args(&FLAGS);
    args.extend(extra.iter().map(|s| s.to_string()));
    run_with(&args, stdin)
}

/// `run` with exactly these arguments.
fn run_with(args: &[String], stdin: &str) -> (i32, String, String) {
    let args: Vec<String> = std::iter::once("run".to_owned())
        .chain(args.iter().cloned())
        .collect();
    let mut child = Command::new(binary())
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_prompt_is_answered_once_as_the_api_answers_it() {
    let expected = api_answers(&["Say hello"]).remove(0);
    let (status, out, err) = run(&["Say", "hello"], "");
    assert_eq!(status, 0, "{err}");
    assert_eq!(out, format!("{expected}\n"));
    assert!(err.is_empty(), "only errors reach the terminal: {err}");

    let (status, piped, err) = run(&[], "Say hello\n");
    assert_eq!(status, 0, "{err}");
    assert_eq!(piped, out, "text piped in is the prompt");
}

/// Runs `tests/python/run_chat.py EXPECTED` on `run` with these flags at a pseudo-terminal.
fn chat_at_a_terminal(expected: &str, flags: &[&str]) {
    let mut args = vec![
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/run_chat.py").to_owned(),
        expected.to_owned(),
        binary().to_owned(),
        "run".to_owned(),
    ];
    args.extend(demo_args(flags));
    let out = Command::new("python3").args(&args).output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("run chat: ok"),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_chat_at_a_terminal() {
    let expected = api_answers(&["Say hello", "Once more"]);
    chat_at_a_terminal(&serde_json::to_string(&expected).unwrap(), &FLAGS);
}

#[test]
fn ctrl_c_stops_an_answer_not_the_chat() {
    chat_at_a_terminal("\"stop\"", &["--chat-template", "gemma", "--ignore-eos"]);
}

#[test]
fn errors_a_user_can_act_on() {
    let missing = ["-m", "/no/such/model.gguf", "hi"].map(String::from);
    let (status, _, err) = run_with(&missing, "");
    assert_eq!(status, 1, "{err}");
    assert!(err.contains("/no/such/model.gguf"), "{err}");

    let (status, _, err) = run(&["--draft", "4", "hi"], "");
    assert_eq!(status, 2, "{err}");
    assert!(err.contains("--draft"), "{err}");

    let (status, _, err) = run(&[], "");
    assert_eq!(status, 1, "{err}");
    assert!(err.contains("nothing to answer"), "{err}");
}
