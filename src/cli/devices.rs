//! `gguf-serve devices`: the compute devices llama.cpp's backends see, host memory, memory
//! bandwidths and the default thread count: what `plan` and `serve` budget against when no
//! `--vram` is given.

use crate::hardware::{self, Device, HostMemory};
use crate::plan::fmt_bytes;
use clap::Args;
use serde::Serialize;

#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Print the devices as JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub rpc: super::RpcArgs,
}

#[derive(Serialize)]
struct Report {
    /// llama.cpp's backends (built in, or loaded from --backends-dir).
    backends: Vec<String>,
    devices: Vec<Device>,
    host: HostMemory,
    /// Default `-t`: what llama.cpp's `common_cpu_get_num_math` returns.
    math_threads: i32,
    /// Host memory read bandwidth with `math_threads` threads, bytes/s (measured).
    host_bandwidth: f64,
}

pub fn run(args: DevicesArgs) -> anyhow::Result<()> {
    args.rpc.add()?;
    let report = Report {
        backends: hardware::backend_registries(),
        devices: hardware::devices(),
        host: hardware::host_memory(),
        math_threads: hardware::math_threads(),
        host_bandwidth: hardware::speed::measure_host_bandwidth(
            hardware::math_threads().max(1) as usize
        ),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("Backends: {}\n", report.backends.join(", "));
    println!("| Device | Backend | Kind | Description | Free | Total | Bandwidth |");
    println!("|--------|---------|------|-------------|------|-------|-----------|");
    for d in &report.devices {
        let bandwidth = match (d.kind.as_str(), d.bandwidth) {
            ("cpu", _) => format!("{:.1} GB/s (measured)", report.host_bandwidth / 1e9),
            (_, Some(b)) => format!("{:.0} GB/s (by name)", b / 1e9),
            (_, None) => format!(
                "unknown ({:.0} GB/s assumed)",
                hardware::speed::default_gpu_bandwidth() / 1e9
            ),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {bandwidth} |",
            d.name,
            d.backend,
            d.kind,
            d.description,
            fmt_bytes(d.memory_free),
            fmt_bytes(d.memory_total)
        );
    }
    println!(
        "\nHost memory: {} available of {}",
        fmt_bytes(report.host.available),
        fmt_bytes(report.host.total)
    );
    println!("Math threads (default -t): {}", report.math_threads);
    Ok(())
}
