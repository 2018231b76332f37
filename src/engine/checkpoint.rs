//! Context checkpoints (llama-server's `--ctx-checkpoints`): on a model with sliding-window
//! attention, those layers keep only the last `n_swa` positions of a sequence, so a prompt that
//! shares a cached prefix but diverges more than `n_swa` tokens before the end of what is cached
//! (the next turn of a chat whose template rewrote the last answer, or whose answer tokenizes
//! differently when sent back) cannot reuse that prefix: the window it needs is gone. A
//! checkpoint is the sliding-window part of a sequence's state saved while its prompt was read
//! (`4 + n_ubatch` and `4` tokens before the end, as llama-server takes them; [`Limits::tail`]),
//! so that such a prompt restores the window at the checkpoint and computes only what follows
//! it.
//!
//! A recurrent state (Mamba, RWKV, the recurrent layers of a hybrid such as Qwen3-Next or
//! Granite 4) is worse off: it stands at the last position a sequence read, and llama.cpp cannot
//! take it back, so a prompt that keeps fewer tokens than the slot read (one that departs from
//! the cache, or repeats it: its last token is decoded again) needs a checkpoint too. As
//! llama-server does, checkpoints are taken for both.
//!
//! This module is the bookkeeping (which checkpoints a slot keeps, which one a prompt can use,
//! when one is needed); the worker reads and writes the states.

/// How far back llama.cpp can cut a sequence's memory, which decides whether a cached prefix
/// serves as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollback {
    /// Every cached position stays (full attention, or `--swa-full`): any prefix serves.
    Any,
    /// Sliding-window layers keep the last `n_swa` positions of a sequence.
    Window(u32),
    /// A recurrent state stands at the last position read, and only there.
    Recurrent,
}

impl Rollback {
    /// Whether the memory, whose oldest position is `pos_min`, lacks what a prompt keeping
    /// `n_keep` cached tokens needs (then a checkpoint must serve, or the prompt is computed
    /// again). A window: the token at position `n_keep` attends to the positions less than
    /// `n_swa` before it (llama.cpp's `is_masked_swa`), so the first it needs is `n_keep - n_swa
    /// + 1`. That is also the first position llama.cpp keeps for a sequence that ends at `n_keep
    /// - 1`: it hands the cells before it to other sequences, so a next prompt that extends the
    /// cached tokens exactly (the usual chat turn) finds `pos_min` there. llama-server asks
    /// `pos_min >= n_keep - n_swa` and computes such a prompt again from a checkpoint; a whole
    /// window serves here. A recurrent state (whose `pos_min` is its one position, llama.cpp's
    /// hybrid memory answering the later of its two caches') serves only if it stands at
    /// `n_keep - 1`.
    pub fn lost(self, pos_min: i32, n_keep: usize) -> bool {
        match self {
            Rollback::Any => false,
            Rollback::Window(n_swa) => {
                let first_needed = position(n_keep).saturating_sub(position(n_swa as usize)) + 1;
                pos_min > first_needed.max(0)
            }
            Rollback::Recurrent => pos_min >= position(n_keep),
        }
    }

    /// Whether prompts take checkpoints at all.
    pub fn needs_checkpoints(self) -> bool {
        self != Rollback::Any
    }

    /// The positions before the next one that a restored checkpoint must reach back to cover.
    fn window(self) -> u32 {
        match self {
            Rollback::Window(n_swa) => n_swa,
            Rollback::Any | Rollback::Recurrent => 0,
        }
    }
}

/// The sliding-window state of one sequence, taken before its first `n_tokens` were extended.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Tokens of the sequence the state covers (the prompt read so far).
    pub n_tokens: usize,
    /// The smallest and largest positions the window held.
    pub pos_min: i32,
    pub pos_max: i32,
    /// The request that took it (a request's own checkpoints are not thinned out).
    pub task: u64,
    /// llama.cpp's partial sequence state.
    pub state: Vec<u8>,
}

