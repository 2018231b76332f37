//! `gguf-serve devices`: the compute devices llama.cpp's backends see, host memory and the default
//! thread count: what `plan` and `serve` budget against when no `--vram` is given.

use crate::hardware::{self, Device, HostMemory};
use crate::plan::fmt_bytes;
use clap::Args;
use serde::Serialize;

#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Print the devices as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Report {
    /// llama.cpp's backends (built in, or loaded from --backends-dir).
    backends: Vec<String>,
    devices: Vec<Device>,
    host: HostMemory,
    /// Default `-t`: what llama.cpp's `common_cpu_get_num_math` returns.
    math_threads: i32,
}

pub fn run(args: DevicesArgs) -> anyhow::Result<()> {
    let report = Report {
        backends: hardware::backend_registries(),
        devices: hardware::devices(),
        host: hardware::host_memory(),
        math_threads: hardware::math_threads(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("Backends: {}\n", report.backends.join(", "));
    println!("| Device | Backend | Kind | Description | Free | Total |");
    println!("|--------|---------|------|-------------|------|-------|");
    for d in &report.devices {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
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
