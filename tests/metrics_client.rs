//! The official `prometheus_client` Python parser reads `/metrics` (`--metrics`) as a Prometheus
//! scrape would: llama-server's `llamacpp:*` metrics with their types and counts, and ours.

mod common;

#[test]
fn prometheus_client_parses_the_metrics() {
    let server = common::Server::start(&["--metrics"]);
    common::run_python(
        "metrics_client.py",
        "prometheus_client",
        &[&server.url],
        "metrics client: ok",
    );
}
