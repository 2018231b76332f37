//! Placement over several GPUs (`split.rs`): layers, KV cache and compute buffers per device,
//! the `-ts` llama.cpp needs for it, and the user's `-ts` checked device by device.
//!
//! The dense fixture at n_ctx 8192: each layer 100 MiB of weights and 32 MiB of KV cache
//! (132 MiB), the output layer 400 MiB + 16 KiB; compute 96 MiB on a device with layers only
//! (masks 8 MiB, activations 88 MiB) and 346.5 MiB on the device with the output layer (with the
//! logits, 250.5 MiB). Everything: 4624 MiB + 16 KiB of layers and 5066.5 MiB with one device's
//! compute buffers.

use super::*;

const LAYER: u64 = 132 * MIB;
const OUTPUT: u64 = 400 * MIB + 16384;
const LAYERS_ONLY: u64 = 100_663_296;
const PEAK: u64 = 363_331_584;

/// At `-ub 512`, the compute buffers above.
fn request(n_gpu_layers: GpuLayers, split: SplitRequest) -> PlanRequest {
    PlanRequest {
        context: ctx(8192),
        n_gpu_layers,
        split,
        ubatch_auto: false,
        ..PlanRequest::default()
    }
}

/// Per device: its repeating layers (first, last) and whether it holds the output layer.
type Devices = Vec<(Option<(u32, u32)>, bool)>;

/// (layers, output?) per device, and -ts.
fn layout(split: &Split) -> (Devices, Vec<u32>) {
    (
        split.devices.iter().map(|d| (d.layers, d.output)).collect(),
        split.tensor_split.clone(),
    )
}

#[test]
fn layers_over_devices_of_unequal_sizes() {
    let m = dense("q8_0", 100);
    let auto = request(GpuLayers::Auto, SplitRequest::default());
    let cases: [(&str, &[u64], Devices, Vec<u32>); 4] = [
        // Room after compute: 4000 and 1701.5 MiB (the output's device keeps the logits);
        // GPU0's share of 4624 MiB is 3244 MiB: the layers whose middle falls below it, 0-24.
        (
            "2 devices",
            &[4 * GIB, 2 * GIB],
            vec![(Some((0, 24)), false), (Some((25, 31)), true)],
            vec![25, 8],
        ),
        // Rooms 2976 and 2725.5 MiB (GPU1 too small: none): GPU0's share 2413.5 MiB, 18 layers.
        (
            "3 devices, one too small for a layer",
            &[3 * GIB, 200 * MIB, 3 * GIB],
            vec![
                (Some((0, 17)), false),
                (None, false),
                (Some((18, 31)), true),
            ],
            vec![18, 0, 15],
        ),
        // Rooms 1952, 928, 928, 1701.5 MiB of 5509.5: cumulative shares 1638, 2417, 3196 MiB.
        (
            "4 devices",
            &[2 * GIB, GIB, GIB, 2 * GIB],
            vec![
                (Some((0, 11)), false),
                (Some((12, 17)), false),
                (Some((18, 23)), false),
                (Some((24, 31)), true),
            ],
            vec![12, 6, 6, 9],
        ),
        // GPU0 (the main GPU) cannot hold 5066.5 MiB, GPU1 can: all there.
        (
            "fits on one device",
            &[2 * GIB, 8 * GIB],
            vec![(None, false), (Some((0, 31)), true)],
            vec![0, 33],
        ),
    ];
    for (name, free, devices, ts) in cases {
        let p = plan_file(&m, &auto, &gpus(free));
        assert_eq!(p.fit, Fit::FullGpu, "{name}: {}", p.reason);
        let split = p.split.as_ref().expect("several GPUs have a split");
        assert_eq!(layout(split), (devices, ts), "{name}: {:?}", split.reasons);
        assert!(split.fits() && !split.given, "{name}");
        // Every layer on some device, each device within its memory, and its bytes its layers'.
        for d in &split.devices {
            let n = d.layers.map_or(0, |(a, b)| u64::from(b - a + 1));
            let output = if d.output { OUTPUT } else { 0 };
            assert_eq!(d.weights + d.kv, n * LAYER + output, "{name} {}", d.name);
            let compute = match (d.output, n) {
                (true, _) => PEAK,
                (false, 0) => 0,
                (false, _) => LAYERS_ONLY,
            };
            assert_eq!(d.compute, compute, "{name} {}", d.name);
            assert!(d.total() <= d.usable, "{name} {}", d.name);
        }
        // The plan's GPU memory is the devices' sum.
        let total: u64 = split.devices.iter().map(DevicePlan::total).sum();
        assert_eq!(p.predicted.gpu_total(), total, "{name}");
    }
}

