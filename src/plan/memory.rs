//! The memory model: bytes llama.cpp allocates for one model at one context and offload, per
//! place (GPU or host), following how llama.cpp lays memory out:
//!
//! - Weights (`llama-model.cpp` `load_tensors`): layers il ≥ n_layer + 1 − ngl go to the GPU,
//!   the output layer (`output`, `output_norm`) counting as layer n_layer: `-ngl 1` offloads only
//!   the output layer, `-ngl N` it and the last N − 1 repeating layers, n_layer + 1 everything.
//!   `token_embd` always stays on the CPU ("very little benefit to offloading the input layer").
//!   A model without `output.weight` (tied embeddings, e.g. Gemma) gets a duplicate of
//!   `token_embd` as its output layer. `--n-cpu-moe N` keeps the expert tensors (`ffn_*_exps`) of
//!   the first N layers on the CPU.
//! - KV cache (`llama-kv-cache.cpp`, `llama-kv-cache-iswa.cpp`, `llama-context.cpp`): n_ctx is
//!   padded to 256; a unified cache has n_ctx cells in one stream, otherwise n_seq streams of
//!   pad(n_ctx / n_seq, 256) cells. Sliding-window layers hold pad(min(cells, n_swa·(unified ?
//!   n_seq : 1) + n_ubatch), 256) cells unless `swa_full`. Each cell of layer il takes
//!   row_size(type_k, n_embd_k_gqa(il)) + row_size(type_v, n_embd_v_gqa(il)) bytes. The cache of
//!   a layer lives where the layer is.
//! - Output buffer (`llama_context::output_reserve`): n_vocab f32 logits per sequence, on the host.
//! - Compute buffers: an estimate, since llama.cpp sizes them by allocating the worst-case graph
//!   (`llama_context::sched_reserve`, one ubatch). Terms: f32 logits for min(n_ubatch,
//!   n_outputs_max) outputs × n_vocab; f32 activations n_ubatch·(4·n_embd + 2·n_ff); the
//!   attention masks n_kv·n_ubatch (f16 with flash attention, else f32; one more for
//!   sliding-window layers, `build_attn_inp_kq_mask`); without flash attention the f32 scores
//!   n_ubatch·n_kv·n_head. The masks are inputs, live all along; logits and scores are not live
//!   together: peak = masks + activations + max(logits, scores). With a GPU the whole peak is on
//!   the GPU, whatever `-ngl` (llama.cpp offloads large-batch operations, `op_offload`), and the
//!   host keeps the masks and two n_ubatch·n_embd f32 buffers.
//!
//!   Measured (llama.cpp b11434): the demo model (Gemma 3 270M) on the CPU, n_ubatch 512:
//!   n_ctx 4096, 1 sequence: 524.5 MiB, predicted 530.0; n_ctx 32768, 4 sequences: 552.8,
//!   predicted 559.5; llama-server's defaults (n_outputs_max = 4): 52.8, predicted 51.5. A
//!   written 8-layer llama (n_embd 256, 16000 tokens, tied embeddings) on an H100, n_ctx 8192,
//!   4 sequences: -ngl 99 flash attention on: GPU 41.3 MiB (predicted 43.3), host 10.0 (9.0);
//!   off: GPU 83.0 (84.0), host 18.5 (17.0); -ngl 5 and 1: GPU 34.3 (43.3: the mask is not
//!   always on the GPU); -ngl 0: GPU 42.1 (43.3). Weights, KV cache and output buffers matched
//!   the formulas above exactly, the tied output copy on the GPU included.

use crate::gguf::{ModelSummary, ggml_type};
use serde::Serialize;

