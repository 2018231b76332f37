//! The HTTP edge against the real binary: axum's own rejections as llama-server's error JSON,
//! CORS as llama-server answers it, one request id in the answer, the header and the log,
//! several `--host` addresses, and HTTPS.

mod common;

use std::time::Duration;

use common::{Server, assert_error};
use serde_json::{Value, json};

#[test]
fn rejections_are_llama_server_error_json() {
    let server = Server::start(&[]);
    let client = server.client();
    let url = |path: &str| format!("{}{path}", server.url);
    let json_of = |r: reqwest::blocking::Response| {
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        let body: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, body)
    };
    // A body over the limit (100 MiB, as llama-server's) is refused from its Content-Length,
    // before it is sent (a client still sending when the answer comes would see a reset).
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(
        stream,
        "POST /completion HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        101 << 20
    )
    .unwrap();
    // Read the answer alone: the connection stays open for the body never sent.
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    let body = loop {
        let n = stream.read(&mut buf).expect("an answer before the timeout");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&reply));
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .and_then(|v| v.trim().parse().ok())
                .expect("a Content-Length");
            if body.len() >= length {
                assert!(head.starts_with("HTTP/1.1 413"), "{head}");
                break body[..length].to_string();
            }
        }
    };
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_error(413, &body, 413, "invalid_request_error");
    // A wrong method on a known route is llama-server's 404.
    let (status, body) = json_of(client.get(url("/completion")).send().unwrap());
    assert_eq!(
        assert_error(status, &body, 404, "not_found_error"),
        "File Not Found"
    );
    let (status, body) = json_of(client.delete(url("/props")).send().unwrap());
    assert_error(status, &body, 404, "not_found_error");
    // No Content-Type (curl's default form type, or none) still reads the JSON.
    let body = json!({ "prompt": "Hi", "n_predict": 1 }).to_string();
    let r = client
        .post(url("/completion"))
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .post(url("/completion"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn cors_as_llama_server() {
    let server = Server::start(&["--api-key", "k"]);
    let client = server.client();
    // A preflight is answered before the key is asked for.
    let r = client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/chat/completions", server.url),
        )
        .header("origin", "http://example.com")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "http://example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(
        h["access-control-allow-methods"],
        "GET, POST, DELETE, OPTIONS"
    );
    // Every answer carries the origin back, errors included.
    let r = client
        .get(format!("{}/v1/models", server.url))
        .header("origin", "http://example.com")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://example.com"
    );
    let local = Server::start(&["--cors-origins", "localhost"]);
    let origin = |o: &str| {
        local
            .client()
            .get(format!("{}/health", local.url))
            .header("origin", o)
            .send()
            .unwrap()
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(
        origin("http://localhost:3000").as_deref(),
        Some("http://localhost:3000")
    );
    assert_eq!(origin("http://example.com"), None);
}

/// The id a client sees (`chatcmpl-…`, `X-Request-Id`) is the one in the log, on the access
/// line and on the engine's line for the same request.
#[test]
fn one_request_id_in_the_answer_the_header_and_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let server = Server::start_logged(&[], "127.0.0.1", &log);
    let r = server
        .client()
        .post(format!("{}/v1/chat/completions", server.url))
        .json(&json!({ "messages": [{ "role": "user", "content": "Hi" }], "max_tokens": 3 }))
        .send()
        .unwrap();
    let header = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = r.json().unwrap();
    assert_eq!(body["id"], format!("chatcmpl-{header}"));
    // The access line is written once the answer has been sent: wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text
            .lines()
            .any(|l| l.contains(&header) && l.contains("access"))
        {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access line for {header}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let ours: Vec<&str> = text.lines().filter(|l| l.contains(&header)).collect();
    assert!(
        ours.iter().any(|l| l.contains("generation done")),
        "the engine's line carries the id: {ours:?}"
    );
    let access = ours.iter().find(|l| l.contains("access")).unwrap();
    for field in [
        "path=/v1/chat/completions",
        "status=200",
        "predicted_tokens=3",
    ] {
        assert!(access.contains(field), "{field} in {access}");
    }
}

