//! The chat page served at `/` (and `/index.html`): one HTML file with its script inline,
//! compiled into the binary, that chats through this server's `/v1/chat/completions` and keeps
//! its conversations in the browser. `--no-ui` turns it off; `--path DIR` serves a folder there
//! instead, as llama-server does.

use axum::http::header;
use axum::response::IntoResponse;

/// The page.
const INDEX: &str = include_str!("ui/index.html");

/// `GET /`.
pub async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
}
