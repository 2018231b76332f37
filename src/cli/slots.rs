//! The flags of `/infill` and of slot files: the infill prompt's order and the folder that
//! `POST /slots/{id}?action=save|restore` writes and reads.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct SlotArgs {
    /// Lay infill prompts out suffix, prefix, middle (some models prefer it) instead of
    /// prefix, suffix, middle.
    #[arg(long = "spm-infill")]
    pub spm_infill: bool,

    /// Folder where POST /slots/{id}?action=save writes a slot's prompt cache and
    /// action=restore reads it back (default: slot actions are refused).
    #[arg(long = "slot-save-path", value_name = "PATH")]
    pub slot_save_path: Option<PathBuf>,
}

impl SlotArgs {
    /// `--slot-save-path`, which must be a folder (llama-server refuses anything else).
    pub fn slot_save_path(&self) -> anyhow::Result<Option<PathBuf>> {
        match &self.slot_save_path {
            Some(dir) if !dir.is_dir() => {
                anyhow::bail!("--slot-save-path: not a directory: {}", dir.display())
            }
            other => Ok(other.clone()),
        }
    }
}