/// Context parameters that change memory use, named as llama.cpp's `llama_context_params`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContextParams {
    /// Total context (all sequences); 0 means the model's training context.
    pub n_ctx: u32,
    /// `n_seq_max` (llama-server's `--parallel`).
    pub n_seq: u32,
    pub n_batch: u32,
    pub n_ubatch: u32,
    /// Most logits rows one ubatch computes; 0 means n_batch (llama.cpp's and llama-cpp-2's
    /// default). llama-server sets it to n_parallel, which shrinks the compute buffer of
    /// large-vocabulary models by hundreds of MiB.
    pub n_outputs_max: u32,
    /// ggml type id of the K cache (1 = f16, 8 = q8_0, 2 = q4_0).
    pub type_k: u32,
    /// ggml type id of the V cache.
    pub type_v: u32,
    /// Flash attention (`auto` resolved by the caller; llama.cpp turns auto on where supported).
    pub flash_attn: bool,
    /// Full-size cache for sliding-window layers (llama-server `--swa-full`, default off).
    pub swa_full: bool,
    /// One KV stream shared by all sequences (llama-server `--kv-unified`, its default with
    /// automatic slots).
    pub kv_unified: bool,
    /// The KV cache of offloaded layers on the GPU (llama-server `-kvo`, its default); off,
    /// every layer's cache is in host memory.
    pub offload_kqv: bool,
}

impl Default for ContextParams {
    /// llama-server's defaults, with one sequence.
    fn default() -> Self {
        ContextParams {
            n_ctx: 0,
            n_seq: 1,
            n_batch: 2048,
            n_ubatch: 512,
            n_outputs_max: 0,
            type_k: 1,
            type_v: 1,
            flash_attn: true,
            swa_full: false,
            kv_unified: true,
            offload_kqv: true,
        }
    }
}

/// Where the weights go: llama.cpp's `n_gpu_layers` and `n_cpu_moe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Offload {
    /// Layers on the GPU, counted from the output layer (1) back; n_layer + 1 is all of them.
    pub n_gpu_layers: u32,
    /// Layers (from the first) whose MoE expert tensors stay on the CPU.
    pub n_cpu_moe: u32,
}

/// Predicted bytes, per place and kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemoryEstimate {
    pub gpu_weights: u64,
    pub gpu_kv: u64,
    pub gpu_compute: u64,
    pub host_weights: u64,
    pub host_kv: u64,
    pub host_compute: u64,
    pub host_output: u64,
}

impl MemoryEstimate {
    pub fn gpu_total(&self) -> u64 {
        self.gpu_weights + self.gpu_kv + self.gpu_compute
    }

    pub fn host_total(&self) -> u64 {
        self.host_weights + self.host_kv + self.host_compute + self.host_output
    }

    pub fn total(&self) -> u64 {
        self.gpu_total() + self.host_total()
    }
}

const F32: u64 = 4;

/// The n_ctx llama.cpp will use: the model's context for 0, padded to 256.
pub fn effective_n_ctx(model: &ModelSummary, ctx: &ContextParams) -> u64 {
    let n_ctx = if ctx.n_ctx == 0 {
        model.context_length
    } else {
        u64::from(ctx.n_ctx)
    };
    n_ctx.max(1).next_multiple_of(256)
}

/// (cells per stream, streams) of full-attention and sliding-window layers.
fn kv_cells(model: &ModelSummary, ctx: &ContextParams) -> ((u64, u64), u64) {
    let n_ctx = effective_n_ctx(model, ctx);
    let n_seq = u64::from(ctx.n_seq.max(1));
    let (cells, streams) = if ctx.kv_unified {
        (n_ctx, 1)
    } else {
        ((n_ctx / n_seq).max(1).next_multiple_of(256), n_seq)
    };
    let swa_cells = match model.sliding_window {
        Some(_) if ctx.swa_full => cells,
        Some(n_swa) => {
            let per = if ctx.kv_unified { n_seq } else { 1 };
            cells
                .min(n_swa * per + u64::from(ctx.n_ubatch))
                .next_multiple_of(256)
        }
        None => cells,
    };
    ((cells, swa_cells), streams)
}