#[test]
fn reasons_name_each_device() {
    let m = dense("q8_0", 100);
    let auto = request(GpuLayers::Auto, SplitRequest::default());
    let d = choose(
        std::slice::from_ref(&m),
        &auto,
        &gpus(&[3 * GIB, 200 * MIB, 3 * GIB]),
    )
    .unwrap();
    let split = d.split.as_ref().unwrap();
    assert_eq!(split.tensor_split_arg(), "18,0,15");
    let has = |needle: &str| d.reasons.iter().any(|r| r.contains(needle));
    assert!(
        has(
            "GPU1 (200.0 MiB usable) is too small for one layer (132.0 MiB) and its compute buffer (96.0 MiB): no layers"
        ),
        "{:?}",
        d.reasons
    );
    // 18 × 132 MiB + 96 MiB = 2472 MiB.
    assert!(
        has(
            "GPU0 (3.00 GiB free): layers 0-17, 2.41 GiB (weights 1.76 GiB, KV cache 576.0 MiB, compute 96.0 MiB)"
        ),
        "{:?}",
        d.reasons
    );
    assert!(has(
        "GPU2 (3.00 GiB free): layers 18-31 and the output layer"
    ));
    assert!(has("-ts 18,0,15: layers in proportion"), "{:?}", d.reasons);
    // One device holds it all: said so.
    let d = choose(std::slice::from_ref(&m), &auto, &gpus(&[8 * GIB, 8 * GIB])).unwrap();
    assert!(
        d.reasons
            .iter()
            .any(|r| r == "the offload fits on GPU0 alone: no split needed (-ts 33,0)"),
        "{:?}",
        d.reasons
    );
}

#[test]
fn a_model_one_local_device_holds_stays_off_the_network() {
    // llama.cpp lists an RPC worker's devices first. RPC0 is bigger and device 0 (the main
    // GPU), but every token would cross the network to it: the local GPU1 takes it all.
    let m = dense("q8_0", 100);
    let auto = request(GpuLayers::Auto, SplitRequest::default());
    // Device 0 is the worker's, the others local.
    let with_worker = |free: &[u64]| {
        let mut budget = gpus(free);
        budget.gpus[0].remote = true;
        plan_file(&m, &auto, &budget)
    };
    let p = with_worker(&[16 * GIB, 8 * GIB]);
    let split = p.split.as_ref().unwrap();
    assert_eq!(
        layout(split),
        (vec![(None, false), (Some((0, 31)), true)], vec![0, 33]),
        "{:?}",
        split.reasons
    );
    // Two local devices that hold it together: split between them, none on the worker.
    let p = with_worker(&[16 * GIB, 3 * GIB, 3 * GIB]);
    let split = p.split.as_ref().unwrap();
    assert_eq!(split.tensor_split[0], 0, "{:?}", split.reasons);
    assert!(split.fits(), "{:?}", split.reasons);
    assert!(
        split
            .reasons
            .iter()
            .any(|r| r.contains("no layers on another machine")),
        "{:?}",
        split.reasons
    );
    // Too big for the local device alone: the worker takes the first layers, the local GPU
    // the last ones and the output layer (the logits stay here).
    let p = with_worker(&[4 * GIB, 2 * GIB]);
    let split = p.split.as_ref().unwrap();
    assert_eq!(
        layout(split),
        (
            vec![(Some((0, 24)), false), (Some((25, 31)), true)],
            vec![25, 8]
        ),
        "{:?}",
        split.reasons
    );
}

#[test]
fn a_device_that_rounding_overflows_is_filled_from_the_back() {
    // Rooms 2976 and 1701.5 MiB: GPU0's share, 2942 MiB, is 22 layers (3000 MiB), which leaves
    // GPU1 2066.5 MiB of its 2048. From the back: GPU1 takes the output layer and 9 layers
    // (1934.5 MiB), GPU0 cannot take the other 23 (3132 MiB), so layer 0 stays on the host.
    let m = dense("q8_0", 100);
    let p = plan_file(
        &m,
        &request(GpuLayers::Auto, SplitRequest::default()),
        &gpus(&[3 * GIB, 2 * GIB]),
    );
    assert_eq!(
        (p.fit, p.offload.n_gpu_layers),
        (Fit::PartialGpu, 32),
        "{}",
        p.reason
    );
    let split = p.split.unwrap();
    assert_eq!(split.tensor_split, [22, 10], "{:?}", split.reasons);
    assert_eq!(split.devices[0].layers, Some((1, 22)));
}

