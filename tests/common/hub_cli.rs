//! Running `gguf-serve`'s Hub commands (`plan --hf`, `pull`, `list`, `rm`, `-hf`) against a
//! fake Hub with a cache of the test's own, and reading that cache as the Hub lays it out
//! (`models--ORG--NAME/{blobs,snapshots,refs}`): what a test asserts after each command.
//!
//! Needs `mod fake_hub;` and `mod sha;` beside it in the test crate.

#![allow(dead_code)]

use crate::fake_hub::FakeHub;
use crate::sha::{git_blob_sha1, sha256_hex};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Variables that would point the binary at another hub, cache or token than the test's.
const FOREIGN_ENV: [&str; 13] = [
    "HF_HOME",
    "HF_HUB_CACHE",
    "HF_ENDPOINT",
    "HF_TOKEN",
    "HF_TOKEN_PATH",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_OFFLINE",
    "LLAMA_CACHE",
    "LLAMA_ARG_HF_REPO",
    "LLAMA_ARG_HF_FILE",
    "LLAMA_ARG_HF_TOKEN",
    "LLAMA_OFFLINE",
    "RUST_LOG",
];

/// A command of the binary for `hub` and the cache `cache` (`HF_HUB_CACHE`, a folder inside
/// the test's temporary folder), with `env` added (a value of `None` removes the variable).
pub fn command(
    hub: &FakeHub,
    cache: &Path,
    args: &[&str],
    env: &[(&str, Option<&str>)],
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gguf-serve"));
    cmd.args(args);
    for name in FOREIGN_ENV {
        cmd.env_remove(name);
    }
    // HOME too, beside the cache (whose folder is the test's own): a default cache under the
    // real home must never be found or written.
    cmd.env(
        "HOME",
        cache
            .parent()
            .expect("a cache inside a test folder")
            .join("home"),
    )
    .env("HF_ENDPOINT", hub.endpoint())
    .env("HF_HUB_CACHE", cache);
    for (name, value) in env {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    cmd
}

/// What a finished command did.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub what: String,
}

impl Run {
    /// Fails the test, with stderr, unless the command succeeded.
    pub fn ok(self) -> Self {
        assert!(self.success, "{} failed:\n{}", self.what, self.stderr);
        self
    }

    /// Fails the test unless the command failed; returns stderr's last line.
    pub fn failed(&self) -> String {
        assert!(
            !self.success,
            "{} succeeded but should have failed:\n{}\n{}",
            self.what, self.stdout, self.stderr
        );
        self.stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_else(|| panic!("{} failed with nothing on stderr", self.what))
            .to_owned()
    }

    /// Fails unless the command failed with exactly one line on stderr; returns it.
    pub fn failed_one_line(&self) -> String {
        let line = self.failed();
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{}: not one line:\n{}",
            self.what,
            self.stderr
        );
        line
    }

    /// stdout's last line (`pull` prints the model's path there).
    pub fn last_line(&self) -> &str {
        self.stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{}: stdout is not JSON ({e}):\n{}", self.what, self.stdout))
    }
}

/// Runs `gguf-serve ARGS` for `hub` and `cache`; fails the test after 5 minutes.
pub fn run(hub: &FakeHub, cache: &Path, args: &[&str], env: &[(&str, Option<&str>)]) -> Run {
    let mut cmd = command(hub, cache, args, env);
    let what = format!("gguf-serve {}", args.join(" "));
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let pipe = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            s
        })
    };
    let out = pipe(Box::new(child.stdout.take().unwrap()));
    let err = pipe(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish in 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        success: status.success(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        what,
    }
}

/// `cache/models--ORG--NAME`.
pub fn repo_dir(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--")))
}

/// Where the cache links `path` of `repo` at `commit`.
pub fn snapshot(cache: &Path, repo: &str, commit: &str, path: &str) -> PathBuf {
    repo_dir(cache, repo)
        .join("snapshots")
        .join(commit)
        .join(path)
}

/// `cache/models--ORG--NAME/blobs/SHA256`.
pub fn blob(cache: &Path, repo: &str, sha256: &str) -> PathBuf {
    repo_dir(cache, repo).join("blobs").join(sha256)
}

