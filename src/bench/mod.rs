//! `gguf-serve bench`: load generator and statistics for llama.cpp-style and OpenAI-compatible servers.