#[test]
fn user_tensor_split_is_honoured_and_checked() {
    let m = dense("q8_0", 100);
    let even = SplitRequest {
        tensor_split: vec![1.0, 1.0],
        ..SplitRequest::default()
    };
    let budget = gpus(&[4 * GIB, 2 * GIB]);
    // -ngl all -ts 1,1: 17 layers and 16 (15 and the output layer): GPU1 needs 15 × 132 +
    // 400 + 346.5 MiB = 2726.5 MiB of its 2048.
    let p = plan_file(&m, &request(GpuLayers::All, even.clone()), &budget);
    assert_eq!(p.fit, Fit::None, "{}", p.reason);
    assert!(
        p.reason
            .ends_with("; GPU1 would need 2.66 GiB, 2.00 GiB usable"),
        "{}",
        p.reason
    );
    let split = p.split.unwrap();
    assert!(split.given);
    assert_eq!(split.tensor_split, [17, 16]);
    assert!(
        split
            .reasons
            .iter()
            .any(|r| r.starts_with("GPU1 (2.00 GiB free)")
                && r.ends_with(": 678.5 MiB over its 2.00 GiB usable")),
        "{:?}",
        split.reasons
    );
    // -ngl auto keeps the proportions and offloads fewer layers: GPU1 holds the output layer
    // and at most 9 more (1934.5 MiB); 21 layers split 11 and 10.
    let p = plan_file(&m, &request(GpuLayers::Auto, even), &budget);
    assert_eq!(
        (p.fit, p.offload.n_gpu_layers),
        (Fit::PartialGpu, 21),
        "{}",
        p.reason
    );
    assert_eq!(p.split.unwrap().tensor_split, [11, 10]);
}

#[test]
fn proportions_lay_out_as_llama_cpp_does() {
    // llama.cpp: offloaded layer k on the first device whose cumulative share exceeds k / n.
    let cases: [(&[f32], u32, &[u32]); 5] = [
        (&[1.0, 1.0], 33, &[17, 16]),
        (&[3.0, 1.0], 8, &[6, 2]),
        (&[0.0, 1.0], 10, &[0, 10]),
        (&[1.0, 0.0, 1.0], 5, &[3, 0, 2]),
        (&[24.0, 8.0], 0, &[0, 0]),
    ];
    for (proportions, n, want) in cases {
        assert_eq!(
            crate::plan::split::counts_for_proportions(proportions, n),
            want,
            "{proportions:?} {n}"
        );
    }
    // The planner's -ts (layer counts) gives back exactly those counts.
    for counts in [[25u32, 8], [0, 33], [1, 32], [32, 1], [13, 20]] {
        let proportions: Vec<f32> = counts.iter().map(|&c| c as f32).collect();
        assert_eq!(
            crate::plan::split::counts_for_proportions(&proportions, counts.iter().sum()),
            counts
        );
    }
}

#[test]
fn kv_cache_follows_its_layers() {
    // Sliding-window layers (0-4, window 1024) hold 1536 cells at n_ctx 32768, the global
    // layer 5 all 32768: its device holds the larger cache.
    let m = sliding();
    let c = ctx(32768);
    let budget = gpus(&[GIB, GIB]);
    let split = crate::plan::split::place(&m, &c, at(7, 0), &budget.gpus, &SplitRequest::default());
    // One device holds it all; force a split with -ts 1,1: layers 0-2 and 3-5 + output.
    assert_eq!(split.tensor_split, [7, 0]);
    let even = SplitRequest {
        tensor_split: vec![1.0, 1.0],
        ..SplitRequest::default()
    };
    let split = crate::plan::split::place(&m, &c, at(7, 0), &budget.gpus, &even);
    assert_eq!(
        layout(&split).0,
        [(Some((0, 3)), false), (Some((4, 5)), true)]
    );
    let kv = |layers: std::ops::RangeInclusive<usize>| -> u64 {
        layers
            .map(|il| crate::plan::memory::kv_layer_bytes(&m, &c, il))
            .sum()
    };
    assert_eq!(split.devices[0].kv, kv(0..=3));
    assert_eq!(split.devices[1].kv, kv(4..=5));
    // Per cell of a layer, 2 × 4 heads × 256 × 2 B = 4 KiB: 1536 cells are 6 MiB, 32768 are 128.
    assert_eq!(split.devices[0].kv, 4 * 6 * MIB);
    assert_eq!(split.devices[1].kv, 6 * MIB + 128 * MIB);
    // The cache kept in host memory (-nkvo) is on no device.
    let host_kv = ContextParams {
        offload_kqv: false,
        ..c.clone()
    };
    let split = crate::plan::split::place(&m, &host_kv, at(7, 0), &budget.gpus, &even);
    assert!(split.devices.iter().all(|d| d.kv == 0));
}

