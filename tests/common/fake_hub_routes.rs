//! The fake Hub's routes (tests/common/fake_hub.rs): the API's JSON (model info, refs, tree),
//! `resolve` with the LFS redirect to the CDN, the CDN's ranged bodies, the Hub's errors, and
//! the response body that counts what it sends and applies the faults.

use super::{HubFile, Repo, Shared};
use crate::sha::sha1_hex;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

/// What the fake hub serves of a body per poll (hyper buffers a few before flushing).
const CHUNK: usize = 64 << 10;

/// How long a cut connection stalls before it breaks (time for the bytes before the cut to
/// reach the client; the client sees no difference from a stall on a real network).
const STALL: std::time::Duration = std::time::Duration::from_millis(250);

/// A JSON answer with the Hub's error code header, as the Hub words its errors.
fn hub_error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut r = json_response(status, json!({ "error": message }));
    r.headers_mut()
        .insert("x-error-code", HeaderValue::from_str(code).unwrap());
    r
}

fn json_response(status: StatusCode, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn repo_not_found() -> Response {
    hub_error(
        StatusCode::NOT_FOUND,
        "RepoNotFound",
        "Repository not found",
    )
}

fn entry_not_found() -> Response {
    hub_error(StatusCode::NOT_FOUND, "EntryNotFound", "Entry not found")
}

fn revision_not_found(rev: &str) -> Response {
    hub_error(
        StatusCode::NOT_FOUND,
        "RevisionNotFound",
        &format!("Invalid rev id: {rev}"),
    )
}

pub(super) async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    s.log.lock().unwrap().push(format!(
        "{} {} range={}",
        req.method(),
        req.uri(),
        range.as_deref().unwrap_or("-")
    ));
    if s.fail_all.load(Ordering::SeqCst) {
        return json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "Internal Error - the fake hub is down"}),
        );
    }
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .body(Body::empty())
            .unwrap();
    }
    match segments.as_slice() {
        ["api", "models", org, name, rest @ ..] => {
            let Some(repo) = s.repos.get(&format!("{org}/{name}")) else {
                return repo_not_found();
            };
            if let Some(denied) = check_token(&s, repo, req.headers()) {
                return denied;
            }
            api(repo, rest, &query)
        }
        ["cdn", sha256] => cdn(&s, sha256, &query, req.headers(), range, head),
        [org, name, "resolve", rev, file @ ..] if !file.is_empty() => {
            let Some(repo) = s.repos.get(&format!("{org}/{name}")) else {
                return repo_not_found();
            };
            if let Some(denied) = check_token(&s, repo, req.headers()) {
                return denied;
            }
            if !rev_matches(repo, rev) {
                return revision_not_found(rev);
            }
            resolve(&s, repo, &file.join("/"), range, head)
        }
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from("Not Found"))
            .unwrap(),
    }
}

/// The 401 of a gated repo when the request has no (or a wrong) bearer token.
fn check_token(s: &Shared, repo: &Repo, headers: &HeaderMap) -> Option<Response> {
    if !repo.gated {
        return None;
    }
    let want = format!("Bearer {}", s.token.lock().unwrap());
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    (given != Some(want.as_str())).then(|| {
        hub_error(
            StatusCode::UNAUTHORIZED,
            "GatedRepo",
            &format!(
                "Access to model {} is restricted. You must have access to it and be \
                 authenticated to access it. Please log in.",
                repo.id
            ),
        )
    })
}

fn rev_matches(repo: &Repo, rev: &str) -> bool {
    rev == "main" || rev == repo.commit
}

/// `/api/models/{org}/{name}[/revision/{rev} | /refs | /tree/{rev}[/{dir}]]`.
fn api(repo: &Repo, rest: &[&str], query: &str) -> Response {
    match rest {
        [] => json_response(StatusCode::OK, model_info(repo, query)),
        ["revision", rev] => {
            if !rev_matches(repo, rev) {
                return revision_not_found(rev);
            }
            json_response(StatusCode::OK, model_info(repo, query))
        }
        ["refs"] => json_response(
            StatusCode::OK,
            json!({
                "branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": repo.commit}],
                "tags": [],
                "converts": [],
            }),
        ),
        ["tree", rev, dir @ ..] => {
            if !rev_matches(repo, rev) {
                return revision_not_found(rev);
            }
            let recursive = query
                .split('&')
                .any(|p| p == "recursive=true" || p == "recursive=1");
            json_response(StatusCode::OK, tree(repo, &dir.join("/"), recursive))
        }
        _ => entry_not_found(),
    }
}

