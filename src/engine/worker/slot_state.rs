//! Slot actions on the engine thread: saving a slot's prompt cache (its tokens and KV cells) to
//! a file, restoring one into a slot, erasing a slot. An action on a slot that is serving a
//! request waits until the slot is free, as llama-server defers it.
//!
//! The tokens are stored as llama-server stores them (`server_tokens::serialize`: the marker
//! `LLAMA_TOKEN_NULL`, a version, the count, the tokens, no media), so files move between the
//! two servers; a plain token list, as older llama-servers wrote, restores too.

use std::path::Path;
use std::time::Instant;

use llama_cpp_2::token::LlamaToken;
use tokio::sync::oneshot;

use super::Worker;
use crate::engine::slot_file::{SlotAction, SlotActionDone, SlotActionError, restore};

/// Where the answer of a slot action goes.
pub type SlotReply = oneshot::Sender<Result<SlotActionDone, SlotActionError>>;

/// An action waiting for its slot to finish a request.
#[derive(Debug)]
pub struct Deferred {
    action: SlotAction,
    reply: SlotReply,
}

/// llama.h's `LLAMA_TOKEN_NULL`, which marks the versioned layout.
const MARKER: i32 = -1;
/// llama-server's `SERVER_TOKENS_STATE_VERSION`.
const VERSION: i32 = 1;

