//! The Hub cache as a user sees it (issue #19): a model llama.cpp (or huggingface_hub) already
//! downloaded is used as it is, `list` shows what `pull` stored, `rm` removes a quant or a
//! repo, and every way a Hub command can fail (a bad name, an unknown repo, a gated repo, a
//! repo without GGUF files, the network down) fails with a line that says so and leaves
//! nothing in the cache that looks complete. Against a fake Hub (tests/common/fake_hub.rs),
//! one per test; tests/hub.rs has the downloads themselves.

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
use hub_checks::{LADDER_REPO, SPLIT_REPO, cache_dir, completes, ladder_hub, serve};
use hub_cli::{
    assert_cached, assert_no_false_blobs, assert_not_linked, blob, blob_names, place, repo_dir,
    run, snapshot,
};
use hub_fixtures::{SPLIT_PARTS, fixture, ladder_file};
use serde_json::Value;
use std::path::Path;

#[test]
fn a_model_already_in_a_cache_is_not_downloaded() {
    let hub = ladder_hub();
    let name = ladder_file("Q8_0");
    let bytes = std::fs::read(fixture(&name)).unwrap();
    let commit = hub.commit(LADDER_REPO);

    // In llama.cpp's cache (LLAMA_CACHE, looked at first), the Hub's cache empty.
    let (dir, cache) = cache_dir();
    let llama = dir.path().join("llama");
    let placed = place(&llama, LADDER_REPO, &commit, &name, &bytes);
    let env = [("LLAMA_CACHE", Some(llama.to_str().unwrap()))];
    let out = run(&hub, &cache, &["pull", "test/tiny-GGUF:Q8_0"], &env).ok();
    assert_eq!(Path::new(out.last_line()), placed, "{}", out.stdout);
    let stats = hub.stats(&name);
    assert_eq!(stats.total(), 0, "downloaded again: {stats:?}");
    assert!(blob_names(&cache, LADDER_REPO).is_empty());
    assert!(blob_names(&llama, LADDER_REPO).len() == 1);

    // In the Hub's cache.
    hub.reset();
    let (_dir, cache) = cache_dir();
    let placed = place(&cache, LADDER_REPO, &commit, &name, &bytes);
    let out = run(&hub, &cache, &["pull", "test/tiny-GGUF:Q8_0"], &[]).ok();
    assert_eq!(Path::new(out.last_line()), placed, "{}", out.stdout);
    assert_eq!(hub.stats(&name).total(), 0, "{:?}", hub.stats(&name));
    assert_cached(&cache, &hub, LADDER_REPO, &name);
}

/// `list --json`'s entry for `repo` and `quant`.
fn entry<'a>(list: &'a Value, repo: &str, quant: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["repo"] == repo && e["quant"] == quant)
        .unwrap_or_else(|| panic!("no {repo} {quant} in {list}"))
}

