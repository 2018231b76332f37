//! The choice of quant and offload, its reasons, and its errors.

use super::*;

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
    b.gpus[0].margin = 1;
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
        prefer: Prefer::Quality,
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
        prefer: Prefer::Quality,
        cache_ram_mib: 8192,
        split: SplitRequest::default(),
        ctx_checkpoints: 32,
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
