//! `/metrics`: the engine's counters as Prometheus metrics, with llama-server's `llamacpp:*`
//! names and meanings, encoded by the `prometheus-client` crate (OpenMetrics text).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::engine::StatsSnapshot;

/// The Content-Type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics of one reading.
pub fn render(s: &StatsSnapshot) -> String {
    let mut registry = Registry::default();
    let counter = |registry: &mut Registry, name: &str, help: &str, v: f64| {
        let c: Counter<f64, AtomicU64> = Counter::default();
        c.inc_by(v);
        registry.register(format!("llamacpp:{name}"), help, c);
    };
    let gauge = |registry: &mut Registry, name: &str, help: &str, v: f64| {
        let g: Gauge<f64, AtomicU64> = Gauge::default();
        g.set(v);
        registry.register(format!("llamacpp:{name}"), help, g);
    };
    let r = &mut registry;
    counter(
        r,
        "prompt_tokens",
        "Number of prompt tokens processed, excluding cached tokens",
        s.prompt_tokens as f64,
    );
    counter(
        r,
        "prompt_tokens_cached",
        "Number of prompt tokens reused from the cache",
        s.prompt_tokens_cached as f64,
    );
    counter(
        r,
        "prompt_seconds",
        "Total time spent processing prompts",
        s.prompt_seconds,
    );
    counter(
        r,
        "tokens_predicted",
        "Number of generation tokens processed",
        s.predicted_tokens as f64,
    );
    counter(
        r,
        "tokens_predicted_seconds",
        "Total time spent generating tokens",
        s.predicted_seconds,
    );
    counter(
        r,
        "n_decode",
        "Total number of llama_decode() calls",
        s.n_decode as f64,
    );
    gauge(
        r,
        "n_tokens_max",
        "Largest observed sequence length (prompt + generation)",
        s.n_tokens_max as f64,
    );
    gauge(
        r,
        "prompt_tokens_seconds",
        "Average prompt throughput in tokens/s",
        s.prompt_tokens_per_second,
    );
    gauge(
        r,
        "predicted_tokens_seconds",
        "Average generation throughput in tokens/s",
        s.predicted_tokens_per_second,
    );
    gauge(
        r,
        "requests_processing",
        "Number of requests processing",
        s.requests_processing as f64,
    );
    gauge(
        r,
        "requests_deferred",
        "Number of requests deferred",
        s.requests_deferred as f64,
    );
    gauge(
        r,
        "n_busy_slots_per_decode",
        "Average number of busy slots per llama_decode() call",
        s.busy_slots_per_decode,
    );
    let mut text = String::new();
    encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_server_names_in_openmetrics_text() {
        let snapshot = StatsSnapshot {
            prompt_tokens: 12,
            prompt_tokens_cached: 3,
            prompt_seconds: 0.5,
            predicted_tokens: 40,
            predicted_seconds: 2.0,
            n_decode: 41,
            n_tokens_max: 55,
            prompt_tokens_per_second: 24.0,
            predicted_tokens_per_second: 19.5,
            requests_processing: 1,
            requests_deferred: 0,
            busy_slots_per_decode: 1.0,
        };
        let text = render(&snapshot);
        for line in [
            "# TYPE llamacpp:prompt_tokens counter",
            "llamacpp:prompt_tokens_total 12.0",
            "llamacpp:tokens_predicted_total 40.0",
            "llamacpp:n_decode_total 41.0",
            "# TYPE llamacpp:requests_processing gauge",
            "llamacpp:predicted_tokens_seconds 19.5",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
    }
}
