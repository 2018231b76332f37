//! How fast this machine's devices read memory, for the planner's decode-speed prediction: GPUs
//! by name from `quant-profiles/gpu-bandwidth.toml`, the host by a short measurement (a few
//! tens of milliseconds, nothing cached on disk) with the threads decode uses.

use crate::gguf::ModelSummary;
use crate::plan::{BandwidthSource, HostSpeed};
use serde::Deserialize;
use std::sync::OnceLock;
use std::time::Instant;

#[derive(Deserialize)]
struct Table {
    gpus: Vec<Row>,
    default_gb_per_s: f64,
}

#[derive(Deserialize)]
struct Row {
    name: String,
    gb_per_s: f64,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        toml::from_str(include_str!("../../quant-profiles/gpu-bandwidth.toml"))
            .expect("quant-profiles/gpu-bandwidth.toml is valid")
    })
}

/// A GPU's memory bandwidth in bytes/s from its description (`NVIDIA GeForce RTX 4090`), by
/// the longest name of the table it contains; `None` if the table does not know it.
pub fn gpu_bandwidth(description: &str) -> Option<f64> {
    let d = description.to_ascii_lowercase();
    table()
        .gpus
        .iter()
        .filter(|r| d.contains(&r.name.to_ascii_lowercase()))
        .max_by_key(|r| r.name.len())
        .map(|r| r.gb_per_s * 1e9)
}

/// The bandwidth assumed for a GPU the table does not know, bytes/s.
pub fn default_gpu_bandwidth() -> f64 {
    table().default_gb_per_s * 1e9
}

/// A GPU's bandwidth and where it comes from: `given` (bytes/s), else the table, else the
/// assumed default.
pub fn gpu_bandwidth_or_default(description: &str, given: Option<f64>) -> (f64, BandwidthSource) {
    match (given, gpu_bandwidth(description)) {
        (Some(b), _) => (b, BandwidthSource::Given),
        (None, Some(b)) => (b, BandwidthSource::Table),
        (None, None) => (default_gpu_bandwidth(), BandwidthSource::Assumed),
    }
}

/// Bytes the host bandwidth measurement reads per pass: past the last-level cache of most
/// CPUs (a decode streams the whole model, which seldom fits in it). A 64 MiB buffer, inside
/// this project's VM's 260 MiB L3, measured 9 to 16 GB/s from one run to the next.
const MEASURE_BYTES: usize = 256 << 20;
/// Passes over the buffer: enough that their median spans a few hundred milliseconds. On a
/// shared VM the bandwidth dips for a hundred milliseconds at a time (other tenants, stolen
/// time); five passes (about 100 ms) sometimes all fell in one dip and predicted a 2-thread
/// decode 33% below what it then measured.
const MEASURE_PASSES: usize = 15;

/// The host's memory read bandwidth with `threads` threads, bytes/s: the median of passes over
/// a 256 MiB buffer, each thread summing its share (about 400 ms in all). The median, not the
/// best: a decode runs for seconds and meets the machine's usual contention, not its quietest
/// moment.
pub fn measure_host_bandwidth(threads: usize) -> f64 {
    let threads = threads.max(1);
    let buf: Vec<u64> = (0..(MEASURE_BYTES / 8) as u64).collect();
    let chunk = buf.len().div_ceil(threads);
    let mut times: Vec<f64> = (0..MEASURE_PASSES)
        .map(|_| {
            let start = Instant::now();
            let sum = std::thread::scope(|s| {
                let handles: Vec<_> = buf
                    .chunks(chunk)
                    .map(|c| s.spawn(move || c.iter().fold(0u64, |a, &b| a.wrapping_add(b))))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or(0))
                    .fold(0u64, u64::wrapping_add)
            });
            std::hint::black_box(sum);
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    MEASURE_BYTES as f64 / times[times.len() / 2].max(1e-9)
}

/// The host's decode speed for `threads` decode threads: `given` bandwidth (bytes/s) or a
/// measured one, and the CPU kernels' rates for the weight types of `models`.
///
/// The kernels run on a thread of their own that ends with the measurement. ggml's CPU
/// backend parallelises through OpenMP, whose thread pool belongs to the thread that started
/// it and lives as long as that thread; libgomp counts the idle workers of every live pool,
/// and once they outnumber the CPUs it stops spinning at barriers and sleeps on a futex
/// instead. A pool left over on the main thread made every barrier of serving's decode a
/// sleep and a wake: 2-thread decode on a 2-core machine ran at 70% CPU per thread.
pub fn host_speed(threads: usize, given: Option<f64>, models: &[ModelSummary]) -> HostSpeed {
    std::thread::scope(|s| {
        s.spawn(|| measure_host_speed(threads, given, models))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn measure_host_speed(threads: usize, given: Option<f64>, models: &[ModelSummary]) -> HostSpeed {
    let mut speed = match given {
        Some(b) => HostSpeed::bandwidth_only(b, BandwidthSource::Given),
        None => {
            HostSpeed::bandwidth_only(measure_host_bandwidth(threads), BandwidthSource::Measured)
        }
    };
    speed.type_rates = super::cpu_rates::measure(&weight_types(models), threads);
    speed.node_seconds = super::cpu_rates::measure_node_cost(threads).unwrap_or(0.0);
    speed
}

/// The ggml types of the weights decode multiplies (layers and the output), without repeats.
fn weight_types(models: &[ModelSummary]) -> Vec<u32> {
    let mut types: Vec<u32> = models
        .iter()
        .flat_map(|m| {
            let layers = m
                .layers
                .iter()
                .flat_map(|l| l.by_type.iter().map(|t| t.ggml_type));
            let output = m
                .non_layer
                .iter()
                .filter(|t| t.name == "output.weight" || t.name == "token_embd.weight")
                .map(|t| t.ggml_type);
            layers.chain(output).collect::<Vec<_>>()
        })
        .collect();
    types.sort_unstable();
    types.dedup();
    types
}

#[cfg(test)]
mod tests {
    #[test]
    fn gpu_names() {
        let cases = [
            ("NVIDIA H200", Some(4800e9)),
            ("NVIDIA H100 80GB HBM3", Some(3350e9)),
            ("NVIDIA H100 PCIe", Some(2000e9)),
            ("NVIDIA A100-SXM4-80GB", Some(2039e9)),
            ("NVIDIA A10", Some(600e9)),
            ("NVIDIA GeForce RTX 4060 Ti", Some(288e9)),
            ("NVIDIA GeForce RTX 4060", Some(272e9)),
            ("Apple M2 Max", Some(400e9)),
            ("Apple M2", Some(100e9)),
            ("GPU0", None),
        ];
        for (name, want) in cases {
            assert_eq!(super::gpu_bandwidth(name), want, "{name}");
        }
    }

    #[test]
    fn host_bandwidth_is_plausible() {
        let b = super::measure_host_bandwidth(1);
        assert!((1e8..1e13).contains(&b), "{b}");
    }
}