/// KV cache bytes of layer `il`, with its recurrent state for every sequence (llama.cpp's
/// recurrent memory holds one per sequence, on the layer's device as the KV cache).
pub fn kv_layer_bytes(model: &ModelSummary, ctx: &ContextParams, il: usize) -> u64 {
    let ((cells, swa_cells), streams) = kv_cells(model, ctx);
    let cells = if model.swa_layers.get(il).copied().unwrap_or(false) {
        swa_cells
    } else {
        cells
    };
    let recurrent = model.recurrent_state.get(il).copied().unwrap_or(0);
    streams * cells * cell_bytes(model, ctx, il) + u64::from(ctx.n_seq.max(1)) * recurrent
}

/// Bytes of one cell of layer `il`'s cache: a K row and a V row.
fn cell_bytes(model: &ModelSummary, ctx: &ContextParams, il: usize) -> u64 {
    let row = |ty: u32, n: u64| ggml_type(ty).map_or(n * 2, |t| t.row_size(n));
    row(ctx.type_k, model.n_embd_k_gqa(il)) + row(ctx.type_v, model.n_embd_v_gqa(il))
}

/// Bytes of one context checkpoint (`--ctx-checkpoints`): the sliding-window layers' cells of
/// one sequence, which llama.cpp's partial sequence state holds (`state_write` skips the cells
/// the window masks, so `n_swa` of them once the sequence is that long), each with its position
/// and sequence id (12 bytes), less a header of a few bytes per layer. The demo model (15
/// sliding-window layers, 1 KiB per cell, `n_swa` 512): 7 870 464 bytes predicted, 7 870 856
/// taken. 0 for a model without a sliding window, or with `swa_full` (llama.cpp then keeps the
/// whole sequence, and checkpoints are not taken). A recurrent model's checkpoint is one
/// sequence's recurrent state (the tiny Mamba of the tests: 19 456 bytes predicted, 19 532
/// taken). These live in host memory, outside llama.cpp's allocation.
pub fn checkpoint_bytes(model: &ModelSummary, ctx: &ContextParams) -> u64 {
    if !model.recurrent_state.is_empty() {
        return model.recurrent_state.iter().sum();
    }
    let Some(n_swa) = model.sliding_window else {
        return 0;
    };
    if ctx.swa_full {
        return 0;
    }
    let ((cells, _), _) = kv_cells(model, ctx);
    let window = n_swa.min(cells);
    const CELL_META: u64 = 12;
    let swa_layers = model.swa_layers.iter().enumerate().filter(|&(_, &swa)| swa);
    let per_cell: u64 = swa_layers.map(|(il, _)| cell_bytes(model, ctx, il)).sum();
    window * (CELL_META + per_cell)
}

/// The terms of the compute buffers (see the module doc), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ComputeParts {
    /// The attention masks: graph inputs, live throughout, one copy per device that computes.
    pub masks: u64,
    pub activations: u64,
    /// The f32 logits of one ubatch: on the device of the output layer.
    pub logits: u64,
    /// The f32 attention scores without flash attention (0 with it).
    pub scores: u64,
    /// The host's part when a GPU runs the graph: the masks and the token embeddings.
    pub host: u64,
}

impl ComputeParts {
    /// The peak of the device running the output layer: the logits and the attention scores are
    /// not live at the same time.
    pub fn peak(&self) -> u64 {
        self.masks + self.activations + self.logits.max(self.scores)
    }

    /// The peak of a device running only repeating layers.
    pub fn layers_only(&self) -> u64 {
        self.masks + self.activations + self.scores
    }
}

