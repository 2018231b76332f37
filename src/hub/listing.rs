//! A repo's model files, from the Hub or from the cache: grouped into models (split parts
//! together; projectors, importance matrices and draft sidecars left out), narrowed to a quant or
//! file, summarised from their GGUF headers (read from the cache when there, else by range
//! requests, all candidates at once), and the chosen one fetched into the cache.

use super::api::{Client, RemoteFile};
use super::cache::RepoCache;
use super::download::{Progress, download, read_range};
use super::{HubConfig, HubError, RepoRef, has_tag, is_model_file};
use crate::gguf::{GgufFile, ModelSummary, Prefix, split_name};
use std::path::{Path, PathBuf};

/// The first range read of a header; each next one doubles what has been read.
const FIRST_READ: u64 = 512 << 10;
/// No real header comes near this (gpt-oss's, with a 200k vocabulary, is about 12 MB).
const MAX_HEADER: u64 = 256 << 20;

/// A repo's files at one commit.
pub struct Listing {
    pub repo: String,
    pub commit: String,
    files: Vec<RemoteFile>,
    cache: RepoCache,
    /// `None` offline, or when the Hub could not be reached and the cache answers instead.
    client: Option<Client>,
}

/// Which of a repo's models to consider.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `:QUANT` or `--quant NAME`: files whose name carries the tag, as llama.cpp matches it.
    pub tag: Option<String>,
    /// `--hf-file PATH`: exactly this file (and its split siblings).
    pub file: Option<String>,
}

/// One model of a repo, summarised from its headers.
pub struct Candidate {
    /// Paths are the parts' repo paths (what the planner's table shows and its pick names).
    pub summary: ModelSummary,
    parts: Vec<RemoteFile>,
    /// The first part's first bytes, read for its header: a download starts with them.
    prefix: Vec<u8>,
}

impl Candidate {
    /// The repo path of the model (its first part).
    pub fn file(&self) -> &str {
        &self.parts[0].path
    }
}

impl Listing {
    /// Lists `repo`: through the Hub, or offline (or when the Hub cannot be reached or fails,
    /// with a warning) from the cache's snapshot.
    pub async fn open(config: &HubConfig, repo: &str) -> Result<Listing, HubError> {
        let cache = RepoCache::new(&config.cache_dir, repo);
        if config.offline {
            return Self::cached(config, repo, cache);
        }
        let client = Client::new(config);
        let listed = async {
            let commit = client.commit(repo).await?;
            let files = client.tree(repo, &commit).await?;
            Ok::<_, HubError>((commit, files))
        };
        match listed.await {
            Ok((commit, files)) => Ok(Listing {
                repo: repo.to_owned(),
                commit,
                files,
                cache,
                client: Some(client),
            }),
            Err(e @ (HubError::Network { .. } | HubError::Http { status: 500.., .. }))
                if cache.commit().is_some() =>
            {
                tracing::warn!("{e}; using the cached files");
                Self::cached(config, repo, cache)
            }
            Err(e) => Err(e),
        }
    }

    fn cached(config: &HubConfig, repo: &str, cache: RepoCache) -> Result<Listing, HubError> {
        let commit = cache.commit().ok_or_else(|| HubError::NotCached {
            repo: repo.to_owned(),
            dir: config.cache_dir.clone(),
        })?;
        let files = cache
            .files(&commit)
            .into_iter()
            .map(|f| RemoteFile {
                oid: f.sha256.clone().unwrap_or_default(),
                path: f.path,
                size: f.size,
                sha256: f.sha256,
            })
            .collect();
        Ok(Listing {
            repo: repo.to_owned(),
            commit,
            files,
            cache,
            client: None,
        })
    }

