//! Helpers for the gguf/plan/quantize tests: the demo model's path and tiny GGUF files made with
//! our writer.

#![allow(dead_code)]

use gguf_serve::gguf::{GgufWriter, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The demo model (Gemma 3 270M Q4_K_M), fetched by `scripts/fetch-demo-model.sh` if needed.
pub fn demo_model() -> PathBuf {
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/fetch-demo-model.sh"
        ))
        .output()
        .expect("run scripts/fetch-demo-model.sh");
    assert!(out.status.success(), "fetch-demo-model.sh failed: {out:?}");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A tiny llama-architecture file: `n_layer` layers of F32 tensors, a 4-token vocabulary.
pub fn write_tiny_llama(path: &Path, n_layer: u32) {
    let n_embd = 32u64;
    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::String("llama".into()))
        .kv("general.file_type", Value::U32(0))
        .kv("llama.block_count", Value::U32(n_layer))
        .kv("llama.context_length", Value::U32(256))
        .kv("llama.embedding_length", Value::U32(n_embd as u32))
        .kv("llama.attention.head_count", Value::U32(4))
        .kv("llama.attention.head_count_kv", Value::U32(2))
        .kv_array(
            "tokenizer.ggml.tokens",
            ["<s>", "</s>", "a", "b"]
                .iter()
                .map(|t| Value::String((*t).into()))
                .collect(),
        );
    w.tensor_f32(
        "token_embd.weight",
        &[n_embd, 4],
        &vec![0.0; 4 * n_embd as usize],
    );
    for il in 0..n_layer {
        let sq = vec![0.0; (n_embd * n_embd) as usize];
        w.tensor_f32(&format!("blk.{il}.attn_q.weight"), &[n_embd, n_embd], &sq);
        w.tensor_f16(&format!("blk.{il}.ffn_up.weight"), &[n_embd, n_embd], &sq);
    }
    w.tensor_f32("output_norm.weight", &[n_embd], &vec![1.0; n_embd as usize]);
    w.write(path).unwrap();
}
