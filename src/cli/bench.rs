//! `gguf-serve bench`. (Placeholder: filled in by the issue that brings this command.)

use clap::Args;

#[derive(Debug, Args)]
pub struct BenchArgs {}

pub fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("`gguf-serve bench` is not implemented yet")
}