#[test]
fn moe_experts_stay_with_their_layers_unless_moved() {
    // 4 layers of 1000 MiB (900 of experts) and 4 MiB of KV cache, output 50 MiB; compute 24 MiB
    // (26 with the logits). Whole layers on 2200 and 2048 MiB: two on GPU0 (2032 MiB) leave
    // GPU1 two and the output (2084 MiB). With layer 0's experts on the host (104 MiB left of
    // it), GPU0 holds layers 0-2 (2136 MiB) and GPU1 layer 3 and the output (1080 MiB).
    let m = moe();
    let p = plan_file(
        &m,
        &request(GpuLayers::Auto, SplitRequest::default()),
        &gpus(&[2200 * MIB, 2048 * MIB]),
    );
    assert_eq!(
        (p.fit, p.offload.n_gpu_layers, p.offload.n_cpu_moe),
        (Fit::PartialGpu, 5, 1),
        "{}",
        p.reason
    );
    let split = p.split.unwrap();
    assert_eq!(split.tensor_split, [3, 2], "{:?}", split.reasons);
    assert_eq!(split.devices[0].weights, 2100 * MIB);
    assert_eq!(split.devices[1].weights, 1050 * MIB + 16384);
    assert_eq!(
        split.overrides,
        [r"blk\.(0)\.ffn_(up|down|gate|gate_up)_(ch|)exps=CPU"]
    );
    // Without the move, experts are on their layer's device and no -ot is needed.
    let whole = crate::plan::split::place(
        &m,
        &ctx(8192),
        at(5, 0),
        &gpus(&[8 * GIB, 8 * GIB]).gpus,
        &SplitRequest::default(),
    );
    assert!(whole.overrides.is_empty());
    assert_eq!(whole.devices[0].weights, 4050 * MIB + 16384);
}

#[test]
fn split_mode_none_uses_the_main_gpu_only() {
    let m = dense("q8_0", 100);
    let none = |main_gpu| SplitRequest {
        mode: SplitMode::None,
        main_gpu,
        tensor_split: Vec::new(),
    };
    let budget = gpus(&[8 * GIB, 2 * GIB]);
    let cases = [
        // As one GPU of that size: everything on GPU0; GPU1 holds 9 layers (see choose.rs).
        (0, Fit::FullGpu, 33),
        (1, Fit::PartialGpu, 10),
    ];
    for (main_gpu, fit, ngl) in cases {
        let p = plan_file(&m, &request(GpuLayers::Auto, none(main_gpu)), &budget);
        let alone = plan_file(
            &m,
            &request(GpuLayers::Auto, SplitRequest::default()),
            &gpu(budget.gpus[main_gpu as usize].free, 64 * GIB),
        );
        assert_eq!((p.fit, p.offload.n_gpu_layers), (fit, ngl), "{}", p.reason);
        assert_eq!(p.predicted, alone.predicted);
        assert!(p.split.is_none());
        assert!(
            p.reason.ends_with(&format!(
                "; --split-mode none: everything on GPU{main_gpu} (--main-gpu {main_gpu})"
            )),
            "{}",
            p.reason
        );
    }
    // A negative --main-gpu: no GPU (llama.cpp clears the device list).
    let p = plan_file(&m, &request(GpuLayers::Auto, none(-1)), &budget);
    assert_eq!(p.fit, Fit::Cpu, "{}", p.reason);
}

