//! The fake Hugging Face Hub of the hub tests, checked against the real Hub's shapes with a plain
//! HTTP client: listings, the LFS redirect and its headers, ranges, errors, counters and faults.
//! The hub tests are only as good as this server is faithful, so it gets tests of its own, and
//! the Hub's own Python client (`huggingface_hub`) downloads from it.

mod common;
#[path = "common/fake_hub.rs"]
mod fake_hub;
#[path = "common/hub_cli.rs"]
mod hub_cli;
#[path = "common/sha.rs"]
mod sha;

use fake_hub::{FakeHub, RepoSpec};
use reqwest::blocking::{Client, Response};
use serde_json::Value;
use std::io::Read;

const REPO: &str = "org/model-GGUF";
const GGUF: &str = "model-Q8_0.gguf";
const SIZE: usize = 3 << 20;

/// 3 MiB that differ everywhere (a byte pattern would hide off-by-one ranges).
fn content() -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn hub() -> FakeHub {
    FakeHub::start(vec![
        RepoSpec::new(REPO)
            .file(GGUF, content())
            .file("README.md", "# model\n")
            .file(
                ".gitattributes",
                "*.gguf filter=lfs diff=lfs merge=lfs -text\n",
            )
            .file("sub/other.gguf", vec![1u8; 1000]),
        RepoSpec::new("org/gated").gated().file(GGUF, content()),
    ])
}

fn client() -> Client {
    Client::new()
}

fn no_redirects() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header in {:?}", r.headers()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Reads a body until it ends or breaks: the bytes that arrived, and whether it broke.
fn read_all(mut r: Response) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (got, false),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, true),
        }
    }
}

#[test]
fn git_blob_ids_are_gits() {
    // `echo 'hello world' | git hash-object --stdin`
    assert_eq!(
        sha::git_blob_sha1(b"hello world\n"),
        "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"
    );
}

