//! GGUF header inspection: metadata and tensor layout of a model file, read without loading weights.
