//! The memory model against hand-computed bytes, and against what llama.cpp allocated.

use super::*;

// Dense model at n_ctx 8192, f16 cache: KV 8192 cells × (2·1024 + 2·1024) B = 32 MiB per layer;
// compute: logits 4·128256·512 B, activations 4·512·(4·4096 + 2·14336) B, and the f16
// attention mask 2·8192·512 B.
const LOGITS: u64 = 262_668_288;
const WORK: u64 = 92_274_688 + 8_388_608;
// With a GPU the host keeps the mask and two 4·512·4096 B buffers.
const HOST_COMPUTE: u64 = 8_388_608 + 2 * 4 * 512 * 4096;

#[test]
fn dense_estimates() {
    let m = dense("q8_0", 100);
    let cases = [
        (
            at(33, 0),
            MemoryEstimate {
                gpu_weights: 3600 * MIB + 16384,
                gpu_kv: GIB,
                gpu_compute: LOGITS + WORK,
                host_weights: 400 * MIB,
                host_kv: 0,
                host_compute: HOST_COMPUTE,
                host_output: 4 * 128256,
            },
        ),
        // -ngl 0 with a GPU: the compute buffers are still on the GPU.
        (
            at(0, 0),
            MemoryEstimate {
                gpu_weights: 0,
                gpu_kv: 0,
                gpu_compute: LOGITS + WORK,
                host_weights: 4000 * MIB + 16384,
                host_kv: GIB,
                host_compute: HOST_COMPUTE,
                host_output: 4 * 128256,
            },
        ),
        // -ngl 1: only the output layer.
        (
            at(1, 0),
            MemoryEstimate {
                gpu_weights: 400 * MIB + 16384,
                gpu_kv: 0,
                gpu_compute: LOGITS + WORK,
                host_weights: 3600 * MIB,
                host_kv: GIB,
                host_compute: HOST_COMPUTE,
                host_output: 4 * 128256,
            },
        ),
        // -ngl 17: the output layer and layers 16..31.
        (
            at(17, 0),
            MemoryEstimate {
                gpu_weights: 2000 * MIB + 16384,
                gpu_kv: 512 * MIB,
                gpu_compute: LOGITS + WORK,
                host_weights: 2000 * MIB,
                host_kv: 512 * MIB,
                host_compute: HOST_COMPUTE,
                host_output: 4 * 128256,
            },
        ),
    ];
    for (offload, want) in cases {
        assert_eq!(estimate(&m, &ctx(8192), offload), want, "{offload:?}");
    }
    // No GPU at all: everything on the host.
    assert_eq!(
        estimate_cpu_only(&m, &ctx(8192)),
        MemoryEstimate {
            gpu_weights: 0,
            gpu_kv: 0,
            gpu_compute: 0,
            host_weights: 4000 * MIB + 16384,
            host_kv: GIB,
            host_compute: LOGITS + WORK,
            host_output: 4 * 128256,
        }
    );
    // Without flash attention: an f32 mask, and f32 scores of n_ubatch × n_kv × n_head, which
    // are not live together with the logits.
    let no_fa = ContextParams {
        flash_attn: false,
        ..ctx(8192)
    };
    assert_eq!(
        estimate(&m, &no_fa, at(33, 0)).gpu_compute,
        16_777_216 + 92_274_688 + 4 * 512 * 8192 * 32
    );
    // llama-server's n_outputs_max = n_parallel: logits for that many rows only.
    let server = ContextParams {
        n_outputs_max: 4,
        ..ctx(8192)
    };
    assert_eq!(
        estimate(&m, &server, at(33, 0)).gpu_compute,
        4 * 128256 * 4 + WORK
    );
    // q8_0 cache: 34 bytes per 32 values.
    let q8 = ContextParams {
        type_k: 8,
        type_v: 8,
        ..ctx(8192)
    };
    assert_eq!(estimate(&m, &q8, at(33, 0)).gpu_kv, 32 * 8192 * 2 * 1088);
    // n_ctx is padded to 256.
    assert_eq!(estimate(&m, &ctx(8000), at(33, 0)).gpu_kv, GIB);
}

#[test]
fn sliding_window_kv() {
    let m = sliding();
    // Per cell: 2 × 1024 values × 2 bytes. Global layer: all cells; SWA layers: window + ubatch.
    let cell = 4096;
    let cases: [(&str, ContextParams, u64); 5] = [
        ("1 seq", ctx(32768), (5 * 1536 + 32768) * cell),
        (
            "swa_full",
            ContextParams {
                swa_full: true,
                ..ctx(32768)
            },
            6 * 32768 * cell,
        ),
        (
            "4 seqs unified",
            ContextParams {
                n_seq: 4,
                ..ctx(32768)
            },
            (5 * 4608 + 32768) * cell,
        ),
        (
            "4 seqs, a stream each",
            ContextParams {
                n_seq: 4,
                kv_unified: false,
                ..ctx(32768)
            },
            4 * (5 * 1536 + 8192) * cell,
        ),
        ("context under the window", ctx(1024), 6 * 1024 * cell),
    ];
    for (name, ctx, want) in cases {
        assert_eq!(estimate(&m, &ctx, at(7, 0)).gpu_kv, want, "{name}");
    }
    // Tied embeddings: the GPU holds a copy of token_embd as the output layer; the host keeps it.
    let full = estimate(&m, &ctx(4096), at(7, 0));
    assert_eq!(
        (full.gpu_weights, full.host_weights),
        (160 * MIB, 100 * MIB)
    );
}

