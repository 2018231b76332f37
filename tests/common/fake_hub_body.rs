//! The fake Hub's file bytes (tests/common/fake_hub.rs): a 200, 206 or 416 answer for a
//! `Range` header, and the response body that counts what it sends and applies the faults (a
//! body cut after k bytes, after a stall; a flipped byte).

use super::{HubFile, Shared};
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::Response;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// What the fake hub serves of a body per poll (hyper buffers a few before flushing).
const CHUNK: usize = 64 << 10;

/// How long a cut connection stalls before it breaks (time for the bytes before the cut to
/// reach the client; the client sees no difference from a stall on a real network).
const STALL: std::time::Duration = std::time::Duration::from_millis(250);

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
pub(super) fn serve_bytes(
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
