//! Errors on the Messages routes in Anthropic's shape,
//! `{"type":"error","error":{"type":"invalid_request_error","message":"…"},"request_id":"…"}`,
//! which Anthropic's clients read (llama-server sends its own error JSON there). The edge's
//! one middleware for protocols with their own error shape (`dialect.rs`) rewrites every error
//! on these paths, whoever raised it: the API key and readiness checks, a bad body, an unknown
//! path under `/v1/messages`, the handler.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::super::error::{ApiError, ErrorType};

/// Anthropic's name and status for an error (its statuses, except 503 for a server that is
/// loading or full, which llama-server's clients retry, where Anthropic says 529).
fn kind(error: &ApiError) -> (&'static str, StatusCode) {
    let status = error.kind.status();
    let name = match error.kind {
        ErrorType::InvalidRequest | ErrorType::ExceedContextSize => "invalid_request_error",
        ErrorType::Authentication => "authentication_error",
        ErrorType::NotFound => "not_found_error",
        ErrorType::TooLarge => "request_too_large",
        ErrorType::Unavailable => "overloaded_error",
        ErrorType::Server | ErrorType::NotSupported => "api_error",
    };
    (name, status)
}

/// The error's JSON in Anthropic's shape.
pub fn error_json(error: &ApiError, request_id: Option<&str>) -> Value {
    let mut body = json!({
        "type": "error",
        "error": { "type": kind(error).0, "message": error.message },
    });
    if let Some(id) = request_id {
        body["request_id"] = id.into();
    }
    body
}

/// Whether a path (after `--api-prefix`) is one of the Messages routes or under them.
pub fn is_messages_path(path: &str) -> bool {
    path == "/v1/messages" || path.starts_with("/v1/messages/")
}

/// The status and body of an error on the Messages routes.
pub fn error_response(error: &ApiError, request_id: Option<&str>) -> (StatusCode, Value) {
    (kind(error).1, error_json(error, request_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_statuses() {
        let cases = [
            (ApiError::invalid("bad"), "invalid_request_error", 400),
            (
                ApiError::new(ErrorType::Authentication, "Invalid API Key"),
                "authentication_error",
                401,
            ),
            (
                ApiError::new(ErrorType::NotFound, "File Not Found"),
                "not_found_error",
                404,
            ),
            (
                ApiError::new(ErrorType::Unavailable, "Loading model"),
                "overloaded_error",
                503,
            ),
            (ApiError::server("boom"), "api_error", 500),
            (
                ApiError::exceed_context(10, 4),
                "invalid_request_error",
                400,
            ),
        ];
        for (error, name, status) in cases {
            assert_eq!(kind(&error), (name, StatusCode::from_u16(status).unwrap()));
            let body = error_json(&error, Some("abc"));
            assert_eq!(body["type"], "error");
            assert_eq!(body["error"]["type"], name);
            assert_eq!(body["error"]["message"], error.message.as_str());
            assert_eq!(body["request_id"], "abc");
        }
    }

    #[test]
    fn messages_paths() {
        assert!(is_messages_path("/v1/messages"));
        assert!(is_messages_path("/v1/messages/count_tokens"));
        assert!(is_messages_path("/v1/messages/nope"));
        assert!(!is_messages_path("/v1/messagesx"));
        assert!(!is_messages_path("/v1/chat/completions"));
    }
}
