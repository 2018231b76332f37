//! The official `openai` Python package's Responses API against the real server: text answers
//! streamed and not, token counts and bad requests on the demo model; a forced function call
//! and its output's round trip on the tiny gpt-oss with the real gpt-oss template (`--jinja`).

mod common;

use common::{Server, serve_tiny_gpt_oss};

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
    let (_dir, server) = serve_tiny_gpt_oss(&[]);
    run_python("tools", &server);
}