#[test]
fn several_host_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let socket = dir.path().join("gguf-serve.sock");
    let hosts = format!("127.0.0.1,127.0.0.2,{}", socket.display());
    let server = Server::start_logged(&[], &hosts, &log);
    let other = server.url.replace("127.0.0.1", "127.0.0.2");
    let r = server
        .client()
        .get(format!("{other}/health"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // The Unix socket answers too.
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with(r#"{"status":"ok"}"#), "{reply}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("no --api-key"), "loopback only: {text}");
}

/// Listening beyond loopback without a key is allowed, with a warning.
#[test]
fn an_open_address_without_a_key_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, warned) in [(&[][..], true), (&["--api-key", "k"][..], false)] {
        let log = dir.path().join("server.log");
        let server = Server::start_logged(extra, "0.0.0.0", &log);
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            text.contains("is reachable from other machines and no --api-key is set"),
            warned,
            "{extra:?}: {text}"
        );
        drop(server);
    }
}

/// A self-signed certificate for 127.0.0.1 and its key, as PEM files in `dir`.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]);
    let cert = params.unwrap().self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// `--ssl-cert-file` and `--ssl-key-file`, as llama-server: the same API over HTTPS, and a
/// plain-HTTP client gets no answer from that port.
#[test]
fn serves_https_with_a_certificate_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let server = Server::start_tls(&[], &cert, &key);
    assert!(server.url.starts_with("https://"));
    let (status, body) = server.post(
        "/completion",
        &json!({"prompt": "The capital of France is", "n_predict": 3, "temperature": 0}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tokens_predicted"], 3, "{body}");
    let plain = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{}/health", server.port))
        .timeout(Duration::from_secs(10))
        .send();
    assert!(
        plain.is_err() || plain.as_ref().is_ok_and(|r| r.status() != 200),
        "plain HTTP on the TLS port: {plain:?}"
    );
}

/// Unusable TLS files stop the server at startup with one line naming the flag and the file;
/// one flag without the other is refused by name.
#[test]
fn bad_tls_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let missing = dir.path().join("missing.pem");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let run = |args: &[&std::path::Path]| {
        let mut command = std::process::Command::new(common::binary());
        command.args(common::demo_args(&["--port", "0"]));
        for (flag, path) in ["--ssl-cert-file", "--ssl-key-file"].iter().zip(args) {
            command.arg(flag).arg(path);
        }
        let out = command.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cases: [(&[&std::path::Path], &str); 4] = [
        (&[&cert, &missing], "--ssl-key-file"),
        (&[&cert, &not_pem], "no PEM private key"),
        (&[&not_pem, &key], "no PEM certificate"),
        (&[&cert], "--ssl-key-file"),
    ];
    for (args, want) in cases {
        let (code, stderr) = run(args);
        assert!(matches!(code, Some(c) if c != 0), "{args:?}: exit {code:?}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}

/// `--path` serves the files in its folder and nothing outside it: `..`, its encodings and
/// absolute paths get llama-server's 404 error JSON.
#[test]
fn static_files_stay_inside_path() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("public");
    std::fs::create_dir_all(public.join("sub")).unwrap();
    std::fs::write(public.join("hello.txt"), "hello from the folder").unwrap();
    std::fs::write(public.join("sub/inner.txt"), "inner").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "SECRET").unwrap();
    let public_arg = public.display().to_string();
    let server = Server::start(&["--path", &public_arg]);
    let raw_get = |target: &str| {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        write!(
            stream,
            "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply
    };
    let served = raw_get("/hello.txt");
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    assert!(served.ends_with("hello from the folder"), "{served}");
    assert!(raw_get("/sub/inner.txt").ends_with("inner"));
    let secret = dir.path().join("secret.txt").display().to_string();
    for target in [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/%2E%2E%5Csecret.txt",
        &format!("/{secret}"),
        &format!("/%2F{}", secret.trim_start_matches('/')),
        &format!("//{}", secret.trim_start_matches('/')),
    ] {
        let reply = raw_get(target);
        assert!(
            !reply.contains("SECRET"),
            "{target} escaped the folder: {reply}"
        );
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 404") || head.starts_with("HTTP/1.1 400"),
            "{target}: {head}"
        );
        let body: Value =
            serde_json::from_str(body).unwrap_or_else(|_| panic!("{target}: not JSON: {body}"));
        assert!(body["error"]["message"].is_string(), "{target}: {body}");
    }
}
