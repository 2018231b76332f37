//! The GGUF reader against files made by our writer and the demo model; truncated and foreign
//! files fail with a message naming the file, never a panic.

#[path = "common/gguf_fixtures.rs"]
mod gguf_fixtures;

use gguf_serve::gguf::{GgufError, GgufFile, ModelSummary, Value};

#[test]
fn writer_output_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    gguf_fixtures::write_tiny_llama(&path, 3);
    let file = GgufFile::read(&path).unwrap();
    assert_eq!(file.version, 3);
    assert_eq!(file.get_str("general.architecture"), Some("llama"));
    assert_eq!(file.tensors.len(), 2 + 3 * 2);
    let up = file
        .tensors
        .iter()
        .find(|t| t.name == "blk.1.ffn_up.weight")
        .unwrap();
    assert_eq!(
        (up.ggml_type, up.n_bytes, up.shape.clone()),
        (1, 32 * 32 * 2, vec![32, 32])
    );
    assert_eq!(file.data_offset % 32, 0);
    assert!(matches!(
        file.get("tokenizer.ggml.tokens"),
        Some(Value::Array { len: 4, .. })
    ));

    let s = ModelSummary::from_path(&path).unwrap();
    assert_eq!(s.block_count, 3);
    assert_eq!(s.head_count_kv, vec![2, 2, 2]);
    assert_eq!(s.key_length, 8);
    assert_eq!(s.vocab_size, 4);
    assert_eq!(s.quant_name(), "F32");
    assert_eq!(s.layers[2].bytes, 32 * 32 * 4 + 32 * 32 * 2);
    assert_eq!(s.non_layer.len(), 2);
    assert_eq!(
        s.tensor_bytes(),
        file.tensors.iter().map(|t| t.n_bytes).sum::<u64>()
    );
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    gguf_fixtures::write_tiny_llama(&path, 1);
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.gguf");
    // Every cut inside the header, then a sample of cuts inside the tensor data.
    let header_len = GgufFile::read(&path).unwrap().data_offset as usize;
    let data_cuts = (header_len..bytes.len()).step_by(97);
    for len in (0..header_len).chain(data_cuts) {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let err = GgufFile::read(&cut).expect_err(&format!("cut at {len}"));
        let msg = err.to_string();
        assert!(msg.contains("cut.gguf"), "{msg}");
        if len >= 4 {
            assert!(
                matches!(err, GgufError::Truncated { .. }),
                "cut at {len}: {msg}"
            );
        }
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    gguf_fixtures::write_tiny_llama(&path, 1);
    let bytes = std::fs::read(&path).unwrap();
    let bad = dir.path().join("bad.gguf");
    // Flip every header byte in turn (the data section only holds weights).
    let header_len = GgufFile::read(&path).unwrap().data_offset as usize;
    for i in 4..header_len {
        let mut b = bytes.clone();
        b[i] ^= 0xff;
        std::fs::write(&bad, &b).unwrap();
        let _ = GgufFile::read(&bad);
        let _ = ModelSummary::from_path(&bad);
    }
}

/// Hostile counts and lengths in a file large enough to pass the size checks (a sparse 64 GiB
/// file): the reader must refuse them without reserving or reading what they describe (a
/// count near file size / 8 once made it reserve 240 GiB and abort).
#[test]
fn hostile_counts_and_lengths_are_refused_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    gguf_fixtures::write_tiny_llama(&path, 1);
    let bytes = std::fs::read(&path).unwrap();
    let big = dir.path().join("big.gguf");
    // Header: magic, version (u32), tensor count (u64) at 8, key/value count (u64) at 16; the
    // first key's length at 24.
    let cases = [
        ("tensor count", 8, (64 << 30) / 26),
        ("key/value count", 16, (64 << 30) / 15),
        ("key length", 24, 20 << 30),
        ("key length", 24, u64::MAX),
    ];
    for (what, at, value) in cases {
        let mut b = bytes.clone();
        b[at..at + 8].copy_from_slice(&u64::to_le_bytes(value));
        std::fs::write(&big, &b).unwrap();
        let file = std::fs::File::options().write(true).open(&big).unwrap();
        file.set_len(64 << 30).unwrap();
        let started = std::time::Instant::now();
        let err = GgufFile::read(&big).expect_err(what);
        assert!(
            matches!(err, GgufError::Corrupt { .. } | GgufError::Truncated { .. }),
            "{what}: {err}"
        );
        assert!(err.to_string().contains("big.gguf"), "{err}");
        assert!(
            started.elapsed().as_secs() < 5,
            "{what}: {:?}",
            started.elapsed()
        );
    }
}

/// Where `key`'s name ends in `bytes` (its type tag follows).
fn after_key(bytes: &[u8], key: &str) -> usize {
    let at = bytes
        .windows(key.len())
        .position(|w| w == key.as_bytes())
        .unwrap_or_else(|| panic!("{key} not in the header"));
    at + key.len()
}

