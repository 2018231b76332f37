//! Predicted decode speed: the bytes llama.cpp reads per generated token on each device,
//! divided by what that device reads per second, summed over devices (layers run one after the
//! other, so the devices' times add up).
//!
//! Bytes read per token (one sequence, batch 1):
//! - every layer's weights, except that a MoE layer reads only `expert_used_count /
//!   expert_count` of its expert tensors (`ffn_*_exps`);
//! - the output matrix (`output.weight`, or `token_embd` for tied embeddings) and its norm;
//!   `token_embd` itself is not read whole when it is not the output: decode takes one row;
//! - the KV cache of every layer at a fill of [`KV_FILL`] tokens (or the sequence's whole
//!   context if smaller; a sliding-window layer reads at most its window).
//!
//! Each part is read on the device that holds it ([`super::memory`]'s placement). A GPU reads at
//! its memory bandwidth. On the host, each ggml type takes its bytes over the memory bandwidth
//! plus its bytes over the rate the CPU's kernels compute that type from cache
//! ([`super::HostSpeed::type_rates`]): with the few threads of a decode the loads and the
//! arithmetic barely overlap (on this project's 2-core machine, one thread decoding Q8_0
//! took 46 ms per token where bandwidth alone predicts 31 and bandwidth plus compute 51).
//! Each operation of the graph the host runs also costs a barrier of its threads
//! ([`NODES_PER_LAYER`] per layer, each at the measured [`super::HostSpeed::node_seconds`]),
//! which grows when other processes compete for the cores.

use super::memory::{ContextParams, Offload};
use super::{Budget, HostSpeed};
use crate::gguf::{ModelSummary, ggml_type};
use serde::Serialize;

/// Tokens in the sequence's KV cache when the speed is predicted.
pub const KV_FILL: u64 = 1024;

/// Operations llama.cpp's decode graph runs per layer, about (norms and their weights, Q, K, V,
/// RoPE, the cache writes, attention, the output projection, the FFN's gate, up, activation and
/// down, the residual adds): each costs the host a barrier of its threads
/// ([`super::HostSpeed::node_seconds`]).
pub const NODES_PER_LAYER: u64 = 25;

/// Predicted decode speed of one file at one offload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SpeedEstimate {
    /// Bytes read per generated token on the GPUs.
    pub gpu_bytes: u64,
    /// Bytes read per generated token in host memory.
    pub host_bytes: u64,
    /// Tokens in the KV cache assumed.
    pub kv_fill: u64,
    pub seconds_per_token: f64,
    pub tokens_per_second: f64,
}

/// Bytes read per token, per place; the host's by ggml type (KV cache as its cache type).
#[derive(Debug, Default)]
struct Reads {
    gpu: u64,
    host: Vec<(u32, u64)>,
    /// Layers (the output layer counting as one) the host runs.
    host_layers: u64,
}

impl Reads {
    fn add(&mut self, on_gpu: bool, ggml_type: u32, bytes: u64) {
        if on_gpu {
            self.gpu += bytes;
        } else if let Some(e) = self.host.iter_mut().find(|(t, _)| *t == ggml_type) {
            e.1 += bytes;
        } else {
            self.host.push((ggml_type, bytes));
        }
    }
}

/// Predicts the decode speed of `model` at `offload` (`use_gpu` false: everything on the host).
pub fn decode_speed(
    model: &ModelSummary,
    ctx: &ContextParams,
    offload: Offload,
    use_gpu: bool,
    budget: &Budget,
) -> SpeedEstimate {
    let reads = reads(model, ctx, offload, use_gpu);
    let host_bytes = reads.host.iter().map(|(_, b)| b).sum();
    let gpu_seconds = if reads.gpu > 0 {
        reads.gpu as f64 / budget.gpu_bandwidth().max(1.0)
    } else {
        0.0
    };
    let sync = (reads.host_layers * NODES_PER_LAYER) as f64 * budget.host.node_seconds;
    let seconds = gpu_seconds + host_seconds(&reads.host, &budget.host) + sync;
    SpeedEstimate {
        gpu_bytes: reads.gpu,
        host_bytes,
        kv_fill: kv_fill(model, ctx),
        seconds_per_token: seconds,
        tokens_per_second: if seconds > 0.0 { 1.0 / seconds } else { 0.0 },
    }
}

/// Host seconds per token: each type's bytes read at the bandwidth and computed at its kernel
/// rate, one after the other.
fn host_seconds(host: &[(u32, u64)], speed: &HostSpeed) -> f64 {
    let bandwidth = speed.bandwidth.max(1.0);
    host.iter()
        .map(|&(ty, bytes)| {
            let compute = speed
                .type_rates
                .iter()
                .find(|r| r.ggml_type == ty)
                .map_or(0.0, |r| 1.0 / r.bytes_per_second.max(1.0));
            bytes as f64 * (1.0 / bandwidth + compute)
        })
        .sum()
}

/// The KV tokens one sequence holds when the speed is predicted.
fn kv_fill(model: &ModelSummary, ctx: &ContextParams) -> u64 {
    let n_ctx = super::memory::effective_n_ctx(model, ctx);
    let per_seq = if ctx.kv_unified {
        n_ctx
    } else {
        n_ctx / u64::from(ctx.n_seq.max(1))
    };
    KV_FILL.min(per_seq)
}

fn reads(model: &ModelSummary, ctx: &ContextParams, offload: Offload, use_gpu: bool) -> Reads {
    let n_layer = model.block_count;
    let ngl = if use_gpu {
        offload.n_gpu_layers.min(n_layer + 1)
    } else {
        0
    };
    let i_gpu_start = n_layer + 1 - ngl;
    let experts_read = if model.expert_count > 0 {
        f64::from(model.expert_used_count) / f64::from(model.expert_count)
    } else {
        1.0
    };
    let fill = kv_fill(model, ctx);
    let row = |ty: u32, n: u64| ggml_type(ty).map_or(n * 2, |t| t.row_size(n));
    let mut r = Reads::default();
    for layer in &model.layers {
        let on_gpu = layer.index >= i_gpu_start;
        r.host_layers += u64::from(!on_gpu);
        let experts_on_gpu = on_gpu && layer.index >= offload.n_cpu_moe;
        for t in &layer.by_type {
            r.add(on_gpu, t.ggml_type, t.bytes - t.expert_bytes);
            let experts = (t.expert_bytes as f64 * experts_read).round() as u64;
            r.add(experts_on_gpu, t.ggml_type, experts);
        }
        let il = layer.index as usize;
        let cells = match model.sliding_window {
            Some(n_swa) if model.swa_layers.get(il).copied().unwrap_or(false) => fill.min(n_swa),
            _ => fill,
        };
        let kv_on_gpu = on_gpu && ctx.offload_kqv;
        r.add(
            kv_on_gpu,
            ctx.type_k,
            cells * row(ctx.type_k, model.n_embd_k_gqa(il)),
        );
        r.add(
            kv_on_gpu,
            ctx.type_v,
            cells * row(ctx.type_v, model.n_embd_v_gqa(il)),
        );
    }
    // The output layer: `output.weight`, or a copy of `token_embd` (tied embeddings).
    let output_on_gpu = ngl >= 1;
    r.host_layers += u64::from(!output_on_gpu);
    let named = |name: &str| model.non_layer.iter().find(|t| t.name == name);
    for t in [
        named("output.weight").or_else(|| named("token_embd.weight")),
        named("output_norm.weight"),
    ]
    .into_iter()
    .flatten()
    {
        r.add(output_on_gpu, t.ggml_type, t.bytes);
    }
    r
}
