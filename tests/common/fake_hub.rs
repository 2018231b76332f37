//! A Hugging Face Hub on loopback for the hub tests: the endpoints `gguf-serve`'s Hub client
//! uses, with the real Hub's shapes (listings, the 302 of an LFS file to its CDN, ranges,
//! ETags and `X-Repo-Commit`/`X-Linked-*` headers, its error codes and wording), counters of
//! what it served per file, and faults switched on at run time (a body cut after k bytes, a
//! flipped byte, the network down). Each test starts its own (`FakeHub::start`) on its own
//! port and tokio runtime; dropping the handle stops it.
//!
//! Byte counters count the body bytes handed to the HTTP stack for each response. A cut body
//! stalls for a moment before it breaks, so that what was handed over reaches the client.
//!
//! Needs `mod sha;` (tests/common/sha.rs) at the test crate's root.

#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::sha::{git_blob_sha1, sha1_hex, sha256_hex};

#[path = "fake_hub_body.rs"]
mod body;
#[path = "fake_hub_routes.rs"]
mod routes;

/// One repository: `org/name`, its files, its commit, whether it is gated.
#[derive(Clone)]
pub struct RepoSpec {
    pub id: String,
    pub commit: String,
    pub gated: bool,
    files: Vec<(String, Bytes)>,
}

impl RepoSpec {
    /// A public repo at a commit derived from its name, with no files yet.
    pub fn new(id: &str) -> Self {
        RepoSpec {
            id: id.to_owned(),
            commit: sha1_hex(id.as_bytes()),
            gated: false,
            files: Vec::new(),
        }
    }

    /// Adds a file at repo path `path` with this content.
    pub fn file(mut self, path: &str, bytes: impl Into<Bytes>) -> Self {
        self.files.push((path.to_owned(), bytes.into()));
        self
    }

    /// Adds a file at repo path `path`, read now from `disk`.
    pub fn file_from(self, path: &str, disk: &Path) -> Self {
        let bytes = std::fs::read(disk).unwrap_or_else(|e| panic!("{}: {e}", disk.display()));
        self.file(path, bytes)
    }

    /// Needs `Authorization: Bearer <the hub's token>` on every route of this repo.
    pub fn gated(mut self) -> Self {
        self.gated = true;
        self
    }
}

/// A file as the hub knows it.
struct HubFile {
    bytes: Bytes,
    /// SHA-256 of the content (the LFS oid and the CDN's name for it).
    sha256: String,
    /// Git's blob id: of the LFS pointer for an LFS file, else of the content.
    git_oid: String,
    lfs: bool,
    pointer_size: usize,
}

impl HubFile {
    fn new(path: &str, bytes: Bytes) -> Self {
        let sha256 = sha256_hex(&bytes);
        // As the Hub's default .gitattributes stores them: weights in LFS, text in git.
        let lfs = [".gguf", ".safetensors", ".bin"]
            .iter()
            .any(|ext| path.ends_with(ext));
        let pointer = format!(
            "version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {}\n",
            bytes.len()
        );
        let git_oid = if lfs {
            git_blob_sha1(pointer.as_bytes())
        } else {
            git_blob_sha1(&bytes)
        };
        HubFile {
            bytes,
            sha256,
            git_oid,
            lfs,
            pointer_size: pointer.len(),
        }
    }
}

struct Repo {
    id: String,
    commit: String,
    gated: bool,
    files: BTreeMap<String, HubFile>,
}

/// What the hub served of one file (all repos with a file at that path together).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileStats {
    /// Body bytes of 206 answers.
    pub range_bytes: u64,
    /// Body bytes of 200 answers.
    pub full_bytes: u64,
    /// The `Range` header of each GET that was answered with this file's bytes (None: no Range).
    pub ranges: Vec<Option<String>>,
    /// Responses cut by `cut_after`.
    pub cuts: u32,
}

impl FileStats {
    pub fn total(&self) -> u64 {
        self.range_bytes + self.full_bytes
    }
}

#[derive(Default)]
struct Faults {
    /// path → (k bytes, responses left to cut).
    cut: HashMap<String, (u64, u32)>,
    corrupt: Vec<String>,
}

