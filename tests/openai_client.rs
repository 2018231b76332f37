//! The official `openai` Python package against the real server: chat (stream and not),
//! completions, models and a 400, exactly as a user's client would see them.

mod common;

#[test]
fn official_openai_python_client() {
    let server = common::Server::start(&[]);
    common::run_python(
        "openai_client.py",
        "openai",
        &[&server.url],
        "openai client: ok",
    );
}