#[test]
fn tree_lists_sizes_and_hashes_as_the_hub_does() {
    let hub = hub();
    let url = format!(
        "{}/api/models/{REPO}/tree/main?recursive=true",
        hub.endpoint()
    );
    let r = client().get(url).send().unwrap();
    assert_eq!(r.status(), 200);
    let tree: Vec<Value> = r.json().unwrap();
    let entry = |path: &str| {
        tree.iter()
            .find(|e| e["path"] == path)
            .unwrap_or_else(|| panic!("{path} not in {tree:?}"))
            .clone()
    };
    let gguf = entry(GGUF);
    let body = content();
    assert_eq!(gguf["type"], "file");
    assert_eq!(gguf["size"], SIZE);
    assert_eq!(gguf["lfs"]["oid"], sha::sha256_hex(&body));
    assert_eq!(gguf["lfs"]["size"], SIZE);
    let pointer = format!(
        "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {SIZE}\n",
        sha::sha256_hex(&body)
    );
    assert_eq!(gguf["lfs"]["pointerSize"], pointer.len());
    assert_eq!(gguf["oid"], sha::git_blob_sha1(pointer.as_bytes()));
    let readme = entry("README.md");
    assert_eq!(readme["oid"], sha::git_blob_sha1(b"# model\n"));
    assert_eq!(readme["size"], 8);
    assert!(readme.get("lfs").is_none(), "{readme}");
    assert!(entry(".gitattributes").get("lfs").is_none());
    assert_eq!(entry("sub")["type"], "directory");
    assert_eq!(entry("sub/other.gguf")["size"], 1000);
    assert!(tree.iter().all(|e| e["oid"].as_str().unwrap().len() == 40));

    // By commit too; one level without recursive=true; unknown revisions as the Hub words them.
    let commit = hub.commit(REPO);
    let url = format!("{}/api/models/{REPO}/tree/{commit}", hub.endpoint());
    let top: Vec<Value> = client().get(url).send().unwrap().json().unwrap();
    assert_eq!(top.len(), 4, "{top:?}");
    let r = client()
        .get(format!("{}/api/models/{REPO}/tree/v9", hub.endpoint()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(header(&r, "x-error-code"), "RevisionNotFound");
}

#[test]
fn refs_and_model_info_name_the_commit() {
    let hub = hub();
    let commit = hub.commit(REPO);
    assert_eq!(commit.len(), 40);
    let get = |path: &str| -> Value {
        let r = client()
            .get(format!("{}{path}", hub.endpoint()))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        r.json().unwrap()
    };
    let refs = get(&format!("/api/models/{REPO}/refs"));
    assert_eq!(refs["branches"][0]["name"], "main");
    assert_eq!(refs["branches"][0]["ref"], "refs/heads/main");
    assert_eq!(refs["branches"][0]["targetCommit"], commit);
    assert_eq!(refs["tags"], serde_json::json!([]));
    for path in [
        format!("/api/models/{REPO}"),
        format!("/api/models/{REPO}/revision/main"),
        format!("/api/models/{REPO}/revision/{commit}"),
    ] {
        let info = get(&path);
        assert_eq!(info["id"], REPO);
        assert_eq!(info["sha"], commit);
        assert_eq!(info["gated"], false);
        let names: Vec<&str> = info["siblings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["rfilename"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [".gitattributes", "README.md", GGUF, "sub/other.gguf"]
        );
    }
    let info = get(&format!("/api/models/{REPO}?blobs=true"));
    let gguf = &info["siblings"][2];
    assert_eq!(gguf["size"], SIZE);
    assert_eq!(gguf["lfs"]["sha256"], sha::sha256_hex(&content()));
    hub.set_token("hf_x");
    let r = client()
        .get(format!("{}/api/models/org/gated", hub.endpoint()))
        .bearer_auth("hf_x")
        .send()
        .unwrap();
    assert_eq!(r.json::<Value>().unwrap()["gated"], "auto");
}

#[test]
fn resolve_redirects_lfs_files_to_the_cdn_and_serves_the_rest() {
    let hub = hub();
    let commit = hub.commit(REPO);
    let sha = sha::sha256_hex(&content());
    let url = format!("{}/{REPO}/resolve/main/{GGUF}", hub.endpoint());
    for r in [
        no_redirects().head(&url).send().unwrap(),
        no_redirects().get(&url).send().unwrap(),
    ] {
        assert_eq!(r.status(), 302);
        assert_eq!(header(&r, "x-repo-commit"), commit);
        assert_eq!(header(&r, "x-linked-etag"), format!("\"{sha}\""));
        assert_eq!(header(&r, "etag"), format!("\"{sha}\""));
        assert_eq!(header(&r, "x-linked-size"), SIZE.to_string());
        let location = header(&r, "location");
        assert!(
            location.starts_with(&format!("{}/cdn/{sha}", hub.endpoint())),
            "{location}"
        );
    }
    // Followed: the bytes, with the CDN's headers.
    let r = client().get(&url).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "accept-ranges"), "bytes");
    assert_eq!(header(&r, "etag"), format!("\"{sha}\""));
    assert_eq!(r.content_length(), Some(SIZE as u64));
    assert!(r.url().path().starts_with("/cdn/"), "{}", r.url());
    assert!(r.bytes().unwrap() == content());
    let stats = hub.stats(GGUF);
    assert_eq!((stats.full_bytes, stats.range_bytes), (SIZE as u64, 0));
    assert_eq!(stats.ranges, [None]);
    let head = client().head(&url).send().unwrap();
    assert_eq!(header(&head, "content-length"), SIZE.to_string());
    assert_eq!(hub.stats(GGUF).total(), SIZE as u64, "HEAD sends no body");

    // A file in git is served directly, its ETag its blob id; by commit as by branch.
    let url = format!("{}/{REPO}/resolve/{commit}/README.md", hub.endpoint());
    let r = no_redirects().get(url).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "etag"),
        format!("\"{}\"", sha::git_blob_sha1(b"# model\n"))
    );
    assert_eq!(header(&r, "x-repo-commit"), commit);
    assert_eq!(r.text().unwrap(), "# model\n");
    let url = format!("{}/{REPO}/resolve/main/sub/other.gguf", hub.endpoint());
    assert_eq!(
        client().get(url).send().unwrap().bytes().unwrap().len(),
        1000
    );
}

