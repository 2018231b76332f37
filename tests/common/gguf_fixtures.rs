//! Helpers for the gguf/plan/quantize tests: the demo model's path, tiny GGUF files made with
//! our writer, and the binary run as a user would.

#![allow(dead_code)]

use gguf_serve::gguf::{GgufWriter, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `gguf-serve ARGS` to completion.
pub fn gguf_serve(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gguf-serve"))
        .args(args)
        .output()
        .expect("run gguf-serve")
}

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
/// heads), a SentencePiece vocabulary of 8 text tokens and the 256 byte tokens, F16 matrices
/// and F32 norms; tied embeddings.
pub fn write_loadable_llama(path: &Path) {
    loadable_llama().write(path).unwrap();
}

/// The loadable llama of [`write_loadable_llama`] with `edit` applied before it is written
/// (keys added or replaced: a hostile value in an otherwise loadable model).
pub fn write_loadable_llama_with(path: &Path, edit: impl FnOnce(&mut GgufWriter)) {
    let mut w = loadable_llama();
    edit(&mut w);
    w.write(path).unwrap();
}

/// The loadable llama with only its 8 text tokens, no byte tokens: llama.cpp loads it, and its
/// SentencePiece tokenizer throws a C++ exception (`byte_to_token`) through the FFI, aborting
/// the process, on the first text holding a character outside those tokens.
pub fn write_llama_without_byte_tokens(path: &Path) {
    let (n_embd, n_ff, _, n_layer) = LOADABLE_LLAMA;
    let tokens = &spm_tokens()[..TEXT_TOKENS.len()];
    llama_of_vocab((n_embd, n_ff, tokens.len() as u64, n_layer), tokens)
        .write(path)
        .unwrap();
}

/// The text tokens of the loadable llama's vocabulary and their `token_type`s (unknown,
/// control, normal); the 256 byte tokens `<0x00>`..`<0xFF>` follow them.
const TEXT_TOKENS: [(&str, i32); 8] = [
    ("<unk>", 2),
    ("<s>", 3),
    ("</s>", 3),
    ("▁a", 1),
    ("▁b", 1),
    ("▁c", 1),
    ("▁d", 1),
    ("▁e", 1),
];

/// The loadable llama's vocabulary: [`TEXT_TOKENS`], then the byte tokens (type 6, byte), as
/// SentencePiece models with byte fallback have them.
fn spm_tokens() -> Vec<(String, i32)> {
    let text = TEXT_TOKENS.iter().map(|(t, ty)| (t.to_string(), *ty));
    text.chain((0..=255u8).map(|b| (format!("<0x{b:02X}>"), 6)))
        .collect()
}

/// The tiny loadable llama's sizes: n_embd, n_ff, n_vocab, n_layer.
const LOADABLE_LLAMA: (u64, u64, u64, u32) = (64, 128, 8 + 256, 2);

/// The sizes of a bigger loadable llama (n_embd, n_ff, n_layer): every row a multiple of 256,
/// so that llama.cpp's K-quants apply to every matrix, and about 7.9M weights, so that each
/// quant of its ladder is over 2 MiB (Q2_K included).
pub const LADDER_LLAMA: (u64, u64, u32) = (256, 1024, 8);

/// A llama.cpp-loadable llama as [`write_loadable_llama`] but of [`LADDER_LLAMA`]'s sizes (4
/// heads of 64, 2 KV heads), in F16: the source of the hub tests' quant ladders.
pub fn write_ladder_llama(path: &Path) {
    let (n_embd, n_ff, n_layer) = LADDER_LLAMA;
    loadable_llama_of((n_embd, n_ff, LOADABLE_LLAMA.2, n_layer))
        .write(path)
        .unwrap();
}

/// The tensors of a loadable llama of `dims` (n_embd, n_ff, _, n_layer; 4 heads, 2 KV heads):
/// random F16 matrices, unit F32 norms, tied embeddings over `n_vocab` tokens.
fn loadable_llama_tensors(w: &mut GgufWriter, dims: (u64, u64, u64, u32), n_vocab: u64) {
    let (n_embd, n_ff, _, n_layer) = dims;
    let n_embd_kv = n_embd / 2;
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
}

/// The tiny loadable llama of [`write_loadable_llama`], not yet written.
fn loadable_llama() -> GgufWriter {
    loadable_llama_of(LOADABLE_LLAMA)
}

/// A loadable llama of `dims` (n_embd, n_ff, n_vocab = that of [`spm_tokens`], n_layer), not
/// yet written.
fn loadable_llama_of(dims: (u64, u64, u64, u32)) -> GgufWriter {
    llama_of_vocab(dims, &spm_tokens())
}

/// A loadable llama of `dims` over `tokens` (text, token type), not yet written.
fn llama_of_vocab(dims: (u64, u64, u64, u32), tokens: &[(String, i32)]) -> GgufWriter {
    let (n_embd, n_ff, n_vocab, n_layer) = dims;
    assert_eq!(n_vocab, tokens.len() as u64);
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
        .kv("llama.rope.dimension_count", Value::U32(n_embd as u32 / 4));
    spm_vocab(&mut w, tokens);
    loadable_llama_tensors(&mut w, dims, n_vocab);
    w
}

/// A SentencePiece vocabulary's keys: `tokens` (text, token type), scores falling by id.
fn spm_vocab(w: &mut GgufWriter, tokens: &[(String, i32)]) {
    w.kv("tokenizer.ggml.model", Value::String("llama".into()))
        .kv_array(
            "tokenizer.ggml.tokens",
            tokens
                .iter()
                .map(|(t, _)| Value::String(t.clone()))
                .collect(),
        )
        .kv_array(
            "tokenizer.ggml.scores",
            (0..tokens.len()).map(|i| Value::F32(-(i as f32))).collect(),
        )
        .kv_array(
            "tokenizer.ggml.token_type",
            tokens.iter().map(|(_, ty)| Value::I32(*ty)).collect(),
        );
}

/// The output matrix of [`write_lora_base`], row `v` (token v's logit weights) at `v * n_embd`.
fn lora_base_output() -> Vec<f32> {
    let (n_embd, _, n_vocab, _) = LOADABLE_LLAMA;
    weights(n_embd * n_vocab, 7)
}

/// The tiny loadable llama with its own `output.weight` (untied), as the base of the LoRA
/// adapters of [`write_lora_adapter`].
pub fn write_lora_base(path: &Path) {
    let (n_embd, _, n_vocab, _) = LOADABLE_LLAMA;
    let mut w = loadable_llama();
    w.tensor_f16("output.weight", &[n_embd, n_vocab], &lora_base_output());
    w.write(path).unwrap();
}

/// A LoRA adapter of [`write_lora_base`] on `output.weight` whose delta at scale 1 moves the
/// logits of every token but `</s>` (id 2) by `shift` places among those tokens, so greedy
/// decoding picks another token wherever the base picks one of them. Rank n_vocab: `lora_a` is the
/// base output matrix, `lora_b` the permutation minus the identity; alpha equals the rank
/// (factor 1).
pub fn write_lora_adapter(path: &Path, shift: usize) {
    let (n_embd, _, n_vocab, _) = LOADABLE_LLAMA;
    let rank = n_vocab;
    let others: Vec<u64> = (0..n_vocab).filter(|&v| v != 2).collect();
    let source = |v: u64| match others.iter().position(|&o| o == v) {
        Some(i) => others[(i + shift) % others.len()],
        None => v,
    };
    // lora_b is [rank, n_vocab] in ggml's order: element (v, j) at v * rank + j.
    let mut b = vec![0.0f32; (rank * n_vocab) as usize];
    for v in 0..n_vocab {
        b[(v * rank + source(v)) as usize] += 1.0;
        b[(v * rank + v) as usize] -= 1.0;
    }
    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::String("llama".into()))
        .kv("general.type", Value::String("adapter".into()))
        .kv("general.name", Value::String(format!("tiny shift {shift}")))
        .kv("adapter.type", Value::String("lora".into()))
        .kv("adapter.lora.alpha", Value::F32(rank as f32));
    w.tensor_f16("output.weight.lora_a", &[n_embd, rank], &lora_base_output());
    w.tensor_f32("output.weight.lora_b", &[rank, n_vocab], &b);
    w.write(path).unwrap();
}