/// A slot's checkpoints, oldest first, all of the tokens its cache holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checkpoints(Vec<Checkpoint>);

/// How many checkpoints a slot keeps and how far apart (`--ctx-checkpoints`,
/// `--checkpoint-min-step`), and how near a prompt's end the last one is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max: usize,
    pub min_step: usize,
    /// The `n_ubatch` of llama-server's `4 + n_ubatch`: the one the command line asks for, not
    /// a larger one the planner gave the GPU, which would leave that many more tokens to compute
    /// after every restore.
    pub tail: usize,
}

impl Checkpoints {
    /// Adds `new`, making room as llama-server's `create_checkpoint` does: when the list is
    /// full, checkpoints of earlier requests within `min_step` tokens of the one before go first,
    /// then the oldest; one at the same token count is replaced.
    pub fn add(&mut self, new: Checkpoint, limits: Limits) {
        if limits.max == 0 {
            return;
        }
        if self.0.len() + 1 >= limits.max {
            let mut last: Option<usize> = None;
            self.0.retain(|c| {
                let close = last.is_some_and(|l| c.n_tokens <= l + limits.min_step);
                let drop = c.task != new.task && close;
                if !drop {
                    last = Some(c.n_tokens);
                }
                !drop
            });
        }
        while self.0.len() >= limits.max {
            self.0.remove(0);
        }
        self.0.retain(|c| c.n_tokens != new.n_tokens);
        self.0.push(new);
    }

    /// The newest checkpoint a prompt that keeps `n_keep` cached tokens can restore: one that
    /// ends at or before `n_keep` and, with a window, reaches back over the `n_swa` positions
    /// before it (llama-server's search); `None` if there is none.
    pub fn usable(&self, n_keep: usize, rollback: Rollback) -> Option<&Checkpoint> {
        let (pos_next, threshold) = window(n_keep, rollback.window());
        self.0
            .iter()
            .rev()
            .find(|c| c.pos_max <= pos_next && (c.pos_min < threshold || c.pos_min == 0))
    }

    /// Whether one of the checkpoints covers exactly the first `n_tokens` tokens (the slot's
    /// checkpoints all describe prefixes of its cache, so that is the state a new one would
    /// hold).
    pub fn holds(&self, n_tokens: usize) -> bool {
        self.0.iter().any(|c| c.n_tokens == n_tokens)
    }

