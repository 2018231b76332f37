//! The command line: bare flags serve a model (as `llama-server` does), subcommands plan, inspect
//! devices, quantize and benchmark. Each subcommand's flags live in its own file; this is the only
//! module (with `main.rs`) that turns errors into `anyhow` reports for the user.

mod bench;
mod devices;
mod memory;
mod plan;
mod quantize;
mod serve;

pub use bench::BenchArgs;
pub use devices::DevicesArgs;
pub use plan::PlanArgs;
pub use quantize::QuantizeArgs;
pub use serve::ServeArgs;

use clap::{Parser, Subcommand};

/// Serve GGUF language models over llama-server's HTTP API, choosing the quant and GPU offload
/// that fit your hardware.
#[derive(Debug, Parser)]
#[command(
    name = "gguf-serve",
    version,
    long_version = crate::build_info::LONG_VERSION,
    args_conflicts_with_subcommands = true,
    args_override_self = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Serve flags, usable without the `serve` subcommand (`gguf-serve -m model.gguf`).
    #[command(flatten)]
    pub serve: ServeArgs,

    /// Where to load llama.cpp's backends from (CPU variants, CUDA, Vulkan …) in a build with
    /// the `dynamic-backends` feature. Default: `backends/` beside the binary if it exists, else
    /// llama.cpp's own search (its build folder, the binary's folder, the current folder).
    #[arg(long, global = true, value_name = "DIR")]
    pub backends_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a model over HTTP (the default when no subcommand is given).
    Serve(Box<ServeArgs>),
    /// Show which quants fit which memory budget, without loading anything.
    Plan(PlanArgs),
    /// List the compute devices llama.cpp sees, with their memory.
    Devices(DevicesArgs),
    /// Quantize a GGUF model, or make a ladder of quants.
    Quantize(QuantizeArgs),
    /// Benchmark a running llama.cpp-style or OpenAI-compatible server.
    Bench(BenchArgs),
}

impl Cli {
    /// Runs the chosen command to completion.
    pub fn run(self) -> anyhow::Result<()> {
        // `bench` only speaks HTTP: no backend (a GPU one initializes its driver) to load.
        if !matches!(self.command, Some(Command::Bench(_))) {
            crate::hardware::load_backends(self.backends_dir.as_deref())?;
        }
        match self.command {
            None => serve::run(self.serve),
            Some(Command::Serve(args)) => serve::run(*args),
            Some(Command::Plan(args)) => plan::run(args),
            Some(Command::Devices(args)) => devices::run(args),
            Some(Command::Quantize(args)) => quantize::run(args),
            Some(Command::Bench(args)) => bench::run(args),
        }
    }
}

/// llama-server's multi-letter short flags (`-ngl 99`, `-np 4`, …), which clap cannot declare,
/// rewritten to their long forms so a llama-server command line parses unchanged.
const LLAMA_SHORT_FLAGS: &[(&str, &str)] = &[
    ("-ngl", "--n-gpu-layers"),
    ("-np", "--parallel"),
    ("-tb", "--threads-batch"),
    ("-ub", "--ubatch-size"),
    ("-fa", "--flash-attn"),
    ("-ctk", "--cache-type-k"),
    ("-ctv", "--cache-type-v"),
    ("-cmoe", "--cpu-moe"),
    ("-ncmoe", "--n-cpu-moe"),
    ("-bs", "--backend-sampling"),
];

/// Rewrites llama-server's multi-letter short flags to long ones; everything else is untouched.
pub fn normalize_args(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    args.into_iter()
        .map(|arg| {
            let text = arg.to_string_lossy();
            let (flag, value) = match text.split_once('=') {
                Some((flag, value)) => (flag, Some(value)),
                None => (text.as_ref(), None),
            };
            match LLAMA_SHORT_FLAGS.iter().find(|(short, _)| *short == flag) {
                Some((_, long)) => match value {
                    Some(value) => format!("{long}={value}").into(),
                    None => (*long).into(),
                },
                None => arg.clone(),
            }
        })
        .collect()
}