/// GPT-2's byte-level BPE alphabet: the token text of each byte 0..=255 (printable Latin-1
/// bytes stand for themselves, the rest are shifted past 255), as `bytes_to_unicode` builds it.
fn byte_tokens() -> Vec<String> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let mut shifted = 256;
    (0..=255u32)
        .map(|b| {
            let code = if printable(b) {
                b
            } else {
                shifted += 1;
                shifted - 1
            };
            char::from_u32(code).unwrap().to_string()
        })
        .collect()
}

/// Harmony's special tokens, in the order they follow the byte tokens in [`write_tiny_gpt_oss`].
pub const HARMONY_TOKENS: [&str; 9] = [
    "<|startoftext|>",
    "<|endoftext|>",
    "<|return|>",
    "<|constrain|>",
    "<|channel|>",
    "<|start|>",
    "<|end|>",
    "<|message|>",
    "<|call|>",
];

/// A gpt-oss (`LLM_ARCH_OPENAI_MOE`) model llama.cpp can load and run, with random weights:
/// 2 layers (one sliding-window, one full), n_embd 64, 4 heads of 16 (2 KV heads) with
/// attention sinks, 4 experts of which 2 are used, F16 matrices and F32 norms and biases. Its
/// vocabulary is GPT-2 byte-level BPE (all 256 byte tokens, one merge) plus Harmony's special
/// tokens as control tokens, so llama.cpp finds `<|return|>` and `<|call|>` as end of
/// generation as it does for the real model; `chat_template` goes in `tokenizer.chat_template`.
pub fn write_tiny_gpt_oss(path: &Path, chat_template: &str) {
    let (n_embd, n_head, n_head_kv, head_dim, n_ff, n_expert) =
        (64u64, 4u64, 2u64, 16u64, 32u64, 4u64);
    let n_layer = 2u32;
    let mut tokens = byte_tokens();
    tokens.push("Ġt".into());
    let n_plain = tokens.len();
    tokens.extend(HARMONY_TOKENS.iter().map(|t| t.to_string()));
    let n_vocab = tokens.len() as u64;
    let token_id = |text: &str| tokens.iter().position(|t| t == text).unwrap() as u32;
    let arch = |key: &str| format!("gpt-oss.{key}");
    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::String("gpt-oss".into()))
        .kv("general.name", Value::String("tiny gpt-oss".into()))
        .kv("general.file_type", Value::U32(1));
    for (key, value) in [
        ("block_count", n_layer),
        ("context_length", 4096),
        ("embedding_length", n_embd as u32),
        ("feed_forward_length", n_ff as u32),
        ("expert_feed_forward_length", n_ff as u32),
        ("attention.head_count", n_head as u32),
        ("attention.head_count_kv", n_head_kv as u32),
        ("attention.key_length", head_dim as u32),
        ("attention.value_length", head_dim as u32),
        ("attention.sliding_window", 128),
        ("expert_count", n_expert as u32),
        ("expert_used_count", 2),
    ] {
        w.kv(&arch(key), Value::U32(value));
    }
    w.kv(&arch("rope.freq_base"), Value::F32(150_000.0))
        .kv(&arch("attention.layer_norm_rms_epsilon"), Value::F32(1e-5))
        .kv("tokenizer.ggml.model", Value::String("gpt2".into()))
        .kv("tokenizer.ggml.pre", Value::String("gpt-4o".into()))
        .kv(
            "tokenizer.ggml.bos_token_id",
            Value::U32(token_id("<|startoftext|>")),
        )
        .kv(
            "tokenizer.ggml.eos_token_id",
            Value::U32(token_id("<|return|>")),
        )
        .kv(
            "tokenizer.ggml.padding_token_id",
            Value::U32(token_id("<|endoftext|>")),
        )
        .kv("tokenizer.ggml.add_bos_token", Value::Bool(false))
        .kv(
            "tokenizer.chat_template",
            Value::String(chat_template.into()),
        )
        .kv_array("tokenizer.ggml.merges", vec![Value::String("Ġ t".into())])
        .kv_array(
            "tokenizer.ggml.token_type",
            (0..tokens.len())
                .map(|i| Value::I32(if i < n_plain { 1 } else { 3 }))
                .collect(),
        )
        .kv_array(
            "tokenizer.ggml.tokens",
            tokens.iter().map(|t| Value::String(t.clone())).collect(),
        );
    let ones = vec![1.0; n_embd as usize];
    w.tensor_f16(
        "token_embd.weight",
        &[n_embd, n_vocab],
        &weights(n_embd * n_vocab, 1),
    );
    w.tensor_f16(
        "output.weight",
        &[n_embd, n_vocab],
        &weights(n_embd * n_vocab, 2),
    );
    w.tensor_f32("output_norm.weight", &[n_embd], &ones);
    let (q, kv) = (n_head * head_dim, n_head_kv * head_dim);
    for il in 0..n_layer {
        let mut seed = 100 * u64::from(il + 1);
        let mut random = |w: &mut GgufWriter, name: &str, shape: &[u64]| {
            seed += 1;
            let data = weights(shape.iter().product(), seed);
            let name = format!("blk.{il}.{name}");
            // Matrices in F16; vectors and the experts' biases (ggml adds them in F32) in F32.
            if name.ends_with(".weight") && shape.len() > 1 {
                w.tensor_f16(&name, shape, &data);
            } else {
                w.tensor_f32(&name, shape, &data);
            }
        };
        w.tensor_f32(&format!("blk.{il}.attn_norm.weight"), &[n_embd], &ones);
        w.tensor_f32(
            &format!("blk.{il}.post_attention_norm.weight"),
            &[n_embd],
            &ones,
        );
        for (name, shape) in [
            ("attn_q.weight", &[n_embd, q][..]),
            ("attn_q.bias", &[q]),
            ("attn_k.weight", &[n_embd, kv]),
            ("attn_k.bias", &[kv]),
            ("attn_v.weight", &[n_embd, kv]),
            ("attn_v.bias", &[kv]),
            ("attn_output.weight", &[q, n_embd]),
            ("attn_output.bias", &[n_embd]),
            ("attn_sinks.weight", &[n_head]),
            ("ffn_gate_inp.weight", &[n_embd, n_expert]),
            ("ffn_gate_inp.bias", &[n_expert]),
            ("ffn_gate_exps.weight", &[n_embd, n_ff, n_expert]),
            ("ffn_up_exps.weight", &[n_embd, n_ff, n_expert]),
            ("ffn_down_exps.weight", &[n_ff, n_embd, n_expert]),
            ("ffn_gate_exps.bias", &[n_ff, n_expert]),
            ("ffn_up_exps.bias", &[n_ff, n_expert]),
            ("ffn_down_exps.bias", &[n_embd, n_expert]),
        ] {
            random(&mut w, name, shape);
        }
    }
    w.write(path).unwrap();
}

