//! The LoRA adapter flags: `--lora` and `--lora-scaled`, with llama-server's names and value
//! syntax (`--lora-init-without-apply` is accepted by the flag table: the pinned llama-server
//! does nothing with it). Each maps onto [`crate::engine::LoraAdapterConfig`]s the engine
//! loads after the model; an adapter's id is its place on the command line, across both flags
//! (`--lora a --lora-scaled b:0.5 --lora c`: a, b, c), as llama-server numbers them. clap's
//! derive keeps each flag's values apart, so this group reads the values with their positions
//! from clap's matches itself.

use anyhow::Context;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use crate::engine::{LoraAdapterConfig, parse_lora, parse_lora_scaled};

const LORA: &str = "lora";
const LORA_SCALED: &str = "lora-scaled";

#[derive(Debug, Clone, Default)]
pub struct LoraArgs {
    /// Each `--lora` (false) or `--lora-scaled` (true) value, in command-line order.
    values: Vec<(bool, String)>,
}

impl LoraArgs {
    /// The adapters to load, in id order.
    pub fn adapters(&self) -> anyhow::Result<Vec<LoraAdapterConfig>> {
        let mut adapters = Vec::new();
        for (scaled, value) in &self.values {
            if *scaled {
                let list = parse_lora_scaled(value)
                    .map_err(anyhow::Error::msg)
                    .context("--lora-scaled")?;
                adapters.extend(list);
            } else {
                adapters.extend(parse_lora(value));
            }
        }
        Ok(adapters)
    }
}

impl Args for LoraArgs {
    fn augment_args(cmd: Command) -> Command {
        cmd.arg(
            Arg::new(LORA)
                .long(LORA)
                .value_name("FNAME")
                .action(ArgAction::Append)
                .help(
                    "A LoRA adapter to load at scale 1 (repeatable; comma-separated files load \
                     several)",
                ),
        )
        .arg(
            Arg::new(LORA_SCALED)
                .long(LORA_SCALED)
                .value_name("FNAME:SCALE,…")
                .action(ArgAction::Append)
                .help("A LoRA adapter with its scale, `FNAME:SCALE` (repeatable; comma-separated)"),
        )
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for LoraArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = Self::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        let mut placed = Vec::new();
        for (id, scaled) in [(LORA, false), (LORA_SCALED, true)] {
            let values = matches
                .try_get_many::<String>(id)
                .ok()
                .flatten()
                .into_iter()
                .flatten();
            let indices = matches.indices_of(id).into_iter().flatten();
            placed.extend(indices.zip(values).map(|(i, v)| (i, scaled, v.clone())));
        }
        if !placed.is_empty() {
            placed.sort_by_key(|&(i, _, _)| i);
            self.values = placed.into_iter().map(|(_, s, v)| (s, v)).collect();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapters_are_numbered_in_command_line_order_across_both_flags() {
        let cmd = LoraArgs::augment_args(Command::new("t"));
        let matches = cmd.get_matches_from([
            "t",
            "--lora",
            "a.gguf",
            "--lora-scaled",
            "b.gguf:0.5,c.gguf:2",
            "--lora",
            "d.gguf,e.gguf",
        ]);
        let adapters = LoraArgs::from_arg_matches(&matches)
            .unwrap()
            .adapters()
            .unwrap();
        let got: Vec<(String, f32)> = adapters
            .iter()
            .map(|a| (a.path.display().to_string(), a.scale))
            .collect();
        let want = [("a", 1.0), ("b", 0.5), ("c", 2.0), ("d", 1.0), ("e", 1.0)]
            .map(|(p, s)| (format!("{p}.gguf"), s));
        assert_eq!(got, want);
    }
}
