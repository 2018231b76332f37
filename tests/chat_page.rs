//! The chat page at `/`, in a real browser: Debian's chromium, headless, driven over the
//! DevTools protocol by `tests/python/chat_page.py` (settings, a streamed answer equal to the
//! API's, a second turn, a reload, Stop, markup shown as text, deleting a chat, and a server
//! with an API key), on the demo model with its built-in `gemma` template; and the routes that
//! turn it off or replace it.

mod common;

use common::Server;

/// Runs `tests/python/chat_page.py MODE URL` and checks that it passed.
fn run_page(mode: &str, server: &Server) {
    let ok = format!("{mode}: ok");
    common::run_python("chat_page.py", "json", &[mode, &server.url], &ok);
}

#[test]
fn a_person_chats_in_the_page() {
    let server = Server::start(&["--chat-template", "gemma"]);
    run_page("chat", &server);
}

#[test]
fn the_page_asks_for_the_api_key() {
    let server = Server::start(&["--chat-template", "gemma", "--api-key", "sk-page"]);
    run_page("key", &server);
}

#[test]
fn the_page_offers_the_models_of_a_router() {
    let dir = tempfile::tempdir().unwrap();
    for model in [common::demo_model(), common::minilm_model()] {
        let link = dir.path().join(model.file_name().unwrap());
        std::os::unix::fs::symlink(&model, link).unwrap();
    }
    let args = [
        "--models-dir",
        dir.path().to_str().unwrap(),
        "-c",
        "2048",
        "-t",
        "1",
        "--chat-template",
        "gemma",
    ];
    let server = Server::start_with(&args.map(String::from));
    run_page("router", &server);
}

#[test]
fn the_page_is_served_unless_turned_off_or_replaced() {
    let page = |server: &Server, path: &str| {
        let response = reqwest::blocking::get(format!("{}{path}", server.url)).unwrap();
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        (response.status().as_u16(), kind, response.text().unwrap())
    };
    let on = Server::start(&[]);
    let (status, kind, body) = page(&on, "/");
    assert_eq!((status, kind.as_str()), (200, "text/html; charset=utf-8"));
    assert!(body.contains("<title>gguf-serve</title>"), "{body}");
    assert_eq!(page(&on, "/index.html").2, body);
    drop(on);

    for off in [&["--no-ui"][..], &["--no-webui"], &["--ui=false"]] {
        let server = Server::start(off);
        let (status, _, body) = page(&server, "/");
        assert_eq!(status, 404, "{off:?}: {body}");
    }
    let server = Server::start_env(&[], &[("LLAMA_ARG_UI", "false")]);
    assert_eq!(page(&server, "/").0, 404, "LLAMA_ARG_UI=false");
    drop(server);

    let prefixed = Server::start_at(&["--api-prefix", "/llm"], &[], "/llm/health");
    assert_eq!(page(&prefixed, "/llm/").0, 200);
    let redirect = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/llm", prefixed.url))
        .send()
        .unwrap();
    assert_eq!(redirect.status().as_u16(), 308);
    assert_eq!(redirect.headers()["location"], "/llm/");
    assert_eq!(page(&prefixed, "/").0, 404);
    drop(prefixed);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<p>mine</p>").unwrap();
    let path = dir.path().display().to_string();
    let replaced = Server::start(&["--path", &path]);
    assert_eq!(
        page(&replaced, "/").2,
        "<p>mine</p>",
        "--path serves its own page"
    );
}
