//! The engine: one thread owns the llama.cpp model context and decodes every active slot together.
