//! The HTTP edge before any route: every request gets an id and a `tracing` span (the id is the
//! one clients see in `chatcmpl-…` and the `X-Request-Id` header), one access line when its
//! response has been sent (route, status, prompt and generated tokens, time), and llama-server's
//! pre-routing checks in its order: CORS headers and preflights, then readiness (503 while
//! loading), then the API key. axum's own rejections (unknown route, wrong method, body too
//! large) come out as llama-server's error JSON.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use tracing::Instrument;

use super::error::{ApiError, ErrorType};
use super::{AppState, ServerConfig};

/// What the edge knows of a request, for its handler.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// 32 letters and digits: `chatcmpl-{id}` in OpenAI answers, `X-Request-Id` everywhere.
    pub id: Arc<str>,
    pub span: tracing::Span,
    pub usage: Arc<Usage>,
}

/// Tokens a request used, for its access line.
#[derive(Debug, Default)]
pub struct Usage {
    prompt: AtomicU64,
    predicted: AtomicU64,
}

impl Usage {
    pub fn add(&self, prompt: usize, predicted: usize) {
        self.prompt.fetch_add(prompt as u64, Ordering::Relaxed);
        self.predicted
            .fetch_add(predicted as u64, Ordering::Relaxed);
    }
}

/// A random id of 32 letters and digits, as llama-server's `chatcmpl-` suffixes.
pub(crate) fn random_id() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// Whether a request id sent in `X-Request-Id` (by a proxy such as the router, whose id the
/// model's server then answers and logs under) is one to adopt: 1 to 64 letters, digits, `-`
/// and `_`.
fn well_formed_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Gives the request its id (the one it brings in `X-Request-Id`, if well formed) and span, runs it inside the span, and logs its access line when
/// the response body has been sent (or dropped, for a client that left).
pub async fn observe(mut request: Request, next: Next) -> Response {
    let id: Arc<str> = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| well_formed_id(id))
        .map_or_else(random_id, str::to_owned)
        .into();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let span = tracing::info_span!("request", id = %id);
    let usage = Arc::new(Usage::default());
    request.extensions_mut().insert(RequestCtx {
        id: Arc::clone(&id),
        span: span.clone(),
        usage: Arc::clone(&usage),
    });
    let start = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let (mut parts, body) = response.into_parts();
    if let Ok(value) = HeaderValue::from_str(&id) {
        parts.headers.insert("x-request-id", value);
    }
    let access = AccessLine {
        span,
        method,
        path,
        status,
        start,
        usage,
    };
    Response::from_parts(
        parts,
        Body::new(LoggedBody {
            inner: body,
            access: Some(access),
        }),
    )
}

/// Routes clients and routers poll, whose access lines llama-server leaves out of its log
/// (here they are debug lines).
fn polled(path: &str) -> bool {
    matches!(
        path,
        "/health" | "/v1/health" | "/models" | "/v1/models" | "/props" | "/metrics"
    )
}

/// The access line of one request, written once its body is done.
struct AccessLine {
    span: tracing::Span,
    method: Method,
    path: String,
    status: u16,
    start: Instant,
    usage: Arc<Usage>,
}

impl AccessLine {
    fn write(self, complete: bool) {
        let ms = self.start.elapsed().as_secs_f64() * 1e3;
        let prompt = self.usage.prompt.load(Ordering::Relaxed);
        let predicted = self.usage.predicted.load(Ordering::Relaxed);
        self.span.in_scope(|| {
            if polled(&self.path) {
                tracing::debug!(method = %self.method, path = %self.path, status = self.status, "access");
                return;
            }
            tracing::info!(
                method = %self.method,
                path = %self.path,
                status = self.status,
                prompt_tokens = prompt,
                predicted_tokens = predicted,
                ms = format!("{ms:.1}"),
                complete,
                "access"
            );
        });
    }
}

/// A response body that writes the access line when it ends.
struct LoggedBody {
    inner: Body,
    access: Option<AccessLine>,
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled
            && let Some(access) = self.access.take()
        {
            access.write(true);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        // A body dropped before its end: the client went away (or it was empty and never
        // polled, which counts as complete).
        if let Some(access) = self.access.take() {
            let complete = http_body::Body::is_end_stream(&self.inner);
            access.write(complete);
        }
    }
}

/// CORS, as llama-server's flags configure it (`--cors-*`).
#[derive(Debug, Clone)]
pub struct Cors {
    /// `*`, `localhost`, or a list sent as it is.
    pub origins: String,
    pub methods: String,
    pub headers: String,
    pub credentials: bool,
}

impl Default for Cors {
    fn default() -> Self {
        Self {
            origins: "*".into(),
            methods: "GET, POST, DELETE, OPTIONS".into(),
            headers: "*".into(),
            credentials: true,
        }
    }
}

impl Cors {
    /// `Access-Control-Allow-Origin` for a request with these headers, if any.
    fn allow_origin(&self, headers: &HeaderMap) -> Option<String> {
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        match self.origins.as_str() {
            // Any origin, with credentials: echo it back (llama-server's special case).
            "*" if self.credentials => Some(origin.to_string()),
            "localhost" => is_localhost(origin).then(|| origin.to_string()),
            other => Some(other.to_string()),
        }
    }
}

