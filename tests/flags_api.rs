//! llama-server's flags seen through the API, each set on the command line and through its
//! `LLAMA_ARG_*` variable: the sampling defaults and `-n` (in `/props` and in answers),
//! `--alias`/`--tags`, `--chat-template NAME`, `--no-slots`, `--metrics`, `--props`,
//! `--api-key-file`, `--api-prefix`; a realistic llama-server command line; a refused flag.

mod common;

use std::process::Command;

use common::{Server, assert_error, binary, demo_model};
use serde_json::{Value, json};

fn params(server: &Server) -> Value {
    server.get("/props").1["default_generation_settings"]["params"].clone()
}

#[test]
fn sampling_defaults_reach_props_and_requests() {
    let flags = Server::start(&[
        "--temp",
        "0.25",
        "--top-k",
        "7",
        "--seed",
        "42",
        "-n",
        "5",
        "--repeat-penalty",
        "1.5",
        "--samplers",
        "top_k;temperature",
    ]);
    let env = Server::start_env(
        &["--seed", "42", "--samplers", "top_k;temperature"],
        &[
            ("LLAMA_ARG_TEMPERATURE", "0.25"),
            ("LLAMA_ARG_TOP_K", "7"),
            ("LLAMA_ARG_N_PREDICT", "5"),
            ("LLAMA_ARG_REPEAT_PENALTY", "1.5"),
        ],
    );
    for server in [&flags, &env] {
        let p = params(server);
        assert_eq!(p["temperature"], json!(0.25), "{p}");
        assert_eq!(p["top_k"], json!(7), "{p}");
        assert_eq!(p["seed"], json!(42), "{p}");
        assert_eq!(p["repeat_penalty"], json!(1.5), "{p}");
        assert_eq!(p["samplers"], json!(["top_k", "temperature"]), "{p}");
        // A request inherits -n and the sampling defaults, and overrides them field by field.
        let (status, reply) = server.post("/completion", &json!({ "prompt": "Once upon a time" }));
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["tokens_predicted"], 5, "{reply}");
        let settings = &reply["generation_settings"];
        assert_eq!(settings["temperature"], json!(0.25));
        assert_eq!(settings["n_predict"], 5);
        let (_, reply) = server.post(
            "/completion",
            &json!({ "prompt": "Once upon a time", "top_k": 3, "n_predict": 2 }),
        );
        assert_eq!(reply["generation_settings"]["top_k"], 3);
        assert_eq!(reply["tokens_predicted"], 2);
    }
    // The same seeded request gives the same text on both servers.
    let body = json!({ "prompt": "The weather today is", "n_predict": 12 });
    assert_eq!(
        flags.post("/completion", &body).1["content"],
        env.post("/completion", &body).1["content"]
    );
}

#[test]
fn aliases_tags_and_template_by_name() {
    let flags = Server::start(&["--alias", "b,a", "--tags", "x", "--chat-template", "gemma"]);
    let env = Server::start_env(
        &[],
        &[
            ("LLAMA_ARG_ALIAS", "b,a"),
            ("LLAMA_ARG_TAGS", "x"),
            ("LLAMA_ARG_CHAT_TEMPLATE", "gemma"),
        ],
    );
    for server in [&flags, &env] {
        let models = server.get("/v1/models").1;
        assert_eq!(models["data"][0]["id"], "a");
        assert_eq!(models["data"][0]["aliases"], json!(["a", "b"]));
        assert_eq!(models["data"][0]["tags"], json!(["x"]));
        let props = server.get("/props").1;
        assert_eq!(props["chat_template"], "gemma");
        // llama.cpp's built-in gemma template, not ChatML.
        let (_, rendered) = server.post(
            "/apply-template",
            &json!({ "messages": [{ "role": "user", "content": "Hi" }] }),
        );
        assert_eq!(
            rendered["prompt"],
            "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
        );
        let (_, chat) = server.post(
            "/v1/chat/completions",
            &json!({ "messages": [{ "role": "user", "content": "Hi" }], "max_tokens": 2 }),
        );
        assert_eq!(chat["model"], "a");
    }
    // Tools need Jinja templates, as in llama-server (which answers 500; a client's mistake is
    // a 400 here).
    let no_jinja = Server::start(&["--no-jinja"]);
    let (status, reply) = no_jinja.post(
        "/v1/chat/completions",
        &json!({
            "messages": [{ "role": "user", "content": "Hi" }],
            "tools": [{ "type": "function", "function": { "name": "f" } }],
        }),
    );
    let message = assert_error(status, &reply, 400, "invalid_request_error");
    assert_eq!(message, "tools param requires --jinja flag");
}

