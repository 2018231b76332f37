//! How much host memory the prompt cache may take (`--cache-ram`): what was asked, but no more
//! than the host has left once the chosen model's weights, KV cache, buffers and the slots'
//! context checkpoints are placed there (less the margin), so that a filling cache never pushes
//! the machine into swap or the OOM killer. llama-server takes `--cache-ram` as given (8 GiB by
//! default, on any machine).

use serde::Serialize;

use super::{Budget, fmt_bytes};

const MIB: u64 = 1 << 20;

/// The prompt cache's limit as planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheRam {
    Off,
    /// At most this many bytes.
    Limit(u64),
    /// No limit (`--cache-ram -1`): the user's call.
    Unlimited,
}

impl CacheRam {
    /// As `--cache-ram` spells it: MiB, 0 for off, -1 for no limit.
    pub fn mib(self) -> i64 {
        match self {
            CacheRam::Off => 0,
            CacheRam::Limit(bytes) => i64::try_from(bytes / MIB).unwrap_or(i64::MAX).max(1),
            CacheRam::Unlimited => -1,
        }
    }
}

/// The limit for `asked_mib` (`--cache-ram`) on a host with `budget` where the model takes
/// `model` bytes and its slots' context checkpoints up to `checkpoints`, and why.
pub fn prompt_cache(
    asked_mib: i64,
    budget: &Budget,
    model: u64,
    checkpoints: u64,
) -> (CacheRam, String) {
    let left = budget
        .host_usable()
        .saturating_sub(model.saturating_add(checkpoints));
    let after = if checkpoints > 0 {
        "the model and its context checkpoints"
    } else {
        "the model"
    };
    match asked_mib {
        0 => (CacheRam::Off, "prompt cache off (--cache-ram 0)".into()),
        n if n < 0 => (
            CacheRam::Unlimited,
            format!(
                "prompt cache without a limit (--cache-ram {n}); {} of host memory is left after {after}",
                fmt_bytes(left)
            ),
        ),
        n => {
            let asked = u64::try_from(n).unwrap_or(u64::MAX).saturating_mul(MIB);
            if asked <= left {
                (
                    CacheRam::Limit(asked),
                    format!(
                        "prompt cache: up to {} of host memory (--cache-ram), of {} left after {after}",
                        fmt_bytes(asked),
                        fmt_bytes(left)
                    ),
                )
            } else if left < MIB {
                (
                    CacheRam::Off,
                    format!(
                        "prompt cache off: no host memory is left after {after} for the {} of --cache-ram",
                        fmt_bytes(asked)
                    ),
                )
            } else {
                (
                    CacheRam::Limit(left),
                    format!(
                        "prompt cache: up to {}, the host memory left after {after} (--cache-ram asks {})",
                        fmt_bytes(left),
                        fmt_bytes(asked)
                    ),
                )
            }
        }
    }
}
