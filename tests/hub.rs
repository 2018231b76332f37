//! Models from the Hugging Face Hub (issue #19), driven as a user would against a fake Hub on
//! loopback (tests/common/fake_hub.rs): `plan --hf` reads only GGUF headers, `pull` downloads
//! only the pick into the Hub's cache layout and resumes what was cut, and a corrupt body never
//! looks complete. Each test has its own hub (own port) and its own cache; every
//! assertion about downloads is on the bytes the hub counted, not only on exit codes.
//! tests/hub_serve.rs serves from the Hub (`-hf`, offline, a split model); tests/hub_cache.rs
//! has the cache commands (`list`, `rm`, a cache filled by llama.cpp) and the errors.
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

use common::Server;
use fake_hub::FakeHub;
use hub_checks::*;
use hub_cli::{
    assert_cached, assert_no_false_blobs, assert_not_linked, blob, incomplete, run, snapshot,
};
use hub_fixtures::{LADDER, NOT_MODELS, SPLIT_PARTS, header_size, ladder_file};
use std::path::Path;

#[test]
fn plan_hf_reads_only_headers_and_lists_every_model_once() {
    let hub = FakeHub::start(vec![
        hub_fixtures::ladder_repo(LADDER_REPO),
        hub_fixtures::split_repo(SPLIT_REPO),
    ]);
    let ladder: Vec<String> = LADDER.iter().map(|q| ladder_file(q)).collect();
    let split = [
        SPLIT_PARTS[0].to_owned(),
        ladder_file("Q4_K_M"),
        ladder_file("Q2_K"),
    ];
    for (repo, candidates) in [(LADDER_REPO, &ladder[..]), (SPLIT_REPO, &split[..])] {
        // A cache of its own: the two repos share files, whose headers a cache could hold.
        let (_dir, cache) = cache_dir();
        hub.reset();
        let out = run(
            &hub,
            &cache,
            &args(&["plan", "--hf", repo, "--vram", "1TiB", "--json"], &BUDGET),
            &[],
        )
        .ok();
        let json = out.json();
        let plans = json["plans"].as_array().unwrap();
        let mut files: Vec<&str> = plans.iter().map(|p| p["file"].as_str().unwrap()).collect();
        files.sort();
        let mut want: Vec<&str> = candidates.iter().map(String::as_str).collect();
        want.sort();
        assert_eq!(files, want, "{repo}: {json}");
        for p in plans {
            let file = p["file"].as_str().unwrap();
            let size: u64 = if file == SPLIT_PARTS[0] {
                SPLIT_PARTS.iter().map(|part| hub.size(repo, part)).sum()
            } else {
                hub.size(repo, file)
            };
            assert_eq!(p["file_size"], size, "{repo}: {p}");
            let quant = if file == SPLIT_PARTS[0] {
                "Q8_0"
            } else {
                file.trim_start_matches("tiny-").trim_end_matches(".gguf")
            };
            assert_eq!(p["quant"], quant, "{repo}: {p}");
        }
        assert_eq!(
            json["pick"]["quant"], "Q8_0",
            "{repo}: the best quant fits 1 TiB"
        );
        let pick = json["pick"]["file"].as_str().unwrap();
        assert_eq!(
            pick,
            if repo == SPLIT_REPO {
                SPLIT_PARTS[0]
            } else {
                "tiny-Q8_0.gguf"
            }
        );

        // Headers only: each candidate by ranges (a split's later parts at most so), no more.
        for name in candidates {
            assert_header_only(&hub, repo, name);
        }
        if repo == SPLIT_REPO {
            let stats = hub.stats(SPLIT_PARTS[1]);
            let bound = FIRST_READ.max(2 * header_size(SPLIT_PARTS[1]));
            assert!(
                stats.full_bytes == 0 && stats.range_bytes <= bound,
                "{stats:?}"
            );
        }
        for name in NOT_MODELS {
            assert_untouched(&hub, name);
        }
        let blobs = hub_cli::blob_names(&cache, repo);
        assert!(
            blobs.iter().all(|n| n.ends_with(".incomplete")),
            "plan stored {blobs:?}"
        );

        // The table: one row per candidate (the split is one), none for mmproj or imatrix.
        let out = run(
            &hub,
            &cache,
            &args(&["plan", "--hf", repo, "--vram", "1TiB"], &BUDGET),
            &[],
        )
        .ok();
        let rows: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.starts_with("| ") && !l.contains("Quant"))
            .collect();
        assert_eq!(rows.len(), candidates.len(), "{repo}:\n{}", out.stdout);
        assert!(
            rows.iter().any(|r| r.contains("➜") && r.contains("Q8_0")),
            "{}",
            out.stdout
        );
        assert!(
            rows.iter()
                .all(|r| !r.contains("| F16 |") && !r.contains("| F32 |")),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn pull_downloads_only_the_pick() {
    let hub = ladder_hub();
    // The plans in a cache of their own, so that the pull reads the headers afresh.
    let (_plan_dir, plan_cache) = cache_dir();
    // A GPU that holds the second-largest candidate but not the largest.
    let (mut needs, margin) = needs(&hub, &plan_cache, LADDER_REPO);
    needs.sort_by_key(|n| n.1);
    assert!(needs.len() == 4 && needs[2].1 < needs[3].1, "{needs:?}");
    let vram = format!("{}B", needs[2].1 + margin);
    let plan = run(
        &hub,
        &plan_cache,
        &args(
            &["plan", "--hf", LADDER_REPO, "--vram", &vram, "--json"],
            &BUDGET,
        ),
        &[],
    )
    .ok();
    let pick = plan.json()["pick"]["file"].as_str().unwrap().to_owned();
    let largest = LADDER
        .iter()
        .map(|q| ladder_file(q))
        .max_by_key(|f| hub.size(LADDER_REPO, f))
        .unwrap();
    assert_ne!(
        pick, largest,
        "with {vram} bytes of GPU the pick must not be the largest file"
    );

    let (_dir, cache) = cache_dir();
    hub.reset();
    let out = run(
        &hub,
        &cache,
        &args(&["pull", LADDER_REPO, "--vram", &vram], &BUDGET),
        &[],
    )
    .ok();
    let commit = hub.commit(LADDER_REPO);
    assert_eq!(
        Path::new(out.last_line()),
        snapshot(&cache, LADDER_REPO, &commit, &pick),
        "{}",
        out.stdout
    );
    assert_cached(&cache, &hub, LADDER_REPO, &pick);
    assert_downloaded(&hub, LADDER_REPO, &pick);
    for quant in LADDER {
        let name = ladder_file(quant);
        if name != pick {
            assert_header_only(&hub, LADDER_REPO, &name);
        }
    }
    for name in NOT_MODELS {
        assert_untouched(&hub, name);
    }
    assert_eq!(
        hub_cli::blob_names(&cache, LADDER_REPO),
        [hub.sha256(LADDER_REPO, &pick)],
        "only the pick is stored"
    );
    assert_no_false_blobs(&cache);
}

#[test]
fn a_cut_download_resumes_from_what_it_has() {
    let hub = ladder_hub();
    let name = ladder_file("Q8_0");
    let size = hub.size(LADDER_REPO, &name);
    let k = MIB;
    let pull = ["pull", "test/tiny-GGUF:Q8_0"];

    // Cut once: one retry finishes it, resuming past what arrived.
    let (_dir, cache) = cache_dir();
    hub.cut_after(&name, k, 1);
    run(&hub, &cache, &pull, &[]).ok();
    assert_cached(&cache, &hub, LADDER_REPO, &name);
    let stats = hub.stats(&name);
    assert_eq!(stats.cuts, 1, "{stats:?}");
    assert!(stats.total() < size + k, "refetched what it had: {stats:?}");
    let resumed = stats
        .ranges
        .iter()
        .flatten()
        .filter_map(|r| range_start(r))
        .max();
    assert!(
        resumed.is_some_and(|at| at >= k / 2),
        "no resuming range request: {stats:?}"
    );
    assert!(incomplete(&cache, LADDER_REPO).is_empty());

    // Cut always: it gives up after 3 tries, keeping the partial file and nothing that looks done.
    let (_dir, cache) = cache_dir();
    hub.reset();
    hub.cut_after(&name, k, u32::MAX);
    let out = run(&hub, &cache, &pull, &[]);
    out.failed();
    let cuts = hub.stats(&name).cuts;
    assert!((3..=4).contains(&cuts), "{cuts} tries: {:?}", hub.log());
    let sha = hub.sha256(LADDER_REPO, &name);
    let partial = incomplete(&cache, LADDER_REPO);
    assert_eq!(
        partial,
        [blob(&cache, LADDER_REPO, &format!("{sha}.incomplete"))]
    );
    assert!(!blob(&cache, LADDER_REPO, &sha).exists());
    assert_not_linked(&cache, LADDER_REPO, &hub.commit(LADDER_REPO), &name);
    assert_no_false_blobs(&cache);
    let have = std::fs::metadata(&partial[0]).unwrap().len();
    assert!(have >= k && have < size, "{have}");

    // The network back: the next pull fetches only the rest.
    hub.clear_faults();
    hub.reset();
    let out = run(&hub, &cache, &pull, &[]).ok();
    assert_cached(&cache, &hub, LADDER_REPO, &name);
    let stats = hub.stats(&name);
    assert!(
        stats.total() >= size - have && stats.total() <= size - have + FIRST_READ,
        "had {have} of {size}; served {stats:?}"
    );
    assert!(
        stats.ranges.contains(&Some(format!("bytes={have}-"))),
        "{stats:?}"
    );
    assert!(incomplete(&cache, LADDER_REPO).is_empty());
    assert_eq!(
        Path::new(out.last_line()),
        snapshot(&cache, LADDER_REPO, &hub.commit(LADDER_REPO), &name)
    );
}

/// The start of `bytes=N-`.
fn range_start(range: &str) -> Option<u64> {
    range
        .strip_prefix("bytes=")?
        .strip_suffix('-')?
        .parse()
        .ok()
}

#[test]
fn a_corrupt_download_is_rejected_and_leaves_nothing() {
    let hub = ladder_hub();
    let (_dir, cache) = cache_dir();
    let name = ladder_file("Q8_0");
    hub.corrupt(&name);
    let out = run(&hub, &cache, &["pull", "test/tiny-GGUF:Q8_0"], &[]);
    let line = out.failed();
    assert!(out.stderr.contains("sha256"), "{line}");
    assert!(
        hub.stats(&name).total() >= hub.size(LADDER_REPO, &name),
        "not downloaded"
    );
    let names = hub_cli::blob_names(&cache, LADDER_REPO);
    assert!(names.is_empty(), "left {names:?}");
    assert_not_linked(&cache, LADDER_REPO, &hub.commit(LADDER_REPO), &name);
    assert_no_false_blobs(&cache);
}

#[test]
fn the_fixtures_load_and_run_in_llama_cpp() {
    // The Hub tests' models themselves, without a Hub: what -hf serves must be servable.
    for file in [
        ladder_file("Q8_0"),
        SPLIT_PARTS[0].to_owned(),
        ladder_file("Q2_K"),
    ] {
        let path = hub_fixtures::fixture(&file);
        let args: Vec<String> = ["-m", path.to_str().unwrap(), "-c", "512", "-t", "1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let server = Server::start_with(&args);
        completes(&server);
    }
    for quant in LADDER {
        let size = std::fs::metadata(hub_fixtures::fixture(&ladder_file(quant)))
            .unwrap()
            .len();
        assert!(size >= 2 * MIB, "{quant}: {size}");
    }
}