/// The model info: id, commit, siblings (with sizes and LFS info under `blobs=true`), gating.
fn model_info(repo: &Repo, query: &str) -> Value {
    let blobs = query
        .split('&')
        .any(|p| p == "blobs=true" || p == "blobs=1");
    let siblings: Vec<Value> = repo
        .files
        .iter()
        .map(|(path, f)| {
            let mut s = json!({ "rfilename": path });
            if blobs {
                s["size"] = json!(f.bytes.len());
                s["blobId"] = json!(f.git_oid);
                if f.lfs {
                    s["lfs"] = json!({
                        "sha256": f.sha256,
                        "size": f.bytes.len(),
                        "pointerSize": f.pointer_size,
                    });
                }
            }
            s
        })
        .collect();
    json!({
        "_id": format!("fake{}", &repo.commit[..20]),
        "id": repo.id,
        "modelId": repo.id,
        "author": repo.id.split('/').next().unwrap(),
        "sha": repo.commit,
        "private": false,
        "disabled": false,
        "gated": if repo.gated { json!("auto") } else { json!(false) },
        "tags": ["gguf"],
        "siblings": siblings,
    })
}

/// The tree listing: a file object per file (with `lfs` for LFS files) and a directory object
/// per folder, under `dir`, recursively or one level.
fn tree(repo: &Repo, dir: &str, recursive: bool) -> Value {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let mut entries = Vec::new();
    let mut dirs = std::collections::BTreeSet::new();
    for (path, f) in &repo.files {
        let Some(rel) = path.strip_prefix(&prefix) else {
            continue;
        };
        let parts: Vec<&str> = rel.split('/').collect();
        for depth in 1..parts.len() {
            if recursive || depth == 1 {
                dirs.insert(format!("{prefix}{}", parts[..depth].join("/")));
            }
        }
        if !recursive && parts.len() > 1 {
            continue;
        }
        let mut entry = json!({
            "type": "file",
            "oid": f.git_oid,
            "size": f.bytes.len(),
            "path": path,
        });
        if f.lfs {
            entry["lfs"] = json!({
                "oid": f.sha256,
                "size": f.bytes.len(),
                "pointerSize": f.pointer_size,
            });
        }
        entries.push(entry);
    }
    let dir_entries = dirs
        .into_iter()
        .map(|d| json!({"type": "directory", "oid": sha1_hex(d.as_bytes()), "size": 0, "path": d}));
    Value::Array(dir_entries.chain(entries).collect())
}

/// `/{org}/{name}/resolve/{rev}/{path}`: an LFS file redirects to the CDN, others are served.
fn resolve(
    s: &Arc<Shared>,
    repo: &Repo,
    path: &str,
    range: Option<String>,
    head: bool,
) -> Response {
    let Some(file) = repo.files.get(path) else {
        return entry_not_found();
    };
    if file.lfs {
        let location = format!(
            "{}/cdn/{}?repo={}&file={}",
            s.endpoint, file.sha256, repo.id, path
        );
        let etag = format!("\"{}\"", file.sha256);
        return Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, location)
            .header("x-repo-commit", &repo.commit)
            .header("x-linked-etag", &etag)
            .header("x-linked-size", file.bytes.len())
            .header(header::ETAG, &etag)
            .header(header::CONTENT_LENGTH, 0)
            .body(Body::empty())
            .unwrap();
    }
    let etag = format!("\"{}\"", file.git_oid);
    serve_bytes(s, &repo.commit, path, file, &etag, range, head)
}

