//! The HTTP server: llama-server's native and OpenAI-compatible routes over axum.