    /// The models to plan among, summarised from their headers.
    pub async fn candidates(&self, selection: &Selection) -> Result<Vec<Candidate>, HubError> {
        let paths: Vec<&str> = self.files.iter().map(|f| f.path.as_str()).collect();
        let groups = model_groups(&paths);
        if groups.is_empty() {
            return Err(HubError::NoGguf {
                repo: self.repo.clone(),
            });
        }
        let names = || groups.iter().map(|g| g[0]).collect::<Vec<_>>().join(", ");
        let chosen: Vec<&Vec<&str>> = match (&selection.file, &selection.tag) {
            (Some(file), _) => groups
                .iter()
                .filter(|g| g.contains(&file.as_str()))
                .collect(),
            (None, Some(tag)) => groups.iter().filter(|g| has_tag(g[0], tag)).collect(),
            (None, None) => groups.iter().collect(),
        };
        if chosen.is_empty() {
            return Err(match (&selection.file, &selection.tag) {
                (Some(file), _) => HubError::FileNotFound {
                    repo: self.repo.clone(),
                    file: file.clone(),
                    available: names(),
                },
                (None, tag) => HubError::NoQuant {
                    repo: self.repo.clone(),
                    tag: tag.clone().unwrap_or_default(),
                    available: names(),
                },
            });
        }
        let reads = chosen.iter().map(|group| self.candidate(group));
        futures::future::try_join_all(reads).await
    }

    async fn candidate(&self, group: &[&str]) -> Result<Candidate, HubError> {
        let parts: Vec<RemoteFile> = group
            .iter()
            .map(|p| self.file(p).expect("groups come from the listing").clone())
            .collect();
        let mut headers = Vec::new();
        let mut prefix = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let (mut header, bytes) = match self.local(part) {
                Some(local) => (GgufFile::read(&local)?, Vec::new()),
                None => self.read_header(part).await?,
            };
            header.path = PathBuf::from(&part.path);
            if i == 0 {
                prefix = bytes;
            }
            headers.push(header);
        }
        Ok(Candidate {
            summary: ModelSummary::from_files(&headers)?,
            parts,
            prefix,
        })
    }

    fn file(&self, path: &str) -> Option<&RemoteFile> {
        self.files.iter().find(|f| f.path == path)
    }

    /// The file's complete copy in the cache, if any: its snapshot link, or a blob of the right
    /// name and size that an earlier download (ours, llama.cpp's, `huggingface_hub`'s) left.
    fn local(&self, file: &RemoteFile) -> Option<PathBuf> {
        let size_ok = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.len() == file.size);
        let link = self.cache.snapshot(&self.commit, &file.path);
        if size_ok(&link) {
            return Some(link);
        }
        let blob = self.cache.blob(file.blob_name());
        (!file.blob_name().is_empty() && size_ok(&blob)).then_some(blob)
    }

    /// Reads a file's header with range requests, doubling the bytes read until it parses.
    async fn read_header(&self, file: &RemoteFile) -> Result<(GgufFile, Vec<u8>), HubError> {
        let client = self.client.as_ref().ok_or_else(|| HubError::NotCached {
            repo: self.repo.clone(),
            dir: self.cache.snapshot(&self.commit, ""),
        })?;
        let url = client.file_url(&self.repo, &self.commit, &file.path);
        let name = PathBuf::from(format!("{}/{}", self.repo, file.path));
        let mut bytes: Vec<u8> = Vec::new();
        loop {
            match GgufFile::from_prefix(&bytes, file.size, &name) {
                Prefix::Header(header) => return Ok((*header, bytes)),
                Prefix::Error(e) => return Err(e.into()),
                Prefix::TooShort if bytes.len() as u64 >= MAX_HEADER => {
                    return Err(HubError::HeaderTooLarge {
                        file: name.display().to_string(),
                        limit: MAX_HEADER,
                    });
                }
                Prefix::TooShort => {
                    let have = bytes.len() as u64;
                    let more = have.max(FIRST_READ).min(file.size - have);
                    let got = read_range(client, &self.repo, &url, have, more).await?;
                    if got.is_empty() {
                        return Err(HubError::Http {
                            url,
                            status: 206,
                            message: format!("no bytes from offset {have}"),
                        });
                    }
                    bytes.extend_from_slice(&got);
                }
            }
        }
    }

    /// Makes the candidate's files complete in the cache (downloading what is missing) and
    /// returns the local path of its first part.
    pub async fn fetch(
        &self,
        candidate: &Candidate,
        progress: &mut dyn Progress,
    ) -> Result<PathBuf, HubError> {
        let mut paths = Vec::new();
        for (i, part) in candidate.parts.iter().enumerate() {
            let link = self.cache.snapshot(&self.commit, &part.path);
            let path = match self.local(part) {
                Some(local) if local == link => local,
                Some(_) => self
                    .cache
                    .link(&self.commit, &part.path, part.blob_name())?,
                None => {
                    let client = self.client.as_ref().ok_or_else(|| HubError::NotCached {
                        repo: format!("{}/{}", self.repo, part.path),
                        dir: link.clone(),
                    })?;
                    let url = client.file_url(&self.repo, &self.commit, &part.path);
                    let blob = self.cache.blob(part.blob_name());
                    let prefix = if i == 0 { &candidate.prefix[..] } else { &[] };
                    download(client, &self.repo, &url, part, &blob, prefix, progress).await?;
                    self.cache
                        .link(&self.commit, &part.path, part.blob_name())?
                }
            };
            paths.push(path);
        }
        self.cache.set_ref(&self.commit)?;
        Ok(paths.swap_remove(0))
    }

    /// Where the Hub is, for messages (`None` offline).
    pub fn endpoint(&self) -> Option<&str> {
        self.client.as_ref().map(Client::endpoint)
    }
}

