//! The official `anthropic` Python package against the real server's Messages API: messages
//! whole and streamed, stop sequences, token counting and an Anthropic-shaped error on the
//! demo model; a `tool_use` round trip and `thinking` blocks on a tiny gpt-oss served with its
//! real template (`--jinja`), whose forced-call grammar makes the noise a call (steered to the
//! commentary channel by `--logit-bias`) or reasoning (unsteered).

mod common;

use common::{Server, serve_tiny_gpt_oss};

/// Runs `tests/python/anthropic_client.py MODE URL` and checks that it passed.
fn run_client(mode: &str, server: &Server) {
    let ok = format!("{mode}: ok");
    common::run_python(
        "anthropic_client.py",
        "anthropic",
        &[mode, &server.url],
        &ok,
    );
}

#[test]
fn messages_on_the_demo_model() {
    let server = Server::start(&[]);
    run_client("demo", &server);
}

/// Byte tokens' ids are their bytes: 99 is `c`, which picks Harmony's commentary channel (the
/// call) over analysis (reasoning) where the grammar allows both.
#[test]
fn tool_use_round_trip_on_tiny_gpt_oss() {
    let (_dir, server) = serve_tiny_gpt_oss(&["--logit-bias", "99+30"]);
    run_client("tools", &server);
}

#[test]
fn thinking_blocks_from_tiny_gpt_oss() {
    let (_dir, server) = serve_tiny_gpt_oss(&[]);
    run_client("thinking", &server);
}
