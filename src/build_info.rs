//! What this binary was built with, recorded by `build.rs`: compiled backends and the llama.cpp
//! version, printed by `gguf-serve --version` and `/props`.

/// Backends compiled into this binary (`cpu` always, then the GPU features that were enabled).
pub const BACKENDS: &str = env!("GGUF_SERVE_BACKENDS");
/// The llama.cpp build number and commit vendored by llama-cpp-sys-2.
pub const LLAMA_CPP_VERSION: &str = env!("GGUF_SERVE_LLAMA_CPP_VERSION");

/// The long version string clap prints for `--version`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (llama.cpp from ",
    env!("GGUF_SERVE_LLAMA_CPP_VERSION"),
    "; backends: ",
    env!("GGUF_SERVE_BACKENDS"),
    ")"
);