#[test]
fn ranges_return_exactly_those_bytes_and_are_counted() {
    let hub = hub();
    let body = content();
    let url = format!("{}/{REPO}/resolve/main/{GGUF}", hub.endpoint());
    let get = |range: &str| client().get(&url).header("range", range).send().unwrap();

    let r = get("bytes=0-524287");
    assert_eq!(r.status(), 206);
    assert_eq!(
        header(&r, "content-range"),
        format!("bytes 0-524287/{SIZE}")
    );
    assert!(r.bytes().unwrap() == body[..524288]);
    let r = get("bytes=1000-");
    assert_eq!(r.status(), 206);
    assert_eq!(
        header(&r, "content-range"),
        format!("bytes 1000-{}/{SIZE}", SIZE - 1)
    );
    assert!(r.bytes().unwrap() == body[1000..]);
    // An end past the file is capped; a start past it is unsatisfiable.
    let r = get(&format!("bytes={}-{}", SIZE - 10, SIZE + 100));
    assert_eq!(r.status(), 206);
    assert!(r.bytes().unwrap() == body[SIZE - 10..]);
    let r = get(&format!("bytes={SIZE}-"));
    assert_eq!(r.status(), 416);
    assert_eq!(header(&r, "content-range"), format!("bytes */{SIZE}"));

    let stats = hub.stats(GGUF);
    assert_eq!(stats.range_bytes, 524288 + (SIZE as u64 - 1000) + 10);
    assert_eq!(stats.full_bytes, 0);
    assert_eq!(
        stats.ranges,
        [
            Some("bytes=0-524287".to_owned()),
            Some("bytes=1000-".to_owned()),
            Some(format!("bytes={}-{}", SIZE - 10, SIZE + 100)),
        ],
        "the Range header went on to the CDN; a 416 sends no bytes"
    );
    // Two requests (the redirect and the CDN) per GET.
    assert_eq!(hub.requests(), 8);
    hub.reset();
    assert_eq!(hub.requests(), 0);
    assert_eq!(hub.stats(GGUF), Default::default());
    assert!(hub.log().is_empty());
}

#[test]
fn errors_are_worded_as_the_hub_words_them() {
    let hub = hub();
    let e = hub.endpoint();
    let check = |r: Response, status: u16, code: &str, message: &str| {
        assert_eq!(r.status(), status, "{}", r.url());
        assert_eq!(header(&r, "x-error-code"), code);
        let body: Value = r.json().unwrap();
        assert_eq!(body["error"], message);
    };
    for url in [
        format!("{e}/api/models/org/missing"),
        format!("{e}/api/models/org/missing/tree/main?recursive=true"),
        format!("{e}/api/models/org/missing/refs"),
        format!("{e}/org/missing/resolve/main/{GGUF}"),
    ] {
        check(
            client().get(url).send().unwrap(),
            404,
            "RepoNotFound",
            "Repository not found",
        );
    }
    check(
        client()
            .get(format!("{e}/{REPO}/resolve/main/nope.gguf"))
            .send()
            .unwrap(),
        404,
        "EntryNotFound",
        "Entry not found",
    );
    let gated = "Access to model org/gated is restricted. You must have access to it and be \
                 authenticated to access it. Please log in.";
    let cdn = format!(
        "{e}/cdn/{}?repo=org/gated&file={GGUF}",
        sha::sha256_hex(&content())
    );
    for url in [
        format!("{e}/api/models/org/gated"),
        format!("{e}/api/models/org/gated/tree/main?recursive=true"),
        format!("{e}/org/gated/resolve/main/{GGUF}"),
        cdn.clone(),
    ] {
        check(client().get(&url).send().unwrap(), 401, "GatedRepo", gated);
        let wrong = client().get(&url).bearer_auth("hf_wrong").send().unwrap();
        check(wrong, 401, "GatedRepo", gated);
        let r = client()
            .get(&url)
            .bearer_auth(FakeHub::TOKEN)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{url}");
    }
    // With the token, the redirect is followed to the CDN with it (same host).
    let r = client()
        .get(format!("{e}/org/gated/resolve/main/{GGUF}"))
        .bearer_auth(FakeHub::TOKEN)
        .send()
        .unwrap();
    assert!(r.bytes().unwrap() == content());
}