/// The files in `repo`'s blobs folder (names), sorted; empty if there is none.
pub fn blob_names(cache: &Path, repo: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo_dir(cache, repo).join("blobs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Asserts that the snapshot of `repo` at `commit` has no entry (link or file) for `path`.
pub fn assert_not_linked(cache: &Path, repo: &str, commit: &str, path: &str) {
    let link = snapshot(cache, repo, commit, path);
    assert!(
        link.symlink_metadata().is_err(),
        "{} is left",
        link.display()
    );
}

/// Asserts that `path` of `repo` is cached as the Hub lays it out: the blob named by its
/// SHA-256 with that content, the snapshot entry a relative link to it, `refs/main` the commit.
pub fn assert_cached(cache: &Path, hub: &FakeHub, repo: &str, path: &str) {
    let (commit, sha) = (hub.commit(repo), hub.sha256(repo, path));
    let blob = blob(cache, repo, &sha);
    let content = std::fs::read(&blob).unwrap_or_else(|e| panic!("{}: {e}", blob.display()));
    assert_eq!(sha256_hex(&content), sha, "{}", blob.display());
    let link = snapshot(cache, repo, &commit, path);
    let target = std::fs::read_link(&link)
        .unwrap_or_else(|e| panic!("{}: not a link ({e})", link.display()));
    let depth = path.matches('/').count();
    let want = PathBuf::from(format!("{}../../blobs/{sha}", "../".repeat(depth)));
    assert_eq!(target, want, "{}", link.display());
    let refs = repo_dir(cache, repo).join("refs/main");
    let main = std::fs::read_to_string(&refs).unwrap_or_else(|e| panic!("{}: {e}", refs.display()));
    assert_eq!(main.trim(), commit, "{}", refs.display());
}

/// Asserts that nothing in the cache looks complete without being so: every blob not named
/// `.incomplete` hashes to its name, and every snapshot link leads to a file.
pub fn assert_no_false_blobs(cache: &Path) {
    let Ok(repos) = std::fs::read_dir(cache) else {
        return;
    };
    for repo in repos
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("models--"))
    {
        if let Ok(blobs) = std::fs::read_dir(repo.path().join("blobs")) {
            for blob in blobs.flatten() {
                let name = blob.file_name().to_string_lossy().into_owned();
                if name.ends_with(".incomplete") {
                    continue;
                }
                let content = std::fs::read(blob.path()).unwrap();
                let hash = match name.len() {
                    64 => sha256_hex(&content),
                    40 => git_blob_sha1(&content),
                    _ => panic!("{}: a blob not named by its hash", blob.path().display()),
                };
                assert_eq!(
                    hash,
                    name,
                    "{} does not hash to its name",
                    blob.path().display()
                );
            }
        }
        for link in walk(&repo.path().join("snapshots")) {
            assert!(
                link.is_file(),
                "{} leads to no file ({:?})",
                link.display(),
                std::fs::read_link(&link)
            );
        }
    }
}

/// The `.incomplete` files in `repo`'s blobs folder.
pub fn incomplete(cache: &Path, repo: &str) -> Vec<PathBuf> {
    blob_names(cache, repo)
        .into_iter()
        .filter(|n| n.ends_with(".incomplete"))
        .map(|n| repo_dir(cache, repo).join("blobs").join(n))
        .collect()
}

/// Every non-directory entry under `dir` (links included, not followed).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let ty = e.file_type().unwrap();
            if ty.is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// Places `bytes` in `cache` as `path` of `repo` at `commit`, as llama.cpp and huggingface_hub
/// lay a download out; returns the snapshot path.
pub fn place(cache: &Path, repo: &str, commit: &str, path: &str, bytes: &[u8]) -> PathBuf {
    let sha = sha256_hex(bytes);
    let blob = blob(cache, repo, &sha);
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, bytes).unwrap();
    let link = snapshot(cache, repo, commit, path);
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    let depth = path.matches('/').count();
    std::os::unix::fs::symlink(format!("{}../../blobs/{sha}", "../".repeat(depth)), &link).unwrap();
    let refs = repo_dir(cache, repo).join("refs");
    std::fs::create_dir_all(&refs).unwrap();
    std::fs::write(refs.join("main"), commit).unwrap();
    link
}
