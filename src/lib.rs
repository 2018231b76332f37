//! gguf-serve: serve GGUF language models over llama-server's HTTP API.
//!
//! The binary (`src/main.rs`) is a thin edge over this library so that the integration tests and
//! the `bench`/`plan`/`quantize` tools reuse the same code. ARCHITECTURE.md maps the modules.

pub mod bench;
pub mod build_info;
pub mod chat;
pub mod cli;
pub mod engine;
pub mod gguf;
pub mod hardware;
pub mod hub;
pub mod metrics;
pub mod plan;
pub mod quantize;
pub mod router;
pub mod server;
pub mod source;
pub mod test_hook;
pub mod ui;
pub mod wording;
