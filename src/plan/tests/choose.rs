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
        ubatch_auto: true,
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

#[test]
fn a_model_wholly_on_the_gpu_gets_a_larger_ubatch_where_it_fits() {
    let m = dense("q8_0", 100);
    let request = |n_ubatch, n_batch, ubatch_auto| PlanRequest {
        context: ContextParams {
            n_ubatch,
            n_batch,
            ..ctx(8192)
        },
        ubatch_auto,
        ..PlanRequest::default()
    };
    // Everything on the GPU at -ub 512 and at -ub 2048 (the compute buffers grow fourfold).
    let at_512 = estimate(&m, &request(512, 2048, false).context, at(33, 0)).gpu_total();
    let at_2048 = estimate(&m, &request(2048, 2048, false).context, at(33, 0)).gpu_total();
    assert!(at_2048 > at_512);
    // (-ub, -b, -ub left to the planner), budget, fit, the ubatch planned.
    let auto = (512, 2048, true);
    let room = |bytes| gpu(bytes, 64 * GIB);
    let (full, g8, g16) = (Fit::FullGpu, room(8 * GIB), room(16 * GIB));
    let cases = [
        ("room for both", auto, room(at_2048), full, 2048),
        ("room at 512 only", auto, room(at_2048 - 1), full, 512),
        // Never a layer for the ubatch: the offload is fitted first.
        ("partial offload", auto, room(2 * GIB), Fit::PartialGpu, 512),
        ("no GPU", auto, cpu_only(64 * GIB), Fit::Cpu, 512),
        ("-ub given", (512, 2048, false), g8.clone(), full, 512),
        ("-ub 4096 given", (4096, 4096, false), g16, full, 4096),
        ("at most -b", (512, 1024, true), g8.clone(), full, 1024),
        ("-b under 512", (512, 256, true), g8, full, 512),
    ];
    for (name, (n_ubatch_asked, n_batch, ubatch_auto), budget, fit, n_ubatch) in cases {
        let request = request(n_ubatch_asked, n_batch, ubatch_auto);
        let p = plan_file(&m, &request, &budget);
        assert_eq!((p.fit, p.n_ubatch), (fit, n_ubatch), "{name}: {}", p.reason);
        // What is predicted is what is loaded: the estimate at the ubatch chosen.
        let context = ContextParams {
            n_ubatch,
            ..request.context.clone()
        };
        let expected = match fit {
            Fit::Cpu => estimate_cpu_only(&m, &context),
            _ => estimate(&m, &context, p.offload),
        };
        assert_eq!(p.predicted, expected, "{name}");
        assert!(p.predicted.gpu_total() <= budget.gpu_usable(), "{name}");
        let said = p.reason.contains(&format!("-ub {n_ubatch}:"));
        assert_eq!(
            said,
            n_ubatch != request.context.n_ubatch,
            "{name}: {}",
            p.reason
        );
    }
    let auto = request(512, 2048, true);
    let d = choose(std::slice::from_ref(&m), &auto, &gpu(8 * GIB, 64 * GIB)).unwrap();
    assert_eq!(d.n_ubatch, 2048);
    // Over two GPUs the layers are placed with the compute buffers of the ubatch chosen.
    let p = plan_file(&m, &auto, &gpus(&[4 * GIB, 4 * GIB]));
    assert_eq!((p.fit, p.n_ubatch), (Fit::FullGpu, 2048), "{}", p.reason);
    let raised = ContextParams {
        n_ubatch: 2048,
        ..auto.context.clone()
    };
    let split = crate::plan::split::place(
        &m,
        &raised,
        p.offload,
        &gpus(&[4 * GIB; 2]).gpus,
        &auto.split,
    );
    assert_eq!(p.split, Some(split));
}