    /// Drops the checkpoints past position `pos_next`, which the cache no longer holds.
    pub fn truncate(&mut self, pos_next: usize) {
        let pos_next = position(pos_next);
        self.0.retain(|c| c.pos_max <= pos_next);
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Bytes of state held.
    pub fn bytes(&self) -> usize {
        self.0.iter().map(|c| c.state.len()).sum()
    }
}

/// A token count as a llama.cpp position.
fn position(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// For a prompt keeping `n_keep` cached tokens: the next position, and the first of the `n_swa`
/// before it that its window needs.
fn window(n_keep: usize, n_swa: u32) -> (i32, i32) {
    let pos_next = position(n_keep);
    (
        pos_next,
        (pos_next - i32::try_from(n_swa).unwrap_or(i32::MAX)).max(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(n_tokens: usize, task: u64) -> Checkpoint {
        Checkpoint {
            n_tokens,
            pos_min: n_tokens as i32 - 100,
            pos_max: n_tokens as i32 - 1,
            task,
            state: vec![0; 10],
        }
    }

    fn kept(c: &Checkpoints) -> Vec<usize> {
        c.0.iter().map(|c| c.n_tokens).collect()
    }

    #[test]
    fn a_full_list_thins_out_earlier_requests_then_drops_the_oldest() {
        let limits = |max, min_step| Limits {
            max,
            min_step,
            tail: 512,
        };
        // (checkpoints already held as (n_tokens, task), the new one's task, limits, kept after)
        type Case = (&'static [(usize, u64)], u64, Limits, &'static [usize]);
        let cases: &[Case] = &[
            // Room left: appended.
            (&[(100, 1)], 2, limits(4, 50), &[100, 1000]),
            // Full: 150 is within 50 of 100 and from an earlier request, so it goes first.
            (
                &[(100, 1), (150, 1), (600, 1)],
                2,
                limits(4, 50),
                &[100, 600, 1000],
            ),
            // The new request's own checkpoints are kept however close: the oldest goes.
            (
                &[(100, 2), (150, 2), (600, 2)],
                2,
                limits(3, 50),
                &[150, 600, 1000],
            ),
            // One at the same token count is replaced, not duplicated.
            (&[(100, 1), (1000, 1)], 2, limits(8, 0), &[100, 1000]),
            // --ctx-checkpoints 0 keeps none.
            (&[], 2, limits(0, 0), &[]),
        ];
        for (held, task, limits, want) in cases {
            let mut c = Checkpoints(held.iter().map(|&(n, t)| cp(n, t)).collect());
            c.add(cp(1000, *task), *limits);
            assert_eq!(kept(&c), *want, "held {held:?}, limits {limits:?}");
        }
    }

    #[test]
    fn a_prompt_restores_the_newest_checkpoint_that_fits_before_its_divergence() {
        let mut c = Checkpoints(vec![cp(300, 1), cp(600, 1), cp(700, 1)]);
        // (tokens kept, n_swa, the checkpoint restored)
        let cases: &[(usize, u32, Option<usize>)] = &[
            // 700's window (600..=699) ends before 750 and reaches back past 750 - 128.
            (750, 128, Some(700)),
            // 700's does not reach back past 700 - 128; 600's (500..=599) does.
            (700, 128, Some(600)),
            // 700's ends past 650: the one at 600.
            (650, 128, Some(600)),
            // Only 300's ends before 520.
            (520, 10, Some(300)),
            // Nothing ends before 250.
            (250, 128, None),
        ];
        for &(n_keep, n_swa, want) in cases {
            assert_eq!(
                c.usable(n_keep, Rollback::Window(n_swa))
                    .map(|c| c.n_tokens),
                want,
                "n_keep {n_keep}, n_swa {n_swa}"
            );
        }
        assert!(c.holds(600) && !c.holds(650));
        c.truncate(620);
        assert_eq!(kept(&c), [300, 600]);
        // Keeping 700 tokens, the next token (position 700) needs positions 573..=699.
        let window = Rollback::Window(128);
        assert!(window.lost(600, 700));
        assert!(window.lost(574, 700));
        assert!(!window.lost(573, 700));
        assert!(!window.lost(500, 700));
        // Shorter than the window: every position from 0.
        assert!(!window.lost(0, 100));
        assert!(window.lost(1, 100));
        // Full attention keeps every position.
        assert!(!Rollback::Any.lost(600, 100));
    }

    /// A recurrent state at position `p` has read `p + 1` tokens: it serves a prompt keeping
    /// exactly those (the next turn extends the cache), nothing shorter (the same prompt again:
    /// its last token is decoded again), and a checkpoint serves from where it was taken.
    #[test]
    fn a_recurrent_state_serves_only_the_tokens_it_has_read() {
        let recurrent = Rollback::Recurrent;
        assert!(!recurrent.lost(699, 700));
        assert!(recurrent.lost(699, 699));
        assert!(recurrent.lost(699, 300));
        // Checkpoints of a recurrent state: one position each, taken after 300, 600, 700 tokens.
        let at = |n: usize| Checkpoint {
            pos_min: n as i32 - 1,
            pos_max: n as i32 - 1,
            ..cp(n, 1)
        };
        let c = Checkpoints(vec![at(300), at(600), at(700)]);
        let restored = |n_keep| c.usable(n_keep, recurrent).map(|c| c.n_tokens);
        assert_eq!(restored(700), Some(700));
        assert_eq!(restored(699), Some(600));
        assert_eq!(restored(450), Some(300));
        assert_eq!(restored(299), None);
        assert!(recurrent.needs_checkpoints() && !Rollback::Any.needs_checkpoints());
    }
}
