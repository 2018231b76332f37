//! `gguf-serve quantize` and `gguf-serve plan` driven as a user would: a ladder of quants made
//! from the demo model, a sweep of GPU budgets whose pick must be the best quant that fits and
//! move monotonically with the budget, and bad input failing with a message and a non-zero exit.

#[path = "common/gguf_fixtures.rs"]
mod gguf_fixtures;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn gguf_serve(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gguf-serve"))
        .args(args)
        .output()
        .expect("run gguf-serve")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `plan --json` for a folder and one GPU of `vram` bytes, no margin, 4096 context.
fn plan(dir: &Path, vram: u64) -> (Output, Value) {
    let out = gguf_serve(&[
        "plan",
        "-m",
        dir.to_str().unwrap(),
        "--vram",
        &vram.to_string(),
        "--fit-margin",
        "0",
        "--host-ram",
        "64GiB",
        "-c",
        "4096",
        "--json",
    ]);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, json)
}

fn gpu_total(plan: &Value) -> u64 {
    let p = &plan["predicted"];
    ["gpu_weights", "gpu_kv", "gpu_compute"]
        .iter()
        .map(|k| p[k].as_u64().unwrap())
        .sum()
}

#[test]
fn ladder_and_budget_sweep() {
    let demo = gguf_fixtures::demo_model();
    let dir = tempfile::tempdir().unwrap();
    let out = gguf_serve(&[
        "quantize",
        demo.to_str().unwrap(),
        "--ladder",
        dir.path().to_str().unwrap(),
        "--only",
        "q8_0,q6_k,q4_k_m,q2_k",
        "-t",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("requantized from Q4_K_M"), "{stdout}");
    for quant in ["Q8_0", "Q6_K", "Q4_K_M", "Q2_K"] {
        assert!(
            dir.path()
                .join(format!("gemma-3-270m-{quant}.gguf"))
                .is_file()
        );
    }

    // What each file needs on the GPU, from an unlimited budget.
    let (out, json) = plan(dir.path(), 1 << 40);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut needs: Vec<(u64, String, u64)> = json["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["fit"], "full_gpu", "{p}");
            (
                p["quality_rank"].as_u64().unwrap(),
                p["quant"].as_str().unwrap().to_owned(),
                gpu_total(p),
            )
        })
        .collect();
    needs.sort();
    assert_eq!(needs.len(), 4);
    assert!(
        needs.windows(2).all(|w| w[0].2 < w[1].2),
        "better quants need more memory: {needs:?}"
    );
    assert_eq!(json["pick"]["quant"], "Q8_0");

    let smallest = needs[0].2;
    let mut budgets: Vec<u64> = needs
        .iter()
        .flat_map(|n| [n.2 - 1, n.2, n.2 + (1 << 20)])
        .collect();
    // Below the smallest: a few layers short (partial offload), and far short: the output layer
    // (a copy of the tied token_embd) and its 512 MiB of logits no longer fit, so CPU only.
    budgets.extend([smallest - (10 << 20), smallest / 2]);
    budgets.sort();
    let mut last_rank = 0;
    for budget in budgets {
        let (out, json) = plan(dir.path(), budget);
        assert!(out.status.success(), "{budget}: {}", stderr(&out));
        let pick = json["pick"]["quant"].as_str().unwrap().to_owned();
        let expected = needs.iter().rev().find(|n| n.2 <= budget);
        match expected {
            Some((rank, quant, _)) => {
                assert_eq!(&pick, quant, "budget {budget}");
                assert!(
                    *rank >= last_rank,
                    "budget {budget}: pick went down to {pick}"
                );
                last_rank = *rank;
            }
            None => {
                // Nothing fits entirely: the pick runs partly on the GPU, or on the CPU, and says so.
                let reasons = json["pick"]["reasons"].to_string();
                let ngl = json["pick"]["n_gpu_layers"].as_u64().unwrap();
                if budget >= smallest - (10 << 20) {
                    assert!(
                        reasons.contains("no quant fits entirely in GPU memory"),
                        "{reasons}"
                    );
                    assert!((1..19).contains(&ngl), "{budget}: {reasons}");
                } else {
                    assert!(reasons.contains("nothing fits on the GPU"), "{reasons}");
                    assert_eq!(ngl, 0);
                }
            }
        }
    }

    // An explicit quant the folder lacks lists what it has.
    let out = gguf_serve(&[
        "plan",
        "-m",
        dir.path().to_str().unwrap(),
        "--quant",
        "q5_k_m",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("no Q5_K_M file here; it has: ") && err.contains("Q8_0"),
        "{err}"
    );
    let out = gguf_serve(&[
        "plan",
        "-m",
        dir.path().to_str().unwrap(),
        "--quant",
        "Q6_K",
        "--vram",
        "8GiB",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("picked Q6_K"));
}

/// Runs gguf-serve expecting failure; returns stderr after checking it is one clear line.
fn fails(args: &[&str]) -> String {
    let out = gguf_serve(args);
    let err = stderr(&out);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(
        err.starts_with("gguf-serve: ") || err.starts_with("error: "),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn bad_input_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();

    std::fs::write(d("zip.gguf"), b"PK\x03\x04 not a model").unwrap();
    let err = fails(&["plan", "-m", &d("zip.gguf"), "--vram", "8GiB"]);
    assert!(
        err.contains(r#"zip.gguf: not a GGUF file (bad magic "PK\x03\x04")"#),
        "{err}"
    );

    let demo = std::fs::read(gguf_fixtures::demo_model()).unwrap();
    std::fs::write(d("cut.gguf"), &demo[..100_000]).unwrap();
    let err = fails(&["plan", "-m", &d("cut.gguf")]);
    assert!(err.contains("cut.gguf: truncated GGUF file"), "{err}");

    let demo_path = gguf_fixtures::demo_model();
    let demo_path = demo_path.to_str().unwrap();
    let err = fails(&["plan", "-m", demo_path, "--quant", "q9_k"]);
    assert!(err.contains(r#"unknown quant "q9_k""#), "{err}");

    let err = fails(&[
        "plan",
        "-m",
        demo_path,
        "--gpu-free",
        "none",
        "--host-ram",
        "200MiB",
        "--fit-margin",
        "0",
    ]);
    assert!(
        err.contains("nothing fits: the smallest, Q4_K_M, needs"),
        "{err}"
    );

    let err = fails(&["plan", "-m", demo_path, "--vram", "lots"]);
    assert!(err.contains("not a size"), "{err}");

    std::fs::create_dir(d("empty")).unwrap();
    let err = fails(&["plan", "-m", &d("empty")]);
    assert!(err.contains("no .gguf files"), "{err}");

    let err = fails(&["quantize", demo_path, &d("out.gguf"), "--type", "q9"]);
    assert!(err.contains(r#"unknown quant type "q9""#), "{err}");
    let err = fails(&["quantize", demo_path, demo_path, "--type", "q8_0"]);
    assert!(err.contains("is the input file"), "{err}");
    let err = fails(&["quantize", &d("zip.gguf"), &d("out.gguf"), "--type", "q8_0"]);
    assert!(err.contains("not a GGUF file"), "{err}");
}

#[test]
fn devices_json() {
    let out = gguf_serve(&["devices", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["math_threads"].as_i64().unwrap() >= 1);
    assert!(
        json["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["kind"] == "cpu")
    );
    assert!(json["host"]["total"].as_u64().unwrap() > 0);
}