/// The fill-in-the-middle tokens of [`write_fim_llama`], after the byte tokens, in this order
/// (Qwen2.5-Coder's names); `<|endoftext|>` is BOS and EOS.
pub const FIM_TOKENS: [&str; 7] = [
    "<|endoftext|>",
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
];

/// A llama-architecture model llama.cpp can load and run, with random weights, whose
/// vocabulary has fill-in-the-middle tokens: GPT-2 byte-level BPE (all 256 byte tokens and one
/// merge, ` t`, so text is about one token per byte) plus [`FIM_TOKENS`] as control tokens, named
/// by the `tokenizer.ggml.fim_*_token_id` keys. Without `repo_level` the last two are renamed
/// (llama.cpp would find them by their text), so the model has prefix, suffix, middle and pad
/// only.
pub fn write_fim_llama(path: &Path, repo_level: bool) {
    // The loadable llama's sizes, with this vocabulary.
    let (n_embd, n_ff, _, n_layer) = LOADABLE_LLAMA;
    let mut tokens = byte_tokens();
    tokens.push("Ġt".into());
    let n_plain = tokens.len();
    tokens.extend(FIM_TOKENS.iter().map(|t| t.to_string()));
    if !repo_level {
        let n = tokens.len();
        tokens[n - 2] = "<|extra_0|>".into();
        tokens[n - 1] = "<|extra_1|>".into();
    }
    let n_vocab = tokens.len() as u64;
    let id = |text: &str| Value::U32(tokens.iter().position(|t| t == text).unwrap() as u32);
    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::String("llama".into()))
        .kv("general.name", Value::String("tiny fim".into()))
        .kv("general.file_type", Value::U32(1))
        .kv("llama.block_count", Value::U32(n_layer))
        .kv("llama.context_length", Value::U32(4096))
        .kv("llama.embedding_length", Value::U32(n_embd as u32))
        .kv("llama.feed_forward_length", Value::U32(n_ff as u32))
        .kv("llama.attention.head_count", Value::U32(4))
        .kv("llama.attention.head_count_kv", Value::U32(2))
        .kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5))
        .kv("llama.rope.dimension_count", Value::U32(16))
        .kv("tokenizer.ggml.model", Value::String("gpt2".into()))
        .kv("tokenizer.ggml.pre", Value::String("qwen2".into()))
        .kv("tokenizer.ggml.bos_token_id", id("<|endoftext|>"))
        .kv("tokenizer.ggml.eos_token_id", id("<|endoftext|>"))
        .kv("tokenizer.ggml.add_bos_token", Value::Bool(false))
        .kv("tokenizer.ggml.fim_pre_token_id", id("<|fim_prefix|>"))
        .kv("tokenizer.ggml.fim_suf_token_id", id("<|fim_suffix|>"))
        .kv("tokenizer.ggml.fim_mid_token_id", id("<|fim_middle|>"))
        .kv("tokenizer.ggml.fim_pad_token_id", id("<|fim_pad|>"));
    if repo_level {
        w.kv("tokenizer.ggml.fim_rep_token_id", id("<|repo_name|>"))
            .kv("tokenizer.ggml.fim_sep_token_id", id("<|file_sep|>"));
    }
    w.kv_array("tokenizer.ggml.merges", vec![Value::String("Ġ t".into())])
        .kv_array(
            "tokenizer.ggml.token_type",
            (0..tokens.len())
                .map(|i| Value::I32(if i < n_plain { 1 } else { 3 }))
                .collect(),
        )
        .kv_array(
            "tokenizer.ggml.tokens",
            tokens.iter().map(|t| Value::String(t.clone())).collect(),
        );
    loadable_llama_tensors(&mut w, LOADABLE_LLAMA, n_vocab);
    w.write(path).unwrap();
}

