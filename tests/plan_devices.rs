//! `gguf-serve plan` for several GPUs one does not own (`--vram 100MiB,250MiB`), run as a user
//! would on the demo model: the layers, KV cache and compute buffers placed device by device,
//! the `-ts` that gives that placement, a user's `-ts` that overflows a device refused with the
//! device named, and `--split-mode none` planning for `--main-gpu` alone.

#[path = "common/gguf_fixtures.rs"]
mod gguf_fixtures;

use gguf_fixtures::gguf_serve;
use serde_json::Value;
use std::process::Output;

/// `plan` for the demo model at -c 4096, no margin, with `extra` flags.
fn plan(extra: &[&str]) -> Output {
    let demo = gguf_fixtures::demo_model();
    let mut args = vec![
        "plan",
        "-m",
        demo.to_str().unwrap(),
        "--fit-target",
        "0",
        "--host-bandwidth",
        "10",
        "--host-ram",
        "16GiB",
        "-c",
        "4096",
    ];
    args.extend(extra);
    gguf_serve(&args)
}

fn json(extra: &[&str]) -> Value {
    let mut args = extra.to_vec();
    args.push("--json");
    let out = plan(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn two_cards_split_the_layers() {
    // The demo model at -c 4096 needs 327.7 MiB on two devices: its tied output layer (170 MiB
    // and the logits) fits only on the larger card, which must be the last.
    let report = json(&["--vram", "100MiB,250MiB"]);
    let pick = &report["pick"];
    let split = &pick["split"];
    assert_eq!(pick["n_gpu_layers"], 19, "{pick}");
    let ts: Vec<u64> = split["tensor_split"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(ts.len(), 2);
    assert_eq!(
        ts.iter().sum::<u64>(),
        19,
        "every layer and the output layer"
    );
    assert!(ts[0] > 0 && ts[1] > 0, "{ts:?}");
    let devices = split["devices"].as_array().unwrap();
    let mut predicted = 0;
    for (d, free) in devices.iter().zip([100u64 << 20, 250 << 20]) {
        let total: u64 = ["weights", "kv", "compute"]
            .iter()
            .map(|k| d[k].as_u64().unwrap())
            .sum();
        assert!(total <= free, "{d}");
        assert!(
            d["kv"].as_u64().unwrap() > 0,
            "the KV cache follows its layers: {d}"
        );
        predicted += total;
    }
    assert_eq!(devices[1]["output"], true);
    // The plan's GPU memory is the devices' sum.
    let p = &pick["predicted"];
    let gpu: u64 = ["gpu_weights", "gpu_kv", "gpu_compute"]
        .iter()
        .map(|k| p[k].as_u64().unwrap())
        .sum();
    assert_eq!(gpu, predicted);
    // The table shows -ts and one reason line per device.
    let out = plan(&["--vram", "100MiB,250MiB"]);
    let table = String::from_utf8_lossy(&out.stdout);
    let arg = format!("-ts {},{}", ts[0], ts[1]);
    assert!(
        table.contains(&format!("-ngl 19 --n-cpu-moe 0 {arg} |")),
        "{table}"
    );
    let last = ts[0] - 1;
    for line in [
        format!("{arg}: layers in proportion to the memory each device has"),
        format!("GPU0 (100.0 MiB free): layers 0-{last}, "),
        format!(
            "GPU1 (250.0 MiB free): layers {}-17 and the output layer, ",
            ts[0]
        ),
    ] {
        assert!(table.contains(&line), "{line:?} not in\n{table}");
    }
}

#[test]
fn a_model_one_card_holds_is_not_split() {
    let out = plan(&["--vram", "2GiB,1GiB"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("the offload fits on GPU0 alone: no split needed (-ts 19,0)"),
        "{table}"
    );
    assert!(table.contains("GPU1 (1.00 GiB free): no layers"), "{table}");
}

#[test]
fn a_user_split_that_overflows_names_the_device() {
    let out = plan(&["--vram", "100MiB,250MiB", "-ts", "3,1", "-ngl", "all"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("gguf-serve: "), "{err}");
    assert!(err.contains("nothing fits"), "{err}");
    assert!(
        err.contains("GPU0 would need")
            && err.contains("100.0 MiB usable")
            && err.contains("(-ts given)"),
        "{err}"
    );
    // With -ngl auto the planner keeps the proportions and offloads fewer layers.
    let pick = &json(&["--vram", "100MiB,250MiB", "-ts", "3,1"])["pick"];
    assert!(pick["n_gpu_layers"].as_u64().unwrap() < 19, "{pick}");
    assert_eq!(pick["split"]["given"], true);
}

#[test]
fn split_mode_none_plans_for_the_main_gpu() {
    let pick = &json(&["--vram", "100MiB,2GiB", "-sm", "none", "-mg", "1"])["pick"];
    assert_eq!(pick["split"], Value::Null);
    assert_eq!(pick["n_gpu_layers"], 19);
    let reasons = pick["reasons"].to_string();
    assert!(
        reasons.contains("--split-mode none: everything on GPU1 (--main-gpu 1)"),
        "{reasons}"
    );
    // On GPU0 (100 MiB) alone the output layer does not fit.
    let pick = &json(&["--vram", "100MiB,2GiB", "-sm", "none"])["pick"];
    assert!(pick["n_gpu_layers"].as_u64().unwrap() < 19, "{pick}");
    let out = plan(&["--vram", "100MiB,2GiB", "-sm", "none", "-mg", "2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--main-gpu 2: invalid value for main_gpu: 2 (available devices: 2)"),
        "{err}"
    );
}
