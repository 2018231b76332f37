//! `gguf-serve quantize`. (Placeholder: filled in by the issue that brings this command.)

use clap::Args;

#[derive(Debug, Args)]
pub struct QuantizeArgs {}

pub fn run(_args: QuantizeArgs) -> anyhow::Result<()> {
    anyhow::bail!("`gguf-serve quantize` is not implemented yet")
}
