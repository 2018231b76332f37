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
        let taken = model * GIB - if name == "under a MiB left" { 1024 } else { 0 };
        let (got, reason) = prompt_cache(asked, &host, taken, 0);
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

#[test]
fn context_checkpoints_take_host_memory_before_the_prompt_cache() {
    // 4 slots × 32 checkpoints × 1024 cells × (5 sliding layers × 4 KiB + 12 bytes) = 2.5 GiB.
    let request = PlanRequest {
        context: ContextParams {
            n_seq: 4,
            ..ctx(8192)
        },
        ..PlanRequest::default()
    };
    let checkpoints = 4 * 32 * 1024 * (5 * 4096 + 12);
    let model = plan_file(&sliding(), &request, &cpu_only(8 * GIB)).predicted;
    let decision = choose(&[sliding()], &request, &cpu_only(8 * GIB)).unwrap();
    assert_eq!(decision.checkpoints, checkpoints);
    let left = 8 * GIB - model.host_total() - checkpoints;
    assert_eq!(decision.prompt_cache, CacheRam::Limit(left));
    assert!(
        decision.reasons.iter().any(|r| r
            == "context checkpoints: up to 2.50 GiB of host memory (32 per slot × 4 slots × 20.0 MiB)"),
        "{:?}",
        decision.reasons
    );
    assert!(decision.warnings.is_empty(), "{:?}", decision.warnings);
    assert!(
        decision
            .reasons
            .iter()
            .any(|r| r.contains("left after the model and its context checkpoints")),
        "{:?}",
        decision.reasons
    );

    // More than the host has left: planned all the same, with a warning that says what to lower.
    let small = cpu_only(model.host_total() + GIB);
    let decision = choose(&[sliding()], &request, &small).unwrap();
    assert_eq!(decision.prompt_cache, CacheRam::Off);
    assert!(
        decision
            .warnings
            .iter()
            .any(|w| w.contains("up to 2.50 GiB") && w.contains("lower --ctx-checkpoints")),
        "{:?}",
        decision.warnings
    );

    // --ctx-checkpoints 0, or a model without a sliding window: none, and no reason line.
    let off = PlanRequest {
        ctx_checkpoints: 0,
        ..request.clone()
    };
    for (name, model, request) in [
        ("--ctx-checkpoints 0", sliding(), &off),
        ("no window", dense("q8_0", 10), &request),
    ] {
        let decision = choose(&[model], request, &cpu_only(64 * GIB)).unwrap();
        assert_eq!(decision.checkpoints, 0, "{name}");
        assert!(
            !decision.reasons.iter().any(|r| r.contains("checkpoints")),
            "{name}: {:?}",
            decision.reasons
        );
    }
}
