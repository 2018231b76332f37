//! LoRA adapters end to end, without a download: a tiny llama base model and two adapters on
//! its output matrix, written in test code (`gguf_fixtures::write_lora_adapter`: at scale 1 an
//! adapter moves every text token's logits to another text token, so greedy decoding must
//! change). Checked: scale 0 equals no adapter and scale 1 does not; a request's `lora` list
//! overrides the global scales and zeroes what it does not name; `POST /lora-adapters` sets the
//! global scales that later requests use; requests with different adapters running at the same
//! time each get their sequential answer (they are never in one decode); llama-server's shapes
//! and errors; and a bad adapter file stops the start, named.

mod common;

use common::gguf_fixtures;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Server, assert_error};
use serde_json::{Value, json};
use tempfile::TempDir;

/// One test's servers at a time: the machine's cores are shared.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The base model and its two adapters (shift 1 and shift 2) in a fresh folder.
fn fixtures() -> (TempDir, PathBuf, [PathBuf; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.gguf");
    gguf_fixtures::write_lora_base(&base);
    let adapters = [1, 2].map(|shift| {
        let path = dir.path().join(format!("shift{shift}.gguf"));
        gguf_fixtures::write_lora_adapter(&path, shift);
        path
    });
    (dir, base, adapters)
}

/// The base model served with `extra` flags, three slots.
fn serve(base: &Path, extra: &[&str]) -> Server {
    let mut args: Vec<String> = ["-m", base.to_str().unwrap(), "-c", "1024", "-np", "3"]
        .iter()
        .chain(&["-t", "1"])
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    Server::start_with(&args)
}

/// A greedy completion of a fixed prompt that never stops early, with `lora` if given.
fn body(n_predict: u32, lora: Option<Value>) -> Value {
    let mut body = json!({
        "prompt": "a b c",
        "n_predict": n_predict,
        "temperature": 0,
        "ignore_eos": true,
        "return_tokens": true,
        "cache_prompt": false,
    });
    if let Some(lora) = lora {
        body["lora"] = lora;
    }
    body
}

/// The generated tokens of a completion.
fn tokens(server: &Server, body: &Value) -> Vec<i64> {
    let (status, answer) = server.post("/completion", body);
    assert_eq!(status, 200, "{answer}");
    answer["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect()
}

#[test]
fn scale_one_changes_greedy_output_and_scale_zero_does_not() {
    let _serial = one_at_a_time();
    let (_dir, base, [shift1, shift2]) = fixtures();
    let plain = {
        let server = serve(&base, &[]);
        tokens(&server, &body(16, None))
    };
    let lora = format!("{},{}", shift1.display(), shift2.display());
    let server = serve(&base, &["--lora", &lora]);
    let with = |list: Value| tokens(&server, &body(16, Some(list)));

    let off = with(json!([{ "id": 0, "scale": 0 }]));
    assert_eq!(off, plain, "every adapter at scale 0 is the base model");
    assert_eq!(with(json!([{ "id": 7, "scale": 1 }])), plain, "unknown ids");
    let first = with(json!([{ "id": 0, "scale": 1 }]));
    let second = with(json!([{ "id": 1, "scale": 1.0 }]));
    assert_ne!(
        first, plain,
        "adapter 0 at scale 1 changes the greedy answer"
    );
    assert_ne!(
        second, plain,
        "adapter 1 at scale 1 changes the greedy answer"
    );
    assert_ne!(first, second);
    // With the prompt cache on, a slot whose adapters change drops its cached tokens: the same
    // answers in any order.
    for list in [
        json!([{ "id": 1, "scale": 1 }]),
        json!([{ "id": 0, "scale": 1 }]),
    ] {
        let mut cached = body(16, Some(list.clone()));
        cached["cache_prompt"] = json!(true);
        cached["id_slot"] = json!(0);
        let want = if list[0]["id"] == 0 { &first } else { &second };
        assert_eq!(&tokens(&server, &cached), want, "{list}");
        cached["lora"] = json!([{ "id": 0, "scale": 0 }]);
        assert_eq!(tokens(&server, &cached), plain, "{list}, then none");
    }
    // Without a list of its own, a request runs with the global scales (both at 1 here).
    let both = with(json!([{ "id": 0, "scale": 1 }, { "id": 1, "scale": 1 }]));
    assert_eq!(tokens(&server, &body(16, None)), both);
    assert_eq!(tokens(&server, &body(16, Some(json!([])))), both);
}

#[test]
fn different_adapters_at_once_each_give_their_sequential_answer() {
    let _serial = one_at_a_time();
    let (_dir, base, [shift1, shift2]) = fixtures();
    let (a, b) = (shift1.display().to_string(), shift2.display().to_string());
    let server = serve(&base, &["--lora", &a, "--lora-scaled", &format!("{b}:0.5")]);
    let lists = [
        json!([{ "id": 0, "scale": 1 }]),
        json!([{ "id": 1, "scale": 1 }]),
        json!([{ "id": 0, "scale": 0 }]),
    ];
    let bodies: Vec<Value> = lists.iter().map(|l| body(96, Some(l.clone()))).collect();
    let sequential: Vec<Vec<i64>> = bodies.iter().map(|b| tokens(&server, b)).collect();
    assert_ne!(sequential[0], sequential[1]);
    assert_ne!(sequential[0], sequential[2]);
    for round in 0..2 {
        let barrier = std::sync::Barrier::new(bodies.len());
        let done = std::sync::atomic::AtomicBool::new(false);
        let (concurrent, busiest) = std::thread::scope(|s| {
            // How many slots were busy at once, seen from /slots while the requests run.
            let watch = s.spawn(|| {
                let mut busiest = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let (_, slots) = server.get("/slots");
                    let busy = (slots.as_array().unwrap().iter())
                        .filter(|s| s["is_processing"] == true)
                        .count();
                    busiest = busiest.max(busy);
                }
                busiest
            });
            let handles: Vec<_> = bodies
                .iter()
                .map(|b| {
                    let (server, barrier) = (&server, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        tokens(server, b)
                    })
                })
                .collect();
            let answers: Vec<Vec<i64>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            (answers, watch.join().unwrap())
        });
        assert_eq!(concurrent, sequential, "round {round}");
        assert!(
            busiest >= 2,
            "round {round}: the requests never ran at the same time"
        );
    }
}

