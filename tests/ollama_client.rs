//! The official `ollama` Python package against the real server's Ollama API: the listings,
//! chats and generations whole and streamed (newline-delimited JSON), options and formats,
//! `context` continuation, `logprobs` and Ollama-shaped errors on the demo model (served with
//! llama.cpp's built-in `gemma` template, as the README's first command serves it); embeddings
//! from all-MiniLM-L6-v2. The answer's reasoning and tool calls are the chat parser's, checked
//! by the adapter's unit tests (`src/server/ollama/response.rs`).

mod common;

use common::Server;

/// Runs `tests/python/ollama_client.py MODE URL` and checks that it passed.
fn run_client(mode: &str, server: &Server) {
    let ok = format!("{mode}: ok");
    common::run_python("ollama_client.py", "ollama", &[mode, &server.url], &ok);
}

#[test]
fn the_ollama_client_on_the_demo_model() {
    let server = Server::start(&["--chat-template", "gemma"]);
    run_client("demo", &server);
}

#[test]
fn the_ollama_client_embeds() {
    let model = common::minilm_model().display().to_string();
    let args = ["-m", &model, "-t", "1", "-c", "512", "--embedding"];
    let server = Server::start_with(&args.map(String::from));
    run_client("embed", &server);
}
