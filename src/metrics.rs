//! `/metrics`: the engine's counters as Prometheus metrics, with llama-server's `llamacpp:*`
//! names and meanings, and ours under `gguf_serve_*` (the queue, the planner's pick, load time,
//! predicted against allocated memory), encoded by the `prometheus-client` crate (OpenMetrics
//! text).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::engine::{DeviceMemory, StatsSnapshot};
use crate::plan::MemoryEstimate;

/// What gguf-serve adds to llama-server's metrics.
#[derive(Debug, Default)]
pub struct Ours<'a> {
    /// `--max-queue` (0: no bound).
    pub queue_limit: usize,
    /// Seconds from start until the model was ready.
    pub load_seconds: f64,
    /// The planner's pick: quant, layers on the GPU, layers whose experts stay on the CPU.
    pub plan: Option<(&'a str, u32, u32)>,
    pub predicted: Option<&'a MemoryEstimate>,
    pub allocated: &'a [DeviceMemory],
}

type Labels = Vec<(String, String)>;

/// The Content-Type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics of one reading.
pub fn render(s: &StatsSnapshot, ours: &Ours<'_>) -> String {
    let mut registry = Registry::default();
    let counter = |registry: &mut Registry, name: &str, help: &str, v: f64| {
        let c: Counter<f64, AtomicU64> = Counter::default();
        c.inc_by(v);
        registry.register(format!("llamacpp:{name}"), help, c);
    };
    let gauge = |registry: &mut Registry, name: &str, help: &str, v: f64| {
        register_gauge(registry, format!("llamacpp:{name}"), help, v);
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
    register_ours(&mut registry, s, ours);
    let mut text = String::new();
    encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}

/// A gauge holding `v`.
fn register_gauge(registry: &mut Registry, name: String, help: &str, v: f64) {
    let g: Gauge<f64, AtomicU64> = Gauge::default();
    g.set(v);
    registry.register(name, help, g);
}

/// gguf-serve's own metrics, under `gguf_serve_`.
fn register_ours(registry: &mut Registry, s: &StatsSnapshot, ours: &Ours<'_>) {
    let gauge = |registry: &mut Registry, name: &str, help: &str, v: f64| {
        register_gauge(registry, format!("gguf_serve_{name}"), help, v);
    };
    let family = |registry: &mut Registry, name: &str, help: &str, rows: Vec<(Labels, f64)>| {
        let f: Family<Labels, Gauge<f64, AtomicU64>> = Family::default();
        for (labels, v) in rows {
            f.get_or_create(&labels).set(v);
        }
        registry.register(format!("gguf_serve_{name}"), help, f);
    };
    let label = |k: &str, v: String| (k.to_string(), v);
    let counter = |registry: &mut Registry, name: &str, help: &str, v: u64| {
        let c: Counter<f64, AtomicU64> = Counter::default();
        c.inc_by(v as f64);
        registry.register(format!("gguf_serve_{name}"), help, c);
    };
    counter(
        registry,
        "prompt_cache_hits",
        "Requests that restored a cached prompt from host memory (--cache-ram)",
        s.prompt_cache_hits,
    );
    counter(
        registry,
        "prompt_cache_misses",
        "Host prompt cache lookups that found no entry worth restoring",
        s.prompt_cache_misses,
    );
    counter(
        registry,
        "prompt_cache_restored_tokens",
        "Tokens whose KV cells were restored from the host prompt cache",
        s.prompt_cache_restored_tokens,
    );
    gauge(
        registry,
        "prompt_cache_entries",
        "Prompts held in the host prompt cache",
        s.prompt_cache_entries as f64,
    );
    gauge(
        registry,
        "prompt_cache_bytes",
        "Bytes of KV state held in the host prompt cache",
        s.prompt_cache_bytes as f64,
    );
    gauge(
        registry,
        "context_checkpoint_bytes",
        "Bytes of context checkpoints the slots hold in host memory (sliding-window models)",
        s.context_checkpoint_bytes as f64,
    );
    counter(
        registry,
        "context_checkpoints_restored",
        "Prompts that restored a context checkpoint instead of being computed whole",
        s.context_checkpoints_restored,
    );
    gauge(
        registry,
        "queue_length",
        "Requests waiting for a free slot",
        s.requests_deferred as f64,
    );
    gauge(
        registry,
        "queue_limit",
        "Waiting requests beyond which new ones get 503 (0: no bound)",
        ours.queue_limit as f64,
    );
    gauge(
        registry,
        "load_seconds",
        "Seconds from start until the model was ready",
        ours.load_seconds,
    );
    if let Some((quant, n_gpu_layers, n_cpu_moe)) = ours.plan {
        let labels = vec![
            label("quant", quant.to_string()),
            label("n_gpu_layers", n_gpu_layers.to_string()),
            label("n_cpu_moe", n_cpu_moe.to_string()),
        ];
        family(
            registry,
            "plan_info",
            "The planner's pick: quant and offload",
            vec![(labels, 1.0)],
        );
    }
    if let Some(p) = ours.predicted {
        let rows = vec![
            (vec![label("place", "gpu".into())], p.gpu_total() as f64),
            (vec![label("place", "host".into())], p.host_total() as f64),
        ];
        family(
            registry,
            "memory_predicted_bytes",
            "Memory the planner predicted, per place",
            rows,
        );
    }
    let rows = ours
        .allocated
        .iter()
        .map(|d| (vec![label("device", d.device.clone())], d.total() as f64))
        .collect();
    family(
        registry,
        "memory_allocated_bytes",
        "Memory llama.cpp allocated, per device",
        rows,
    );
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
            prompt_cache_hits: 2,
            prompt_cache_misses: 5,
            prompt_cache_restored_tokens: 900,
            prompt_cache_entries: 3,
            prompt_cache_bytes: 4096,
            context_checkpoint_bytes: 2048,
            context_checkpoints_restored: 7,
        };
        let allocated = [DeviceMemory {
            device: "host".into(),
            weights: 100,
            kv: 20,
            output: 0,
            compute: 5,
        }];
        let ours = Ours {
            queue_limit: 256,
            load_seconds: 1.5,
            plan: Some(("Q4_K_M", 0, 0)),
            predicted: None,
            allocated: &allocated,
        };
        let text = render(&snapshot, &ours);
        for line in [
            "# TYPE llamacpp:prompt_tokens counter",
            "llamacpp:prompt_tokens_total 12.0",
            "llamacpp:tokens_predicted_total 40.0",
            "llamacpp:n_decode_total 41.0",
            "# TYPE llamacpp:requests_processing gauge",
            "llamacpp:predicted_tokens_seconds 19.5",
            "gguf_serve_queue_limit 256.0",
            "gguf_serve_load_seconds 1.5",
            "# TYPE gguf_serve_prompt_cache_hits counter",
            "gguf_serve_prompt_cache_hits_total 2.0",
            "gguf_serve_prompt_cache_misses_total 5.0",
            "gguf_serve_prompt_cache_restored_tokens_total 900.0",
            "gguf_serve_prompt_cache_bytes 4096.0",
            "gguf_serve_context_checkpoint_bytes 2048.0",
            "gguf_serve_context_checkpoints_restored_total 7.0",
            "gguf_serve_plan_info{quant=\"Q4_K_M\",n_gpu_layers=\"0\",n_cpu_moe=\"0\"} 1.0",
            "gguf_serve_memory_allocated_bytes{device=\"host\"} 125.0",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
    }
}
