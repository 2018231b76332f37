//! The prompt cache's share of host memory (`prompt_cache.rs`): what `--cache-ram` asks, capped
//! by what the host has left after the model.

use super::*;
use crate::plan::prompt_cache::{CacheRam, prompt_cache};

#[test]
fn the_cache_gets_what_is_asked_or_what_is_left() {
    // Host: 16 GiB free, no margin; the model takes `model` GiB of it.
    let host = cpu_only(16 * GIB);
    let cases: &[(&str, i64, u64, CacheRam, &str)] = &[
        ("fits", 8192, 4, CacheRam::Limit(8 * GIB), "up to 8.00 GiB"),
        (
            "capped",
            8192,
            12,
            CacheRam::Limit(4 * GIB),
            "the host memory left",
        ),
        (
            "nothing left",
            8192,
            16,
            CacheRam::Off,
            "no host memory is left",
        ),
        (
            "under a MiB left",
            8192,
            16,
            CacheRam::Off,
            "no host memory",
        ),
        ("off", 0, 4, CacheRam::Off, "--cache-ram 0"),
        (
            "no limit",
            -1,
            12,
            CacheRam::Unlimited,
            "4.00 GiB of host memory is left",
        ),
        ("small ask", 1, 4, CacheRam::Limit(MIB), "up to 1.0 MiB"),
    ];
    for &(name, asked, model, want, why) in cases {
        let predicted = MemoryEstimate {
            host_weights: model * GIB - if name == "under a MiB left" { 1024 } else { 0 },
            ..MemoryEstimate::default()
        };
        let (got, reason) = prompt_cache(asked, &host, &predicted);
        assert_eq!(got, want, "{name}");
        assert!(reason.contains(why), "{name}: {reason:?} lacks {why:?}");
    }
}

#[test]
fn the_limit_in_cache_ram_units() {
    assert_eq!(CacheRam::Off.mib(), 0);
    assert_eq!(CacheRam::Unlimited.mib(), -1);
    assert_eq!(CacheRam::Limit(8 * GIB).mib(), 8192);
    assert_eq!(
        CacheRam::Limit(MIB / 2).mib(),
        1,
        "a limit is never read as off"
    );
}