impl Worker<'_> {
    /// Runs a slot action, or defers it while its slot is busy.
    pub(super) fn slot_action(&mut self, action: SlotAction, reply: SlotReply) {
        let id = action.id_slot();
        if id >= self.slots.len() {
            let _ = reply.send(Err(SlotActionError::InvalidSlot));
            return;
        }
        if self.slots[id].task.is_some() {
            tracing::debug!(slot = id, "slot busy: the slot action waits for it");
            self.slot_actions.push_back(Deferred { action, reply });
            return;
        }
        let result = match &action {
            SlotAction::Save { path, .. } => self.save_slot(id, path),
            SlotAction::Restore { path, .. } => self.restore_slot(id, path),
            SlotAction::Erase { .. } => Ok(self.erase_slot(id)),
        };
        let _ = reply.send(result);
    }

    /// Runs, in arrival order, the deferred actions whose slot is free now; drops those whose
    /// client has gone.
    pub(super) fn run_deferred_slot_actions(&mut self) {
        if self.slot_actions.is_empty() {
            return;
        }
        for deferred in std::mem::take(&mut self.slot_actions) {
            if !deferred.reply.is_closed() {
                self.slot_action(deferred.action, deferred.reply);
            }
        }
    }

    fn save_slot(&mut self, id: usize, path: &Path) -> Result<SlotActionDone, SlotActionError> {
        let t0 = Instant::now();
        let slot = &self.slots[id];
        let packed = pack(&slot.cache);
        let n_written = self
            .ctx
            .seq_save_file(slot.seq_id(), path, &packed)
            .ok_or(SlotActionError::Save)?;
        tracing::info!(slot = id, path = %path.display(), n_written, "slot saved");
        Ok(SlotActionDone::Saved {
            n_saved: slot.cache.len(),
            n_written,
            ms: t0.elapsed().as_secs_f64() * 1e3,
        })
    }

    fn restore_slot(&mut self, id: usize, path: &Path) -> Result<SlotActionDone, SlotActionError> {
        let t0 = Instant::now();
        let seq = self.slots[id].seq_id();
        self.erase_slot(id);
        let n_vocab = self.model.n_vocab();
        let n_ctx = self.slots[id].n_ctx as usize;
        let loaded = self
            .ctx
            .seq_load_file(seq, path)
            .ok_or(restore::UNREADABLE)
            .and_then(|(packed, n_read)| {
                let tokens = unpack(&packed)?;
                if tokens.len() > n_ctx {
                    return Err(restore::TOO_LONG);
                }
                if tokens.iter().any(|t| !(0..n_vocab).contains(&t.0)) {
                    return Err(restore::INVALID_TOKENS);
                }
                Ok((tokens, n_read))
            });
        let (tokens, n_read) = match loaded {
            Ok(loaded) => loaded,
            Err(reason) => {
                self.ctx.seq_rm(seq, None, None);
                return Err(SlotActionError::Restore(reason));
            }
        };
        tracing::info!(slot = id, path = %path.display(), n_tokens = tokens.len(), "slot restored");
        let n_restored = tokens.len();
        self.slots[id].cache = tokens;
        self.slots[id].checkpoints.clear();
        self.slots[id].parked = false;
        Ok(SlotActionDone::Restored {
            n_restored,
            n_read,
            ms: t0.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// Empties a slot's cache; what it held.
    fn erase_slot(&mut self, id: usize) -> SlotActionDone {
        let n_erased = self.slots[id].cache.len();
        self.clear_slot(id);
        SlotActionDone::Erased { n_erased }
    }
}

/// llama-server's layout of a slot's tokens in a state file.
fn pack(tokens: &[LlamaToken]) -> Vec<i32> {
    let mut packed = Vec::with_capacity(tokens.len() + 4);
    packed.extend([MARKER, VERSION, tokens.len() as i32]);
    packed.extend(tokens.iter().map(|t| t.0));
    packed.push(0); // no media chunks
    packed
}

/// The tokens of a state file: llama-server's versioned layout, or a plain list.
fn unpack(packed: &[i32]) -> Result<Vec<LlamaToken>, &'static str> {
    if packed.first() != Some(&MARKER) {
        return Ok(packed.iter().copied().map(LlamaToken).collect());
    }
    let mut rest = &packed[1..];
    let mut next = || -> Result<u32, &'static str> {
        let (&value, tail) = rest.split_first().ok_or(restore::TRUNCATED)?;
        rest = tail;
        Ok(value as u32)
    };
    if next()? != VERSION as u32 {
        return Err(restore::VERSION);
    }
    let n = next()? as usize;
    let Some((tokens, tail)) = rest.split_at_checked(n) else {
        return Err(restore::TRUNCATED);
    };
    let tokens: Vec<LlamaToken> = tokens.iter().copied().map(LlamaToken).collect();
    let (&n_media, tail) = tail.split_first().ok_or(restore::TRUNCATED)?;
    if n_media != 0 {
        return Err(restore::MEDIA);
    }
    if !tail.is_empty() {
        return Err(restore::TRAILING);
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(ids: &[i32]) -> Vec<LlamaToken> {
        ids.iter().copied().map(LlamaToken).collect()
    }

    #[test]
    fn packs_as_llama_server_serializes() {
        assert_eq!(pack(&tokens(&[2, 7, 9])), [-1, 1, 3, 2, 7, 9, 0]);
        assert_eq!(pack(&[]), [-1, 1, 0, 0]);
    }

    #[test]
    fn unpacks_every_layout_and_refuses_broken_ones() {
        type Case = (&'static [i32], Result<&'static [i32], &'static str>);
        let cases: &[Case] = &[
            (&[-1, 1, 3, 2, 7, 9, 0], Ok(&[2, 7, 9])),
            (&[-1, 1, 0, 0], Ok(&[])),
            // A plain list, as older llama-servers wrote.
            (&[2, 7, 9], Ok(&[2, 7, 9])),
            (&[], Ok(&[])),
            (&[-1, 2, 0, 0], Err(restore::VERSION)),
            (&[-1, 1, 5, 2, 7], Err(restore::TRUNCATED)),
            (&[-1, 1, 2, 2, 7], Err(restore::TRUNCATED)),
            (&[-1], Err(restore::TRUNCATED)),
            (&[-1, 1, 1, 4, 1, 0], Err(restore::MEDIA)),
            (&[-1, 1, 1, 4, 0, 0], Err(restore::TRAILING)),
        ];
        for (packed, want) in cases {
            let want = want.map(tokens);
            assert_eq!(unpack(packed), want, "unpacking {packed:?}");
        }
    }
}