#[test]
fn list_shows_pulled_models_and_rm_removes_them() {
    let hub = FakeHub::start(vec![
        hub_fixtures::ladder_repo(LADDER_REPO),
        hub_fixtures::split_repo(SPLIT_REPO),
    ]);
    let (_dir, cache) = cache_dir();
    for model in [
        "test/tiny-GGUF:Q8_0",
        "test/tiny-GGUF:Q4_K_M",
        "test/split-GGUF:Q8_0",
    ] {
        run(&hub, &cache, &["pull", model], &[]).ok();
    }
    hub.reset();
    let list = run(&hub, &cache, &["list", "--json"], &[]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    let (ladder_commit, split_commit) = (hub.commit(LADDER_REPO), hub.commit(SPLIT_REPO));
    for (repo, quant, file, commit) in [
        (LADDER_REPO, "Q8_0", ladder_file("Q8_0"), &ladder_commit),
        (LADDER_REPO, "Q4_K_M", ladder_file("Q4_K_M"), &ladder_commit),
        (SPLIT_REPO, "Q8_0", SPLIT_PARTS[0].to_owned(), &split_commit),
    ] {
        let e = entry(&list, repo, quant);
        assert_eq!(e["file"], file.as_str(), "{e}");
        let size: u64 = if repo == SPLIT_REPO {
            SPLIT_PARTS.iter().map(|p| hub.size(repo, p)).sum()
        } else {
            hub.size(repo, &file)
        };
        assert_eq!(e["size"], size, "{e}");
        let path = Path::new(e["path"].as_str().unwrap());
        assert!(path.is_absolute() && path.is_file(), "{e}");
        assert_eq!(path, snapshot(&cache, repo, commit, &file), "{e}");
    }
    let table = run(&hub, &cache, &["list"], &[]).ok();
    for needle in [LADDER_REPO, SPLIT_REPO, "Q4_K_M"] {
        assert!(table.stdout.contains(needle), "{needle}:\n{}", table.stdout);
    }
    // llama-server's --cache-list prints the same table and exits.
    let cache_list = run(&hub, &cache, &["--cache-list"], &[]).ok();
    assert_eq!(cache_list.stdout, table.stdout);

    // One quant: its blob and link go, the other quant stays.
    run(&hub, &cache, &["rm", "test/tiny-GGUF:Q8_0"], &[]).ok();
    let q8 = ladder_file("Q8_0");
    assert!(!blob(&cache, LADDER_REPO, &hub.sha256(LADDER_REPO, &q8)).exists());
    assert_not_linked(&cache, LADDER_REPO, &ladder_commit, &q8);
    assert_cached(&cache, &hub, LADDER_REPO, &ladder_file("Q4_K_M"));
    let list = run(&hub, &cache, &["list", "--json"], &[]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    entry(&list, LADDER_REPO, "Q4_K_M");

    // The repo: all of it.
    run(&hub, &cache, &["rm", LADDER_REPO], &[]).ok();
    assert!(!repo_dir(&cache, LADDER_REPO).exists());
    let list = run(&hub, &cache, &["list", "--json"], &[]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    entry(&list, SPLIT_REPO, "Q8_0");

    // Nothing to remove: one line, and the rest untouched.
    for absent in [LADDER_REPO, "test/split-GGUF:Q2_K", "test/never-GGUF"] {
        let out = run(&hub, &cache, &["rm", absent], &[]);
        let line = out.failed_one_line();
        assert!(line.contains(absent.split(':').next().unwrap()), "{line}");
    }
    for part in SPLIT_PARTS {
        assert_cached(&cache, &hub, SPLIT_REPO, part);
    }
    assert_eq!(
        hub.requests(),
        0,
        "list and rm read the cache only: {:?}",
        hub.log()
    );
}

#[test]
fn bad_repo_names_fail_before_any_request() {
    let hub = ladder_hub();
    let (_dir, cache) = cache_dir();
    for name in ["notarepo", "a/b/c"] {
        for args in [["pull", name].as_slice(), &["plan", "--hf", name]] {
            let line = run(&hub, &cache, args, &[]).failed();
            assert!(line.contains(name), "{args:?}: {line}");
        }
    }
    assert_eq!(hub.requests(), 0, "{:?}", hub.log());
    assert_no_false_blobs(&cache);
}

#[test]
fn an_unknown_repo_quant_or_file_is_named() {
    let hub = ladder_hub();
    let (_dir, cache) = cache_dir();
    for args in [
        ["pull", "test/missing-GGUF"].as_slice(),
        &["plan", "--hf", "test/missing-GGUF"],
    ] {
        let line = run(&hub, &cache, args, &[]).failed();
        assert!(
            line.to_lowercase().contains("not found"),
            "{args:?}: {line}"
        );
        assert!(line.contains("test/missing-GGUF"), "{args:?}: {line}");
    }
    let line = run(&hub, &cache, &["pull", "test/tiny-GGUF:Q5_K_M"], &[]).failed();
    assert!(line.contains("Q5_K_M"), "{line}");
    let line = run(
        &hub,
        &cache,
        &["pull", LADDER_REPO, "--hf-file", "nope.gguf"],
        &[],
    )
    .failed();
    assert!(line.contains("nope.gguf"), "{line}");
    for quant in hub_fixtures::LADDER {
        assert_eq!(hub.stats(&ladder_file(quant)).full_bytes, 0);
    }
    assert_no_false_blobs(&cache);
}

#[test]
fn a_gated_repo_needs_a_token() {
    let repo = "test/gated-GGUF";
    let hub = FakeHub::start(vec![hub_fixtures::ladder_repo(repo).gated()]);
    let (_dir, cache) = cache_dir();
    let name = ladder_file("Q8_0");
    for token in [None, Some("hf_wrong")] {
        let out = run(
            &hub,
            &cache,
            &["pull", "test/gated-GGUF:Q8_0"],
            &[("HF_TOKEN", token)],
        );
        let line = out.failed().to_lowercase();
        assert!(
            line.contains("token") || line.contains("gated"),
            "{token:?}: {line}"
        );
    }
    assert_eq!(hub.stats(&name).total(), 0);
    assert_no_false_blobs(&cache);

    let env = [("HF_TOKEN", Some(FakeHub::TOKEN))];
    run(&hub, &cache, &["pull", "test/gated-GGUF:Q8_0"], &env).ok();
    assert_cached(&cache, &hub, repo, &name);

    // llama-server's flag for the token, when serving.
    let (_dir, cache) = cache_dir();
    let args = ["-hf", "test/gated-GGUF:Q2_K", "--hf-token", FakeHub::TOKEN];
    let server = serve(&hub, &cache, &args, &[]);
    completes(&server);
    assert_cached(&cache, &hub, repo, &ladder_file("Q2_K"));
}

#[test]
fn a_repo_without_gguf_files_says_so() {
    let hub = FakeHub::start(vec![hub_fixtures::no_gguf_repo("test/safetensors")]);
    let (_dir, cache) = cache_dir();
    for args in [
        ["pull", "test/safetensors"].as_slice(),
        &["plan", "--hf", "test/safetensors"],
    ] {
        let line = run(&hub, &cache, args, &[]).failed();
        assert!(line.to_lowercase().contains("no gguf"), "{args:?}: {line}");
    }
    assert_eq!(hub.stats("model.safetensors").total(), 0);
    assert_no_false_blobs(&cache);
}

#[test]
fn the_network_down_fails_cleanly() {
    let hub = ladder_hub();
    let (_dir, cache) = cache_dir();
    hub.fail_all(true);
    for args in [
        ["pull", "test/tiny-GGUF:Q8_0"].as_slice(),
        &["plan", "--hf", LADDER_REPO],
    ] {
        run(&hub, &cache, args, &[]).failed();
    }
    assert!(hub.requests() > 0);
    assert!(blob_names(&cache, LADDER_REPO).is_empty());

    // Down in the middle of the download, on every try.
    hub.fail_all(false);
    let name = ladder_file("Q8_0");
    hub.cut_after(&name, 1 << 20, u32::MAX);
    run(&hub, &cache, &["pull", "test/tiny-GGUF:Q8_0"], &[]).failed();
    let sha = hub.sha256(LADDER_REPO, &name);
    assert!(!blob(&cache, LADDER_REPO, &sha).exists());
    assert_not_linked(&cache, LADDER_REPO, &hub.commit(LADDER_REPO), &name);
    assert_no_false_blobs(&cache);
}
