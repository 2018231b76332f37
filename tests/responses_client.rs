//! The official `openai` Python package's Responses API against the real server: text answers
//! streamed and not, token counts and bad requests on the demo model; a forced function call
//! and its output's round trip on the tiny gpt-oss with the real gpt-oss template (`--jinja`).

mod common;
#[path = "common/gguf_fixtures.rs"]
mod gguf_fixtures;

use common::Server;

const GPT_OSS_TEMPLATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/chat/templates/openai-gpt-oss-120b.jinja"
);

/// Runs `tests/python/responses_client.py PART URL` and checks it passed.
fn run_python(part: &str, server: &Server) {
    let ok = format!("responses {part}: ok");
    common::run_python("responses_client.py", "openai", &[part, &server.url], &ok);
}

#[test]
fn openai_client_responses_on_the_demo_model() {
    let server = Server::start(&[]);
    run_python("text", &server);
}

#[test]
fn openai_client_function_call_round_trip_on_tiny_gpt_oss() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-gpt-oss-f16.gguf");
    let template = std::fs::read_to_string(GPT_OSS_TEMPLATE).unwrap();
    gguf_fixtures::write_tiny_gpt_oss(&path, &template);
    let args: Vec<String> = [
        "-m",
        path.to_str().unwrap(),
        "-c",
        "4096",
        "-t",
        "1",
        "--jinja",
    ]
    .map(String::from)
    .to_vec();
    let server = Server::start_with(&args);
    run_python("tools", &server);
}