#[test]
fn a_context_checkpoint_holds_the_window_of_the_sliding_layers() {
    // Per cell: 2 × 1024 values × 2 bytes in each of 5 sliding layers with a 1024 window, and
    // the cell's position and sequence id (12 bytes).
    let cell = 4096;
    let meta = 12;
    let cases: [(&str, ModelSummary, ContextParams, u64); 6] = [
        ("window", sliding(), ctx(32768), 1024 * (5 * cell + meta)),
        (
            "4 seqs, a stream each",
            sliding(),
            ContextParams {
                n_seq: 4,
                kv_unified: false,
                ..ctx(32768)
            },
            1024 * (5 * cell + meta),
        ),
        (
            "context under the window",
            sliding(),
            ctx(512),
            512 * (5 * cell + meta),
        ),
        (
            "q8_0 cache",
            sliding(),
            ContextParams {
                type_k: 8,
                type_v: 8,
                ..ctx(32768)
            },
            1024 * (5 * 2 * 1088 + meta),
        ),
        (
            "swa_full keeps every position: nothing to checkpoint",
            sliding(),
            ContextParams {
                swa_full: true,
                ..ctx(32768)
            },
            0,
        ),
        ("no sliding window", dense("q8_0", 100), ctx(32768), 0),
    ];
    for (name, model, ctx, want) in cases {
        assert_eq!(checkpoint_bytes(&model, &ctx), want, "{name}");
    }
}

#[test]
fn moe_keeps_experts_on_cpu_first() {
    let m = moe();
    // KV 4096 × 2 × 128 × 2 B = 2 MiB per layer; logits 4·1000·512; activations
    // 4·512·(4·1024 + 2·512·4); mask 2·4096·512.
    let full_gpu = 4050 * MIB + 16384 + 8 * MIB + 2_048_000 + 16_777_216 + 4 * MIB;
    let request = PlanRequest {
        context: ctx(4096),
        ..PlanRequest::default()
    };
    let cases = [
        // (GPU free, fit, n_gpu_layers, n_cpu_moe)
        (full_gpu, Fit::FullGpu, 5, 0),
        (full_gpu - 1, Fit::PartialGpu, 5, 1),
        (3 * GIB, Fit::PartialGpu, 5, 2),
        (500 * MIB, Fit::PartialGpu, 5, 4),
        // Not even attention of every layer fits: fewer layers, experts with them.
        (400 * MIB, Fit::PartialGpu, 1, 0),
    ];
    for (free, fit, ngl, ncmoe) in cases {
        let p = plan_file(&m, &request, &gpu(free, 64 * GIB));
        assert_eq!(
            (p.fit, p.offload.n_gpu_layers, p.offload.n_cpu_moe),
            (fit, ngl, ncmoe),
            "free {free}: {}",
            p.reason
        );
    }
    let p = plan_file(&m, &request, &gpu(3 * GIB, 64 * GIB));
    assert_eq!(p.predicted.host_weights, 50 * MIB + 1800 * MIB);
}

/// Measured on an H100 with llama.cpp b11434 (`llama-batched-bench -c 8192 -npl 4 -kvu`) for
/// a llama written by our GgufWriter: 8 layers, n_embd 256, 4 heads (2 KV) of 64, n_ff 512,
/// 16000 tokens, F16, tied embeddings. Weights, KV cache: exact (the log prints 2 decimals);
/// compute buffers: within 30% (the estimate is conservative for partial offload).
#[test]
fn gpu_measurements() {
    let m = summary(
        Shape {
            n_layer: 8,
            n_embd: 256,
            n_head: 4,
            n_head_kv: 2,
            head_dim: 64,
            n_ff: 512,
            vocab: 16000,
            layer_bytes: 1_181_696,
            expert_bytes: 0,
            embd: (8_192_000, None),
            swa: None,
        },
        "f16",
    );
    let on = ContextParams {
        n_ctx: 8192,
        n_seq: 4,
        ..ContextParams::default()
    };
    let off = ContextParams {
        flash_attn: false,
        ..on.clone()
    };
    let mib = |b: u64| b as f64 / MIB as f64;
    // (ngl, context, [gpu weights, host weights, gpu KV, host KV], [gpu compute, host compute])
    let rows = [
        (99, &on, [16.83, 7.81, 32.0, 0.0], [41.27, 10.02]),
        (99, &off, [16.83, 7.81, 32.0, 0.0], [83.01, 18.52]),
        (5, &on, [12.32, 12.32, 16.0, 16.0], [34.25, 10.02]),
        (1, &on, [7.81, 16.83, 0.0, 32.0], [34.25, 10.02]),
        (0, &on, [0.0, 16.83, 0.0, 32.0], [42.07, 10.02]),
    ];
    for (ngl, ctx, exact, compute) in rows {
        let e = estimate(&m, ctx, at(ngl, 0));
        let got = [e.gpu_weights, e.host_weights, e.gpu_kv, e.host_kv].map(mib);
        for (g, want) in got.iter().zip(exact) {
            assert!((g - want).abs() < 0.01, "-ngl {ngl}: {got:?} vs {exact:?}");
        }
        let got = [e.gpu_compute, e.host_compute].map(mib);
        for (g, want) in got.iter().zip(compute) {
            assert!(
                (g - want).abs() / want < 0.3,
                "-ngl {ngl}: {got:?} vs {compute:?}"
            );
        }
    }
}