/// Groups a repo's model files into models: each unsplit `.gguf`, and each complete split set
/// (parts in order, named by its first); sorted by the first part's path.
pub(crate) fn model_groups<'a>(paths: &[&'a str]) -> Vec<Vec<&'a str>> {
    let mut groups: Vec<Vec<&'a str>> = Vec::new();
    for &path in paths.iter().filter(|p| is_model_file(p)) {
        match split_name(Path::new(path)) {
            None => groups.push(vec![path]),
            Some((prefix, 1, count)) => {
                let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                let part = |n: u32| {
                    let name = format!("{prefix}-{n:05}-of-{count:05}.gguf");
                    if dir.is_empty() {
                        name
                    } else {
                        format!("{dir}/{name}")
                    }
                };
                let parts: Option<Vec<&'a str>> = (1..=count)
                    .map(|n| paths.iter().copied().find(|p| *p == part(n)))
                    .collect();
                if let Some(parts) = parts {
                    groups.push(parts);
                }
            }
            Some(_) => {}
        }
    }
    groups.sort();
    groups
}

impl RepoRef {
    /// The selection this reference makes, with `--hf-file` and `--quant` on top.
    pub fn selection(&self, file: Option<&str>, quant: Option<&str>) -> Selection {
        let quant = quant.filter(|q| !q.eq_ignore_ascii_case("auto"));
        Selection {
            tag: self.tag.clone().or(quant.map(str::to_owned)),
            file: file.map(str::to_owned),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn groups() {
        let paths = [
            "README.md",
            "m-Q8_0-00002-of-00002.gguf",
            "m-Q4_K_M.gguf",
            "mmproj-F16.gguf",
            "m-Q8_0-00001-of-00002.gguf",
            "imatrix.gguf",
            "big/m-F16-00001-of-00003.gguf",
            "big/m-F16-00002-of-00003.gguf",
        ];
        let groups = super::model_groups(&paths);
        assert_eq!(
            groups,
            vec![
                vec!["m-Q4_K_M.gguf"],
                vec!["m-Q8_0-00001-of-00002.gguf", "m-Q8_0-00002-of-00002.gguf"],
            ],
            "incomplete split sets and non-models are left out"
        );
    }
}
