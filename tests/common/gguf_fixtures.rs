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

/// Deterministic small weights in [-0.05, 0.05).
fn weights(n: u64, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
        })
        .collect()
}

/// A llama-architecture model llama.cpp can load and run: 2 layers, n_embd 64, 4 heads (2 KV
/// heads), an 8-token SentencePiece vocabulary, F16 matrices and F32 norms; tied embeddings.
pub fn write_loadable_llama(path: &Path) {
    let (n_embd, n_ff, n_vocab, n_layer) = (64u64, 128u64, 8u64, 2u32);
    let n_embd_kv = 32u64; // 2 KV heads of 16
    let tokens = ["<unk>", "<s>", "</s>", "▁a", "▁b", "▁c", "▁d", "▁e"];
    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::String("llama".into()))
        .kv("general.name", Value::String("tiny".into()))
        .kv("general.file_type", Value::U32(1))
        .kv("llama.block_count", Value::U32(n_layer))
        .kv("llama.context_length", Value::U32(512))
        .kv("llama.embedding_length", Value::U32(n_embd as u32))
        .kv("llama.feed_forward_length", Value::U32(n_ff as u32))
        .kv("llama.attention.head_count", Value::U32(4))
        .kv("llama.attention.head_count_kv", Value::U32(2))
        .kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5))
        .kv("llama.rope.dimension_count", Value::U32(16))
        .kv("tokenizer.ggml.model", Value::String("llama".into()))
        .kv_array(
            "tokenizer.ggml.tokens",
            tokens.iter().map(|t| Value::String((*t).into())).collect(),
        )
        .kv_array(
            "tokenizer.ggml.scores",
            (0..n_vocab).map(|i| Value::F32(-(i as f32))).collect(),
        )
        .kv_array(
            "tokenizer.ggml.token_type",
            [2, 3, 3, 1, 1, 1, 1, 1]
                .iter()
                .map(|t| Value::I32(*t))
                .collect(),
        );
    w.tensor_f16(
        "token_embd.weight",
        &[n_embd, n_vocab],
        &weights(n_embd * n_vocab, 1),
    );
    w.tensor_f32("output_norm.weight", &[n_embd], &vec![1.0; n_embd as usize]);
    for il in 0..n_layer {
        let seed = 100 * u64::from(il + 1);
        let blk = |name: &str| format!("blk.{il}.{name}.weight");
        w.tensor_f32(&blk("attn_norm"), &[n_embd], &vec![1.0; n_embd as usize]);
        w.tensor_f32(&blk("ffn_norm"), &[n_embd], &vec![1.0; n_embd as usize]);
        let mats = [
            ("attn_q", [n_embd, n_embd]),
            ("attn_k", [n_embd, n_embd_kv]),
            ("attn_v", [n_embd, n_embd_kv]),
            ("attn_output", [n_embd, n_embd]),
            ("ffn_gate", [n_embd, n_ff]),
            ("ffn_up", [n_embd, n_ff]),
            ("ffn_down", [n_ff, n_embd]),
        ];
        for (i, (name, shape)) in mats.iter().enumerate() {
            let data = weights(shape[0] * shape[1], seed + i as u64);
            w.tensor_f16(&blk(name), shape, &data);
        }
    }
    w.write(path).unwrap();
}
