//! A tiny BERT-style encoder written with our GGUF writer, for the embedding and rerank
//! tests: the layout llama.cpp's `bert` architecture loads (non-causal, no KV cache, the whole
//! input read in one ubatch), a WordPiece vocabulary, random but fixed F32 weights, and
//! optionally a classification head so that rank pooling gives a score.

#![allow(dead_code)]

use gguf_serve::gguf::{GgufWriter, Value};
use std::path::Path;

/// The vocabulary: BERT's five special tokens, then words (phantom-space form) and a suffix.
pub const BERT_TOKENS: [&str; 14] = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "▁a", "▁b", "▁c", "▁d", "▁e", "▁hello", "▁world",
    "▁cat", "s",
];

/// Deterministic small weights in [-0.5, 0.5) * scale.
fn weights(n: u64, seed: u64, scale: f32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
        })
        .collect()
}

/// Writes the tiny BERT: 2 layers, n_embd 32, 2 heads, n_ff 64, 64 positions, the model's
/// own pooling `pooling` (llama.cpp's value: 1 mean, 2 cls, 4 rank), and with `rank_head` the
/// classifier (`cls`, `cls_out`) that rank pooling reads one score from.
pub fn write_tiny_bert(path: &Path, pooling: u32, rank_head: bool) {
    let (n_embd, n_ff, n_layer, n_pos) = (32u64, 64u64, 2u32, 64u64);
    let n_vocab = BERT_TOKENS.len() as u64;
    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::String("bert".into()))
        .kv("general.name", Value::String("tiny bert".into()))
        .kv("general.file_type", Value::U32(0))
        .kv("bert.block_count", Value::U32(n_layer))
        .kv("bert.context_length", Value::U32(n_pos as u32))
        .kv("bert.embedding_length", Value::U32(n_embd as u32))
        .kv("bert.feed_forward_length", Value::U32(n_ff as u32))
        .kv("bert.attention.head_count", Value::U32(2))
        .kv("bert.attention.layer_norm_epsilon", Value::F32(1e-12))
        .kv("bert.attention.causal", Value::Bool(false))
        .kv("bert.pooling_type", Value::U32(pooling))
        .kv("tokenizer.ggml.token_type_count", Value::U32(2))
        .kv("tokenizer.ggml.model", Value::String("bert".into()))
        .kv_array(
            "tokenizer.ggml.tokens",
            BERT_TOKENS
                .iter()
                .map(|t| Value::String((*t).into()))
                .collect(),
        )
        .kv_array(
            "tokenizer.ggml.token_type",
            (0..n_vocab)
                .map(|i| Value::I32(if i < 5 { 3 } else { 1 }))
                .collect(),
        )
        .kv("tokenizer.ggml.padding_token_id", Value::U32(0))
        .kv("tokenizer.ggml.unknown_token_id", Value::U32(1))
        .kv("tokenizer.ggml.bos_token_id", Value::U32(2))
        .kv("tokenizer.ggml.seperator_token_id", Value::U32(3))
        .kv("tokenizer.ggml.mask_token_id", Value::U32(4))
        .kv("tokenizer.ggml.add_bos_token", Value::Bool(true))
        .kv("tokenizer.ggml.add_sep_token", Value::Bool(true));
    let ones = vec![1.0; n_embd as usize];
    let zeros = |n: u64| vec![0.0; n as usize];
    w.tensor_f32(
        "token_embd.weight",
        &[n_embd, n_vocab],
        &weights(n_embd * n_vocab, 1, 1.0),
    );
    w.tensor_f32(
        "position_embd.weight",
        &[n_embd, n_pos],
        &weights(n_embd * n_pos, 2, 0.1),
    );
    w.tensor_f32(
        "token_types.weight",
        &[n_embd, 2],
        &weights(n_embd * 2, 3, 0.1),
    );
    w.tensor_f32("token_embd_norm.weight", &[n_embd], &ones);
    w.tensor_f32("token_embd_norm.bias", &[n_embd], &zeros(n_embd));
    for il in 0..n_layer {
        let seed = 100 * u64::from(il + 1);
        let t = |name: &str| format!("blk.{il}.{name}");
        let square = [n_embd, n_embd];
        for (i, name) in ["attn_q", "attn_k", "attn_v", "attn_output"]
            .iter()
            .enumerate()
        {
            let data = weights(n_embd * n_embd, seed + i as u64, 0.4);
            w.tensor_f32(&t(&format!("{name}.weight")), &square, &data);
            w.tensor_f32(&t(&format!("{name}.bias")), &[n_embd], &zeros(n_embd));
        }
        w.tensor_f32(&t("attn_output_norm.weight"), &[n_embd], &ones);
        w.tensor_f32(&t("attn_output_norm.bias"), &[n_embd], &zeros(n_embd));
        let up = weights(n_embd * n_ff, seed + 10, 0.4);
        w.tensor_f32(&t("ffn_up.weight"), &[n_embd, n_ff], &up);
        w.tensor_f32(&t("ffn_up.bias"), &[n_ff], &zeros(n_ff));
        let down = weights(n_ff * n_embd, seed + 11, 0.4);
        w.tensor_f32(&t("ffn_down.weight"), &[n_ff, n_embd], &down);
        w.tensor_f32(&t("ffn_down.bias"), &[n_embd], &zeros(n_embd));
        w.tensor_f32(&t("layer_output_norm.weight"), &[n_embd], &ones);
        w.tensor_f32(&t("layer_output_norm.bias"), &[n_embd], &zeros(n_embd));
    }
    if rank_head {
        let dense = weights(n_embd * n_embd, 7, 0.4);
        w.tensor_f32("cls.weight", &[n_embd, n_embd], &dense);
        w.tensor_f32("cls.bias", &[n_embd], &zeros(n_embd));
        w.tensor_f32("cls.output.weight", &[n_embd, 1], &weights(n_embd, 8, 1.0));
        w.tensor_f32("cls.output.bias", &[1], &[0.0]);
    }
    w.write(path).unwrap();
}
