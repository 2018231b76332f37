//! Decode-speed prediction (`speed.rs`), the margin rule, the `--prefer` policies and the
//! training-context warning.

use super::*;

/// KV bytes per cell of a dense fixture layer: K and V of 8 heads × 128, f16.
const KV_CELL: u64 = 2 * 2 * 1024;

fn speed_at(
    m: &ModelSummary,
    n_ctx: u32,
    offload: Offload,
    use_gpu: bool,
    b: &Budget,
) -> SpeedEstimate {
    decode_speed(m, &ctx(n_ctx), offload, use_gpu, b)
}

#[test]
fn bytes_read_per_token() {
    let dense = dense("q8_0", 100);
    // Every layer, the output matrix and its norm, the KV cache at 1024 tokens; not token_embd.
    let all = 32 * 100 * MIB + 400 * MIB + 16384 + 32 * 1024 * KV_CELL;
    let mut sliding = sliding();
    sliding.sliding_window = Some(100);
    // Tied: token_embd is read as the output; five sliding layers read 100 cells, one 1024.
    let kv = 2 * 2 * 4 * 256;
    let sliding_all = 6 * 10 * MIB + 100 * MIB + 5 * 100 * kv + 1024 * kv;
    let moe = moe();
    // 4 of 32 experts: 100 MiB dense + 900/8 MiB of experts per layer.
    let moe_layer = 100 * MIB + 900 * MIB / 8;
    let moe_kv = 2 * 2 * 128 * 1024;
    let cases: [(&str, &ModelSummary, Offload, bool, u64, u64); 7] = [
        ("dense, CPU", &dense, at(0, 0), false, 0, all),
        ("dense, all on the GPU", &dense, at(33, 0), true, all, 0),
        // -ngl 1: the output layer only.
        (
            "dense, -ngl 1",
            &dense,
            at(1, 0),
            true,
            400 * MIB + 16384,
            all - 400 * MIB - 16384,
        ),
        // A GPU left unused (use_gpu false) reads nothing.
        ("dense, GPU unused", &dense, at(33, 0), false, 0, all),
        ("sliding, CPU", &sliding, at(0, 0), false, 0, sliding_all),
        (
            "moe, all on the GPU",
            &moe,
            at(5, 0),
            true,
            4 * moe_layer + 50 * MIB + 16384 + 4 * moe_kv,
            0,
        ),
        // --n-cpu-moe 4: the experts read on the host.
        (
            "moe, experts on the CPU",
            &moe,
            at(5, 4),
            true,
            4 * 100 * MIB + 50 * MIB + 16384 + 4 * moe_kv,
            4 * 900 * MIB / 8,
        ),
    ];
    let b = gpu(64 * GIB, 64 * GIB);
    for (name, m, offload, use_gpu, gpu_bytes, host_bytes) in cases {
        let s = speed_at(m, 8192, offload, use_gpu, &b);
        assert_eq!(
            (s.gpu_bytes, s.host_bytes),
            (gpu_bytes, host_bytes),
            "{name}"
        );
        let seconds = gpu_bytes as f64 / GPU_BW + host_bytes as f64 / HOST_BW;
        assert!((s.seconds_per_token - seconds).abs() < 1e-12, "{name}");
        assert!((s.tokens_per_second * seconds - 1.0).abs() < 1e-9, "{name}");
    }
    // A context under 1024 tokens is read whole.
    let s = speed_at(&dense, 512, at(0, 0), false, &b);
    assert_eq!((s.kv_fill, s.host_bytes), (512, all - 32 * 512 * KV_CELL));
}

#[test]
fn host_reads_then_computes() {
    let m = dense("q8_0", 100);
    let kv = 32 * 1024 * KV_CELL;
    let layers = 32.0 * 100.0 * MIB as f64;
    let rest = (400 * MIB + 16384 + kv) as f64;
    let mut b = cpu_only(64 * GIB);
    // Q8_0 weights (type 8) read at 50 GB/s and computed at 10 GB/s, one after the other; the
    // f32 output matrix and norm (no rate measured) and the f16 KV cache read only.
    b.host.type_rates = vec![TypeRate {
        ggml_type: 8,
        bytes_per_second: 10e9,
    }];
    let s = speed_at(&m, 8192, at(0, 0), false, &b);
    let want = layers / HOST_BW + layers / 10e9 + rest / HOST_BW;
    assert!((s.seconds_per_token - want).abs() < 1e-12, "{s:?}");
    // Each operation of the 32 layers and the output layer the host runs costs a barrier.
    b.host.node_seconds = 1e-6;
    let s = speed_at(&m, 8192, at(0, 0), false, &b);
    let sync = 33.0 * NODES_PER_LAYER as f64 * 1e-6;
    assert!((s.seconds_per_token - want - sync).abs() < 1e-12, "{s:?}");
    // -ngl 1: the output layer is the GPU's.
    let s = speed_at(&m, 8192, at(1, 0), true, &gpu_with_host(b.host.clone()));
    assert!(
        (s.seconds_per_token
            - s.gpu_bytes as f64 / GPU_BW
            - (want - 400.0 * MIB as f64 / HOST_BW - 16384.0 / HOST_BW)
            - 32.0 * NODES_PER_LAYER as f64 * 1e-6)
            .abs()
            < 1e-9,
        "{s:?}"
    );
    // The host's rates do not slow a model all on the GPU.
    let s = speed_at(&m, 8192, at(33, 0), true, &gpu_with_host(b.host.clone()));
    assert!(
        (s.seconds_per_token - (layers + rest) / GPU_BW).abs() < 1e-12,
        "{s:?}"
    );
}

