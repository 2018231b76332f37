//! Quantizing GGUF models through llama.cpp's quantizer, one file or a ladder of quants.