/// One regression case per kind of hostile header the fuzzer aims at, each in a sparse 64 GiB
/// file (every size check passes): refused within a second, with the field named.
#[test]
fn hostile_headers_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("llama.gguf");
    gguf_fixtures::write_loadable_llama(&path);
    let bytes = std::fs::read(&path).unwrap();
    let tokens = after_key(&bytes, "tokenizer.ggml.tokens");
    let scores = after_key(&bytes, "tokenizer.ggml.scores");
    let arch = after_key(&bytes, "general.architecture");
    let block_count = after_key(&bytes, "llama.block_count") - "llama.block_count".len();
    let first_tensor = after_key(&bytes, "token_embd.weight");
    let u64_at = |at: usize, v: u64| (at, v.to_le_bytes().to_vec());
    let u32_at = |at: usize, v: u32| (at, v.to_le_bytes().to_vec());
    // (what, (where, the bytes written there), what the error says)
    type Patch = (usize, Vec<u8>);
    let cases: Vec<(&str, Patch, &str)> = vec![
        (
            "tensor count near file size / 8",
            u64_at(8, (64 << 30) / 8),
            "the tensor count at byte 8 is 8589934592 (the limit is 1048576)",
        ),
        (
            "key/value count near file size / 8",
            u64_at(16, (64 << 30) / 8),
            "the metadata count at byte 16 is 8589934592",
        ),
        (
            "key length of 20 GiB",
            u64_at(24, 20 << 30),
            "metadata key #0 at byte 24 claims 21474836480 bytes",
        ),
        (
            "empty key",
            u64_at(24, 0),
            "metadata key #0 at byte 24 is empty",
        ),
        (
            "repeated key",
            (block_count, b"general.file_type".to_vec()),
            "metadata key general.file_type at byte",
        ),
        (
            "array of 2^30 strings",
            u64_at(tokens + 8, 1 << 30),
            "claims 1073741824 items (the limit for String items is 2097152)",
        ),
        (
            "vocabulary of 2^21 tokens",
            u64_at(tokens + 8, 1 << 21),
            "tokenizer.ggml.tokens has 2097152 tokens (the limit is 1048576)",
        ),
        (
            "array of 2^40 floats",
            u64_at(scores + 8, 1 << 40),
            "(the limit for F32 items is 16777216)",
        ),
        (
            "array of arrays",
            u32_at(tokens + 4, 9),
            "tokenizer.ggml.tokens is an array of arrays",
        ),
        (
            "unknown value type",
            u32_at(arch, 13),
            "general.architecture has unknown value type 13",
        ),
        (
            "unknown array item type",
            u32_at(scores + 4, 99),
            "tokenizer.ggml.scores has unknown item type 99",
        ),
        (
            "unknown ggml type",
            u32_at(first_tensor + 4 + 2 * 8, 99),
            "tensor token_embd.weight has unknown ggml type 99",
        ),
        (
            "more than 4 dimensions",
            u32_at(first_tensor, 5),
            "tensor token_embd.weight has 5 dimensions (max 4)",
        ),
        (
            "dimensions whose product overflows",
            u64_at(first_tensor + 4 + 8, 1 << 60),
            "more elements than ggml can count",
        ),
    ];
    let big = dir.path().join("big.gguf");
    for (what, (at, patch), want) in cases {
        let mut b = bytes.clone();
        b[at..at + patch.len()].copy_from_slice(&patch);
        std::fs::write(&big, &b).unwrap();
        let file = std::fs::File::options().write(true).open(&big).unwrap();
        file.set_len(64 << 30).unwrap();
        let started = std::time::Instant::now();
        let err = GgufFile::read(&big).expect_err(what).to_string();
        assert!(
            started.elapsed().as_secs_f64() < 1.0,
            "{what}: {:?}",
            started.elapsed()
        );
        assert!(
            err.contains("big.gguf") && err.contains(want),
            "{what}: {err}"
        );
    }

    // The most a header may ask to be read string by string, from a sparse file's zeros: 2^20
    // empty tokens (the fuzzer's slowest input once read 2^24 empty strings, in 3.5 s).
    let mut b = bytes[..tokens + 16].to_vec();
    b[tokens + 8..].copy_from_slice(&u64::to_le_bytes(1 << 20));
    std::fs::write(&big, &b).unwrap();
    let file = std::fs::File::options().write(true).open(&big).unwrap();
    file.set_len(64 << 30).unwrap();
    let started = std::time::Instant::now();
    let err = GgufFile::read(&big).unwrap_err().to_string();
    assert!(
        started.elapsed().as_secs_f64() < 1.0,
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("is empty"), "{err}");
}

