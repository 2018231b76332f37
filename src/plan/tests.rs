//! Table tests of the memory model and the choice, against hand-computed cases: a dense model
//! (Llama-3-8B-like shapes), a sliding-window model (Gemma-3-like) and a MoE model.

use super::*;
use crate::gguf::{LayerTensors, ModelSummary, TensorGroup, quant_by_name};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

struct Shape {
    n_layer: u32,
    n_embd: u64,
    n_head: u32,
    n_head_kv: u32,
    head_dim: u64,
    n_ff: u64,
    vocab: u64,
    layer_bytes: u64,
    expert_bytes: u64,
    /// (bytes of token_embd, bytes of output.weight if untied)
    embd: (u64, Option<u64>),
    swa: Option<(u64, Vec<bool>)>,
}

fn summary(s: Shape, quant: &str) -> ModelSummary {
    let n = s.n_layer as usize;
    let mut non_layer = vec![TensorGroup {
        name: "token_embd.weight".into(),
        ggml_type: 0,
        bytes: s.embd.0,
    }];
    if let Some(out) = s.embd.1 {
        non_layer.push(TensorGroup {
            name: "output.weight".into(),
            ggml_type: 0,
            bytes: out,
        });
        non_layer.push(TensorGroup {
            name: "output_norm.weight".into(),
            ggml_type: 0,
            bytes: 16384,
        });
    }
    ModelSummary {
        path: format!("m-{quant}.gguf").into(),
        files: vec![],
        file_size: s.layer_bytes * u64::from(s.n_layer) + s.embd.0 + s.embd.1.unwrap_or(0),
        architecture: "test".into(),
        name: None,
        block_count: s.n_layer,
        context_length: 131072,
        embedding_length: s.n_embd,
        head_count: vec![s.n_head; n],
        head_count_kv: vec![s.n_head_kv; n],
        key_length: s.head_dim,
        value_length: s.head_dim,
        sliding_window: s.swa.as_ref().map(|(w, _)| *w),
        swa_layers: s.swa.map_or(vec![false; n], |(_, l)| l),
        feed_forward_length: s.n_ff,
        expert_feed_forward_length: if s.expert_bytes > 0 { 512 } else { 0 },
        expert_count: if s.expert_bytes > 0 { 32 } else { 0 },
        expert_used_count: if s.expert_bytes > 0 { 4 } else { 0 },
        vocab_size: s.vocab,
        file_type: None,
        quant: quant_by_name(quant).cloned(),
        layers: (0..s.n_layer)
            .map(|index| LayerTensors {
                index,
                bytes: s.layer_bytes,
                expert_bytes: s.expert_bytes,
            })
            .collect(),
        non_layer,
    }
}

/// Llama-3-8B-like: 32 layers, GQA 32/8 heads of 128, 128256 tokens; `layer_mib` per layer,
/// 4 × that for token_embd and for output.
fn dense(quant: &str, layer_mib: u64) -> ModelSummary {
    summary(
        Shape {
            n_layer: 32,
            n_embd: 4096,
            n_head: 32,
            n_head_kv: 8,
            head_dim: 128,
            n_ff: 14336,
            vocab: 128256,
            layer_bytes: layer_mib * MIB,
            expert_bytes: 0,
            embd: (4 * layer_mib * MIB, Some(4 * layer_mib * MIB)),
            swa: None,
        },
        quant,
    )
}

/// Gemma-3-like: 6 layers, the last global, the others with a 1024 window; tied embeddings.
fn sliding() -> ModelSummary {
    summary(
        Shape {
            n_layer: 6,
            n_embd: 1024,
            n_head: 8,
            n_head_kv: 4,
            head_dim: 256,
            n_ff: 4096,
            vocab: 1000,
            layer_bytes: 10 * MIB,
            expert_bytes: 0,
            embd: (100 * MIB, None),
            swa: Some((1024, vec![true, true, true, true, true, false])),
        },
        "q8_0",
    )
}

/// 4 layers of 1000 MiB, 900 MiB of it experts.
fn moe() -> ModelSummary {
    summary(
        Shape {
            n_layer: 4,
            n_embd: 1024,
            n_head: 8,
            n_head_kv: 2,
            head_dim: 64,
            n_ff: 0,
            vocab: 1000,
            layer_bytes: 1000 * MIB,
            expert_bytes: 900 * MIB,
            embd: (50 * MIB, Some(50 * MIB)),
            swa: None,
        },
        "mxfp4_moe",
    )
}

fn ctx(n_ctx: u32) -> ContextParams {
    ContextParams {
        n_ctx,
        ..ContextParams::default()
    }
}

fn at(n_gpu_layers: u32, n_cpu_moe: u32) -> Offload {
    Offload {
        n_gpu_layers,
        n_cpu_moe,
    }
}

fn gpu(free: u64, host_free: u64) -> Budget {
    Budget {
        gpus: vec![GpuBudget {
            name: "GPU0".into(),
            free,
        }],
        host_free,
        margin: 0,
    }
}

fn cpu_only(host_free: u64) -> Budget {
    Budget {
        gpus: vec![],
        host_free,
        margin: 0,
    }
}

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