fn is_localhost(origin: &str) -> bool {
    let Some((_, rest)) = origin.split_once("://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

/// What the pre-routing checks read: CORS, the API keys and the API prefix.
pub(crate) struct Gate<'a> {
    cors: &'a Cors,
    api_keys: &'a [String],
    api_prefix: &'a str,
}

impl<'a> Gate<'a> {
    pub(crate) fn of(config: &'a ServerConfig) -> Gate<'a> {
        Gate {
            cors: &config.cors,
            api_keys: &config.api_keys,
            api_prefix: &config.api_prefix,
        }
    }
}

/// llama-server's pre-routing checks: CORS (a preflight is answered here, before any key is
/// asked for), then readiness, then the API key (not for `/health`).
pub async fn guard(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let unavailable = if !state.is_ready() {
        Some(ApiError::new(ErrorType::Unavailable, "Loading model"))
    } else {
        // An RPC worker was lost: the server stays up to say why, and serves nothing more.
        crate::engine::device_lost().map(|reason| ApiError::new(ErrorType::Unavailable, reason))
    };
    admit(Gate::of(&state.config), unavailable, request, next).await
}

/// The checks of [`guard`] for any server: `unavailable` answers every request that is not a
/// preflight.
pub(crate) async fn admit(
    gate: Gate<'_>,
    unavailable: Option<ApiError>,
    request: Request,
    next: Next,
) -> Response {
    let cors = gate.cors;
    let allow_origin = cors.allow_origin(request.headers());
    let mut response = if request.method() == Method::OPTIONS {
        let mut r = ([(header::CONTENT_TYPE, "text/html")], "").into_response();
        let h = r.headers_mut();
        let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static(if cors.credentials { "true" } else { "false" }),
        );
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, value(&cors.methods));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, value(&cors.headers));
        r
    } else if let Some(error) = unavailable {
        if polled(
            request
                .uri()
                .path()
                .strip_prefix(gate.api_prefix)
                .unwrap_or_default(),
        ) {
            error.unlogged_response()
        } else {
            error.into_response()
        }
    } else if !authorized(&gate, &request) {
        tracing::warn!("unauthorized: Invalid API Key");
        ApiError::new(ErrorType::Authentication, "Invalid API Key").into_response()
    } else {
        next.run(request).await
    };
    if let Some(origin) = allow_origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
        response
            .headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    response
}

/// Whether the request carries one of the API keys (`Authorization: Bearer KEY`, or
/// `X-Api-Key` when Authorization is empty), or needs none.
fn authorized(gate: &Gate, request: &Request) -> bool {
    let keys = gate.api_keys;
    if keys.is_empty() {
        return true;
    }
    let path = request.uri().path();
    let path = path.strip_prefix(gate.api_prefix).unwrap_or(path);
    if matches!(path, "/health" | "/v1/health" | "/" | "/index.html") {
        return true;
    }
    let header = |name: header::HeaderName| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
    };
    let sent = header(header::AUTHORIZATION)
        .or_else(|| header(header::HeaderName::from_static("x-api-key")))
        .unwrap_or_default();
    let sent = sent.strip_prefix("Bearer ").unwrap_or(sent);
    keys.iter()
        .any(|k| constant_time_eq(k.as_bytes(), sent.as_bytes()))
}

/// Compares two keys in time that depends only on their lengths, not on where they differ
/// (`subtle`, which keeps the optimizer from turning the comparison into an early exit).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// A request body as raw bytes; axum's rejection (over the size limit, a cut body) becomes
/// llama-server's error JSON.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // A declared length over the limit is refused before a byte of the body is read, as
        // llama-server's HTTP library does (a client still sending would otherwise wait).
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > super::BODY_LIMIT) {
            return Err(ApiError::new(
                ErrorType::TooLarge,
                format!(
                    "the request body is over the limit of {} bytes",
                    super::BODY_LIMIT
                ),
            ));
        }
        Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                let status = rejection.status();
                let kind = if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ErrorType::TooLarge
                } else {
                    ErrorType::InvalidRequest
                };
                ApiError::new(kind, rejection.body_text())
            })
    }
}

/// An unknown route, or a known one with another method: llama-server answers both 404.
/// A handler that panicked: the request gets a 500 in llama-server's error JSON (the panic
/// message is in the log and the answer), and the server goes on (tower-http's
/// `CatchPanicLayer` calls this).
pub fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!("a request handler panicked: {what}");
    ApiError::server(format!("the request handler panicked: {what}")).into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::new(ErrorType::NotFound, "File Not Found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_origins() {
        for origin in [
            "http://localhost:3000",
            "https://127.0.0.1",
            "http://[::1]:8080",
        ] {
            assert!(is_localhost(origin), "{origin}");
        }
        for origin in [
            "http://example.com",
            "http://localhost.evil.com",
            "",
            "localhost",
        ] {
            assert!(!is_localhost(origin), "{origin}");
        }
    }

    #[test]
    fn keys_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }

    #[test]
    fn a_request_id_is_adopted_only_when_well_formed() {
        for id in [
            "abc",
            "QGvcYN6VLiB3dYKtxgjqlg1RKID1KsFP",
            "req_1-2",
            &"a".repeat(64),
        ] {
            assert!(well_formed_id(id), "{id}");
        }
        for id in ["", "a b", "id\nforged log line", "ü", &"a".repeat(65)] {
            assert!(!well_formed_id(id), "{id:?}");
        }
    }
}
