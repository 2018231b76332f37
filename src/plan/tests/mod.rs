//! Table tests of the memory model (`memory.rs`), the choice (`choose.rs`) and the prompt
//! cache's share of host memory (`prompt_cache.rs`), against
//! hand-computed cases: a dense model (Llama-3-8B-like shapes), a sliding-window model
//! (Gemma-3-like) and a MoE model, the decode-speed prediction and policies over them, and the
//! placement over several GPUs (`split.rs`). This
//! file holds the model fixtures.

mod choose;
mod memory;
mod prompt_cache;
mod speed;
mod split;

pub(super) use super::*;
pub(super) use crate::gguf::{LayerTensors, ModelSummary, TensorGroup, TypeBytes, quant_by_name};

pub(super) const MIB: u64 = 1 << 20;
pub(super) const GIB: u64 = 1 << 30;

pub(super) struct Shape {
    n_layer: u32,
    n_embd: u64,
    n_head: u32,
    n_head_kv: u32,
    head_dim: u64,
    n_ff: u64,
    vocab: u64,
    layer_bytes: u64,
    expert_bytes: u64,
    /// (bytes of token_embd, bytes of output.weight if untied)
    embd: (u64, Option<u64>),
    swa: Option<(u64, Vec<bool>)>,
}

pub(super) fn summary(s: Shape, quant: &str) -> ModelSummary {
    let n = s.n_layer as usize;
    let mut non_layer = vec![TensorGroup {
        name: "token_embd.weight".into(),
        ggml_type: 0,
        bytes: s.embd.0,
    }];
    if let Some(out) = s.embd.1 {
        non_layer.push(TensorGroup {
            name: "output.weight".into(),
            ggml_type: 0,
            bytes: out,
        });
        non_layer.push(TensorGroup {
            name: "output_norm.weight".into(),
            ggml_type: 0,
            bytes: 16384,
        });
    }
    ModelSummary {
        path: format!("m-{quant}.gguf").into(),
        files: vec![],
        file_size: s.layer_bytes * u64::from(s.n_layer) + s.embd.0 + s.embd.1.unwrap_or(0),
        architecture: "test".into(),
        name: None,
        block_count: s.n_layer,
        context_length: 131072,
        embedding_length: s.n_embd,
        head_count: vec![s.n_head; n],
        head_count_kv: vec![s.n_head_kv; n],
        key_length: s.head_dim,
        value_length: s.head_dim,
        sliding_window: s.swa.as_ref().map(|(w, _)| *w),
        swa_layers: s.swa.map_or(vec![false; n], |(_, l)| l),
        recurrent_state: Vec::new(),
        feed_forward_length: s.n_ff,
        expert_feed_forward_length: if s.expert_bytes > 0 { 512 } else { 0 },
        expert_count: if s.expert_bytes > 0 { 32 } else { 0 },
        expert_used_count: if s.expert_bytes > 0 { 4 } else { 0 },
        vocab_size: s.vocab,
        file_type: None,
        quant: quant_by_name(quant).cloned(),
        layers: (0..s.n_layer)
            .map(|index| LayerTensors {
                index,
                bytes: s.layer_bytes,
                expert_bytes: s.expert_bytes,
                by_type: vec![TypeBytes {
                    ggml_type: main_type(quant),
                    bytes: s.layer_bytes,
                    expert_bytes: s.expert_bytes,
                }],
            })
            .collect(),
        non_layer,
    }
}

/// The ggml type of the fixtures' layer weights for a quant name.
pub(super) fn main_type(quant: &str) -> u32 {
    match quant {
        "q2_k" => 10,
        "q3_k_m" => 11,
        "q4_k_m" => 12,
        "q5_k_m" => 13,
        "q6_k" => 14,
        "mxfp4_moe" => 39,
        _ => 8,
    }
}

/// Llama-3-8B-like: 32 layers, GQA 32/8 heads of 128, 128256 tokens; `layer_mib` per layer,
/// 4 × that for token_embd and for output.
pub(super) fn dense(quant: &str, layer_mib: u64) -> ModelSummary {
    summary(
        Shape {
            n_layer: 32,
            n_embd: 4096,
            n_head: 32,
            n_head_kv: 8,
            head_dim: 128,
            n_ff: 14336,
            vocab: 128256,
            layer_bytes: layer_mib * MIB,
            expert_bytes: 0,
            embd: (4 * layer_mib * MIB, Some(4 * layer_mib * MIB)),
            swa: None,
        },
        quant,
    )
}

/// Gemma-3-like: 6 layers, the last global, the others with a 1024 window; tied embeddings.
pub(super) fn sliding() -> ModelSummary {
    summary(
        Shape {
            n_layer: 6,
            n_embd: 1024,
            n_head: 8,
            n_head_kv: 4,
            head_dim: 256,
            n_ff: 4096,
            vocab: 1000,
            layer_bytes: 10 * MIB,
            expert_bytes: 0,
            embd: (100 * MIB, None),
            swa: Some((1024, vec![true, true, true, true, true, false])),
        },
        "q8_0",
    )
}

/// 4 layers of 1000 MiB, 900 MiB of it experts.
pub(super) fn moe() -> ModelSummary {
    summary(
        Shape {
            n_layer: 4,
            n_embd: 1024,
            n_head: 8,
            n_head_kv: 2,
            head_dim: 64,
            n_ff: 0,
            vocab: 1000,
            layer_bytes: 1000 * MIB,
            expert_bytes: 900 * MIB,
            embd: (50 * MIB, Some(50 * MIB)),
            swa: None,
        },
        "mxfp4_moe",
    )
}

pub(super) fn ctx(n_ctx: u32) -> ContextParams {
    ContextParams {
        n_ctx,
        ..ContextParams::default()
    }
}

pub(super) fn at(n_gpu_layers: u32, n_cpu_moe: u32) -> Offload {
    Offload {
        n_gpu_layers,
        n_cpu_moe,
    }
}

/// Host memory bandwidth of the test budgets: 50 GB/s, no compute limit.
pub(super) const HOST_BW: f64 = 50e9;
/// GPU memory bandwidth of the test budgets: 1 TB/s.
pub(super) const GPU_BW: f64 = 1e12;

pub(super) fn host() -> HostSpeed {
    HostSpeed::bandwidth_only(HOST_BW, BandwidthSource::Given)
}

/// One GPU with `free` bytes, no margin.
pub(super) fn gpu(free: u64, host_free: u64) -> Budget {
    Budget::new(
        vec![("GPU0".into(), free, GPU_BW, BandwidthSource::Given)],
        host_free,
        Margin::Explicit(0),
        host(),
    )
}

pub(super) fn cpu_only(host_free: u64) -> Budget {
    Budget::new(vec![], host_free, Margin::Explicit(0), host())
}

/// GPUs with these free bytes, no margin, named GPU0, GPU1, …; 64 GiB of host memory.
pub(super) fn gpus(free: &[u64]) -> Budget {
    Budget::new(
        free.iter()
            .enumerate()
            .map(|(i, &f)| (format!("GPU{i}"), f, GPU_BW, BandwidthSource::Given))
            .collect(),
        64 * GIB,
        Margin::Explicit(0),
        host(),
    )
}
