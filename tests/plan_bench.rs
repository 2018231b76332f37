//! Benchmark, not a timed test (run with `cargo test --release --test plan_bench -- --ignored
//! --nocapture`): `gguf-serve plan` on a synthetic 12.7 GiB model (a sparse file: 56 layers of
//! Q4_K, a 131072-token vocabulary) should answer in well under 200 ms, since it reads only the
//! header and seeks past the vocabulary.

use gguf_serve::gguf::{GgufWriter, Value};
use std::process::Command;
use std::time::Instant;

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn plan_on_a_big_synthetic_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synthetic-22b-Q4_K_M.gguf");
    let (n_layer, n_embd, n_kv, n_ff, n_vocab) = (56u32, 6144u64, 1024u64, 16384u64, 131072u64);
    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::String("llama".into()))
        .kv("general.file_type", Value::U32(15))
        .kv("llama.block_count", Value::U32(n_layer))
        .kv("llama.context_length", Value::U32(131072))
        .kv("llama.embedding_length", Value::U32(n_embd as u32))
        .kv("llama.feed_forward_length", Value::U32(n_ff as u32))
        .kv("llama.attention.head_count", Value::U32(48))
        .kv("llama.attention.head_count_kv", Value::U32(8))
        .kv_array(
            "tokenizer.ggml.tokens",
            (0..n_vocab)
                .map(|i| Value::String(format!("tok{i}")))
                .collect(),
        );
    let (q4_k, q6_k, f32) = (12, 14, 0);
    w.tensor_zeros("token_embd.weight", q6_k, &[n_embd, n_vocab]);
    w.tensor_zeros("output.weight", q6_k, &[n_embd, n_vocab]);
    w.tensor_zeros("output_norm.weight", f32, &[n_embd]);
    for il in 0..n_layer {
        let t = |name: &str| format!("blk.{il}.{name}.weight");
        w.tensor_zeros(&t("attn_norm"), f32, &[n_embd]);
        w.tensor_zeros(&t("ffn_norm"), f32, &[n_embd]);
        w.tensor_zeros(&t("attn_q"), q4_k, &[n_embd, n_embd]);
        w.tensor_zeros(&t("attn_k"), q4_k, &[n_embd, n_kv]);
        w.tensor_zeros(&t("attn_v"), q4_k, &[n_embd, n_kv]);
        w.tensor_zeros(&t("attn_output"), q4_k, &[n_embd, n_embd]);
        w.tensor_zeros(&t("ffn_gate"), q4_k, &[n_embd, n_ff]);
        w.tensor_zeros(&t("ffn_up"), q4_k, &[n_embd, n_ff]);
        w.tensor_zeros(&t("ffn_down"), q4_k, &[n_ff, n_embd]);
    }
    w.write(&path).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    eprintln!(
        "synthetic model: {:.2} GiB",
        size as f64 / (1u64 << 30) as f64
    );

    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_gguf-serve"))
            .args([
                "plan",
                "-m",
                path.to_str().unwrap(),
                "--vram",
                "16GiB",
                "-c",
                "32768",
                "--json",
            ])
            .output()
            .unwrap();
        times.push(start.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    times.sort();
    eprintln!(
        "gguf-serve plan: best {:?}, median {:?}",
        times[0], times[2]
    );
}
