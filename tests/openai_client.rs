//! The official `openai` Python package against the real server: chat (stream and not),
//! completions, models and a 400, exactly as a user's client would see them.

mod common;

use std::process::Command;

#[test]
fn official_openai_python_client() {
    let server = common::Server::start(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/openai_client.py");
    let out = Command::new("python3")
        .args([script, &server.url])
        .output()
        .expect("running python3 (scripts/test.sh installs the openai package)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'openai'"),
        "the openai Python package is missing: run scripts/test.sh, or pip install openai"
    );
    assert!(out.status.success(), "openai client test failed:\n{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("openai client: ok"));
}
