//! The official `prometheus_client` Python parser reads `/metrics` (`--metrics`) as a Prometheus
//! scrape would: llama-server's `llamacpp:*` metrics with their types and counts, and ours.

mod common;

use std::process::Command;

#[test]
fn prometheus_client_parses_the_metrics() {
    let server = common::Server::start(&["--metrics"]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/metrics_client.py"
    );
    let out = Command::new("python3")
        .args([script, &server.url])
        .output()
        .expect("running python3 (scripts/test.sh installs prometheus_client)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'prometheus_client'"),
        "the prometheus_client Python package is missing: run scripts/test.sh, or pip install prometheus_client"
    );
    assert!(
        out.status.success(),
        "metrics client test failed:\n{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("metrics client: ok"));
}
