//! The Hugging Face cache on disk, in the layout `huggingface_hub` and llama.cpp share:
//! `models--ORG--REPO/blobs/<sha256>` holds each file once, `snapshots/<commit>/<path>` links to
//! it (a relative symlink, or the file itself where symlinks fail, as llama.cpp degrades),
//! `refs/main` names the commit. A blob is only ever named by its hash once complete; a download
//! in progress is `<sha256>.incomplete`.

use super::{HubError, RepoRef, has_tag};
use crate::gguf::ModelSummary;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The cache folder, in llama.cpp's order (`hf-cache.cpp`): `LLAMA_CACHE`, `HF_HUB_CACHE`,
/// `HUGGINGFACE_HUB_CACHE`, `HF_HOME/hub`, `XDG_CACHE_HOME/huggingface/hub`,
/// `HOME/.cache/huggingface/hub`.
pub fn cache_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let order: [(&str, &str); 6] = [
        ("LLAMA_CACHE", ""),
        ("HF_HUB_CACHE", ""),
        ("HUGGINGFACE_HUB_CACHE", ""),
        ("HF_HOME", "hub"),
        ("XDG_CACHE_HOME", "huggingface/hub"),
        ("HOME", ".cache/huggingface/hub"),
    ];
    order.iter().find_map(|(var, sub)| {
        let base = PathBuf::from(env(var).filter(|v| !v.is_empty())?);
        Some(if sub.is_empty() { base } else { base.join(sub) })
    })
}

/// One repo's folder in the cache.
pub(super) struct RepoCache {
    dir: PathBuf,
    cache: hf_hub::CacheRepo,
}

/// A file of a cached snapshot.
#[derive(Debug, Clone)]
pub(super) struct CachedFile {
    /// Its path in the repo.
    pub path: String,
    /// Its snapshot path.
    pub local: PathBuf,
    pub size: u64,
    /// The blob it links to, when that is named by a sha256.
    pub sha256: Option<String>,
}

impl RepoCache {
    pub fn new(cache_dir: &Path, repo: &str) -> RepoCache {
        let repo = hf_hub::Repo::model(repo.to_owned());
        RepoCache {
            dir: cache_dir.join(repo.folder_name()),
            cache: hf_hub::Cache::new(cache_dir.to_owned()).repo(repo),
        }
    }

    pub fn blob(&self, oid: &str) -> PathBuf {
        self.dir.join("blobs").join(oid)
    }

    pub fn snapshot(&self, commit: &str, path: &str) -> PathBuf {
        self.cache.pointer_path(commit).join(path)
    }

    /// The cached commit: `refs/main`, else any ref naming a commit (llama.cpp's
    /// `get_cached_ref`).
    pub fn commit(&self) -> Option<String> {
        let read = |p: &Path| {
            let text = std::fs::read_to_string(p).ok()?;
            let commit = text.trim();
            (commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| commit.to_owned())
        };
        let refs = self.dir.join("refs");
        read(&refs.join("main")).or_else(|| {
            std::fs::read_dir(&refs)
                .ok()?
                .flatten()
                .find_map(|e| read(&e.path()))
        })
    }

    pub fn set_ref(&self, commit: &str) -> Result<(), HubError> {
        self.cache
            .create_ref(commit)
            .map_err(HubError::io(&self.dir.join("refs")))
    }

    /// Every file of the snapshot of `commit`, with its size (through the link).
    pub fn files(&self, commit: &str) -> Vec<CachedFile> {
        let root = self.cache.pointer_path(commit);
        let mut files = Vec::new();
        walk(&root, &mut |local| {
            let Ok(path) = local.strip_prefix(&root) else {
                return;
            };
            let Ok(meta) = std::fs::metadata(local) else {
                return; // a link to a missing blob
            };
            let sha256 = std::fs::read_link(local)
                .ok()
                .and_then(|t| Some(t.file_name()?.to_str()?.to_owned()))
                .filter(|name| name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()));
            files.push(CachedFile {
                path: path.to_string_lossy().replace('\\', "/"),
                local: local.to_owned(),
                size: meta.len(),
                sha256,
            });
        });
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files
    }

    /// Links `snapshots/<commit>/<path>` to `blobs/<oid>` (relative, as `huggingface_hub`
    /// does); where symlinks fail, the blob is moved there instead (llama.cpp's degraded mode).
    pub fn link(&self, commit: &str, path: &str, oid: &str) -> Result<PathBuf, HubError> {
        let link = self.snapshot(commit, path);
        let blob = self.blob(oid);
        let parent = link.parent().expect("a snapshot path has a parent");
        std::fs::create_dir_all(parent).map_err(HubError::io(parent))?;
        if std::fs::symlink_metadata(&link).is_ok() {
            std::fs::remove_file(&link).map_err(HubError::io(&link))?;
        }
        let depth = path.split('/').count() + 1; // snapshots/<commit>/<dirs…>
        let target = PathBuf::from("../".repeat(depth)).join("blobs").join(oid);
        #[cfg(unix)]
        let linked = std::os::unix::fs::symlink(&target, &link).is_ok();
        #[cfg(not(unix))]
        let linked = false;
        if !linked {
            std::fs::rename(&blob, &link).map_err(HubError::io(&link))?;
        }
        Ok(link)
    }
}

