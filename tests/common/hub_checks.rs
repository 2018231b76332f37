//! What the hub tests assert after a command, on the fake Hub's counters (a header read, a
//! whole download, nothing) and on a served model (it completes), with the repos, budget and
//! per-test folders they share.
//!
//! Needs `mod common;`, `mod fake_hub;`, `mod hub_cli;`, `mod hub_fixtures;` beside it.

#![allow(dead_code)]

use crate::common::Server;
use crate::fake_hub::FakeHub;
use crate::hub_fixtures::{self, header_size};
use serde_json::json;
use std::path::{Path, PathBuf};

pub const LADDER_REPO: &str = "test/tiny-GGUF";
pub const SPLIT_REPO: &str = "test/split-GGUF";
pub const MIB: u64 = 1 << 20;
/// The first header read asks this much.
pub const FIRST_READ: u64 = 512 << 10;
/// The flags that make a plan independent of this machine (one big GPU is added per test).
/// The budget flags of every plan and pull: a fixed margin (so `--vram` = need + 1 GiB fits
/// exactly that need) and the quality policy (the best quant that fits).
pub const BUDGET: [&str; 8] = [
    "--host-ram",
    "64GiB",
    "-c",
    "512",
    "--fit-target",
    "1024",
    "--prefer",
    "quality",
];

pub fn ladder_hub() -> FakeHub {
    FakeHub::start(vec![hub_fixtures::ladder_repo(LADDER_REPO)])
}

/// A test folder and the cache inside it.
pub fn cache_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    (dir, cache)
}

pub fn args<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(tail).copied().collect()
}

/// Asserts the hub served `name` no more than a header read: ranges only, at most
/// max(512 KiB, twice its header), less than the file, and something (its header was read).
pub fn assert_header_only(hub: &FakeHub, repo: &str, name: &str) {
    let stats = hub.stats(name);
    let bound = FIRST_READ.max(2 * header_size(name));
    assert_eq!(stats.full_bytes, 0, "{name} was downloaded: {stats:?}");
    assert!(
        stats.range_bytes >= header_size(name),
        "{name}: header not read: {stats:?}"
    );
    assert!(stats.range_bytes <= bound, "{name}: {stats:?} over {bound}");
    assert!(
        stats.range_bytes < hub.size(repo, name),
        "{name}: {stats:?}"
    );
    assert_eq!(
        stats.ranges.first(),
        Some(&Some(format!("bytes=0-{}", FIRST_READ - 1))),
        "{name}: the first header read asks 512 KiB"
    );
}

/// Asserts the hub served `name` whole, once: its size, plus at most 1 MiB of header reads.
pub fn assert_downloaded(hub: &FakeHub, repo: &str, name: &str) {
    let (stats, size) = (hub.stats(name), hub.size(repo, name));
    assert!(
        stats.total() >= size && stats.total() <= size + MIB,
        "{name} ({size} bytes): {stats:?}"
    );
}

/// Asserts the hub served nothing of `name`.
pub fn assert_untouched(hub: &FakeHub, name: &str) {
    let stats = hub.stats(name);
    assert!(
        stats.total() == 0 && stats.ranges.is_empty(),
        "{name}: {stats:?}"
    );
}

/// The GPU memory each candidate needs (plan on a huge GPU) at llama-server's `-ub 512`, which
/// the planner raises only where room is left, and the margin plan keeps.
pub fn needs(hub: &FakeHub, cache: &Path, repo: &str) -> (Vec<(String, u64)>, u64) {
    let plan = crate::hub_cli::run(
        hub,
        cache,
        &args(
            &[
                "plan", "--hf", repo, "--vram", "1TiB", "-ub", "512", "--json",
            ],
            &BUDGET,
        ),
        &[],
    )
    .ok();
    let json = plan.json();
    let needs = json["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let gpu: u64 = ["gpu_weights", "gpu_kv", "gpu_compute"]
                .iter()
                .map(|k| p["predicted"][k].as_u64().unwrap())
                .sum();
            (p["file"].as_str().unwrap().to_owned(), gpu)
        })
        .collect();
    (needs, json["budget"]["gpus"][0]["margin"].as_u64().unwrap())
}

/// Asserts `server` completes 4 tokens.
pub fn completes(server: &Server) {
    let (status, body) = server.post(
        "/completion",
        &json!({"prompt": "a b", "n_predict": 4, "ignore_eos": true}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tokens_predicted"], 4, "{body}");
}

/// Starts `gguf-serve ARGS` (serving) for `hub` and `cache`.
pub fn serve(
    hub: &FakeHub,
    cache: &Path,
    serve_args: &[&str],
    env: &[(&str, Option<&str>)],
) -> Server {
    let mut all = vec![("RUST_LOG", Some("warn"))];
    all.extend_from_slice(env);
    let cmd = crate::hub_cli::command(
        hub,
        cache,
        &args(serve_args, &["-c", "512", "-t", "1"]),
        &all,
    );
    Server::start_command(cmd)
}
