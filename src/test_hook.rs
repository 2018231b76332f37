//! A way for tests to make one request panic, so that they can check that a panic ends only
//! that request (a 500 error JSON, or an error event in its stream) and that the server, the
//! engine thread and the other slots go on. Off unless the process starts with
//! `GGUF_SERVE_TEST_PANIC=<marker>` in its environment: only whoever runs the server can turn it
//! on, never a client. Then a `/tokenize` whose `content` holds the marker panics in its
//! handler, and a generation whose prompt holds it panics on the engine thread after its first
//! token. Read once; when the variable is absent, each check is one load of a `None`.

use std::sync::OnceLock;

/// The environment variable that turns the hook on.
pub const ENV: &str = "GGUF_SERVE_TEST_PANIC";

/// The marker, if the hook is on (an empty value leaves it off).
pub fn marker() -> Option<&'static str> {
    static MARKER: OnceLock<Option<String>> = OnceLock::new();
    MARKER
        .get_or_init(|| {
            let marker = std::env::var(ENV).ok().filter(|m| !m.is_empty());
            if let Some(m) = &marker {
                tracing::warn!("{ENV}={m:?}: requests holding this text will panic (a test hook)");
            }
            marker
        })
        .as_deref()
}

/// Panics if the hook is on and `text` holds its marker.
pub fn panic_if_marked(text: &str, what: &str) {
    if let Some(m) = marker()
        && text.contains(m)
    {
        panic!("{ENV}: {what} holds the marker {m:?}");
    }
}
