//! The Hub's HTTP API, as llama.cpp calls it (`hf-cache.cpp`): a repo's commit from
//! `api/models/REPO/refs`, its files with sizes and LFS sha256 from
//! `api/models/REPO/tree/COMMIT?recursive=true`, and a file's bytes, or a range of them, from
//! `REPO/resolve/COMMIT/PATH` (which redirects to the Hub's CDN; reqwest follows, resending the
//! `Range`). Statuses become [`HubError`]s that say what to do.

use super::{HubConfig, HubError};
use serde::Deserialize;

/// One file of a repo's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub path: String,
    pub size: u64,
    /// The LFS object's sha256 (what the blob is named after and checked against); `None` for
    /// a file kept in git itself.
    pub sha256: Option<String>,
    /// The git object id.
    pub oid: String,
}

impl RemoteFile {
    /// The blob name in the cache: the sha256 for LFS files, else the git object id.
    pub fn blob_name(&self) -> &str {
        self.sha256.as_deref().unwrap_or(&self.oid)
    }
}

#[derive(Deserialize)]
struct Refs {
    #[serde(default)]
    branches: Vec<Branch>,
}

#[derive(Deserialize)]
struct Branch {
    name: String,
    #[serde(rename = "targetCommit")]
    target_commit: String,
}

#[derive(Deserialize)]
struct TreeEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    oid: String,
    lfs: Option<Lfs>,
}

#[derive(Deserialize)]
struct Lfs {
    oid: String,
    size: u64,
}

pub(super) struct Client {
    http: reqwest::Client,
    endpoint: String,
    token: Option<String>,
}

impl Client {
    pub fn new(config: &HubConfig) -> Client {
        let http = reqwest::Client::builder()
            .user_agent(concat!("gguf-serve/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(30))
            .read_timeout(std::time::Duration::from_secs(60))
            .build()
            .expect("a default reqwest client builds");
        Client {
            http,
            endpoint: config.endpoint.clone(),
            token: config.token.clone(),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn file_url(&self, repo: &str, commit: &str, path: &str) -> String {
        format!("{}/{repo}/resolve/{commit}/{path}", self.endpoint)
    }

    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.get(url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request, turning failures into errors about `repo`.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
        repo: &str,
    ) -> Result<reqwest::Response, HubError> {
        let response = request
            .send()
            .await
            .map_err(|e| HubError::network(url, &e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let code = response
            .headers()
            .get("x-error-code")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
            .unwrap_or(body);
        Err(match (status.as_u16(), code.as_str()) {
            (_, "RepoNotFound") | (404, "") => HubError::NotFound {
                repo: repo.to_owned(),
                endpoint: self.endpoint.clone(),
            },
            (401 | 403, _) | (_, "GatedRepo") => HubError::Denied {
                repo: repo.to_owned(),
                status: status.as_u16(),
                with_token: self.token.is_some(),
            },
            (status, _) => HubError::Http {
                url: url.to_owned(),
                status,
                message: message.chars().take(300).collect(),
            },
        })
    }

    async fn json<T: for<'de> Deserialize<'de>>(
        &self,
        url: &str,
        repo: &str,
    ) -> Result<(T, Option<String>), HubError> {
        let response = self.send(self.get(url), url, repo).await?;
        let next = next_page(response.headers());
        let value = response
            .json()
            .await
            .map_err(|e| HubError::network(url, &e))?;
        Ok((value, next))
    }

    /// The commit `main` points at (else the first branch's), as llama.cpp resolves it.
    pub async fn commit(&self, repo: &str) -> Result<String, HubError> {
        let url = format!("{}/api/models/{repo}/refs", self.endpoint);
        let (refs, _) = self.json::<Refs>(&url, repo).await?;
        let valid = |c: &str| c.len() == 40 && c.chars().all(|c| c.is_ascii_hexdigit());
        let branches: Vec<&Branch> = refs
            .branches
            .iter()
            .filter(|b| valid(&b.target_commit))
            .collect();
        branches
            .iter()
            .find(|b| b.name == "main")
            .or(branches.first())
            .map(|b| b.target_commit.clone())
            .ok_or_else(|| HubError::Http {
                url,
                status: 200,
                message: "the repo has no branch with a commit".into(),
            })
    }

    /// Every file of the repo at `commit`, following the listing's pages.
    pub async fn tree(&self, repo: &str, commit: &str) -> Result<Vec<RemoteFile>, HubError> {
        let mut url = Some(format!(
            "{}/api/models/{repo}/tree/{commit}?recursive=true",
            self.endpoint
        ));
        let mut files = Vec::new();
        while let Some(page) = url {
            let (entries, next) = self.json::<Vec<TreeEntry>>(&page, repo).await?;
            files.extend(entries.into_iter().filter(|e| e.kind == "file").map(|e| {
                let (size, sha256) = match e.lfs {
                    Some(lfs) => (lfs.size, Some(lfs.oid)),
                    None => (e.size, None),
                };
                RemoteFile {
                    path: e.path,
                    size,
                    sha256,
                    oid: e.oid,
                }
            }));
            url = next;
        }
        Ok(files)
    }

    /// A GET of `url` from byte `start` on (the whole file when 0).
    pub async fn get_from(
        &self,
        url: &str,
        repo: &str,
        start: u64,
        end: Option<u64>,
    ) -> Result<reqwest::Response, HubError> {
        let mut request = self.get(url);
        if start > 0 || end.is_some() {
            let end = end.map(|e| e.to_string()).unwrap_or_default();
            request = request.header(reqwest::header::RANGE, format!("bytes={start}-{end}"));
        }
        self.send(request, url, repo).await
    }
}

/// The `Link: <…>; rel="next"` of a paginated listing.
fn next_page(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let link = headers.get(reqwest::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_page_links() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(super::next_page(&headers), None);
        headers.insert(
            reqwest::header::LINK,
            "<https://hf.co/api/models/a/b/tree/main?cursor=x>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            super::next_page(&headers).as_deref(),
            Some("https://hf.co/api/models/a/b/tree/main?cursor=x")
        );
    }
}
