//! How many connections the server holds at once, and how long an idle one may stay.
//!
//! Each connection costs a file descriptor, so `--max-connections 0` (the default) serves as
//! many as the open-file limit allows: the soft limit is raised to the hard one first (as Go's
//! runtime does; Rust's leaves it at the usual 1024), less a reserve for the model files, logs
//! and slot files the server opens itself. A connection beyond the cap waits in the listen
//! backlog until another closes, so a flood of idle sockets cannot make `accept` fail in a loop.

use std::time::Duration;

/// Descriptors kept back from connections for the server's own files.
const RESERVED_FILES: u64 = 128;

/// The cap where the open-file limit is unknown or unbounded.
const UNBOUNDED_CAP: usize = 16_384;

/// The fewest connections an automatic cap allows, whatever the limit says.
const MIN_CAP: usize = 16;

/// How long a connection may wait for its next request's headers, and take to send them, before
/// it is closed: llama-server's (cpp-httplib's) keep-alive timeout, and the bound that stops a
/// client trickling its headers from holding a connection (`--timeout` when shorter).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The number of connections to serve at once for `--max-connections requested`.
pub fn connection_cap(requested: usize) -> usize {
    let allowed = open_file_limit().map(|limit| {
        let free = limit.saturating_sub(RESERVED_FILES);
        usize::try_from(free).unwrap_or(usize::MAX).max(MIN_CAP)
    });
    match (requested, allowed) {
        (0, Some(allowed)) => allowed.min(UNBOUNDED_CAP),
        (0, None) => UNBOUNDED_CAP,
        (requested, Some(allowed)) if requested > allowed => {
            tracing::warn!(
                "--max-connections {requested} is above what the open-file limit leaves for \
                 connections ({allowed}): accepting may fail under load (raise `ulimit -n`)"
            );
            requested
        }
        (requested, _) => requested,
    }
}

/// The open-file soft limit, after raising it to the hard limit where the system allows.
#[cfg(unix)]
fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the rlimit it is given; a refusal leaves the limit as it was.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_cap_is_kept_and_the_automatic_one_is_bounded() {
        assert_eq!(connection_cap(7), 7);
        let automatic = connection_cap(0);
        assert!(
            (MIN_CAP..=UNBOUNDED_CAP).contains(&automatic),
            "{automatic}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
        let limit = open_file_limit().unwrap_or(u64::MAX);
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in open_file_limit.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) }, 0);
        assert_eq!(now.rlim_cur, now.rlim_max);
        if now.rlim_cur != libc::RLIM_INFINITY {
            assert_eq!(limit, now.rlim_cur);
        }
    }
}