/// `/cdn/{sha256}?repo=…&file=…`: the bytes of an LFS file, with ranges.
fn cdn(
    s: &Arc<Shared>,
    sha256: &str,
    query: &str,
    headers: &HeaderMap,
    range: Option<String>,
    head: bool,
) -> Response {
    let param = |key: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{key}=")))
            .unwrap_or("")
    };
    let (want_repo, want_file) = (param("repo"), param("file"));
    // The file this sha names, preferring the repo and path the redirect named.
    let mut found = None;
    for repo in s.repos.values() {
        for (path, file) in &repo.files {
            if file.sha256 == sha256
                && (found.is_none() || (repo.id == want_repo && path == want_file))
            {
                found = Some((repo, path, file));
            }
        }
    }
    let Some((repo, path, file)) = found else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from("NoSuchKey"))
            .unwrap();
    };
    if let Some(denied) = check_token(s, repo, headers) {
        return denied;
    }
    let etag = format!("\"{}\"", file.sha256);
    serve_bytes(s, &repo.commit, path, file, &etag, range, head)
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` over a body of `size` bytes: Some(Ok(start..end)),
/// Some(Err(())) when unsatisfiable, None when absent or not a single byte range (served whole).
fn parse_range(range: Option<&str>, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = range?.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.saturating_sub(n), size)
        }
        (a, "") => (a.parse().ok()?, size),
        (a, b) => {
            let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            if b < a {
                return None;
            }
            (a, (b + 1).min(size))
        }
    };
    Some(if start >= size || start >= end {
        Err(())
    } else {
        Ok((start, end))
    })
}

/// A 200 or 206 answer with `file`'s bytes (or a 416), counted and with faults applied.
fn serve_bytes(
    s: &Arc<Shared>,
    commit: &str,
    path: &str,
    file: &HubFile,
    etag: &str,
    range: Option<String>,
    head: bool,
) -> Response {
    let size = file.bytes.len() as u64;
    let builder = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, etag)
        .header("x-repo-commit", commit)
        .header(header::CONTENT_TYPE, "application/octet-stream");
    let (status, start, end, builder) = match parse_range(range.as_deref(), size) {
        Some(Err(())) => {
            return builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(Body::empty())
                .unwrap();
        }
        Some(Ok((start, end))) => (
            StatusCode::PARTIAL_CONTENT,
            start,
            end,
            builder.header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{}/{size}", end - 1),
            ),
        ),
        None => (StatusCode::OK, 0, size, builder),
    };
    let builder = builder.status(status);
    if head {
        return builder
            .header(header::CONTENT_LENGTH, end - start)
            .body(Body::empty())
            .unwrap();
    }
    s.stats
        .lock()
        .unwrap()
        .entry(path.to_owned())
        .or_default()
        .ranges
        .push(range);
    let (cut_at, flip) = {
        let mut faults = s.faults.lock().unwrap();
        let mut cut_at = None;
        if let Some((k, left)) = faults.cut.get_mut(path)
            && end - start > *k
            && *left > 0
        {
            cut_at = Some(*k as usize);
            if *left != u32::MAX {
                *left -= 1;
            }
        }
        let flip = faults
            .corrupt
            .iter()
            .any(|p| p == path)
            .then(|| size - 1)
            .filter(|&at| (start..end).contains(&at))
            .map(|at| (at - start) as usize);
        (cut_at, flip)
    };
    if cut_at.is_some() {
        s.stats.lock().unwrap().get_mut(path).unwrap().cuts += 1;
    }
    let body = FileBody {
        data: file.bytes.slice(start as usize..end as usize),
        sent: 0,
        cut_at,
        stall: None,
        flip,
        partial: status == StatusCode::PARTIAL_CONTENT,
        path: path.to_owned(),
        shared: s.clone(),
    };
    builder.body(Body::new(body)).unwrap()
}

/// A response body that counts what it hands out, flips a byte, and can break off.
struct FileBody {
    data: Bytes,
    sent: usize,
    cut_at: Option<usize>,
    /// The stall before the cut, once reached.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    flip: Option<usize>,
    partial: bool,
    path: String,
    shared: Arc<Shared>,
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        if Some(this.sent) == this.cut_at {
            // A connection that stalls, then dies: while the body has nothing ready, hyper
            // flushes what it holds to the socket, so the client gets the k bytes first.
            let stall = this
                .stall
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(STALL)));
            if stall.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "the fake hub cut this body",
            ))));
        }
        if this.sent == this.data.len() {
            return Poll::Ready(None);
        }
        let end = (this.sent + CHUNK)
            .min(this.data.len())
            .min(this.cut_at.unwrap_or(usize::MAX));
        let mut chunk = this.data.slice(this.sent..end);
        if let Some(at) = this.flip.filter(|at| (this.sent..end).contains(at)) {
            let mut copy = chunk.to_vec();
            copy[at - this.sent] ^= 0xff;
            chunk = Bytes::from(copy);
        }
        let n = (end - this.sent) as u64;
        this.sent = end;
        let mut stats = this.shared.stats.lock().unwrap();
        let stats = stats.entry(this.path.clone()).or_default();
        if this.partial {
            stats.range_bytes += n;
        } else {
            stats.full_bytes += n;
        }
        Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.data.len()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact((self.data.len() - self.sent) as u64)
    }
}