#[test]
fn dense_offload_table() {
    let m = dense("q8_0", 100);
    let full = 5_211_963_392;
    let request = PlanRequest {
        context: ctx(8192),
        ..PlanRequest::default()
    };
    let cases = [
        ("8 GiB", gpu(8 * GIB, 64 * GIB), Fit::FullGpu, 33),
        ("exactly enough", gpu(full, 64 * GIB), Fit::FullGpu, 33),
        (
            "one byte short",
            gpu(full - 1, 64 * GIB),
            Fit::PartialGpu,
            32,
        ),
        // Output layer and compute 782,778,368 B, then 132 MiB per layer: 9 layers.
        ("2 GiB", gpu(2 * GIB, 64 * GIB), Fit::PartialGpu, 10),
        ("500 MiB", gpu(500 * MIB, 64 * GIB), Fit::Cpu, 0),
        ("no GPU, 8 GiB", cpu_only(8 * GIB), Fit::Cpu, 0),
        ("no GPU, 4 GiB", cpu_only(4 * GIB), Fit::None, 0),
        (
            "GPU fits, host does not",
            gpu(8 * GIB, 100 * MIB),
            Fit::None,
            33,
        ),
    ];
    for (name, budget, fit, ngl) in cases {
        let p = plan_file(&m, &request, &budget);
        assert_eq!(
            (p.fit, p.offload.n_gpu_layers),
            (fit, ngl),
            "{name}: {}",
            p.reason
        );
    }
    // A margin comes off every device.
    let mut b = gpu(full, 64 * GIB);
    b.margin = 1;
    assert_eq!(plan_file(&m, &request, &b).fit, Fit::PartialGpu);
}

#[test]
fn choice_across_quants() {
    let ladder = [
        dense("q2_k", 40),
        dense("q4_k_m", 60),
        dense("q6_k", 80),
        dense("q8_0", 100),
    ];
    let request = PlanRequest {
        context: ctx(8192),
        ..PlanRequest::default()
    };
    // Full-GPU totals: Q8_0 5.21e9, Q6_K 4.46e9, Q4_K_M 3.70e9, Q2_K 2.95e9.
    let cases = [
        (6 * GIB, "Q8_0", Fit::FullGpu),
        (4_500_000_000, "Q6_K", Fit::FullGpu),
        (4_000_000_000, "Q4_K_M", Fit::FullGpu),
        (3_000_000_000, "Q2_K", Fit::FullGpu),
        // Nothing fits: Q2_K keeps 75% of its weights on the GPU, Q4_K_M 57.5%.
        (2_500_000_000, "Q2_K", Fit::PartialGpu),
    ];
    for (free, quant, fit) in cases {
        let d = choose(&ladder, &request, &gpu(free, 64 * GIB)).unwrap();
        let chosen = d.plans.iter().find(|p| p.file == d.file).unwrap();
        assert_eq!(
            (d.quant.as_str(), chosen.fit),
            (quant, fit),
            "{free}: {:?}",
            d.reasons
        );
        assert!(
            d.reasons[0].starts_with(&format!("picked {quant}")),
            "{:?}",
            d.reasons
        );
    }
    let d = choose(&ladder, &request, &gpu(2_500_000_000, 64 * GIB)).unwrap();
    assert!(
        d.reasons[0].contains("no quant fits entirely in GPU memory"),
        "{:?}",
        d.reasons
    );
    // Order of the candidates does not matter.
    let mut reversed = ladder.to_vec();
    reversed.reverse();
    assert_eq!(
        choose(&reversed, &request, &gpu(4_500_000_000, 64 * GIB))
            .unwrap()
            .quant,
        "Q6_K"
    );
    // CPU only: the best quant that fits in host memory.
    assert_eq!(
        choose(&ladder, &request, &cpu_only(5 * GIB)).unwrap().quant,
        "Q6_K"
    );
}

#[test]
fn nothing_fits_says_what_would() {
    let ladder = [dense("q2_k", 40), dense("q8_0", 100)];
    let request = PlanRequest {
        context: ctx(8192),
        ..PlanRequest::default()
    };
    let err = choose(&ladder, &request, &cpu_only(2 * GIB)).unwrap_err();
    let PlanError::NothingFits { quant, hint, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(quant, "Q2_K");
    // Q2_K on the CPU: 1600 MiB + 16 KiB weights, 354,942,976 B of logits and activations,
    // 513,024 B output leave 114,289,664 B of 2 GiB for 32 × 4 KiB of KV and 1 KiB of mask per
    // cell: 865 cells, so n_ctx 768.
    assert_eq!(hint, "Q2_K would fit with -c 768");
    assert!(
        err.to_string()
            .starts_with("nothing fits: the smallest, Q2_K, needs")
    );
    assert_eq!(
        choose(&[], &request, &cpu_only(GIB)),
        Err(PlanError::NoCandidates)
    );
}

#[test]
fn fixed_offload_is_checked_not_changed() {
    let m = dense("q8_0", 100);
    let request = PlanRequest {
        context: ctx(8192),
        n_gpu_layers: GpuLayers::Count(20),
        n_cpu_moe: None,
    };
    let p = plan_file(&m, &request, &gpu(8 * GIB, 64 * GIB));
    assert_eq!((p.fit, p.offload.n_gpu_layers), (Fit::PartialGpu, 20));
    let all = PlanRequest {
        n_gpu_layers: GpuLayers::All,
        ..request
    };
    let p = plan_file(&m, &all, &gpu(2 * GIB, 64 * GIB));
    assert_eq!((p.fit, p.offload.n_gpu_layers), (Fit::None, 33));
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
