//! The fake Hub's routes (tests/common/fake_hub.rs): the API's JSON (model info, refs, tree),
//! `resolve` with the LFS redirect to the CDN, the CDN's ranged bodies, and the Hub's errors.
//! The bytes themselves go out through `fake_hub_body.rs`.

use super::body::serve_bytes;
use super::{Repo, Shared};
use crate::sha::sha1_hex;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;

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