#[test]
fn lora_adapters_list_and_set_global_scales_as_llama_server() {
    let _serial = one_at_a_time();
    let (_dir, base, [shift1, shift2]) = fixtures();
    let (a, b) = (shift1.display().to_string(), shift2.display().to_string());
    let server = serve(&base, &["--lora-scaled", &format!("{a}:0.5,{b}:2")]);
    let (status, list) = server.get("/lora-adapters");
    assert_eq!(status, 200);
    assert_eq!(
        list,
        json!([
            { "id": 0, "path": a, "scale": 0.5, "task_name": "", "prompt_prefix": "" },
            { "id": 1, "path": b, "scale": 2.0, "task_name": "", "prompt_prefix": "" },
        ])
    );
    let only_first = tokens(&server, &body(16, Some(json!([{ "id": 0, "scale": 1 }]))));

    // POST sets the named scales; adapters it leaves out go to 0.
    let (status, answer) = server.post("/lora-adapters", &json!([{ "id": 0, "scale": 1 }]));
    assert_eq!((status, answer), (200, json!({ "success": true })));
    let (_, list) = server.get("/lora-adapters");
    let scales: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["scale"])
        .collect();
    assert_eq!(scales, [&json!(1.0), &json!(0.0)]);
    assert_eq!(tokens(&server, &body(16, None)), only_first);

    // The request's list is reported back as it was read.
    let (_, answer) = server.post(
        "/completion",
        &body(
            2,
            Some(json!([{ "id": 1, "scale": 0.5 }, { "id": 0, "scale": 1 }])),
        ),
    );
    assert_eq!(
        answer["generation_settings"]["lora"],
        json!([{ "id": 0, "scale": 1.0 }, { "id": 1, "scale": 0.5 }])
    );
    let (_, props) = server.get("/props");
    assert_eq!(
        props["default_generation_settings"]["params"]["lora"],
        json!([])
    );
}

/// The pinned llama-server accepts `--lora-init-without-apply` and still runs its adapters at
/// their scales (its README says they start at 0; the binary lists and applies scale 1).
#[test]
fn lora_init_without_apply_changes_nothing_as_in_llama_server() {
    let _serial = one_at_a_time();
    let (_dir, base, [shift1, _]) = fixtures();
    let a = shift1.display().to_string();
    let server = serve(&base, &["--lora", &a, "--lora-init-without-apply"]);
    let (_, list) = server.get("/lora-adapters");
    assert_eq!(list[0]["scale"], json!(1.0), "{list}");
    let off = tokens(&server, &body(16, Some(json!([{ "id": 0, "scale": 0 }]))));
    let on = tokens(&server, &body(16, Some(json!([{ "id": 0, "scale": 1 }]))));
    assert_ne!(on, off);
    assert_eq!(tokens(&server, &body(16, None)), on);
}