#[test]
fn quant_is_chosen_for_the_set() {
    // Q8_0 needs 5066.5 MiB: too much for either 3 GiB GPU, not for both together.
    let ladder = [dense("q4_k_m", 60), dense("q8_0", 100)];
    let request = PlanRequest {
        prefer: Prefer::Quality,
        ..request(GpuLayers::Auto, SplitRequest::default())
    };
    let d = choose(&ladder, &request, &gpus(&[3 * GIB, 3 * GIB])).unwrap();
    assert_eq!(d.quant, "Q8_0", "{:?}", d.reasons);
    assert!(d.split.as_ref().is_some_and(|s| s.tensor_split.len() == 2));
    // One 4 GiB GPU holds Q4_K_M (3530.5 MiB), not Q8_0.
    let d = choose(&ladder, &request, &gpus(&[4 * GIB])).unwrap();
    assert_eq!(d.quant, "Q4_K_M", "{:?}", d.reasons);
    assert!(d.split.is_none());
}

/// gpt-oss-120b's shapes (issue 23's second model): 36 layers, half of them attending over a
/// 128-token window, 128 experts of 2880 × 2880 in MXFP4 (17 bytes per 32 values: 1.58 GiB a
/// layer), about 53 MB of attention and router weights a layer, and F16 embeddings and output
/// of 201 088 × 2880: about 60.7 GiB in all.
fn gpt_oss_120b() -> ModelSummary {
    const EXPERTS: u64 = 3 * 128 * 2880 * 2880 * 17 / 32;
    const EMBEDDINGS: u64 = 201_088 * 2880 * 2;
    let mut m = summary(
        Shape {
            n_layer: 36,
            n_embd: 2880,
            n_head: 64,
            n_head_kv: 8,
            head_dim: 64,
            n_ff: 2880,
            vocab: 201_088,
            layer_bytes: EXPERTS + 53_084_160,
            expert_bytes: EXPERTS,
            embd: (EMBEDDINGS, Some(EMBEDDINGS)),
            swa: Some((128, (0..36).map(|il| il % 2 == 0).collect())),
        },
        "mxfp4_moe",
    );
    m.expert_count = 128;
    m.expert_feed_forward_length = 2880;
    m
}

#[test]
fn a_gpt_oss_120b_shaped_model_over_two_budgets() {
    let m = gpt_oss_120b();
    let request = PlanRequest {
        context: ctx(32768),
        ubatch_auto: false,
        ..PlanRequest::default()
    };
    // Two 40 GiB budgets hold it all, 18 layers each (a layer is 1.625 GiB of weights: 29.26
    // GiB for 18), the output layer (2.16 GiB with its embeddings' twin) with the last.
    let p = plan_file(&m, &request, &gpus(&[40 * GIB, 40 * GIB]));
    assert_eq!(p.fit, Fit::FullGpu, "{}", p.reason);
    assert_eq!(p.offload, at(37, 0));
    let split = p.split.as_ref().expect("two GPUs have a split");
    assert_eq!(
        layout(split),
        (
            vec![(Some((0, 17)), false), (Some((18, 35)), true)],
            vec![18, 19]
        ),
        "{:?}",
        split.reasons
    );
    let weights: Vec<u64> = split.devices.iter().map(|d| d.weights).collect();
    let layer = m.layers[0].bytes;
    assert_eq!(
        weights,
        [18 * layer, 18 * layer + m.non_layer[1].bytes + 16384]
    );
    assert!(split.fits(), "{:?}", split.reasons);

    // 40 + 16 GiB cannot hold 60.7 GiB: the first 5 layers' experts (7.88 GiB) stay in host
    // memory, and the GPUs take layers 0-27 (37.63 GiB: 28 layers' attention and 23 layers'
    // experts) and 28-35 with the output layer.
    let p = plan_file(&m, &request, &gpus(&[40 * GIB, 16 * GIB]));
    assert_eq!(p.fit, Fit::PartialGpu, "{}", p.reason);
    assert_eq!(p.offload, at(37, 5), "{}", p.reason);
    let split = p.split.as_ref().expect("two GPUs have a split");
    assert_eq!(
        layout(split),
        (
            vec![(Some((0, 27)), false), (Some((28, 35)), true)],
            vec![28, 9]
        ),
        "{:?}",
        split.reasons
    );
    let experts = m.layers[0].expert_bytes;
    assert_eq!(split.devices[0].weights, 28 * layer - 5 * experts);
    assert!(split.fits(), "{:?}", split.reasons);
    assert!(
        !split.overrides.is_empty(),
        "the experts' -ot: {:?}",
        split.reasons
    );
}
