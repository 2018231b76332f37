//! Downloading one file into the cache, so that a partial or corrupt download never looks
//! complete: bytes go to `blobs/<sha256>.incomplete` (appended, so an interrupted download
//! resumes with a range request from where it stopped, in this run or the next), the whole is
//! checked against the sha256 the Hub lists, and only then renamed to `blobs/<sha256>`. A cut
//! body is retried from where it stopped, three attempts in all.

use super::HubError;
use super::api::{Client, RemoteFile};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;

const ATTEMPTS: u32 = 3;

/// What a download reports as it goes (a progress bar on a terminal, log lines otherwise).
pub trait Progress: Send {
    /// A file starts: `have` of its `size` bytes are already here.
    fn start(&mut self, file: &str, size: u64, have: u64);
    /// `bytes` more arrived.
    fn advance(&mut self, bytes: u64);
    /// The file is complete and checked.
    fn finish(&mut self, file: &str);
}

/// Downloads `file` from `url` to `blob`. `prefix` is the file's first bytes if already
/// fetched (its header, read for planning): they are written first instead of fetched again.
pub(super) async fn download(
    client: &Client,
    repo: &str,
    url: &str,
    file: &RemoteFile,
    blob: &Path,
    prefix: &[u8],
    progress: &mut dyn Progress,
) -> Result<(), HubError> {
    let partial = blob.with_file_name(format!("{}.incomplete", file.blob_name()));
    let dir = blob.parent().expect("a blob path has a parent");
    std::fs::create_dir_all(dir).map_err(HubError::io(dir))?;
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&partial)
        .map_err(HubError::io(&partial))?;
    // One download of a blob at a time (another gguf-serve may be fetching the same file).
    if out.try_lock().is_err() {
        tracing::warn!(file = %file.path, "another process is downloading this file; waiting");
        out.lock().map_err(HubError::io(&partial))?;
        if blob.exists() {
            // It finished while we waited; what we opened is its file or an empty leftover.
            if out.metadata().is_ok_and(|m| m.len() == 0) {
                let _ = std::fs::remove_file(&partial);
            }
            return Ok(());
        }
    }
    let mut have = out.metadata().map_err(HubError::io(&partial))?.len();
    if have > file.size {
        out.set_len(0).map_err(HubError::io(&partial))?;
        have = 0;
    }
    // Hash what an earlier run left, then go on from there.
    let mut hasher = Sha256::new();
    hash_file(&partial, &mut hasher).map_err(HubError::io(&partial))?;
    if (have as usize) < prefix.len() {
        let more = &prefix[have as usize..];
        out.write_all(more).map_err(HubError::io(&partial))?;
        hasher.update(more);
        have += more.len() as u64;
    }
    progress.start(&file.path, file.size, have);

    let mut attempt = 0;
    while have < file.size {
        attempt += 1;
        match fetch_rest(
            client,
            repo,
            url,
            &mut out,
            &mut hasher,
            &mut have,
            progress,
        )
        .await
        {
            Ok(()) => {}
            Err(FetchError::Fatal(e)) => return Err(e),
            Err(FetchError::Restart) => {
                out.set_len(0).map_err(HubError::io(&partial))?;
                hasher = Sha256::new();
                have = 0;
            }
            Err(FetchError::Cut(cause)) if attempt >= ATTEMPTS => {
                return Err(HubError::Interrupted {
                    file: file.path.clone(),
                    have,
                    size: file.size,
                    cause,
                });
            }
            Err(FetchError::Cut(cause)) => {
                tracing::warn!(file = %file.path, have, "download cut ({cause}); resuming");
            }
        }
        if have < file.size && attempt >= ATTEMPTS {
            return Err(HubError::Interrupted {
                file: file.path.clone(),
                have,
                size: file.size,
                cause: "the server sent less than the file".into(),
            });
        }
    }
    out.sync_all().map_err(HubError::io(&partial))?;
    drop(out);
    let digest = format!("{:x}", hasher.finalize());
    if let Some(expected) = &file.sha256
        && !digest.eq_ignore_ascii_case(expected)
    {
        std::fs::remove_file(&partial).map_err(HubError::io(&partial))?;
        return Err(HubError::Checksum {
            file: file.path.clone(),
            expected: expected.clone(),
            actual: digest,
        });
    }
    std::fs::rename(&partial, blob).map_err(HubError::io(blob))?;
    progress.finish(&file.path);
    Ok(())
}

enum FetchError {
    /// The body stopped early: resume.
    Cut(String),
    /// The server ignored the range and sends the whole file: start over.
    Restart,
    Fatal(HubError),
}

/// One GET from `have` on, appending what arrives.
async fn fetch_rest(
    client: &Client,
    repo: &str,
    url: &str,
    out: &mut std::fs::File,
    hasher: &mut Sha256,
    have: &mut u64,
    progress: &mut dyn Progress,
) -> Result<(), FetchError> {
    let response = match client.get_from(url, repo, *have, None).await {
        Ok(r) => r,
        Err(HubError::Network { cause, .. }) => return Err(FetchError::Cut(cause)),
        Err(e) => return Err(FetchError::Fatal(e)),
    };
    if *have > 0 && response.status() != reqwest::StatusCode::PARTIAL_CONTENT {
        return Err(FetchError::Restart);
    }
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| FetchError::Cut(e.to_string()))?;
        out.write_all(&chunk).map_err(|source| {
            FetchError::Fatal(HubError::Io {
                path: "(download)".into(),
                source,
            })
        })?;
        hasher.update(&chunk);
        *have += chunk.len() as u64;
        progress.advance(chunk.len() as u64);
    }
    Ok(())
}

fn hash_file(path: &Path, hasher: &mut Sha256) -> std::io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(()),
            n => hasher.update(&buf[..n]),
        }
    }
}

/// The first `len` bytes of `url` (the GGUF header of a candidate), read with one range
/// request; a server that ignores the range is read only as far as needed.
pub(super) async fn read_range(
    client: &Client,
    repo: &str,
    url: &str,
    start: u64,
    len: u64,
) -> Result<Vec<u8>, HubError> {
    let response = client
        .get_from(url, repo, start, Some(start + len - 1))
        .await?;
    let skip = if response.status() == reqwest::StatusCode::PARTIAL_CONTENT {
        0
    } else {
        start
    };
    let mut bytes = Vec::with_capacity(len as usize);
    let mut seen = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| HubError::network(url, &e))?;
        let from = skip.saturating_sub(seen).min(chunk.len() as u64) as usize;
        seen += chunk.len() as u64;
        let want = (len as usize - bytes.len()).min(chunk.len() - from);
        bytes.extend_from_slice(&chunk[from..from + want]);
        if bytes.len() as u64 == len {
            break;
        }
    }
    Ok(bytes)
}
