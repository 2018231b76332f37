//! The `gguf-serve` binary: parse the command line and run it, reporting errors on one line.

use clap::Parser;
use gguf_serve::cli::{self, Cli};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse_from(cli::normalize_args(std::env::args_os()));
    match cli.run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gguf-serve: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
