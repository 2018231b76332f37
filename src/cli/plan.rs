//! `gguf-serve plan`. (Placeholder: filled in by the issue that brings this command.)

use clap::Args;

#[derive(Debug, Args)]
pub struct PlanArgs {}

pub fn run(_args: PlanArgs) -> anyhow::Result<()> {
    anyhow::bail!("`gguf-serve plan` is not implemented yet")
}
