//! Several models on one server (`--models-dir`, llama-server's router mode): a folder of the
//! demo model, all-MiniLM and a broken file, served by the real binary, each model in its own
//! `gguf-serve` process. Requests are routed by their `"model"`, answers stream back with the
//! router's request id, `/models` shows each model's status and plan, `/models/load` and
//! `/models/unload` work as llama-server's, and models that do not fit together in the
//! memory the router is given take turns (least recently used first), never unloading one at
//! work. The ignored test compares the routes with the reference llama-server's router.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Server;
use serde_json::{Value, json};

const GEMMA: &str = "gemma-3-270m-q4_k_m";
const MINILM: &str = "all-minilm-l6-v2-f16";

/// A folder holding the demo model, all-MiniLM and a file that is not a GGUF.
fn models_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        common::demo_model(),
        dir.path().join(format!("{GEMMA}.gguf")),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        common::minilm_model(),
        dir.path().join(format!("{MINILM}.gguf")),
    )
    .unwrap();
    std::fs::write(dir.path().join("broken.gguf"), b"not a model").unwrap();
    dir
}

/// The router's command line: the folder, small settings, then `extra`.
fn router_args(dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--models-dir",
        dir.to_str().unwrap(),
        "-c",
        "2048",
        "-t",
        "1",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn router(dir: &Path, extra: &[&str]) -> Server {
    Server::start_with(&router_args(dir, extra))
}

/// Each model's status value in `/models`.
fn statuses(server: &Server) -> Vec<(String, String)> {
    let (status, body) = server.get("/models");
    assert_eq!(status, 200, "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_string(),
                m["status"]["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn status_of(server: &Server, id: &str) -> String {
    statuses(server)
        .into_iter()
        .find(|(m, _)| m == id)
        .unwrap_or_else(|| panic!("{id} is not listed"))
        .1
}

/// Waits until model `id`'s status is `want`.
fn wait_status(server: &Server, id: &str, want: &str) {
    let start = Instant::now();
    loop {
        let got = status_of(server, id);
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{id} is still {got}, not {want}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn chat(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [{ "role": "user", "content": "Name three colors." }],
        "max_tokens": 12,
        "temperature": 0,
    })
}

/// The port a loaded model's server listens on, from its command line in `/models`.
fn model_port(server: &Server, id: &str) -> u16 {
    let (_, body) = server.get("/models");
    let model = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap()
        .clone();
    let args: Vec<&str> = model["status"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let at = args.iter().position(|a| *a == "--port").unwrap();
    args[at + 1].parse().unwrap()
}

fn answers(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn requests_reach_the_model_they_name() {
    let dir = models_dir();
    let server = router(dir.path(), &["--chat-template", "gemma"]);
    assert_eq!(
        statuses(&server),
        [
            ("all-minilm-l6-v2-f16", "unloaded"),
            ("broken", "unloaded"),
            (GEMMA, "unloaded")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let (_, listing) = server.get("/v1/models");
    let gemma = &listing["data"][2];
    // Each model's server gets the router's serve flags, not its address or folder.
    let args = gemma["status"]["args"].to_string();
    for flag in [
        "--ctx-size=2048",
        "--threads=1",
        "--chat-template=gemma",
        "--alias",
    ] {
        assert!(args.contains(flag), "{flag} missing from {args}");
    }
    assert!(!args.contains("--models-dir"), "{args}");
    assert!(
        gemma["plan"]["summary"]
            .as_str()
            .unwrap()
            .contains("Q4_K_M"),
        "{gemma}"
    );
    assert!(
        gemma["plan"]["memory"]["host"].as_u64().unwrap() > 200 << 20,
        "{gemma}"
    );
    // A file that is not a model says why in its plan, and in the answer to a request.
    let broken = &listing["data"][1];
    assert!(broken["plan"]["error"].is_string(), "{broken}");
    let (status, body) = server.post("/v1/chat/completions", &chat("broken"));
    let message = common::assert_error(status, &body, 503, "unavailable_error");
    assert!(
        message.starts_with("model 'broken' cannot be loaded on this machine: "),
        "{message}"
    );

    let (status, props) = server.get("/props");
    assert_eq!(status, 200);
    assert_eq!(props["role"], "router");
    assert_eq!(props["max_instances"], 4);

    // The first request loads the model; the answer is the one a server of its own gives.
    let response = server
        .client()
        .post(format!("{}/v1/chat/completions", server.url))
        .json(&chat(GEMMA))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let routed: Value = response.json().unwrap();
    assert_eq!(routed["model"], GEMMA);
    // One id: the router's, in its header and in the model's answer.
    assert_eq!(routed["id"], format!("chatcmpl-{request_id}"));
    assert_eq!(status_of(&server, GEMMA), "loaded");
    assert_eq!(status_of(&server, MINILM), "unloaded");
    let alone = Server::start(&["-c", "2048", "--chat-template", "gemma"]);
    let (_, direct) = alone.post("/v1/chat/completions", &chat(GEMMA));
    assert_eq!(
        routed["choices"][0]["message"]["content"], direct["choices"][0]["message"]["content"],
        "{routed} vs {direct}"
    );
    drop(alone);

    // Streams pass through event by event, and GET routes take ?model=.
    let mut streamed = chat(GEMMA);
    streamed["stream"] = json!(true);
    // Computed afresh, as the first answer was (a reused prefix can change the last digits of
    // the logits, and this small model's greedy choice with them).
    streamed["cache_prompt"] = json!(false);
    let (events, done) = server.stream("/v1/chat/completions", &streamed);
    assert!(done && events.len() > 2, "{events:?}");
    let text: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        text,
        routed["choices"][0]["message"]["content"].as_str().unwrap()
    );
    let (status, props) = server.get(&format!("/props?model={GEMMA}"));
    assert_eq!(status, 200);
    assert_eq!(
        props["default_generation_settings"]["n_ctx"], 2048,
        "{props}"
    );

    // The official clients, through the router.
    common::run_python(
        "router_clients.py",
        "ollama",
        &[&server.url, GEMMA],
        "router: ok",
    );

    // llama-server's checks and wording.
    let missing = json!({ "messages": [{ "role": "user", "content": "hi" }] });
    let (status, body) = server.post("/v1/chat/completions", &missing);
    let message = common::assert_error(status, &body, 400, "invalid_request_error");
    assert_eq!(message, "model name is missing from the request");
    let (status, body) = server.post("/v1/chat/completions", &chat("nope"));
    let message = common::assert_error(status, &body, 400, "invalid_request_error");
    assert_eq!(message, "model 'nope' not found");
    let (status, body) = server.get(&format!("/props?model={MINILM}&autoload=false"));
    let message = common::assert_error(status, &body, 400, "invalid_request_error");
    assert_eq!(message, "model is not loaded");
    // Anthropic's routes answer in Anthropic's shape.
    let (status, body) = server.post(
        "/v1/messages",
        &json!({ "model": "nope", "max_tokens": 4, "messages": [] }),
    );
    assert_eq!(status, 400);
    assert_eq!(body["type"], "error", "{body}");

    // Loading and unloading by hand.
    let (status, body) = server.post("/models/load", &json!({ "model": MINILM }));
    assert_eq!((status, &body), (200, &json!({ "success": true })));
    wait_status(&server, MINILM, "loaded");
    let (status, body) = server.post("/models/load", &json!({ "model": MINILM }));
    let message = common::assert_error(status, &body, 400, "invalid_request_error");
    assert_eq!(message, "model is already running");
    let (status, body) = server.post("/models/load", &json!({ "model": "nope" }));
    common::assert_error(status, &body, 404, "not_found_error");
    let port = model_port(&server, MINILM);
    assert!(answers(port));
    // A model's server answers only the router, which alone has its key.
    let direct = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{port}/tokenize"))
        .json(&json!({ "content": "hi" }))
        .send()
        .unwrap();
    assert_eq!(direct.status(), 401);
    let (status, body) = server.post("/models/unload", &json!({ "model": MINILM }));
    assert_eq!((status, &body), (200, &json!({ "success": true })));
    wait_status(&server, MINILM, "unloaded");
    assert!(!answers(port), "the unloaded model's server still listens");
    let (status, body) = server.post("/models/unload", &json!({ "model": MINILM }));
    let message = common::assert_error(status, &body, 400, "invalid_request_error");
    assert_eq!(message, "model is not running");

    // The router's own routes take only their methods, as llama-server's.
    let (status, body) = server.post("/models", &json!({}));
    common::assert_error(status, &body, 404, "not_found_error");

    // Ollama's listings: every model that can be served, from its header; the loaded ones.
    let (status, tags) = server.get("/api/tags");
    assert_eq!(status, 200);
    let names: Vec<&str> = tags["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [MINILM, GEMMA], "{tags}");
    let gemma_tag = &tags["models"][1];
    assert_eq!(gemma_tag["details"]["family"], "gemma3", "{gemma_tag}");
    assert_eq!(gemma_tag["details"]["quantization_level"], "Q4_K_M");
    // The count from the file's tensors is llama.cpp's, as the model's own server says.
    assert_eq!(gemma_tag["details"]["parameter_size"], "268.10M");
    let (_, ps) = server.get("/api/ps");
    let loaded: Vec<&str> = ps["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(loaded, [GEMMA], "{ps}");
    let (status, show) = server.post("/api/show", &json!({ "name": GEMMA }));
    assert_eq!(status, 200, "{show}");
    assert_eq!(show["details"]["family"], "gemma3");

    // A router that is killed takes its models' servers with it.
    let port = model_port(&server, GEMMA);
    assert!(answers(port));
    drop(server);
    let start = Instant::now();
    while answers(port) {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the model's server outlived its router"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn models_that_do_not_fit_together_take_turns() {
    let dir = models_dir();
    std::fs::remove_file(dir.path().join("broken.gguf")).unwrap();
    // Room for the larger model, or the smaller one and a half: never both.
    let plans = {
        let probe = router(dir.path(), &[]);
        let (_, listing) = probe.get("/models");
        listing["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["plan"]["memory"]["host"].as_u64().unwrap())
            .collect::<Vec<u64>>()
    };
    let (small, large) = (plans[0].min(plans[1]), plans[0].max(plans[1]));
    let ram = format!("{}B", large + small / 2);
    let server = router(dir.path(), &["--models-ram", &ram]);

    let (status, _) = server.post("/v1/chat/completions", &chat(GEMMA));
    assert_eq!(status, 200);
    let (status, _) = server.post("/models/load", &json!({ "model": MINILM }));
    assert_eq!(status, 200);
    wait_status(&server, MINILM, "loaded");
    assert_eq!(
        status_of(&server, GEMMA),
        "unloaded",
        "the idle model made room"
    );

    // A model at work is never unloaded: loading the other one then says why it cannot.
    let (status, _) = server.post("/v1/chat/completions", &chat(GEMMA));
    assert_eq!(status, 200);
    assert_eq!(status_of(&server, MINILM), "unloaded");
    let long = json!({
        "model": GEMMA,
        "prompt": "Write a very long story.",
        "n_predict": 2000,
        "ignore_eos": true,
        "stream": true,
    });
    let mut running = server
        .client()
        .post(format!("{}/completion", server.url))
        .json(&long)
        .send()
        .unwrap();
    let mut first = [0u8; 64];
    std::io::Read::read(&mut running, &mut first).unwrap();
    let (status, body) = server.post("/models/load", &json!({ "model": MINILM }));
    let message = common::assert_error(status, &body, 503, "unavailable_error");
    assert!(
        message.contains("cannot be loaded now") && message.contains(GEMMA),
        "{message}"
    );
    drop(running);
    // Once the client has gone, the model is idle again and makes room.
    let start = Instant::now();
    loop {
        let (status, _) = server.post("/models/load", &json!({ "model": MINILM }));
        if status == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{GEMMA} stayed busy"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_status(&server, MINILM, "loaded");
    assert_eq!(status_of(&server, GEMMA), "unloaded");
}

#[test]
fn llama_servers_router_flags_and_variables() {
    let dir = models_dir();
    let mut command = std::process::Command::new(common::binary());
    command
        .args(["-c", "2048", "-t", "1"])
        .env("LLAMA_ARG_MODELS_DIR", dir.path())
        .env("LLAMA_ARG_MODELS_MAX", "1")
        .env("LLAMA_ARG_MODELS_AUTOLOAD", "0")
        .env("LLAMA_API_KEY", "router-key")
        .env("RUST_LOG", "warn");
    let server = Server::start_command(command);
    // The router asks for its key; the models' servers never see it.
    let send = |request: reqwest::blocking::RequestBuilder, key: Option<&str>| {
        let request = match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().unwrap())
    };
    let get = |path: &str, key| send(server.client().get(format!("{}{path}", server.url)), key);
    let post = |path: &str, body: &Value, key| {
        send(
            server
                .client()
                .post(format!("{}{path}", server.url))
                .json(body),
            key,
        )
    };
    let (status, body) = get("/props", None);
    common::assert_error(status, &body, 401, "authentication_error");
    let (_, props) = get("/props", Some("router-key"));
    assert_eq!(props["max_instances"], 1);
    assert_eq!(props["models_autoload"], false);
    let (status, body) = post("/v1/chat/completions", &chat(GEMMA), Some("router-key"));
    let message = common::assert_error(status, &body, 400, "invalid_request_error");
    assert_eq!(message, "model is not loaded");
    // ?autoload=true asks for it all the same.
    let (status, body) = post(
        "/v1/chat/completions?autoload=true",
        &chat(GEMMA),
        Some("router-key"),
    );
    assert_eq!(status, 200, "{body}");
    let (_, listing) = get("/models", Some("router-key"));
    assert!(!listing.to_string().contains("router-key"), "{listing}");
    drop(server);

    refused(
        &["--models-preset", "presets.ini"],
        "--models-preset: not supported",
    );
    let folder = dir.path().to_str().unwrap();
    refused(
        &["--models-dir", folder, "--alias", "chat"],
        "--alias: not supported when serving several models",
    );
    refused(&["--models-dir", "/no/such/folder"], "/no/such/folder");
}

/// Runs the binary with `args`, which must fail with `want` in its standard error.
fn refused(args: &[&str], want: &str) {
    let out = std::process::Command::new(common::binary())
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(want), "{args:?}: {stderr}");
}

#[test]
fn under_an_api_prefix() {
    let dir = models_dir();
    let mut command = std::process::Command::new(common::binary());
    command
        .args(router_args(dir.path(), &["--api-prefix", "/llm"]))
        .env("RUST_LOG", "warn");
    let server = Server::start_command_at(command, "/llm/health");
    let (status, body) = server.post("/llm/v1/chat/completions", &chat(GEMMA));
    assert_eq!(status, 200, "{body}");
    assert_eq!(status_of_at(&server, "/llm/models", GEMMA), "loaded");
    let (status, _) = server.post("/v1/chat/completions", &chat(GEMMA));
    assert_eq!(status, 404);
}

fn status_of_at(server: &Server, listing: &str, id: &str) -> String {
    let (_, body) = server.get(listing);
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .map(|m| m["status"]["value"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn without_a_folder_the_cache_is_served() {
    // A Hugging Face cache holding the demo model, as `gguf-serve pull` lays it out.
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--unsloth--gemma-3-270m-it-GGUF");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let sha = "a".repeat(64);
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(repo.join("snapshots").join(commit)).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    std::os::unix::fs::symlink(common::demo_model(), repo.join("blobs").join(&sha)).unwrap();
    std::os::unix::fs::symlink(
        format!("../../blobs/{sha}"),
        repo.join("snapshots")
            .join(commit)
            .join("gemma-3-270m-it-Q4_K_M.gguf"),
    )
    .unwrap();

    let mut command = std::process::Command::new(common::binary());
    command
        .args(["-c", "2048", "-t", "1"])
        .env("LLAMA_CACHE", cache.path())
        .env("RUST_LOG", "warn");
    let server = Server::start_command(command);
    let id = "unsloth/gemma-3-270m-it-GGUF:Q4_K_M";
    let (_, listing) = server.get("/models");
    assert_eq!(listing["data"].as_array().unwrap().len(), 1, "{listing}");
    assert_eq!(listing["data"][0]["id"], id);
    assert_eq!(listing["data"][0]["source"], "cache");
    let (status, body) = server.post("/v1/chat/completions", &chat(id));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], id);
    drop(server);

    // An empty cache and no model: the error says what to give.
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::binary())
        .env("LLAMA_CACHE", empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--model is required") && stderr.contains("--models-dir"),
        "{stderr}"
    );
}

/// Keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

#[test]
#[ignore = "needs the reference llama-server (GGUF_SERVE_LLAMA_SERVER)"]
fn matches_the_reference_llama_servers_router() {
    let reference = common::reference_llama_server();
    let dir = models_dir();
    std::fs::remove_file(dir.path().join("broken.gguf")).unwrap();
    let args = router_args(dir.path(), &[]);
    let ours = Server::start_with(&args);
    let theirs = Server::start_program(&reference, &args);
    let missing = json!({ "messages": [{ "role": "user", "content": "hi" }] });
    let posts: Vec<(&str, Value)> = vec![
        ("/v1/chat/completions", missing),
        ("/v1/chat/completions", chat("nope")),
        ("/v1/chat/completions", chat(GEMMA)),
        ("/models/load", json!({ "model": GEMMA })),
        ("/models/unload", json!({ "model": MINILM })),
        ("/models/unload", json!({ "model": "nope" })),
        ("/models/load", json!({ "model": "nope" })),
    ];
    for (path, body) in &posts {
        let (a, ours_body) = ours.post(path, body);
        let (b, theirs_body) = theirs.post(path, body);
        assert_eq!(a, b, "{path} {body}: {ours_body} vs {theirs_body}");
        assert_eq!(keys(&ours_body), keys(&theirs_body), "{path} {body}");
        if a == 200 && path.starts_with("/v1/chat") {
            assert_eq!(
                ours_body["choices"][0]["message"]["content"],
                theirs_body["choices"][0]["message"]["content"]
            );
        } else if a != 200 {
            assert_eq!(
                ours_body["error"]["type"], theirs_body["error"]["type"],
                "{path} {body}"
            );
        }
    }
    for path in [
        "/props",
        &format!("/props?model={MINILM}&autoload=false"),
        "/slots",
        "/health",
    ] {
        let (a, ours_body) = ours.get(path);
        let (b, theirs_body) = theirs.get(path);
        assert_eq!(a, b, "{path}: {ours_body} vs {theirs_body}");
        if a == 200 && path != "/health" {
            assert_eq!(keys(&ours_body), keys(&theirs_body), "{path}");
        }
    }
    let (_, ours_models) = ours.get("/models");
    let (_, theirs_models) = theirs.get("/models");
    let ids = |v: &Value| -> Vec<Value> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].clone())
            .collect()
    };
    assert_eq!(ids(&ours_models), ids(&theirs_models));
    for (a, b) in ours_models["data"]
        .as_array()
        .unwrap()
        .iter()
        .zip(theirs_models["data"].as_array().unwrap())
    {
        // Ours adds the model's path and plan; every key of llama-server's is there.
        let ours_keys = keys(a);
        for key in keys(b) {
            assert!(ours_keys.contains(&key), "{key} missing from {a}");
        }
        assert_eq!(a["status"]["value"], b["status"]["value"], "{a} vs {b}");
    }
}
