//! The `gguf-serve` binary: parse the command line and run it, reporting errors on one line.

use gguf_serve::cli::{Cli, ParseError};

fn main() -> std::process::ExitCode {
    let cli = match Cli::parse_with_env(std::env::args_os(), &|name| std::env::var(name).ok()) {
        Ok(cli) => cli,
        Err(ParseError::Clap(err)) => err.exit(),
        Err(ParseError::Flag(err)) => {
            eprintln!("gguf-serve: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    match cli.run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gguf-serve: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
