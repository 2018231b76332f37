//! Models from the Hugging Face Hub. A repo's GGUF files are listed through the Hub API and
//! their headers read with HTTP range requests (a few MB each, never the weights), so `plan` and
//! `--quant auto` choose among quants that were never downloaded; only the pick is downloaded —
//! resumable, checked against the sha256 the Hub lists — into the Hugging Face cache that
//! llama.cpp and `huggingface_hub` use as well, so a file fetched by any of them is reused by the
//! others. `list` and `rm` read and prune that cache.
//!
//! The `hf-hub` crate gives the cache's layout (`models--ORG--REPO`, `refs/`, `snapshots/`) and
//! the login token; the network side is written here on reqwest: hf-hub 0.5's downloader sits on
//! a second HTTP stack (reqwest 0.12), writes its own `.sync.part` files instead of
//! `huggingface_hub`'s `blobs/<sha256>.incomplete`, checks no sha256 and cannot read a byte
//! range, and hf-hub 1.0 brings the whole Xet client.
//!
//! Entry points: [`RepoRef`] parses `ORG/REPO[:QUANT]`, [`HubConfig`] reads the endpoint, token,
//! offline switch and cache folder as llama.cpp does, [`Listing::open`] lists a repo (or its
//! cached snapshot), [`Listing::candidates`] summarises its model files from their headers, and
//! [`Listing::fetch`] downloads one into the cache.

mod api;
mod cache;
mod download;
mod listing;

pub use cache::{CachedModel, cache_dir, cached_models, remove};
pub use download::Progress;
pub use listing::{Candidate, Listing, Selection};

use std::path::PathBuf;

/// `ORG/REPO[:QUANT]`, as llama-server's `-hf` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    pub repo: String,
    /// The quant tag after `:` (`Q4_K_M`), matched against file names as llama.cpp does.
    pub tag: Option<String>,
}

impl std::str::FromStr for RepoRef {
    type Err = HubError;

    fn from_str(text: &str) -> Result<Self, HubError> {
        let bare = [
            "hf://",
            "https://huggingface.co/",
            "huggingface.co/",
            "hf.co/",
        ]
        .iter()
        .find_map(|prefix| text.strip_prefix(prefix))
        .unwrap_or(text);
        let (repo, tag) = match bare.rsplit_once(':') {
            Some((repo, tag)) => (repo, Some(tag)),
            None => (bare, None),
        };
        let tag_ok = tag.is_none_or(|t| {
            !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if !is_valid_repo_id(repo) || !tag_ok {
            return Err(HubError::BadRepo {
                name: text.to_owned(),
            });
        }
        Ok(RepoRef {
            repo: repo.to_owned(),
            tag: tag.map(str::to_owned),
        })
    }
}

impl std::fmt::Display for RepoRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tag {
            Some(tag) => write!(f, "{}:{tag}", self.repo),
            None => f.write_str(&self.repo),
        }
    }
}

/// llama.cpp's rule (`hf-cache.cpp`): `[A-Za-z0-9_]` freely, `/ . -` only between them, exactly
/// one `/`, at most 256 characters.
fn is_valid_repo_id(repo: &str) -> bool {
    let mut slashes = 0;
    let mut after_special = true;
    for c in repo.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            after_special = false;
        } else if matches!(c, '/' | '.' | '-') && !after_special {
            slashes += usize::from(c == '/');
            after_special = true;
        } else {
            return false;
        }
    }
    !repo.is_empty() && repo.len() <= 256 && !after_special && slashes == 1
}

/// Whether a repo file is a model llama.cpp would load (`gguf_filename_is_model`): a `.gguf`
/// that is not a multimodal projector, an importance matrix or a draft-model sidecar.
pub(crate) fn is_model_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    path.ends_with(".gguf")
        && !["mmproj", "imatrix", "mtp-", "eagle3-", "dflash-", "dspark-"]
            .iter()
            .any(|s| name.contains(s))
}

/// Whether `path` carries the quant `tag` as llama.cpp matches `-hf REPO:TAG`: the tag followed by
/// `.` or `-`, case-insensitively (`Q4_K_M` matches `x-Q4_K_M.gguf` and `x-q4_k_m-00001-of-00002.gguf`).
pub(crate) fn has_tag(path: &str, tag: &str) -> bool {
    let (path, tag) = (path.to_ascii_lowercase(), tag.to_ascii_lowercase());
    path.contains(&format!("{tag}.")) || path.contains(&format!("{tag}-"))
}

/// Where the Hub is and how to reach it.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The Hub's base URL, without a trailing slash (`MODEL_ENDPOINT`, `HF_ENDPOINT`).
    pub endpoint: String,
    /// Sent as `Authorization: Bearer` (`--hf-token`, `HF_TOKEN`, or `huggingface-cli login`'s).
    pub token: Option<String>,
    /// Never make a request: plan and serve from the cache (`--offline`, `HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// The cache folder ([`cache_dir`]).
    pub cache_dir: PathBuf,
}

