//! The LoRA adapter flags: `--lora` and `--lora-scaled`, with llama-server's names and value
//! syntax (`--lora-init-without-apply` is accepted by the flag table: the pinned llama-server
//! does nothing with it). Each maps onto [`crate::engine::LoraAdapterConfig`]s
//! the engine loads after the model; an adapter's id is its place in the list.

use anyhow::Context;
use clap::Args;

use crate::engine::{LoraAdapterConfig, parse_lora, parse_lora_scaled};

#[derive(Debug, Clone, Args)]
pub struct LoraArgs {
    /// A LoRA adapter to load at scale 1 (repeatable; comma-separated files load several).
    #[arg(long, value_name = "FNAME")]
    pub lora: Vec<String>,

    /// A LoRA adapter with its scale, `FNAME:SCALE` (repeatable; comma-separated). Adapters
    /// get their ids in order: every --lora file first, then every --lora-scaled one.
    #[arg(long = "lora-scaled", value_name = "FNAME:SCALE,…")]
    pub lora_scaled: Vec<String>,
}

impl LoraArgs {
    /// The adapters to load, in id order.
    pub fn adapters(&self) -> anyhow::Result<Vec<LoraAdapterConfig>> {
        let mut adapters: Vec<LoraAdapterConfig> =
            self.lora.iter().flat_map(|v| parse_lora(v)).collect();
        for value in &self.lora_scaled {
            let scaled = parse_lora_scaled(value)
                .map_err(anyhow::Error::msg)
                .context("--lora-scaled")?;
            adapters.extend(scaled);
        }
        Ok(adapters)
    }
}