/// Calls `f` on every file (or link) under `dir`.
fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, f),
            Ok(_) => f(&path),
            Err(_) => {}
        }
    }
}

/// A model in the cache, as `list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CachedModel {
    pub repo: String,
    /// Its (first part's) path in the repo.
    pub file: String,
    /// From its header (`?` when the header cannot be read).
    pub quant: String,
    /// Bytes, all parts together.
    pub size: u64,
    /// The snapshot path of the first part: what `-m` would take.
    pub path: PathBuf,
    /// Every part's snapshot path.
    pub parts: Vec<PathBuf>,
}

/// Every model of the cache's repos (their cached commit), sorted by repo and file.
pub fn cached_models(cache_dir: &Path) -> Vec<CachedModel> {
    let Ok(entries) = std::fs::read_dir(cache_dir) else {
        return Vec::new();
    };
    let mut repos: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.strip_prefix("models--")?.to_owned();
            Some(name.replacen("--", "/", 1))
        })
        .filter(|repo| super::is_valid_repo_id(repo))
        .collect();
    repos.sort();
    repos
        .iter()
        .flat_map(|repo| repo_models(cache_dir, repo))
        .collect()
}

/// The models of one cached repo: its model files grouped into split sets (parts all present).
pub(super) fn repo_models(cache_dir: &Path, repo: &str) -> Vec<CachedModel> {
    let cache = RepoCache::new(cache_dir, repo);
    let Some(commit) = cache.commit() else {
        return Vec::new();
    };
    let files = cache.files(&commit);
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    super::listing::model_groups(&paths)
        .into_iter()
        .map(|group| {
            let parts: Vec<&CachedFile> = group
                .iter()
                .filter_map(|p| files.iter().find(|f| f.path == *p))
                .collect();
            let quant = ModelSummary::from_path(&parts[0].local)
                .map(|s| s.quant_name())
                .unwrap_or_else(|_| "?".to_owned());
            CachedModel {
                repo: repo.to_owned(),
                file: parts[0].path.clone(),
                quant,
                size: parts.iter().map(|f| f.size).sum(),
                path: parts[0].local.clone(),
                parts: parts.iter().map(|f| f.local.clone()).collect(),
            }
        })
        .collect()
}

/// Removes a repo from the cache, or with a tag only the models whose file name or header
/// carries it (their links, and the blobs no other link of the repo uses). Returns what was
/// removed; nothing cached that matches is an error.
pub fn remove(cache_dir: &Path, what: &RepoRef) -> Result<Vec<PathBuf>, HubError> {
    let cache = RepoCache::new(cache_dir, &what.repo);
    let not_cached = || HubError::NothingCached {
        what: what.to_string(),
        dir: cache_dir.to_owned(),
    };
    let Some(tag) = &what.tag else {
        if !cache.dir.is_dir() {
            return Err(not_cached());
        }
        std::fs::remove_dir_all(&cache.dir).map_err(HubError::io(&cache.dir))?;
        return Ok(vec![cache.dir]);
    };
    let doomed: Vec<CachedModel> = repo_models(cache_dir, &what.repo)
        .into_iter()
        .filter(|m| has_tag(&m.file, tag) || m.quant.eq_ignore_ascii_case(tag))
        .collect();
    if doomed.is_empty() {
        return Err(not_cached());
    }
    let mut removed = Vec::new();
    for link in doomed.iter().flat_map(|m| &m.parts) {
        let blob = std::fs::canonicalize(link).ok();
        std::fs::remove_file(link).map_err(HubError::io(link))?;
        removed.push(link.clone());
        if let Some(blob) = blob.filter(|b| b != link && !is_linked(&cache.dir, b)) {
            std::fs::remove_file(&blob).map_err(HubError::io(&blob))?;
            removed.push(blob);
        }
    }
    Ok(removed)
}

/// Whether any snapshot of the repo still links to `blob`.
fn is_linked(repo_dir: &Path, blob: &Path) -> bool {
    let mut found = false;
    walk(&repo_dir.join("snapshots"), &mut |link| {
        found |= std::fs::canonicalize(link).is_ok_and(|t| t == blob);
    });
    found
}