#[test]
fn a_cut_body_breaks_after_k_bytes_for_the_next_responses_only() {
    let hub = hub();
    let url = format!("{}/{REPO}/resolve/main/{GGUF}", hub.endpoint());
    let k = 1 << 20;
    hub.cut_after(GGUF, k, 1);
    // A header read shorter than k passes, and does not use up the fault.
    let r = client()
        .get(&url)
        .header("range", "bytes=0-524287")
        .send()
        .unwrap();
    assert_eq!(read_all(r), (content()[..524288].to_vec(), false));
    let (got, broke) = read_all(client().get(&url).send().unwrap());
    assert!(broke, "the body was not cut");
    assert_eq!(
        got.len() as u64,
        k,
        "the client got the k bytes before the cut"
    );
    assert!(got == content()[..k as usize]);
    let (got, broke) = read_all(client().get(&url).send().unwrap());
    assert!(!broke && got == content(), "the second response is whole");
    let stats = hub.stats(GGUF);
    assert_eq!(stats.cuts, 1);
    assert_eq!(stats.full_bytes, k + SIZE as u64);

    // Always, on ranges too, until cleared.
    hub.cut_after(GGUF, k, u32::MAX);
    for range in ["bytes=0-", "bytes=4096-"] {
        for _ in 0..3 {
            let r = client().get(&url).header("range", range).send().unwrap();
            let (got, broke) = read_all(r);
            assert!(broke && got.len() as u64 == k, "{range}: {}", got.len());
        }
    }
    assert_eq!(hub.stats(GGUF).cuts, 7);
    hub.clear_faults();
    let (got, broke) = read_all(client().get(&url).send().unwrap());
    assert!(!broke && got == content());
}

#[test]
fn a_corrupt_body_has_one_byte_flipped() {
    let hub = hub();
    let url = format!("{}/{REPO}/resolve/main/{GGUF}", hub.endpoint());
    hub.corrupt(GGUF);
    let got = client().get(&url).send().unwrap().bytes().unwrap();
    let want = content();
    assert_eq!(got.len(), want.len());
    let diff: Vec<usize> = (0..want.len()).filter(|&i| got[i] != want[i]).collect();
    assert_eq!(diff, [SIZE - 1]);
    assert_ne!(sha::sha256_hex(&got), hub.sha256(REPO, GGUF));
    // A header read does not reach the flipped byte; a resumed tail does.
    let head = client()
        .get(&url)
        .header("range", "bytes=0-999")
        .send()
        .unwrap();
    assert!(head.bytes().unwrap() == want[..1000]);
    let tail = client()
        .get(&url)
        .header("range", "bytes=-1")
        .send()
        .unwrap();
    assert_eq!(tail.bytes().unwrap()[..], [want[SIZE - 1] ^ 0xff]);
    hub.clear_faults();
    let got = client().get(&url).send().unwrap().bytes().unwrap();
    assert_eq!(sha::sha256_hex(&got), hub.sha256(REPO, GGUF));
}

#[test]
fn the_network_can_go_down_and_every_request_is_counted() {
    let hub = hub();
    let url = format!("{}/api/models/{REPO}", hub.endpoint());
    hub.fail_all(true);
    assert_eq!(client().get(&url).send().unwrap().status(), 500);
    let resolve = format!("{}/{REPO}/resolve/main/{GGUF}", hub.endpoint());
    assert_eq!(client().get(&resolve).send().unwrap().status(), 500);
    assert_eq!(hub.stats(GGUF).total(), 0);
    hub.fail_all(false);
    assert_eq!(client().get(&url).send().unwrap().status(), 200);
    no_redirects().head(&resolve).send().unwrap();
    assert_eq!(hub.requests(), 4);
    assert_eq!(hub.log().len(), 4);
    assert!(
        hub.log()[3].starts_with("HEAD /org/model-GGUF/resolve/main/"),
        "{:?}",
        hub.log()
    );
}

#[test]
fn the_hubs_own_client_downloads_from_it() {
    let hub = hub();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    common::run_python(
        "hf_hub_client.py",
        "huggingface_hub",
        &[
            hub.endpoint(),
            cache.to_str().unwrap(),
            REPO,
            GGUF,
            "org/gated",
            FakeHub::TOKEN,
        ],
        "ok",
    );
    // The layout it made is the one the hub tests expect of gguf-serve.
    hub_cli::assert_cached(&cache, &hub, REPO, GGUF);
    hub_cli::assert_cached(&cache, &hub, "org/gated", GGUF);
    hub_cli::assert_no_false_blobs(&cache);
    assert_eq!(
        hub.stats(GGUF).full_bytes,
        2 * SIZE as u64,
        "each repo's file once"
    );
}