struct Shared {
    endpoint: String,
    repos: HashMap<String, Repo>,
    token: Mutex<String>,
    requests: AtomicU64,
    log: Mutex<Vec<String>>,
    stats: Mutex<HashMap<String, FileStats>>,
    faults: Mutex<Faults>,
    fail_all: AtomicBool,
}

/// A running fake hub; stopped when dropped.
pub struct FakeHub {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeHub {
    /// The token of gated repos until [`FakeHub::set_token`] changes it.
    pub const TOKEN: &'static str = "hf_fakehubtoken";

    /// Serves `repos` on 127.0.0.1 at a free port, on a runtime of its own.
    pub fn start(repos: Vec<RepoSpec>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime for the fake hub");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("binding the fake hub");
        let port = listener.local_addr().unwrap().port();
        let repos = repos
            .into_iter()
            .map(|spec| {
                let files = spec
                    .files
                    .into_iter()
                    .map(|(path, bytes)| {
                        let file = HubFile::new(&path, bytes);
                        (path, file)
                    })
                    .collect();
                let repo = Repo {
                    id: spec.id.clone(),
                    commit: spec.commit,
                    gated: spec.gated,
                    files,
                };
                (spec.id, repo)
            })
            .collect();
        let shared = Arc::new(Shared {
            endpoint: format!("http://127.0.0.1:{port}"),
            repos,
            token: Mutex::new(Self::TOKEN.to_owned()),
            requests: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            stats: Mutex::new(HashMap::new()),
            faults: Mutex::new(Faults::default()),
            fail_all: AtomicBool::new(false),
        });
        let app = Router::new()
            .fallback(routes::handle)
            .with_state(shared.clone());
        runtime.spawn(async move { axum::serve(listener, app).await });
        FakeHub {
            shared,
            runtime: Some(runtime),
        }
    }

    /// `http://127.0.0.1:PORT`, for `HF_ENDPOINT`.
    pub fn endpoint(&self) -> &str {
        &self.shared.endpoint
    }

    pub fn set_token(&self, token: &str) {
        *self.shared.token.lock().unwrap() = token.to_owned();
    }

    /// Requests of any kind since the start or the last reset.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// One line per request (`METHOD /path range=…`), for failure messages.
    pub fn log(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }

    /// What was served of the files at repo path `path`.
    pub fn stats(&self, path: &str) -> FileStats {
        self.shared
            .stats
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// Zeroes the counters and the log (not the faults).
    pub fn reset(&self) {
        self.shared.requests.store(0, Ordering::SeqCst);
        self.shared.log.lock().unwrap().clear();
        self.shared.stats.lock().unwrap().clear();
    }

    /// Cuts the body of `path` after `k` bytes, in the next `times` responses that would send
    /// more than `k` bytes of it (`u32::MAX`: always; 0: never again). Shorter responses, such
    /// as header reads below k, pass untouched and do not count.
    pub fn cut_after(&self, path: &str, k: u64, times: u32) {
        let mut faults = self.shared.faults.lock().unwrap();
        if times == 0 {
            faults.cut.remove(path);
        } else {
            faults.cut.insert(path.to_owned(), (k, times));
        }
    }

    /// Flips the last byte of `path` in every response that includes it.
    pub fn corrupt(&self, path: &str) {
        self.shared
            .faults
            .lock()
            .unwrap()
            .corrupt
            .push(path.to_owned());
    }

    /// Clears every cut and corruption.
    pub fn clear_faults(&self) {
        *self.shared.faults.lock().unwrap() = Faults::default();
    }

    /// Every request answers 500 while on (the network, or the Hub, is down).
    pub fn fail_all(&self, on: bool) {
        self.shared.fail_all.store(on, Ordering::SeqCst);
    }

    /// The commit of `repo`.
    pub fn commit(&self, repo: &str) -> String {
        self.shared.repos[repo].commit.clone()
    }

    /// The SHA-256 of `path` in `repo` (its blob name in a cache).
    pub fn sha256(&self, repo: &str, path: &str) -> String {
        self.shared.repos[repo].files[path].sha256.clone()
    }

    /// The size of `path` in `repo`.
    pub fn size(&self, repo: &str, path: &str) -> u64 {
        self.shared.repos[repo].files[path].bytes.len() as u64
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