#[test]
fn foreign_and_future_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("x.gguf");
    std::fs::write(&zip, b"PK\x03\x04rest of a zip").unwrap();
    let msg = GgufFile::read(&zip).unwrap_err().to_string();
    assert!(
        msg.ends_with(r#"x.gguf: not a GGUF file (bad magic "PK\x03\x04")"#),
        "{msg}"
    );

    let v9 = dir.path().join("v9.gguf");
    std::fs::write(&v9, b"GGUF\x09\0\0\0").unwrap();
    let msg = GgufFile::read(&v9).unwrap_err().to_string();
    assert!(msg.contains("unsupported GGUF version 9"), "{msg}");
}

#[test]
fn demo_model_summary() {
    let s = ModelSummary::from_path(&gguf_fixtures::demo_model()).unwrap();
    assert_eq!(s.architecture, "gemma3");
    assert_eq!(s.block_count, 18);
    assert_eq!(s.quant_name(), "Q4_K_M");
    assert_eq!(s.sliding_window, Some(512));
    // Gemma 3: every sixth layer is global.
    let global: Vec<_> = (0..18).filter(|&il| !s.swa_layers[il]).collect();
    assert_eq!(global, vec![5, 11, 17]);
    assert_eq!(s.vocab_size, 262144);
    assert!(s.tensor_bytes() < s.file_size && s.file_size - s.tensor_bytes() < 8 << 20);
    assert!(s.non_layer.iter().any(|t| t.name == "token_embd.weight"));
}

#[test]
fn split_files_read_as_one_model() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.gguf");
    gguf_fixtures::write_tiny_llama(&whole, 2);
    let file = GgufFile::read(&whole).unwrap();
    // Part 1 holds the metadata and the first tensors, part 2 the rest (as gguf-split does).
    let bytes = std::fs::read(&whole).unwrap();
    let tensor = |i: usize| {
        let t = &file.tensors[i];
        let start = (file.data_offset + t.offset) as usize;
        bytes[start..start + t.n_bytes as usize].to_vec()
    };
    let mut p1 = gguf_serve::gguf::GgufWriter::new();
    for (k, v) in &file.metadata {
        p1.kv(k, v.clone());
    }
    p1.kv("split.count", Value::U16(2));
    let mut p2 = gguf_serve::gguf::GgufWriter::new();
    p2.kv("split.count", Value::U16(2));
    for (i, t) in file.tensors.iter().enumerate() {
        let w = if i < 3 { &mut p1 } else { &mut p2 };
        w.tensor(&t.name, t.ggml_type, &t.shape, tensor(i));
    }
    p1.write(&dir.path().join("m-00001-of-00002.gguf")).unwrap();
    p2.write(&dir.path().join("m-00002-of-00002.gguf")).unwrap();

    let split = ModelSummary::from_path(&dir.path().join("m-00002-of-00002.gguf")).unwrap();
    let one = ModelSummary::from_path(&whole).unwrap();
    assert_eq!(split.files.len(), 2);
    assert_eq!(split.layers, one.layers);
    assert_eq!(split.tensor_bytes(), one.tensor_bytes());

    // A folder with the split set and the whole file holds two models.
    let models = gguf_serve::source::resolve(dir.path(), Some("auto")).unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models.iter().map(|m| m.files.len()).sum::<usize>(), 3);
    assert_eq!(
        gguf_serve::source::resolve(dir.path(), Some("F32"))
            .unwrap()
            .len(),
        2
    );
    let msg = gguf_serve::source::resolve(dir.path(), Some("q8_0"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.ends_with("no Q8_0 file here; it has: F32, F32"),
        "{msg}"
    );

    std::fs::remove_file(dir.path().join("m-00002-of-00002.gguf")).unwrap();
    let msg = ModelSummary::from_path(&dir.path().join("m-00001-of-00002.gguf"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("part 2 of 2 is missing"), "{msg}");
}

#[test]
fn gpt_oss_like_moe_summary() {
    use gguf_serve::gguf::GgufWriter;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-gpt-oss.gguf");
    let (n_embd, n_ff_exp, n_expert) = (32u64, 16u64, 4u64);
    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::String("gpt-oss".into()))
        .kv("general.file_type", Value::U32(38))
        .kv("gpt-oss.block_count", Value::U32(4))
        .kv("gpt-oss.context_length", Value::U32(4096))
        .kv("gpt-oss.embedding_length", Value::U32(n_embd as u32))
        .kv("gpt-oss.attention.head_count", Value::U32(4))
        .kv("gpt-oss.attention.head_count_kv", Value::U32(2))
        .kv("gpt-oss.attention.key_length", Value::U32(16))
        .kv("gpt-oss.attention.value_length", Value::U32(16))
        .kv("gpt-oss.attention.sliding_window", Value::U32(128))
        .kv("gpt-oss.expert_count", Value::U32(n_expert as u32))
        .kv("gpt-oss.expert_used_count", Value::U32(2))
        .kv(
            "gpt-oss.expert_feed_forward_length",
            Value::U32(n_ff_exp as u32),
        );
    w.tensor_f32("token_embd.weight", &[n_embd, 8], &[0.0; 256]);
    let exps = vec![0.0; (n_embd * n_ff_exp * n_expert) as usize];
    for il in 0..4 {
        w.tensor_f32(
            &format!("blk.{il}.attn_q.weight"),
            &[n_embd, 64],
            &[0.0; 2048],
        );
        for name in ["ffn_gate_exps", "ffn_up_exps"] {
            w.tensor_f32(
                &format!("blk.{il}.{name}.weight"),
                &[n_embd, n_ff_exp, n_expert],
                &exps,
            );
        }
        w.tensor_f32(
            &format!("blk.{il}.ffn_down_exps.weight"),
            &[n_ff_exp, n_embd, n_expert],
            &exps,
        );
        w.tensor_f32(
            &format!("blk.{il}.ffn_gate_exps.bias"),
            &[n_ff_exp, n_expert],
            &[0.0; 64],
        );
    }
    w.write(&path).unwrap();

    let s = ModelSummary::from_path(&path).unwrap();
    assert_eq!(s.quant_name(), "MXFP4_MOE");
    // gpt-oss alternates sliding-window and full layers, SWA first.
    assert_eq!(s.swa_layers, vec![true, false, true, false]);
    assert_eq!(s.sliding_window, Some(128));
    assert_eq!((s.expert_count, s.expert_used_count), (4, 2));
    assert_eq!(s.n_embd_k_gqa(0), 32);
    let expert = 3 * n_embd * n_ff_exp * n_expert * 4 + n_ff_exp * n_expert * 4;
    for layer in &s.layers {
        assert_eq!(layer.expert_bytes, expert);
        assert_eq!(layer.bytes, expert + n_embd * 64 * 4);
    }
}

