//! The one error type of the HTTP edge. Every failure a client can see becomes llama-server's
//! error JSON: `{"error": {"code": 400, "message": "…", "type": "invalid_request_error"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// llama-server's error types, each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    InvalidRequest,
    Authentication,
    NotFound,
    Server,
    NotSupported,
    Unavailable,
    ExceedContextSize,
    /// A body over the server's limit (HTTP 413; llama-server answers it with no body at all).
    TooLarge,
}

impl ErrorType {
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest | Self::ExceedContextSize => StatusCode::BAD_REQUEST,
            Self::Authentication => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Server => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NotSupported => StatusCode::NOT_IMPLEMENTED,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::InvalidRequest | Self::TooLarge => "invalid_request_error",
            Self::Authentication => "authentication_error",
            Self::NotFound => "not_found_error",
            Self::Server => "server_error",
            Self::NotSupported => "not_supported_error",
            Self::Unavailable => "unavailable_error",
            Self::ExceedContextSize => "exceed_context_size_error",
        }
    }
}

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorType,
    pub message: String,
    /// For `exceed_context_size_error`: (n_prompt_tokens, n_ctx).
    pub context: Option<(usize, u32)>,
    /// Seconds a client should wait before retrying (503 when the queue is full).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            context: None,
            retry_after: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorType::InvalidRequest, message)
    }

    pub fn server(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Server, message)
    }

    pub fn exceed_context(n_prompt_tokens: usize, n_ctx: u32) -> Self {
        Self {
            context: Some((n_prompt_tokens, n_ctx)),
            ..Self::new(
                ErrorType::ExceedContextSize,
                format!(
                    "request ({n_prompt_tokens} tokens) exceeds the available context size ({n_ctx} tokens), try increasing it"
                ),
            )
        }
    }

    /// The `error` object (also sent inside a stream when generation fails mid-way).
    pub fn body(&self) -> serde_json::Value {
        let mut error = json!({
            "code": self.kind.status().as_u16(),
            "message": self.message,
            "type": self.kind.name(),
        });
        if let Some((n_prompt_tokens, n_ctx)) = self.context {
            error["n_prompt_tokens"] = n_prompt_tokens.into();
            error["n_ctx"] = n_ctx.into();
        }
        error
    }
}

impl IntoResponse for ApiError {
    /// The error JSON; the error is logged (inside the request's span, so with its id): a
    /// server error as a warning, the client's mistakes and "Loading model" as information.
    fn into_response(self) -> Response {
        let status = self.kind.status().as_u16();
        if self.kind == ErrorType::Server {
            tracing::warn!(status, "{}: {}", self.kind.name(), self.message);
        } else {
            tracing::info!(status, "{}: {}", self.kind.name(), self.message);
        }
        self.unlogged_response()
    }
}

impl ApiError {
    /// The error JSON, not logged (for the routes clients poll, whose answers llama-server
    /// leaves out of its log).
    pub fn unlogged_response(self) -> Response {
        let mut response =
            (self.kind.status(), Json(json!({ "error": self.body() }))).into_response();
        // The error itself rides along, for a protocol that writes errors its own way
        // (Anthropic's routes).
        response.extensions_mut().insert(self.clone());
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
