//! `gguf-serve devices`. (Placeholder: filled in by the issue that brings this command.)

use clap::Args;

#[derive(Debug, Args)]
pub struct DevicesArgs {}

pub fn run(_args: DevicesArgs) -> anyhow::Result<()> {
    anyhow::bail!("`gguf-serve devices` is not implemented yet")
}
