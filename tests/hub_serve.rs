//! Serving a model from the Hugging Face Hub (issue #19) as llama-server does (`-hf
//! ORG/REPO[:QUANT]`, `--hf-file`, `LLAMA_ARG_HF_REPO`), from the cache without the network
//! (`--offline`, `HF_HUB_OFFLINE=1`: no request at all), and a split model pulled and loaded
//! whole. Against a fake Hub (tests/common/fake_hub.rs), one per test, each with its own cache.

mod common;

use common::gguf_fixtures;
#[path = "common/fake_hub.rs"]
mod fake_hub;
#[path = "common/hub_checks.rs"]
mod hub_checks;
#[path = "common/hub_cli.rs"]
mod hub_cli;
#[path = "common/hub_fixtures.rs"]
mod hub_fixtures;
#[path = "common/sha.rs"]
mod sha;

use fake_hub::FakeHub;
use hub_checks::*;
use hub_cli::{assert_cached, run, snapshot};
use hub_fixtures::{LADDER, NOT_MODELS, SPLIT_PARTS, ladder_file};
use serde_json::{Value, json};
use std::path::Path;

#[test]
fn serve_hf_downloads_the_pick_and_serves_it() {
    let hub = ladder_hub();
    let (_dir, cache) = cache_dir();
    let server = serve(&hub, &cache, &["-hf", "test/tiny-GGUF:Q8_0"], &[]);
    completes(&server);
    let name = ladder_file("Q8_0");
    assert_cached(&cache, &hub, LADDER_REPO, &name);
    assert_downloaded(&hub, LADDER_REPO, &name);
    for quant in &LADDER[1..] {
        assert_eq!(hub.stats(&ladder_file(quant)).full_bytes, 0);
    }
    drop(server);

    // llama-server's variable names the repo as well as the flag; --hf-file names a file.
    let (_dir, cache) = cache_dir();
    let server = serve(
        &hub,
        &cache,
        &[],
        &[("LLAMA_ARG_HF_REPO", Some("test/tiny-GGUF:Q8_0"))],
    );
    completes(&server);
    assert_cached(&cache, &hub, LADDER_REPO, &name);
    drop(server);
    // -m takes hf://ORG/REPO too; a bare ORG/REPO that is no file says to use -hf.
    hub.reset();
    let server = serve(&hub, &cache, &["-m", "hf://test/tiny-GGUF:Q8_0"], &[]);
    completes(&server);
    assert_eq!(
        hub.stats(&name).full_bytes + hub.stats(&name).range_bytes,
        0,
        "cached"
    );
    drop(server);
    let line = run(&hub, &cache, &["-m", LADDER_REPO], &[]).failed_one_line();
    assert!(line.contains(&format!("-hf {LADDER_REPO}")), "{line}");
    let (_dir, cache) = cache_dir();
    hub.reset();
    let q2 = ladder_file("Q2_K");
    let server = serve(&hub, &cache, &["-hf", LADDER_REPO, "--hf-file", &q2], &[]);
    completes(&server);
    assert_cached(&cache, &hub, LADDER_REPO, &q2);
    assert_downloaded(&hub, LADDER_REPO, &q2);
    assert_eq!(hub_cli::blob_names(&cache, LADDER_REPO).len(), 1);
}

#[test]
fn a_cached_model_serves_and_plans_offline_without_a_request() {
    let hub = ladder_hub();
    let (_dir, cache) = cache_dir();
    let name = ladder_file("Q8_0");
    run(&hub, &cache, &["pull", "test/tiny-GGUF:Q8_0"], &[]).ok();
    hub.reset();

    let server = serve(
        &hub,
        &cache,
        &["-hf", "test/tiny-GGUF:Q8_0"],
        &[("HF_HUB_OFFLINE", Some("1"))],
    );
    completes(&server);
    drop(server);
    let server = serve(
        &hub,
        &cache,
        &["-hf", "test/tiny-GGUF:Q8_0", "--offline"],
        &[],
    );
    completes(&server);
    drop(server);
    assert_eq!(hub.requests(), 0, "offline, yet: {:?}", hub.log());

    // Online with the Hub failing, the cached repo still serves (with a warning).
    hub.fail_all(true);
    let server = serve(&hub, &cache, &["-hf", "test/tiny-GGUF:Q8_0"], &[]);
    completes(&server);
    drop(server);
    assert!(hub.requests() > 0, "the Hub was asked first");
    hub.fail_all(false);
    hub.reset();

    let plan = run(
        &hub,
        &cache,
        &args(
            &[
                "plan",
                "--hf",
                LADDER_REPO,
                "--offline",
                "--vram",
                "1TiB",
                "--json",
            ],
            &BUDGET,
        ),
        &[],
    )
    .ok();
    let json = plan.json();
    let files: Vec<&Value> = json["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["file"])
        .collect();
    assert_eq!(files, [&json!(name)], "only what is cached: {json}");
    assert_eq!(json["pick"]["file"], name.as_str());
    assert_eq!(hub.requests(), 0, "offline, yet: {:?}", hub.log());

    // What is not cached fails offline, in one line, still without a request.
    let out = run(
        &hub,
        &cache,
        &["pull", "test/tiny-GGUF:Q2_K"],
        &[("HF_HUB_OFFLINE", Some("1"))],
    );
    let line = out.failed();
    assert!(
        line.contains("Q2_K") || line.to_lowercase().contains("offline"),
        "{line}"
    );
    let out = run(
        &hub,
        &cache,
        &["plan", "--hf", "test/other-GGUF", "--offline"],
        &[],
    );
    assert!(
        out.failed_one_line().contains("test/other-GGUF"),
        "{}",
        out.stderr
    );
    assert_eq!(hub.requests(), 0, "offline, yet: {:?}", hub.log());
}

#[test]
fn a_split_model_downloads_every_part_and_loads() {
    let hub = FakeHub::start(vec![hub_fixtures::split_repo(SPLIT_REPO)]);
    let (_dir, cache) = cache_dir();
    let out = run(&hub, &cache, &["pull", "test/split-GGUF:Q8_0"], &[]).ok();
    let commit = hub.commit(SPLIT_REPO);
    assert_eq!(
        Path::new(out.last_line()),
        snapshot(&cache, SPLIT_REPO, &commit, SPLIT_PARTS[0])
    );
    for part in SPLIT_PARTS {
        assert_cached(&cache, &hub, SPLIT_REPO, part);
        assert_downloaded(&hub, SPLIT_REPO, part);
    }
    for name in [ladder_file("Q4_K_M"), ladder_file("Q2_K")] {
        assert_eq!(hub.stats(&name).full_bytes, 0, "{name}");
    }
    for name in NOT_MODELS {
        assert_untouched(&hub, name);
    }
    let server = serve(&hub, &cache, &["-m", out.last_line()], &[]);
    completes(&server);
    drop(server);

    // Served straight from the Hub, too.
    let (_dir, cache) = cache_dir();
    let server = serve(&hub, &cache, &["-hf", "test/split-GGUF:Q8_0"], &[]);
    completes(&server);
    for part in SPLIT_PARTS {
        assert_cached(&cache, &hub, SPLIT_REPO, part);
    }
}
