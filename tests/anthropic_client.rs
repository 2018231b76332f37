//! The official `anthropic` Python package against the real server's Messages API: messages
//! whole and streamed, stop sequences, token counting and an Anthropic-shaped error on the
//! demo model; a `tool_use` round trip and `thinking` blocks on a tiny gpt-oss served with its
//! real template (`--jinja`), whose forced-call grammar makes the noise a call (steered to the
//! commentary channel by `--logit-bias`) or reasoning (unsteered).

mod common;
#[path = "common/gguf_fixtures.rs"]
mod gguf_fixtures;

use common::Server;
use tempfile::TempDir;

const GPT_OSS_TEMPLATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/chat/templates/openai-gpt-oss-120b.jinja"
);

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

/// A tiny gpt-oss with the real template, served with `--jinja` and `extra` flags; the
/// directory holds the model and must outlive the server.
fn serve_tiny_gpt_oss(extra: &[&str]) -> (TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-gpt-oss-f16.gguf");
    let template = std::fs::read_to_string(GPT_OSS_TEMPLATE).unwrap();
    gguf_fixtures::write_tiny_gpt_oss(&path, &template);
    let mut args: Vec<String> = ["-m", path.to_str().unwrap(), "-c", "4096", "-t", "1"]
        .map(String::from)
        .to_vec();
    args.push("--jinja".into());
    args.extend(extra.iter().map(|s| s.to_string()));
    let server = Server::start_with(&args);
    (dir, server)
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