/// A Mamba (`LLM_ARCH_MAMBA`) model llama.cpp can load and run, with random weights: 2 layers,
/// n_embd 64 (d_inner 128, llama.cpp's only expansion factor), a 16-wide state, a 4-wide
/// convolution, the loadable llama's SentencePiece vocabulary, tied embeddings. Its memory is
/// recurrent: one state per sequence, which llama.cpp cannot roll back to an earlier position.
pub fn write_tiny_mamba(path: &Path) {
    let (n_embd, d_inner, d_state, d_conv, dt_rank, n_layer) =
        (64u64, 128u64, 16u64, 4u64, 4u64, 2);
    let tokens = spm_tokens();
    let n_vocab = tokens.len() as u64;
    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::String("mamba".into()))
        .kv("general.name", Value::String("tiny mamba".into()))
        .kv("general.file_type", Value::U32(1))
        .kv("mamba.block_count", Value::U32(n_layer))
        .kv("mamba.context_length", Value::U32(4096))
        .kv("mamba.embedding_length", Value::U32(n_embd as u32))
        .kv("mamba.feed_forward_length", Value::U32(0))
        .kv("mamba.attention.head_count", Value::U32(0))
        .kv("mamba.attention.layer_norm_rms_epsilon", Value::F32(1e-5))
        .kv("mamba.ssm.conv_kernel", Value::U32(d_conv as u32))
        .kv("mamba.ssm.inner_size", Value::U32(d_inner as u32))
        .kv("mamba.ssm.state_size", Value::U32(d_state as u32))
        .kv("mamba.ssm.time_step_rank", Value::U32(dt_rank as u32));
    spm_vocab(&mut w, &tokens);
    w.tensor_f16(
        "token_embd.weight",
        &[n_embd, n_vocab],
        &weights(n_embd * n_vocab, 3),
    );
    w.tensor_f32("output_norm.weight", &[n_embd], &vec![1.0; n_embd as usize]);
    w.tensor_f16(
        "output.weight",
        &[n_embd, n_vocab],
        &weights(n_embd * n_vocab, 5),
    );
    for il in 0..u64::from(n_layer) {
        let seed = 1000 * (il + 1);
        let blk = |name: &str| format!("blk.{il}.{name}");
        w.tensor_f32(
            &blk("attn_norm.weight"),
            &[n_embd],
            &vec![1.0; n_embd as usize],
        );
        let mats = [
            ("ssm_in.weight", [n_embd, 2 * d_inner]),
            ("ssm_x.weight", [d_inner, dt_rank + 2 * d_state]),
            ("ssm_dt.weight", [dt_rank, d_inner]),
            ("ssm_out.weight", [d_inner, n_embd]),
        ];
        for (i, (name, shape)) in mats.iter().enumerate() {
            let data: Vec<f32> = weights(shape[0] * shape[1], seed + i as u64)
                .iter()
                .map(|x| x * 8.0)
                .collect();
            w.tensor_f16(&blk(name), shape, &data);
        }
        // The convolution and the state's decay stay F32, as llama.cpp's converter keeps them;
        // A = -exp(A_log) with A_log = log(1..=d_state), the initialisation Mamba uses.
        let conv = weights(d_conv * d_inner, seed + 10)
            .iter()
            .map(|x| x * 10.0)
            .collect::<Vec<_>>();
        w.tensor_f32(&blk("ssm_conv1d.weight"), &[d_conv, d_inner], &conv);
        w.tensor_f32(
            &blk("ssm_conv1d.bias"),
            &[d_inner],
            &vec![0.0; d_inner as usize],
        );
        w.tensor_f32(
            &blk("ssm_dt.bias"),
            &[d_inner],
            &vec![-2.0; d_inner as usize],
        );
        let a: Vec<f32> = (0..d_inner)
            .flat_map(|_| (1..=d_state).map(|s| -(s as f32)))
            .collect();
        w.tensor_f32(&blk("ssm_a"), &[d_state, d_inner], &a);
        w.tensor_f32(&blk("ssm_d"), &[d_inner], &vec![1.0; d_inner as usize]);
    }
    w.write(path).unwrap();
}

