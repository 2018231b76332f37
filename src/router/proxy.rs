//! Forwarding one request to a model's server and its answer back, streamed as it comes (SSE
//! and NDJSON streams pass through chunk by chunk). The router's request id goes along in
//! `X-Request-Id`, so the model's server answers and logs under the same id; the router's key
//! replaces the client's.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use futures::StreamExt;

use super::instance::Instance;
use crate::server::ApiError;

/// Headers that belong to one connection, not to the request or answer they travel with.
const HOP_BY_HOP: [header::HeaderName; 6] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::HOST,
    header::UPGRADE,
    header::TE,
    header::TRAILER,
];

/// Sends the request to `instance` and streams its answer back; the request counts as running
/// on the instance until the answer's last byte is sent or the client leaves.
pub async fn forward(
    client: &reqwest::Client,
    instance: &Arc<Instance>,
    now: u64,
    key: &str,
    request_id: Option<&str>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let running = instance.begin(now);
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("http://127.0.0.1:{}{path}", instance.port);
    let mut headers = without_hop_by_hop(parts.headers);
    headers.remove(header::AUTHORIZATION);
    headers.remove("x-api-key");
    headers.remove(header::CONTENT_LENGTH);
    if let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {key}")) {
        headers.insert(header::AUTHORIZATION, bearer);
    }
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        headers.insert("x-request-id", id);
    }
    let answer = client
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            ApiError::server(format!(
                "the server of model '{}' did not answer: {e}",
                instance.id
            ))
        })?;
    let status = answer.status();
    let headers = without_hop_by_hop(answer.headers().clone());
    let chunks = answer.bytes_stream().map(move |chunk| {
        let _ = &running;
        chunk.map_err(std::io::Error::other)
    });
    let mut response = Response::new(Body::from_stream(chunks));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

fn without_hop_by_hop(mut headers: HeaderMap) -> HeaderMap {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers
}