#[test]
fn bad_lora_input_gets_llama_server_errors_and_the_server_keeps_serving() {
    let _serial = one_at_a_time();
    let (_dir, base, [shift1, _]) = fixtures();
    // A template without newlines: the tiny vocabulary has no newline token, and llama.cpp
    // throws while tokenizing one (ChatML would be the default).
    let template = "{% for m in messages %}{{ m.content }}{% endfor %}";
    let lora = shift1.to_str().unwrap();
    let server = serve(&base, &["--lora", lora, "--chat-template", template]);
    let field =
        "Field 'lora': Error: 'lora' must be an array of objects with 'id' and 'scale' fields";
    for route in ["/completion", "/v1/completions", "/v1/chat/completions"] {
        let mut request = body(4, Some(json!({ "id": 0, "scale": 1 })));
        request["messages"] = json!([{ "role": "user", "content": "a" }]);
        let (status, answer) = server.post(route, &request);
        assert_eq!(
            assert_error(status, &answer, 400, "invalid_request_error"),
            field
        );
    }
    // As llama-server's parse_lora_request: a bad id is -1 (no adapter), a scale that is not a
    // number is 0, an entry that is not an object is both.
    let (status, answer) = server.post(
        "/completion",
        &body(
            2,
            Some(json!([{ "id": "zero", "scale": 1 }, { "id": 0, "scale": "x" }, 3])),
        ),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["generation_settings"]["lora"],
        json!([{ "id": -1, "scale": 0.0 }, { "id": 0, "scale": 0.0 }])
    );
    for (raw, message) in [
        ("{\"id\": 0}", "Request body must be an array"),
        (
            "[{",
            "[json.exception.parse_error.101] parse error at line 1, column 2: syntax error",
        ),
    ] {
        let (status, answer) = server.post_raw("/lora-adapters", raw);
        let got = assert_error(status, &answer, 400, "invalid_request_error");
        assert!(got.starts_with(message), "{got}");
    }
    // Chat takes `lora` too.
    let chat = |scale: f32| {
        let request = json!({
            "messages": [{ "role": "user", "content": "a b" }],
            "max_tokens": 8, "temperature": 0, "ignore_eos": true,
            "lora": [{ "id": 0, "scale": scale }],
        });
        let (status, answer) = server.post("/v1/chat/completions", &request);
        assert_eq!(status, 200, "{answer}");
        answer["choices"][0]["message"]["content"].clone()
    };
    assert_ne!(chat(0.0), chat(1.0));
    let (status, _) = server.get("/lora-adapters");
    assert_eq!(status, 200, "still serving");
}

#[test]
fn a_bad_adapter_file_stops_the_start_naming_it() {
    let _serial = one_at_a_time();
    let (dir, base, _) = fixtures();
    let missing = dir.path().join("missing.gguf");
    for adapter in [&missing, &base] {
        let out = Command::new(common::binary())
            .args(["-m", base.to_str().unwrap(), "-c", "512", "-t", "1"])
            .args(["--port", &common::free_port().to_string()])
            .args(["--lora", adapter.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{adapter:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.contains(adapter.to_str().unwrap()) && last.contains("LoRA adapter"),
            "{}: {stderr}",
            out.status
        );
    }
    let out = Command::new(common::binary())
        .args(["-m", base.to_str().unwrap(), "--lora-scaled", "x.gguf"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FNAME:SCALE"));
}

/// The same requests to the reference llama-server named by `GGUF_SERVE_LLAMA_SERVER` and to
/// gguf-serve, on the same fixtures and flags: equal adapter lists, set answers, greedy tokens,
/// reported `lora` lists and error bodies. Ignored in the default run (no reference build);
/// run on its own, it fails when the reference is missing.
#[test]
#[ignore = "needs the reference llama-server: GGUF_SERVE_LLAMA_SERVER"]
fn matches_the_reference_llama_server() {
    let _serial = one_at_a_time();
    let reference = common::reference_llama_server();
    let (_dir, base, [shift1, shift2]) = fixtures();
    let (a, b) = (shift1.display().to_string(), shift2.display().to_string());
    let args: Vec<String> = [
        "-m",
        base.to_str().unwrap(),
        "-c",
        "1024",
        "-np",
        "2",
        "-t",
        "1",
        "--lora-scaled",
        &format!("{b}:0.5"),
        "--lora",
        &a,
    ]
    .map(String::from)
    .to_vec();
    let lists = [
        None,
        Some(json!([])),
        Some(json!([{ "id": 0, "scale": 0 }])),
        Some(json!([{ "id": 0, "scale": 1 }])),
        Some(json!([{ "id": 1, "scale": 1 }])),
        Some(json!([{ "id": 1, "scale": 0.5 }, { "id": 0, "scale": 1 }])),
        Some(json!([{ "id": 5, "scale": 1 }, { "id": "x", "scale": 1 }, 3])),
        Some(json!([{ "id": 0, "scale": "big" }, { "id": 1, "scale": true }])),
        Some(json!({ "id": 0 })),
    ];
    let run = |server: &Server| {
        let mut seen = vec![server.get("/lora-adapters")];
        let complete = |seen: &mut Vec<(u16, Value)>| {
            for list in &lists {
                let (status, answer) = server.post("/completion", &body(16, list.clone()));
                let kept = if status == 200 {
                    json!([answer["tokens"], answer["generation_settings"]["lora"]])
                } else {
                    answer
                };
                seen.push((status, kept));
            }
        };
        complete(&mut seen);
        for set in [json!([{ "id": 1, "scale": 0.25 }]), json!({ "id": 0 })] {
            seen.push(server.post("/lora-adapters", &set));
            seen.push(server.get("/lora-adapters"));
        }
        complete(&mut seen);
        seen
    };
    let theirs = run(&Server::start_program(&reference, &args));
    let ours = run(&Server::start_with(&args));
    for (i, (t, o)) in theirs.iter().zip(&ours).enumerate() {
        assert_eq!(o, t, "answer {i}: ours, then llama-server's");
    }
    assert_eq!(ours.len(), theirs.len());
}
