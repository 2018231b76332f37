//! Slot files: the typed requests and answers of llama-server's slot actions (`POST
//! /slots/{id}?action=save|restore|erase`). The worker carries them out on its thread
//! (`worker/slot_state.rs`); the server only checks names and writes JSON.

use std::path::PathBuf;

/// What to do with one slot's prompt cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotAction {
    /// Write the slot's tokens and KV cells to `path`.
    Save { id_slot: usize, path: PathBuf },
    /// Replace the slot's cache with the file at `path`.
    Restore { id_slot: usize, path: PathBuf },
    /// Empty the slot's cache.
    Erase { id_slot: usize },
}

impl SlotAction {
    pub fn id_slot(&self) -> usize {
        match self {
            Self::Save { id_slot, .. }
            | Self::Restore { id_slot, .. }
            | Self::Erase { id_slot } => *id_slot,
        }
    }
}

/// What a slot action did.
#[derive(Debug, Clone, PartialEq)]
pub enum SlotActionDone {
    Saved {
        n_saved: usize,
        n_written: usize,
        ms: f64,
    },
    Restored {
        n_restored: usize,
        n_read: usize,
        ms: f64,
    },
    Erased {
        n_erased: usize,
    },
}

/// Why a slot action failed; the texts are llama-server's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotActionError {
    #[error("Invalid slot ID")]
    InvalidSlot,
    #[error("Unable to save slot")]
    Save,
    #[error("Unable to restore slot: {0}")]
    Restore(&'static str),
    #[error("the engine has stopped")]
    Stopped,
}

/// The failures of a restore, in llama-server's words.
pub mod restore {
    pub const UNREADABLE: &str = "No available space in KV cache or invalid slot save file";
    pub const TOO_LONG: &str = "Restored prompt does not fit in the slot context";
    pub const INVALID_TOKENS: &str = "Invalid tokens in slot save file";
    pub const VERSION: &str = "Unsupported server tokens state version";
    pub const TRUNCATED: &str = "Unexpected end of server tokens state";
    pub const MEDIA: &str = "Cannot restore media tokens without an mmproj";
    pub const TRAILING: &str = "Trailing data in server tokens state";
}
