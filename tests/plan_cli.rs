//! `gguf-serve quantize` and `gguf-serve plan` driven as a user would: a ladder of quants made
//! from the demo model, a sweep of GPU budgets whose pick must be the best quant that fits and
//! move monotonically with the budget, and bad input failing with a message and a non-zero exit.

#[path = "common/gguf_fixtures.rs"]
mod gguf_fixtures;

use gguf_fixtures::gguf_serve;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `plan --json` for a folder and one GPU of `vram` bytes, no margin, 4096 context,
/// preferring quality (the memory sweep below checks the fit, not the speed policy), with
/// `extra` flags.
fn plan(dir: &Path, vram: u64, extra: &[&str]) -> (Output, Value) {
    let vram = format!("{vram}B");
    let flags = [
        "plan",
        "-m",
        dir.to_str().unwrap(),
        "--vram",
        &vram,
        "--fit-margin",
        "0",
        "--prefer",
        "quality",
        "--host-bandwidth",
        "10",
        "--host-ram",
        "64GiB",
        "-c",
        "4096",
        "--json",
    ];
    let out = gguf_serve(&[&flags[..], extra].concat());
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

    // Unlimited, the planner raises the ubatch of the pick, wholly on the GPU.
    let (out, json) = plan(dir.path(), 1 << 40, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json["pick"]["n_ubatch"], 2048, "{}", json["pick"]);
    // What each file needs on the GPU at llama-server's -ub 512, from an unlimited budget.
    let (out, json) = plan(dir.path(), 1 << 40, &["-ub", "512"]);
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
        let (out, json) = plan(dir.path(), budget, &[]);
        assert!(out.status.success(), "{budget}: {}", stderr(&out));
        let pick = json["pick"]["quant"].as_str().unwrap().to_owned();
        let expected = needs.iter().rev().find(|n| n.2 <= budget);
        match expected {
            Some((rank, quant, need)) => {
                assert_eq!(&pick, quant, "budget {budget}");
                if budget == *need {
                    // No room left for larger compute buffers.
                    assert_eq!(json["pick"]["n_ubatch"], 512, "budget {budget}");
                }
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

    cpu_policies(dir.path());
}

/// Without a GPU, each `--prefer` picks what its rule says from the predicted speeds.
fn cpu_policies(dir: &Path) {
    let cpu_plan = |prefer: &str| {
        let out = gguf_serve(&[
            "plan",
            "-m",
            dir.to_str().unwrap(),
            "--gpu-free",
            "none",
            "-c",
            "2048",
            "--parallel",
            "1",
            "--prefer",
            prefer,
            "--json",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let json = cpu_plan("balanced");
    let speeds: Vec<(u64, String, f64)> = json["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["fit"], "cpu", "{p}");
            assert_eq!(p["speed"]["gpu_bytes"], 0, "{p}");
            (
                p["quality_rank"].as_u64().unwrap(),
                p["quant"].as_str().unwrap().to_owned(),
                p["speed"]["tokens_per_second"].as_f64().unwrap(),
            )
        })
        .collect();
    assert!(speeds.iter().all(|s| s.2 > 0.0), "{speeds:?}");
    let fastest = speeds.iter().map(|s| s.2).fold(0.0, f64::max);
    let best = |floor: f64| {
        speeds
            .iter()
            .filter(|s| s.2 >= floor)
            .max_by_key(|s| s.0)
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(
        json["pick"]["quant"].as_str().unwrap(),
        best(0.6 * fastest),
        "{speeds:?}"
    );
    let fastest_quant = speeds.iter().find(|s| s.2 == fastest).unwrap().1.clone();
    assert_eq!(
        cpu_plan("speed")["pick"]["quant"].as_str().unwrap(),
        fastest_quant
    );
    assert_eq!(cpu_plan("quality")["pick"]["quant"], "Q8_0");
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
    // A bare number is not taken as bytes.
    for (flag, value) in [
        ("--vram", "8"),
        ("--host-ram", "8"),
        ("--gpu-free", "8GiB,8"),
    ] {
        let err = fails(&["plan", "-m", demo_path, flag, value]);
        assert!(
            err.contains(&format!("{flag} 8: give a unit (8GiB, 8000MiB, 8GB)")),
            "{err}"
        );
    }
    // 0 is no GPU.
    let out = gguf_serve(&[
        "plan",
        "-m",
        demo_path,
        "--gpu-free",
        "0",
        "--host-bandwidth",
        "10",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["budget"]["gpus"], serde_json::json!([]));

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
fn a_bad_file_in_a_folder_is_skipped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let demo = gguf_fixtures::demo_model();
    let bytes = std::fs::read(&demo).unwrap();
    std::fs::write(dir.path().join("cut.gguf"), &bytes[..100_000]).unwrap();
    std::fs::write(dir.path().join("zip.gguf"), b"PK\x03\x04 not a model").unwrap();
    let dir_str = dir.path().to_str().unwrap();
    // Only bad files: the error names each.
    let err = fails(&["plan", "-m", dir_str]);
    assert!(err.contains("no readable model in this folder"), "{err}");
    assert!(err.contains("cut.gguf: truncated GGUF file"), "{err}");
    assert!(err.contains("zip.gguf: not a GGUF file"), "{err}");
    // With a good one, it is planned and each bad one gets a line.
    std::os::unix::fs::symlink(&demo, dir.path().join("good.gguf")).unwrap();
    let out = gguf_serve(&["plan", "-m", dir_str, "--gpu-free", "none"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let skipped: Vec<&str> = err.lines().filter(|l| l.contains("skipped")).collect();
    assert_eq!(skipped.len(), 2, "{err}");
    assert!(
        skipped
            .iter()
            .any(|l| l.contains("cut.gguf: truncated GGUF file")),
        "{err}"
    );
    assert!(
        skipped
            .iter()
            .any(|l| l.contains("zip.gguf: not a GGUF file")),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("picked Q4_K_M"));
}

/// `serve` logs what `plan` prints: a skipped file and a context past the training context.
#[test]
fn serve_warns_as_plan_says() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let demo = gguf_fixtures::demo_model();
    let bytes = std::fs::read(&demo).unwrap();
    std::fs::write(dir.path().join("cut.gguf"), &bytes[..100_000]).unwrap();
    std::os::unix::fs::symlink(&demo, dir.path().join("good.gguf")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gguf-serve"))
        .args([
            "-m",
            dir.path().to_str().unwrap(),
            "-c",
            "65536",
            "-np",
            "1",
            "-t",
            "1",
        ])
        .args(["--host", "127.0.0.1", "--port", &port])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let done = line.contains("listening on");
            if tx.send(line).is_err() || done {
                break;
            }
        }
    });
    let mut log = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(60)) {
        let done = line.contains("listening on");
        log.push(line);
        if done {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let log = log.join("\n");
    let warned = |text: &str| log.lines().any(|l| l.contains("WARN") && l.contains(text));
    assert!(
        warned("skipped") && warned("cut.gguf: truncated GGUF file"),
        "{log}"
    );
    assert!(
        warned(
            "-c 65536 gives a sequence 65536 tokens, more than Q4_K_M's training context (32768)"
        ),
        "{log}"
    );
}

#[test]
fn header_says_where_the_budget_comes_from() {
    let demo = gguf_fixtures::demo_model();
    let demo = demo.to_str().unwrap();
    let table = |extra: &[&str]| {
        let mut args = vec!["plan", "-m", demo, "--host-ram", "16GiB"];
        args.extend(extra);
        let out = gguf_serve(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // A small GPU keeps most of its memory: the default margin is 1/8 of it.
    let out = table(&["--vram", "1GiB"]);
    for line in [
        "default margin: min(1 GiB, 1/8 of free)",
        "GPU0: 1.00 GiB free − 128.0 MiB margin = 896.0 MiB usable; 500 GB/s assumed (--gpu-bandwidth sets it)",
        "host: 16.00 GiB free − 1.00 GiB margin = 15.00 GiB usable;",
        "GB/s measured (--host-bandwidth sets it)",
        "| Decode |",
    ] {
        assert!(out.contains(line), "{line:?} not in\n{out}");
    }
    // An explicit margin is used as given; bandwidths as given.
    let out = table(&[
        "--vram",
        "1GiB",
        "--fit-target",
        "512",
        "--gpu-bandwidth",
        "936",
        "--host-bandwidth",
        "20",
    ]);
    for line in [
        "margin 512.0 MiB from --fit-target",
        "GPU0: 1.00 GiB free − 512.0 MiB margin = 512.0 MiB usable; 936.0 GB/s from --gpu-bandwidth",
        "20.0 GB/s from --host-bandwidth",
    ] {
        assert!(out.contains(line), "{line:?} not in\n{out}");
    }
    // A context past the model's training context (32768) is said.
    let out = table(&["--gpu-free", "none", "-c", "65536", "--parallel", "1"]);
    assert!(
        out.contains("warning: -c 65536 gives a sequence 65536 tokens, more than Q4_K_M's training context (32768)"),
        "{out}"
    );
    assert!(!table(&["--gpu-free", "none", "-c", "32768"]).contains("warning:"));
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
    assert!(json["host_bandwidth"].as_f64().unwrap() > 1e8, "{json}");
}