/// A Llama 4 (`LLM_ARCH_LLAMA4`) file llama.cpp can load: 4 layers, three of them attending in
/// chunks (llama.cpp fixes the chunk at 8 192 tokens and the pattern at 3 of 4 unless the file's
/// window key is 0), n_embd 64, 4 heads of 16 (2 KV heads), a 2-expert MoE with a shared
/// expert on every second layer, zero weights (for sizing, not for running), a 64k training
/// context.
pub fn write_tiny_llama4(path: &Path) {
    let (n_embd, n_ff, n_ff_exp, n_expert, n_layer) = (64u64, 128u64, 64u64, 2u64, 4u32);
    let n_kv = n_embd / 2;
    let tokens = spm_tokens();
    let n_vocab = tokens.len() as u64;
    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::String("llama4".into()))
        .kv("general.file_type", Value::U32(0))
        .kv("llama4.block_count", Value::U32(n_layer))
        .kv("llama4.context_length", Value::U32(65_536))
        .kv("llama4.embedding_length", Value::U32(n_embd as u32))
        .kv("llama4.feed_forward_length", Value::U32(n_ff as u32))
        .kv(
            "llama4.expert_feed_forward_length",
            Value::U32(n_ff_exp as u32),
        )
        .kv("llama4.expert_count", Value::U32(n_expert as u32))
        .kv("llama4.expert_used_count", Value::U32(1))
        .kv("llama4.interleave_moe_layer_step", Value::U32(2))
        .kv("llama4.attention.head_count", Value::U32(4))
        .kv("llama4.attention.head_count_kv", Value::U32(2))
        .kv("llama4.attention.layer_norm_rms_epsilon", Value::F32(1e-5))
        .kv("llama4.rope.dimension_count", Value::U32(n_embd as u32 / 4));
    spm_vocab(&mut w, &tokens);
    let zeros = |shape: &[u64]| vec![0.0f32; shape.iter().product::<u64>() as usize];
    let mut tensor = |name: String, shape: &[u64]| {
        w.tensor_f32(&name, shape, &zeros(shape));
    };
    tensor("token_embd.weight".into(), &[n_embd, n_vocab]);
    tensor("output_norm.weight".into(), &[n_embd]);
    for il in 0..n_layer {
        let blk = |name: &str| format!("blk.{il}.{name}.weight");
        tensor(blk("attn_norm"), &[n_embd]);
        tensor(blk("ffn_norm"), &[n_embd]);
        tensor(blk("attn_q"), &[n_embd, n_embd]);
        tensor(blk("attn_k"), &[n_embd, n_kv]);
        tensor(blk("attn_v"), &[n_embd, n_kv]);
        tensor(blk("attn_output"), &[n_embd, n_embd]);
        if (il + 1) % 2 == 0 {
            tensor(blk("ffn_gate_inp"), &[n_embd, n_expert]);
            tensor(blk("ffn_gate_exps"), &[n_embd, n_ff_exp, n_expert]);
            tensor(blk("ffn_up_exps"), &[n_embd, n_ff_exp, n_expert]);
            tensor(blk("ffn_down_exps"), &[n_ff_exp, n_embd, n_expert]);
            tensor(blk("ffn_gate_shexp"), &[n_embd, n_ff_exp]);
            tensor(blk("ffn_up_shexp"), &[n_embd, n_ff_exp]);
            tensor(blk("ffn_down_shexp"), &[n_ff_exp, n_embd]);
        } else {
            tensor(blk("ffn_gate"), &[n_embd, n_ff]);
            tensor(blk("ffn_up"), &[n_embd, n_ff]);
            tensor(blk("ffn_down"), &[n_ff, n_embd]);
        }
    }
    w.write(path).unwrap();
}