/// A Llama 4 header: 8 layers, 8 KV heads of 128, and `window` as its sliding-window key.
fn llama4_summary(window: Option<u32>) -> ModelSummary {
    use gguf_serve::gguf::GgufWriter;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-llama4.gguf");
    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::String("llama4".into()))
        .kv("llama4.block_count", Value::U32(8))
        .kv("llama4.context_length", Value::U32(1 << 20))
        .kv("llama4.embedding_length", Value::U32(1024))
        .kv("llama4.attention.head_count", Value::U32(8))
        .kv("llama4.attention.head_count_kv", Value::U32(8))
        .kv("llama4.attention.key_length", Value::U32(128))
        .kv("llama4.attention.value_length", Value::U32(128));
    if let Some(window) = window {
        w.kv("llama4.attention.sliding_window", Value::U32(window));
    }
    w.tensor_f32("token_embd.weight", &[4, 4], &[0.0; 16]);
    w.write(&path).unwrap();
    ModelSummary::from_path(&path).unwrap()
}

/// Llama 4 attends in chunks of 8 192 tokens on three layers of four whatever its window key
/// says, unless that key is 0 (llama.cpp's `models/llama4.cpp`), and llama.cpp's KV cache gives
/// those layers 8 192 cells per sequence plus a ubatch: at -c 131072 they take a sixteenth of a
/// full layer's bytes, less the ubatch.
#[test]
fn llama4_chunked_attention_layers_hold_a_chunk() {
    use gguf_serve::plan::{ContextParams, memory::kv_layer_bytes};
    let chunked = vec![true, true, true, false, true, true, true, false];
    for window in [None, Some(4096)] {
        let s = llama4_summary(window);
        assert_eq!(s.sliding_window, Some(8192), "window key {window:?}");
        assert_eq!(s.swa_layers, chunked, "window key {window:?}");
    }
    let dense = llama4_summary(Some(0));
    assert_eq!(dense.sliding_window, None);
    assert_eq!(dense.swa_layers, vec![false; 8]);

    let s = llama4_summary(None);
    let ctx = ContextParams {
        n_ctx: 131_072,
        n_seq: 1,
        ..ContextParams::default()
    };
    // f16 K and V: 2 × 8 heads × 128 × 2 bytes a cell.
    let cell = 2 * 8 * 128 * 2;
    assert_eq!(kv_layer_bytes(&s, &ctx, 3), 131_072 * cell);
    let ubatch = u64::from(ctx.n_ubatch);
    let swa_cells = (8192 + ubatch).div_ceil(256) * 256;
    assert_eq!(kv_layer_bytes(&s, &ctx, 0), swa_cells * cell);
    assert_eq!(kv_layer_bytes(&dense, &ctx, 0), 131_072 * cell);
}