#[test]
fn endpoints_turned_on_and_off() {
    let off = Server::start(&["--no-slots"]);
    let off_env = Server::start_env(&[], &[("LLAMA_ARG_ENDPOINT_SLOTS", "false")]);
    let off_no = Server::start_env(&[], &[("LLAMA_ARG_NO_ENDPOINT_SLOTS", "1")]);
    for server in [&off, &off_env, &off_no] {
        let (status, reply) = server.get("/slots");
        let message = assert_error(status, &reply, 501, "not_supported_error");
        assert!(message.contains("--slots"), "{message}");
        assert_eq!(server.get("/props").1["endpoint_slots"], false);
        // Off by default.
        let (status, reply) = server.get("/metrics");
        assert_error(status, &reply, 501, "not_supported_error");
        let (status, reply) = server.post("/props", &json!({}));
        assert_error(status, &reply, 501, "not_supported_error");
    }
    let on = Server::start(&["--metrics", "--props"]);
    let on_env = Server::start_env(
        &[],
        &[
            ("LLAMA_ARG_ENDPOINT_METRICS", "1"),
            ("LLAMA_ARG_ENDPOINT_PROPS", "true"),
        ],
    );
    for server in [&on, &on_env] {
        server.post("/completion", &json!({ "prompt": "Hello", "n_predict": 3 }));
        let r = server
            .client()
            .get(format!("{}/metrics", server.url))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().unwrap();
        let total = text
            .lines()
            .find_map(|l| l.strip_prefix("llamacpp:tokens_predicted_total "))
            .expect("tokens_predicted_total");
        assert_eq!(total.parse::<f64>().unwrap(), 3.0, "{text}");
        assert_eq!(server.post("/props", &json!({})).0, 200);
        assert_eq!(server.get("/props").1["endpoint_metrics"], true);
    }
}

#[test]
fn api_keys_from_a_file_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "# keys\nfirst\nsecond\n").unwrap();
    let keys = keys.display().to_string();
    let file = Server::start(&["--api-key-file", &keys]);
    let file_env = Server::start_env(&[], &[("LLAMA_ARG_API_KEY_FILE", &keys)]);
    let list_env = Server::start_env(&[], &[("LLAMA_API_KEY", "first,second")]);
    for server in [&file, &file_env, &list_env] {
        let send = |key: Option<&str>| {
            let mut r = server.client().get(format!("{}/v1/models", server.url));
            if let Some(key) = key {
                r = r.bearer_auth(key);
            }
            r.send().unwrap().status().as_u16()
        };
        assert_eq!(send(None), 401);
        assert_eq!(send(Some("# keys")), 401);
        assert_eq!(send(Some("first")), 200);
        assert_eq!(send(Some("second")), 200);
        // /health needs no key.
        assert_eq!(server.get("/health").0, 200);
    }
}

#[test]
fn api_prefix() {
    let flags = Server::start_at(&["--api-prefix", "/api"], &[], "/api/health");
    let env = Server::start_at(&[], &[("LLAMA_ARG_API_PREFIX", "/api")], "/api/health");
    for server in [&flags, &env] {
        assert_eq!(server.get("/api/v1/models").0, 200);
        let (status, reply) = server.get("/v1/models");
        assert_error(status, &reply, 404, "not_found_error");
    }
}

/// A command line as llama-server users write them starts and serves.
#[test]
fn a_realistic_llama_server_command_line_starts() {
    let server = Server::start(&[
        "-c",
        "4096",
        "-ngl",
        "99",
        "-np",
        "2",
        "--jinja",
        "-fa",
        "on",
        "--metrics",
        "--cont-batching",
        "--no-mmap",
        "-ctk",
        "q8_0",
        "-ctv",
        "q8_0",
        "--temp",
        "0.7",
        "--seed",
        "42",
        "--threads-http",
        "2",
        "-to",
        "60",
        "--no-warmup",
        "--kv-unified",
        "--swa-full",
        "--slots",
        "--mlock",
    ]);
    let (status, reply) = server.post(
        "/v1/chat/completions",
        &json!({ "messages": [{ "role": "user", "content": "Hi" }], "max_tokens": 4 }),
    );
    assert_eq!(status, 200, "{reply}");
    let props = server.get("/props").1;
    let temperature = props["default_generation_settings"]["params"]["temperature"]
        .as_f64()
        .unwrap();
    assert!((temperature - 0.7).abs() < 1e-6, "{temperature}");
    assert_eq!(
        props["default_generation_settings"]["n_ctx"], 4096,
        "-kvu: one cache"
    );
}

/// A flag gguf-serve does not support stops it with one line naming the flag.
#[test]
fn refused_flags_exit_naming_the_flag() {
    let model = demo_model();
    for (args, env, named) in [
        (vec!["--mmproj", "x.gguf"], None, "--mmproj"),
        (vec!["-mu", "https://example.com/m.gguf"], None, "-mu"),
        (vec!["-nocb"], None, "-nocb"),
        (
            vec![],
            Some(("LLAMA_ARG_MMPROJ", "x.gguf")),
            "LLAMA_ARG_MMPROJ",
        ),
    ] {
        let mut command = Command::new(binary());
        command
            .arg("-m")
            .arg(&model)
            .args(&args)
            .arg("--port")
            .arg("1");
        if let Some((k, v)) = env {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!("gguf-serve: {named}")) && stderr.contains("not supported"),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}