pub(super) fn compute_parts(model: &ModelSummary, ctx: &ContextParams) -> ComputeParts {
    let n_ubatch = u64::from(ctx.n_ubatch);
    let n_outputs = match ctx.n_outputs_max {
        0 => ctx.n_batch,
        n => n,
    };
    let logits = F32 * model.vocab_size * n_ubatch.min(u64::from(n_outputs.max(1)));
    let n_ff = model
        .feed_forward_length
        .max(model.expert_feed_forward_length * u64::from(model.expert_used_count));
    let activations = F32 * n_ubatch * (4 * model.embedding_length + 2 * n_ff);
    let ((cells, swa_cells), _) = kv_cells(model, ctx);
    let mask_type_size = if ctx.flash_attn { 2 } else { F32 };
    let has_swa = model.swa_layers.iter().any(|&swa| swa);
    let masks = mask_type_size * n_ubatch * (cells + if has_swa { swa_cells } else { 0 });
    let scores = if ctx.flash_attn {
        0
    } else {
        let n_head = model.head_count.iter().copied().max().unwrap_or(0);
        F32 * n_ubatch * cells * u64::from(n_head)
    };
    // With a GPU the host keeps the inputs: masks and the token embeddings (and a copy).
    let host = masks + 2 * F32 * n_ubatch * model.embedding_length;
    ComputeParts {
        masks,
        activations,
        logits,
        scores,
        host,
    }
}

/// The compute buffers: (peak of the device running the graph, host part when that device is
/// a GPU).
fn compute_bytes(model: &ModelSummary, ctx: &ContextParams) -> (u64, u64) {
    let parts = compute_parts(model, ctx);
    (parts.peak(), parts.host)
}

pub(super) fn tensor_bytes(model: &ModelSummary, name: &str) -> Option<u64> {
    model
        .non_layer
        .iter()
        .find(|t| t.name == name)
        .map(|t| t.bytes)
}

/// Predicts memory on a machine with no GPU: everything on the host.
pub fn estimate_cpu_only(model: &ModelSummary, ctx: &ContextParams) -> MemoryEstimate {
    let m = estimate(
        model,
        ctx,
        Offload {
            n_gpu_layers: 0,
            n_cpu_moe: 0,
        },
    );
    MemoryEstimate {
        gpu_compute: 0,
        host_compute: compute_bytes(model, ctx).0,
        ..m
    }
}

/// Predicts memory for one model, context and offload on a machine with a GPU (where the
/// compute buffers are on the GPU even with `n_gpu_layers` 0; see [`estimate_cpu_only`]).
pub fn estimate(model: &ModelSummary, ctx: &ContextParams, offload: Offload) -> MemoryEstimate {
    let n_layer = model.block_count;
    let ngl = offload.n_gpu_layers.min(n_layer + 1);
    let i_gpu_start = n_layer + 1 - ngl;
    let mut m = MemoryEstimate::default();

    for layer in &model.layers {
        let kv = kv_layer_bytes(model, ctx, layer.index as usize);
        if layer.index >= i_gpu_start {
            let cpu_experts = if layer.index < offload.n_cpu_moe {
                layer.expert_bytes
            } else {
                0
            };
            m.gpu_weights += layer.bytes - cpu_experts;
            m.host_weights += cpu_experts;
            if ctx.offload_kqv {
                m.gpu_kv += kv;
            } else {
                m.host_kv += kv;
            }
        } else {
            m.host_weights += layer.bytes;
            m.host_kv += kv;
        }
    }

    let output_on_gpu = ngl >= 1;
    let non_layer: u64 = model.non_layer.iter().map(|t| t.bytes).sum();
    if output_on_gpu {
        let norm = tensor_bytes(model, "output_norm.weight").unwrap_or(0);
        let output = tensor_bytes(model, "output.weight");
        // Tied embeddings: the output layer is a GPU copy of token_embd, which stays on the host.
        let output_on_device = output
            .or_else(|| tensor_bytes(model, "token_embd.weight"))
            .unwrap_or(0);
        m.gpu_weights += norm + output_on_device;
        m.host_weights += non_layer - norm - output.unwrap_or(0);
    } else {
        m.host_weights += non_layer;
    }

    // llama.cpp runs the graph on the GPU even with -ngl 0 (it offloads large-batch operations,
    // `op_offload`), so the compute buffer is there; the host keeps the inputs.
    let (peak, host) = compute_bytes(model, ctx);
    m.gpu_compute = peak;
    m.host_compute = host;
    m.host_output = F32 * model.vocab_size * u64::from(ctx.n_seq.max(1));
    m
}