fn gpu_with_host(host: HostSpeed) -> Budget {
    let mut b = gpu(64 * GIB, 64 * GIB);
    b.host = host;
    b
}

#[test]
fn default_margin_scales_with_small_devices() {
    let cases = [
        (Margin::Default, GIB, 128 * MIB),
        (Margin::Default, 4 * GIB, 512 * MIB),
        (Margin::Default, 8 * GIB, GIB),
        (Margin::Default, 80 * GIB, GIB),
        (Margin::Default, 0, 0),
        (Margin::Explicit(0), GIB, 0),
        (Margin::Explicit(2 * GIB), 80 * GIB, 2 * GIB),
        (Margin::Explicit(2 * GIB), GIB, 2 * GIB),
    ];
    for (rule, free, margin) in cases {
        assert_eq!(rule.for_free(free), margin, "{rule:?} {free}");
    }
    let b = Budget::new(
        vec![("GPU0".into(), GIB, GPU_BW, BandwidthSource::Given)],
        16 * GIB,
        Margin::Default,
        host(),
    );
    assert_eq!(b.gpu_usable(), 896 * MIB);
    assert_eq!(b.host_usable(), 15 * GIB);
}

#[test]
fn prefer_table() {
    let ladder = [
        dense("q2_k", 40),
        dense("q4_k_m", 60),
        dense("q6_k", 80),
        dense("q8_0", 100),
    ];
    // Bytes per token (32 layers, output 4 layers, 128 MiB of KV): Q2_K 1568 MiB, Q4_K_M
    // 2288 (69% of Q2_K's speed), Q6_K 3008 (52%), Q8_0 3728 (42%).
    let cases = [
        (
            "GPU, quality",
            gpu(64 * GIB, 64 * GIB),
            Prefer::Quality,
            "Q8_0",
        ),
        (
            "GPU, balanced",
            gpu(64 * GIB, 64 * GIB),
            Prefer::Balanced,
            "Q4_K_M",
        ),
        ("GPU, speed", gpu(64 * GIB, 64 * GIB), Prefer::Speed, "Q2_K"),
        ("CPU, quality", cpu_only(64 * GIB), Prefer::Quality, "Q8_0"),
        (
            "CPU, balanced",
            cpu_only(64 * GIB),
            Prefer::Balanced,
            "Q4_K_M",
        ),
        ("CPU, speed", cpu_only(64 * GIB), Prefer::Speed, "Q2_K"),
        // Q2_K and Q4_K_M fit the GPU (2.95e9 and 3.70e9 B); Q6_K and Q8_0 run partly on the
        // host at 1/20 of the GPU's bandwidth, far slower.
        (
            "4 GB GPU, balanced",
            gpu(4_000_000_000, 64 * GIB),
            Prefer::Balanced,
            "Q4_K_M",
        ),
        (
            "4 GB GPU, quality",
            gpu(4_000_000_000, 64 * GIB),
            Prefer::Quality,
            "Q4_K_M",
        ),
    ];
    for (name, budget, prefer, want) in cases {
        let request = PlanRequest {
            context: ctx(8192),
            prefer,
            ..PlanRequest::default()
        };
        let d = choose(&ladder, &request, &budget).unwrap();
        assert_eq!(d.quant, want, "{name}: {:?}", d.reasons);
        assert!(
            d.reasons[0].starts_with(&format!("picked {want}")),
            "{name}"
        );
        // The pick's speed is within the policy's share of the fastest.
        let fastest = d
            .plans
            .iter()
            .map(|p| p.speed.tokens_per_second)
            .fold(0.0, f64::max);
        let floor = match prefer {
            Prefer::Speed => fastest,
            Prefer::Balanced => fastest * BALANCED_SHARE,
            Prefer::Quality => 0.0,
        };
        assert!(d.speed.tokens_per_second >= floor, "{name}");
    }
    // Balanced says why each better quant lost.
    let request = PlanRequest {
        context: ctx(8192),
        ..PlanRequest::default()
    };
    let d = choose(&ladder, &request, &cpu_only(64 * GIB)).unwrap();
    assert!(
        d.reasons.iter().any(
            |r| r.starts_with("not Q8_0: predicted ") && r.contains("under 60% of the fastest")
        ),
        "{:?}",
        d.reasons
    );
}

#[test]
fn context_past_training_is_warned() {
    // The fixtures' training context is 131072.
    let m = dense("q8_0", 100);
    let at = |n_ctx, n_seq, kv_unified| ContextParams {
        n_ctx,
        n_seq,
        kv_unified,
        ..ContextParams::default()
    };
    let cases = [
        (at(0, 1, true), false),
        (at(131072, 1, true), false),
        (at(262144, 1, true), true),
        // Four sequences of 65536 each.
        (at(262144, 4, false), false),
        (at(262144, 4, true), true),
    ];
    for (ctx, warned) in cases {
        let w = context_warning(&m, &ctx);
        assert_eq!(w.is_some(), warned, "{ctx:?}: {w:?}");
    }
    let w = context_warning(&m, &at(262144, 1, true)).unwrap();
    assert!(
        w.contains("more than Q8_0's training context (131072)"),
        "{w}"
    );
    let request = PlanRequest {
        context: at(262144, 1, true),
        ..PlanRequest::default()
    };
    let d = choose(&[m], &request, &cpu_only(1 << 40)).unwrap();
    assert_eq!(d.warnings, vec![w]);
}
