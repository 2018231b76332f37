//! Records what this binary is built with, for `gguf-serve --version` and `/props`: the backends
//! compiled in (from our cargo features) and the llama.cpp we link, named by the version of
//! llama-cpp-sys-2 that vendors it (read from Cargo.lock, the source of truth for what was built).

use std::{env, fs};

fn main() {
    let mut backends = vec!["cpu"];
    for (feature, name) in [
        ("CARGO_FEATURE_CUDA", "cuda"),
        ("CARGO_FEATURE_METAL", "metal"),
        ("CARGO_FEATURE_ROCM", "rocm"),
        ("CARGO_FEATURE_VULKAN", "vulkan"),
        ("CARGO_FEATURE_DYNAMIC_BACKENDS", "dynamic"),
    ] {
        if env::var_os(feature).is_some() {
            backends.push(name);
        }
    }
    println!("cargo:rustc-env=GGUF_SERVE_BACKENDS={}", backends.join(","));

    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = fs::read_to_string("Cargo.lock").unwrap_or_default();
    let sys_version = locked_version(&lock, "llama-cpp-sys-2").unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=GGUF_SERVE_LLAMA_CPP_VERSION=llama-cpp-sys-2 {sys_version}");

    // The dynamic-backends bundle keeps llama.cpp's shared libraries in lib/ beside the binary.
    if env::var_os("CARGO_FEATURE_DYNAMIC_BACKENDS").is_some() {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,$ORIGIN/lib:$ORIGIN");
    }
}

/// The version of `package` in a Cargo.lock (`name = "…"` followed by `version = "…"`).
fn locked_version(lock: &str, package: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{package}\"") {
            let version = lines.next()?.trim().strip_prefix("version = \"")?;
            return Some(version.trim_end_matches('"').to_string());
        }
    }
    None
}