/// An LFM2 (`LLM_ARCH_LFM2`) model llama.cpp can load and run, with random weights: a hybrid of
/// 4 layers, short-convolution layers (recurrent: a 3-token convolution state per sequence,
/// `head_count_kv` 0) at 0, 1 and 3 and a full-attention layer at 2 (4 heads of 16, 2 KV
/// heads), n_embd 64, dense feed-forward, the loadable llama's vocabulary, an output matrix of
/// its own.
pub fn write_tiny_lfm2(path: &Path) {
    let (n_embd, n_ff, l_cache) = (64u64, 128u64, 4u64);
    let attention = [false, false, true, false];
    let tokens = spm_tokens();
    let n_vocab = tokens.len() as u64;
    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::String("lfm2".into()))
        .kv("general.name", Value::String("tiny lfm2".into()))
        .kv("general.file_type", Value::U32(1))
        .kv("lfm2.block_count", Value::U32(attention.len() as u32))
        .kv("lfm2.context_length", Value::U32(4096))
        .kv("lfm2.embedding_length", Value::U32(n_embd as u32))
        .kv("lfm2.feed_forward_length", Value::U32(n_ff as u32))
        .kv("lfm2.attention.head_count", Value::U32(4))
        .kv_array(
            "lfm2.attention.head_count_kv",
            attention
                .iter()
                .map(|&a| Value::U32(if a { 2 } else { 0 }))
                .collect(),
        )
        .kv("lfm2.attention.layer_norm_rms_epsilon", Value::F32(1e-5))
        .kv("lfm2.rope.dimension_count", Value::U32(16))
        .kv("lfm2.shortconv.l_cache", Value::U32(l_cache as u32));
    spm_vocab(&mut w, &tokens);
    w.tensor_f16(
        "token_embd.weight",
        &[n_embd, n_vocab],
        &weights(n_embd * n_vocab, 21),
    );
    w.tensor_f32(
        "token_embd_norm.weight",
        &[n_embd],
        &vec![1.0; n_embd as usize],
    );
    w.tensor_f16(
        "output.weight",
        &[n_embd, n_vocab],
        &weights(n_embd * n_vocab, 22),
    );
    for (il, &attn) in attention.iter().enumerate() {
        let seed = 2000 + 100 * il as u64;
        let blk = |name: &str| format!("blk.{il}.{name}.weight");
        let mut mat = |name: &str, shape: [u64; 2], k: u64| {
            let data: Vec<f32> = weights(shape[0] * shape[1], seed + k)
                .iter()
                .map(|x| x * 4.0)
                .collect();
            w.tensor_f16(&blk(name), &shape, &data);
        };
        mat("ffn_gate", [n_embd, n_ff], 1);
        mat("ffn_up", [n_embd, n_ff], 2);
        mat("ffn_down", [n_ff, n_embd], 3);
        if attn {
            mat("attn_q", [n_embd, n_embd], 4);
            mat("attn_k", [n_embd, n_embd / 2], 5);
            mat("attn_v", [n_embd, n_embd / 2], 6);
            mat("attn_output", [n_embd, n_embd], 7);
        } else {
            mat("shortconv.in_proj", [n_embd, 3 * n_embd], 8);
            mat("shortconv.out_proj", [n_embd, n_embd], 9);
        }
        let ones = vec![1.0; n_embd as usize];
        w.tensor_f32(&blk("ffn_norm"), &[n_embd], &ones);
        w.tensor_f32(&blk("attn_norm"), &[n_embd], &ones);
        if attn {
            w.tensor_f32(&blk("attn_q_norm"), &[16], &[1.0; 16]);
            w.tensor_f32(&blk("attn_k_norm"), &[16], &[1.0; 16]);
        } else {
            let conv: Vec<f32> = weights(l_cache * n_embd, seed + 10)
                .iter()
                .map(|x| x * 10.0)
                .collect();
            w.tensor_f32(&blk("shortconv.conv"), &[l_cache, n_embd], &conv);
        }
    }
    w.write(path).unwrap();
}
