//! Errors in the shape of the protocol a route speaks. Everywhere but two route families an
//! error is llama-server's JSON; Anthropic's Messages routes (`/v1/messages…`) answer in
//! Anthropic's shape and Ollama's (`/api/…`) as `{"error": "…"}`, which their clients read.
//! Every [`ApiError`] response carries the error itself, so this one middleware, between the
//! edge's checks and the routes, rewrites them all, whoever raised them: the API key and
//! readiness checks, a bad body, an unknown path under the family's prefix, the handler.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::AppState;
use super::edge::RequestCtx;
use super::error::ApiError;
use super::{anthropic, ollama};

/// How a protocol writes an error: its status and body, given the request's id.
type Shape = fn(&ApiError, Option<&str>) -> (StatusCode, Value);

/// The error shape of the protocol served at `path` (after `--api-prefix`), unless it is
/// llama-server's.
fn shape(path: &str) -> Option<Shape> {
    if anthropic::is_messages_path(path) {
        Some(anthropic::error_response)
    } else if ollama::is_api_path(path) {
        Some(ollama::error_response)
    } else {
        None
    }
}

/// Rewrites error responses on the routes of a protocol with its own error shape.
pub async fn protocol_errors(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    in_protocol_shape(&state.config.api_prefix, request, next).await
}

/// [`protocol_errors`] for a server whose routes are under `prefix`.
pub(crate) async fn in_protocol_shape(prefix: &str, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let Some(shape) = shape(path.strip_prefix(prefix).unwrap_or(path)) else {
        return next.run(request).await;
    };
    let request_id = request
        .extensions()
        .get::<RequestCtx>()
        .map(|ctx| ctx.id.to_string());
    let response = next.run(request).await;
    let Some(error) = response.extensions().get::<ApiError>().cloned() else {
        return response;
    };
    let (parts, _) = response.into_parts();
    let (status, body) = shape(&error, request_id.as_deref());
    let mut rewritten = (status, Json(body)).into_response();
    // Keep what the edge added (CORS, Retry-After); the body's type and length are new.
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name, value.clone());
        }
    }
    rewritten
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_has_its_shape() {
        let error = ApiError::invalid("bad");
        let of = |path: &str| shape(path).map(|f| f(&error, Some("abc")).1);
        assert_eq!(
            of("/v1/messages").unwrap()["error"]["type"],
            "invalid_request_error"
        );
        assert_eq!(
            of("/v1/messages/count_tokens").unwrap()["request_id"],
            "abc"
        );
        assert_eq!(
            of("/api/chat").unwrap(),
            serde_json::json!({ "error": "bad" })
        );
        assert_eq!(
            of("/api/nope").unwrap(),
            serde_json::json!({ "error": "bad" })
        );
        for path in [
            "/v1/messagesx",
            "/v1/chat/completions",
            "/apix",
            "/api",
            "/",
        ] {
            assert!(of(path).is_none(), "{path}");
        }
    }
}