impl HubConfig {
    /// The configuration llama.cpp would use, from `env` (the process environment, in `main`),
    /// with the command line's token and offline switch on top.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        token: Option<String>,
        offline: bool,
    ) -> Result<HubConfig, HubError> {
        let set = |name: &str| env(name).filter(|v| !v.is_empty());
        let endpoint = set("MODEL_ENDPOINT")
            .or_else(|| set("HF_ENDPOINT"))
            .unwrap_or_else(|| "https://huggingface.co".to_owned());
        let offline = offline
            || set("HF_HUB_OFFLINE").is_some_and(|v| {
                matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
            });
        let cache_dir = cache_dir(env).ok_or(HubError::NoCacheDir)?;
        let token = token
            .or_else(|| set("HF_TOKEN"))
            .or_else(|| hf_hub::Cache::new(hf_home(env).join("hub")).token());
        Ok(HubConfig {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            token,
            offline,
            cache_dir,
        })
    }
}

/// `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface` (where
/// `huggingface-cli login` keeps its token).
fn hf_home(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let set = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    set("HF_HOME")
        .or_else(|| set("XDG_CACHE_HOME").map(|p| p.join("huggingface")))
        .or_else(|| set("HOME").map(|p| p.join(".cache/huggingface")))
        .unwrap_or_else(|| PathBuf::from(".cache/huggingface"))
}

/// What can go wrong reaching a model on the Hub; each names the repo or file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(
        "\"{name}\": not a Hugging Face repo; expected ORG/REPO or ORG/REPO:QUANT (ggml-org/gpt-oss-20b-GGUF:Q4_K_M)"
    )]
    BadRepo { name: String },
    #[error("no cache folder: set HF_HUB_CACHE, HF_HOME or HOME")]
    NoCacheDir,
    #[error(
        "{repo}: repository not found at {endpoint} (check the name; a private repo needs --hf-token or HF_TOKEN)"
    )]
    NotFound { repo: String, endpoint: String },
    #[error(
        "{repo}: access denied ({status}): the repo is gated or private; accept its terms on the Hub and pass --hf-token or set HF_TOKEN{}",
        if *with_token { " (the token given was refused)" } else { "" }
    )]
    Denied {
        repo: String,
        status: u16,
        with_token: bool,
    },
    #[error("{repo}: no file {file} in the repo; its GGUF files: {available}")]
    FileNotFound {
        repo: String,
        file: String,
        available: String,
    },
    #[error("{repo}: no GGUF model files in this repo")]
    NoGguf { repo: String },
    #[error("{repo}: no {tag} file; its GGUF files: {available}")]
    NoQuant {
        repo: String,
        tag: String,
        available: String,
    },
    #[error("{url}: HTTP {status}: {message}")]
    Http {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url}: cannot reach the Hub ({cause})")]
    Network { url: String, cause: String },
    #[error("{repo}: not in the cache ({dir}) and offline mode forbids the network")]
    NotCached { repo: String, dir: PathBuf },
    #[error("{what}: nothing in the cache ({dir}) matches")]
    NothingCached { what: String, dir: PathBuf },
    #[error(
        "{file}: sha256 mismatch (the Hub lists {expected}, the download hashes to {actual}); the download was discarded"
    )]
    Checksum {
        file: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{file}: download interrupted at {have} of {size} bytes ({cause}); run the same command again to resume"
    )]
    Interrupted {
        file: String,
        have: u64,
        size: u64,
        cause: String,
    },
    #[error("{file}: the GGUF header runs past {limit} bytes; not reading further")]
    HeaderTooLarge { file: String, limit: u64 },
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl HubError {
    /// A request that got no answer, with the innermost cause (reqwest's own message repeats
    /// the URL at every level).
    fn network(url: &str, error: &reqwest::Error) -> HubError {
        let mut cause: &dyn std::error::Error = error;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        HubError::Network {
            url: url.to_owned(),
            cause: cause.to_string(),
        }
    }

    fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> HubError + '_ {
        move |source| HubError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_refs() {
        let ok = [
            (
                "ggml-org/gpt-oss-20b-GGUF",
                "ggml-org/gpt-oss-20b-GGUF",
                None,
            ),
            (
                "unsloth/gpt-oss-20b-GGUF:Q4_K_M",
                "unsloth/gpt-oss-20b-GGUF",
                Some("Q4_K_M"),
            ),
            ("hf://a/b:q8_0", "a/b", Some("q8_0")),
            ("https://huggingface.co/a_1/b.c", "a_1/b.c", None),
        ];
        for (text, repo, tag) in ok {
            let r: RepoRef = text.parse().unwrap();
            assert_eq!((r.repo.as_str(), r.tag.as_deref()), (repo, tag), "{text}");
        }
        for bad in [
            "notarepo", "a/b/c", "/a", "a/", "a//b", "a/-b", "a/b:", "a/b:Q4 K", "a b/c", "",
        ] {
            assert!(bad.parse::<RepoRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn config_follows_llama_cpp() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let c = HubConfig::from_env(
            &env(&[
                ("HOME", "/h"),
                ("HF_ENDPOINT", "http://x:1/"),
                ("HF_HUB_OFFLINE", "1"),
            ]),
            None,
            false,
        )
        .unwrap();
        assert_eq!(c.endpoint, "http://x:1");
        assert!(c.offline);
        assert_eq!(c.cache_dir, PathBuf::from("/h/.cache/huggingface/hub"));
        let c = HubConfig::from_env(
            &env(&[
                ("HOME", "/h"),
                ("MODEL_ENDPOINT", "http://m"),
                ("HF_ENDPOINT", "http://x"),
            ]),
            Some("hf_t".into()),
            false,
        )
        .unwrap();
        assert_eq!(
            (c.endpoint.as_str(), c.token.as_deref()),
            ("http://m", Some("hf_t"))
        );
        assert!(!c.offline);
    }
}
