//! Placement over several GPUs: which layers, KV cache and compute buffers each device holds in
//! llama.cpp's layer split, and the `-ts` that makes llama.cpp lay the model out so. Pure, as the
//! rest of the planner; `plan_file` asks it whether an offload fits when the budget has more
//! than one GPU.
//!
//! How llama.cpp assigns layers (`llama_model_base::load_tensors`, `llama-model.cpp`): the
//! offloaded layers are the last `n_gpu_layers` of n_layer + 1, the output layer counting as
//! layer n_layer. With `tensor_split` proportions p, normalized to cumulative split points s,
//! offloaded layer k (0-based among them) goes to the first device with s > k / n_gpu_layers;
//! all zero means proportions of free memory. So the devices hold contiguous runs in device
//! order and the output layer lands on the last device that gets any layer. A layer's weights
//! (MoE experts included unless `--n-cpu-moe` keeps them on the host) and its KV cache live on
//! its device. The scheduler allocates a compute buffer on each device that runs part of the
//! graph: the device of the output layer holds the logits, and with layers left on the host
//! the first device also runs the host layers' large-batch operations (`op_offload`).
//!
//! The split the planner chooses: everything on one device if one holds it all (the main GPU
//! first: no transfer between devices, and a layer split runs the devices one after the other
//! anyway); another machine's device (`GpuBudget::remote`, llama.cpp's RPC, listed first) only
//! when the local devices cannot hold it, alone or together; else the layers in proportion to
//! what each device can hold after its compute buffer, a device too small for one layer and its
//! compute buffer getting none; if rounding to whole layers overflows a device, llama.cpp's
//! `--fit` order: the last device filled first
//! (`common/fit.cpp`). `-ts` is then the layer counts, which llama.cpp's formula reproduces
//! exactly, as `--fit` writes it. A `-ts` the user gives is laid out by llama.cpp's formula and
//! checked device by device.

use super::memory::{ComputeParts, ContextParams, Offload, compute_parts, kv_layer_bytes};
use super::{Budget, GpuBudget, fmt_bytes};
use crate::gguf::ModelSummary;
use serde::Serialize;

/// `--split-mode`: how the model spreads over several GPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitMode {
    /// Everything on `--main-gpu`.
    None,
    /// Whole layers per device (llama.cpp's default).
    #[default]
    Layer,
    /// Each matrix's rows over the devices; planned as a layer split with the same shares.
    Row,
}

/// What the user fixed about the split.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SplitRequest {
    pub mode: SplitMode,
    /// `--main-gpu`: the device of `--split-mode none` (negative: none), and the one the planner
    /// tries first for a model one device holds.
    pub main_gpu: i32,
    /// `--tensor-split` as given; empty lets the planner choose.
    pub tensor_split: Vec<f32>,
}

/// What one device holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DevicePlan {
    pub name: String,
    pub free: u64,
    pub usable: u64,
    /// The repeating layers here, first and last.
    pub layers: Option<(u32, u32)>,
    /// Whether the output layer (and the logits) is here.
    pub output: bool,
    pub weights: u64,
    pub kv: u64,
    pub compute: u64,
}

impl DevicePlan {
    pub fn total(&self) -> u64 {
        self.weights + self.kv + self.compute
    }

    pub fn fits(&self) -> bool {
        self.total() <= self.usable
    }

    /// Layers here, the output layer counting as one (its `-ts` share).
    pub fn n_layer(&self) -> u32 {
        self.layers.map_or(0, |(a, b)| b - a + 1) + u32::from(self.output)
    }
}

/// The placement over the devices, with `-ts`, `-ot` and the reasons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Split {
    pub devices: Vec<DevicePlan>,
    /// llama.cpp's `-ts`: layers per device, the output layer counting as one.
    pub tensor_split: Vec<u32>,
    /// Whether the split is the user's `-ts`.
    pub given: bool,
    /// `-ot` equivalents: the MoE experts `--n-cpu-moe` keeps in host memory.
    pub overrides: Vec<String>,
    pub reasons: Vec<String>,
}

impl Split {
    pub fn fits(&self) -> bool {
        self.devices.iter().all(DevicePlan::fits)
    }

    /// `-ts` as llama-server takes it (`0,18,7`).
    pub fn tensor_split_arg(&self) -> String {
        let counts: Vec<String> = self.tensor_split.iter().map(u32::to_string).collect();
        counts.join(",")
    }
}

/// The offloaded layers in llama.cpp's order, the output layer last when offloaded: the bytes
/// each puts on its device.
struct Units {
    /// Index of the first offloaded layer (n_layer: only the output layer; n_layer + 1: none).
    first: u32,
    weights: Vec<u64>,
    kv: Vec<u64>,
    parts: ComputeParts,
}

impl Units {
    fn new(model: &ModelSummary, ctx: &ContextParams, offload: Offload) -> Units {
        let n_layer = model.block_count;
        let ngl = offload.n_gpu_layers.min(n_layer + 1);
        let first = n_layer + 1 - ngl;
        let mut weights = Vec::new();
        let mut kv = Vec::new();
        let mut layers: Vec<_> = model.layers.iter().filter(|l| l.index >= first).collect();
        layers.sort_by_key(|l| l.index);
        for layer in layers {
            let cpu_experts = if layer.index < offload.n_cpu_moe {
                layer.expert_bytes
            } else {
                0
            };
            weights.push(layer.bytes - cpu_experts);
            kv.push(if ctx.offload_kqv {
                kv_layer_bytes(model, ctx, layer.index as usize)
            } else {
                0
            });
        }
        if ngl >= 1 {
            let named = |name: &str| super::memory::tensor_bytes(model, name);
            let norm = named("output_norm.weight").unwrap_or(0);
            let output = named("output.weight").or_else(|| named("token_embd.weight"));
            weights.push(norm + output.unwrap_or(0));
            kv.push(0);
        }
        Units {
            first,
            weights,
            kv,
            parts: compute_parts(model, ctx),
        }
    }

    fn len(&self) -> usize {
        self.weights.len()
    }

    fn cost(&self, k: usize) -> u64 {
        self.weights[k] + self.kv[k]
    }

    fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Compute buffer of device `i` when it holds units `range` (empty: none). The output layer
    /// is the last unit whenever any layer is offloaded.
    fn compute(&self, i: usize, range: std::ops::Range<usize>) -> u64 {
        let mut c = if range.is_empty() {
            0
        } else if range.end == self.len() {
            self.parts.peak()
        } else {
            self.parts.layers_only()
        };
        // Layers left on the host: the first device runs their large-batch operations.
        if i == 0 && self.first > 0 {
            c = c.max(if self.is_empty() {
                self.parts.peak()
            } else {
                self.parts.layers_only()
            });
        }
        c
    }

    /// What each device holds for `counts` units per device, in device order.
    fn devices(&self, gpus: &[GpuBudget], counts: &[u32]) -> Vec<DevicePlan> {
        let output_unit = self.len().checked_sub(1);
        let mut start = 0;
        gpus.iter()
            .zip(counts)
            .enumerate()
            .map(|(i, (g, &n))| {
                let range = start..start + n as usize;
                start = range.end;
                let output = output_unit.is_some_and(|o| range.contains(&o));
                let last_layer = if output { range.end - 1 } else { range.end };
                let layers = (range.start < last_layer).then(|| {
                    (
                        self.first + range.start as u32,
                        self.first + last_layer as u32 - 1,
                    )
                });
                DevicePlan {
                    name: g.name.clone(),
                    free: g.free,
                    usable: g.usable(),
                    layers,
                    output,
                    weights: range.clone().map(|k| self.weights[k]).sum(),
                    kv: range.clone().map(|k| self.kv[k]).sum(),
                    compute: self.compute(i, range),
                }
            })
            .collect()
    }
}

/// Layers per device for `-ts` proportions, as llama.cpp assigns them: offloaded layer k goes
/// to the first device whose cumulative share exceeds k / n (all zero: equal shares here; the
/// caller never passes that).
pub fn counts_for_proportions(proportions: &[f32], n: u32) -> Vec<u32> {
    let nd = proportions.len();
    let mut counts = vec![0; nd];
    if nd == 0 {
        return counts;
    }
    let sum: f32 = proportions.iter().sum();
    let mut cumulative = 0.0f32;
    let splits: Vec<f32> = proportions
        .iter()
        .map(|p| {
            cumulative += p;
            cumulative / sum
        })
        .collect();
    for k in 0..n {
        let x = k as f32 / n as f32;
        let i = splits.partition_point(|&s| s <= x).min(nd - 1);
        counts[i] += 1;
    }
    counts
}

/// With `--split-mode none`, the budget of the main GPU alone (llama.cpp loads on no other;
/// a negative `--main-gpu` on none). The caller checks that the main GPU exists.
pub(super) fn main_gpu_only(budget: &Budget, split: &SplitRequest) -> Option<Budget> {
    if split.mode != SplitMode::None || budget.gpus.len() < 2 {
        return None;
    }
    let main = usize::try_from(split.main_gpu)
        .ok()
        .and_then(|i| budget.gpus.get(i));
    Some(Budget {
        gpus: main.cloned().into_iter().collect(),
        ..budget.clone()
    })
}

/// Places the offload over `gpus` (at least one): the user's `-ts`, or the planner's split.
pub fn place(
    model: &ModelSummary,
    ctx: &ContextParams,
    offload: Offload,
    gpus: &[GpuBudget],
    request: &SplitRequest,
) -> Split {
    let units = Units::new(model, ctx, offload);
    let n = units.len() as u32;
    let mut reasons = Vec::new();
    let given = !request.tensor_split.is_empty() && request.tensor_split.iter().any(|&p| p > 0.0);
    let counts = if given {
        let mut proportions: Vec<f32> = request.tensor_split.clone();
        proportions.resize(gpus.len(), 0.0);
        let counts = counts_for_proportions(&proportions, n);
        let ts: Vec<String> = request.tensor_split.iter().map(f32::to_string).collect();
        reasons.push(format!(
            "-ts {} (given): llama.cpp lays out {n} layers as {}",
            ts.join(","),
            join(&counts)
        ));
        counts
    } else {
        auto_counts(&units, gpus, request.main_gpu, &mut reasons)
    };
    if request.mode == SplitMode::Row {
        reasons.push("--split-mode row is planned as a layer split with the same shares".into());
    }
    let devices = units.devices(gpus, &counts);
    for d in &devices {
        reasons.push(device_line(d));
    }
    Split {
        devices,
        tensor_split: counts,
        given,
        overrides: overrides(model, offload),
        reasons,
    }
}

/// The planner's layers per device (see the module doc), with why.
fn auto_counts(
    units: &Units,
    gpus: &[GpuBudget],
    main_gpu: i32,
    reasons: &mut Vec<String>,
) -> Vec<u32> {
    let nd = gpus.len();
    let n = units.len() as u32;
    if n == 0 {
        return vec![0; nd];
    }
    let fits = |counts: &[u32]| units.devices(gpus, counts).iter().all(DevicePlan::fits);
    let local: Vec<usize> = (0..nd).filter(|&i| !gpus[i].remote).collect();
    // One device alone: the main GPU first, then by usable memory. Only a local one when there
    // is one: another machine's device alone would send the logits over the network every token.
    let mut order = if local.is_empty() {
        (0..nd).collect()
    } else {
        local.clone()
    };
    order.sort_by_key(|&i| (i as i32 != main_gpu, std::cmp::Reverse(gpus[i].usable())));
    for &i in &order {
        let mut counts = vec![0; nd];
        counts[i] = n;
        if fits(&counts) {
            if nd > 1 {
                reasons.push(format!(
                    "the offload fits on {} alone: no split needed (-ts {})",
                    gpus[i].name,
                    join(&counts)
                ));
            }
            return counts;
        }
    }
    // Several local devices before any layer crosses the network.
    if local.len() > 1 && local.len() < nd {
        let only_local: Vec<GpuBudget> = local.iter().map(|&i| gpus[i].clone()).collect();
        let mut local_reasons = Vec::new();
        let mut counts = vec![0; nd];
        for (&i, n) in local
            .iter()
            .zip(proportional(units, &only_local, &mut local_reasons))
        {
            counts[i] = n;
        }
        if fits(&counts) {
            reasons.extend(local_reasons);
            reasons.push(format!(
                "-ts {}: the local devices hold it, in proportion to their memory; no layers on \
                 another machine",
                join(&counts)
            ));
            return counts;
        }
    }
    let proportional = proportional(units, gpus, reasons);
    if fits(&proportional) {
        reasons.push(format!(
            "-ts {}: layers in proportion to the memory each device has after its compute buffer",
            join(&proportional)
        ));
        return proportional;
    }
    let greedy = back_to_front(units, gpus);
    if fits(&greedy) {
        reasons.push(format!(
            "-ts {}: whole layers in proportion overflow a device; filled from the last device \
             (llama.cpp's --fit order)",
            join(&greedy)
        ));
        return greedy;
    }
    proportional
}

/// Layers cut at the device boundaries nearest to each device's share of the memory it can
/// hold after its compute buffer; devices too small for one layer get none.
fn proportional(units: &Units, gpus: &[GpuBudget], reasons: &mut Vec<String>) -> Vec<u32> {
    let nd = gpus.len();
    let smallest = (0..units.len()).map(|k| units.cost(k)).min().unwrap_or(0);
    let mut capacity: Vec<u64> = gpus
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let compute = units.parts.layers_only().max(units.compute(i, 0..0));
            let room = g.usable().saturating_sub(compute);
            if room < smallest && !units.is_empty() {
                reasons.push(format!(
                    "{} ({} usable) is too small for one layer ({}) and its compute buffer ({}): \
                     no layers",
                    g.name,
                    fmt_bytes(g.usable()),
                    fmt_bytes(smallest),
                    fmt_bytes(compute)
                ));
                0
            } else {
                room
            }
        })
        .collect();
    // The last device with room gets the output layer, and with it the logits.
    if let Some(last) = capacity.iter().rposition(|&c| c > 0) {
        let peak = units.parts.peak().max(units.compute(last, 0..0));
        capacity[last] = gpus[last].usable().saturating_sub(peak);
    }
    let total: u128 = (0..units.len()).map(|k| u128::from(units.cost(k))).sum();
    let capacity_sum: u128 = capacity.iter().map(|&c| u128::from(c)).sum();
    let mut counts = vec![0; nd];
    if capacity_sum == 0 {
        counts[nd - 1] = units.len() as u32;
        return counts;
    }
    let mut cumulative_capacity = 0u128;
    let targets: Vec<u128> = capacity
        .iter()
        .map(|&c| {
            cumulative_capacity += u128::from(c);
            total * cumulative_capacity / capacity_sum
        })
        .collect();
    let (mut device, mut cumulative) = (0, 0u128);
    for k in 0..units.len() {
        let middle = cumulative + u128::from(units.cost(k)) / 2;
        while device < nd - 1 && middle > targets[device] {
            device += 1;
        }
        counts[device] += 1;
        cumulative += u128::from(units.cost(k));
    }
    counts
}

/// llama.cpp's `--fit` order: the last device takes as many layers from the back as it holds,
/// then the one before it, and so on.
fn back_to_front(units: &Units, gpus: &[GpuBudget]) -> Vec<u32> {
    let nd = gpus.len();
    let mut counts = vec![0; nd];
    let mut end = units.len();
    for i in (0..nd).rev() {
        let mut take = 0;
        while take < end {
            let range = end - take - 1..end;
            let bytes: u64 = range.clone().map(|k| units.cost(k)).sum();
            if bytes + units.compute(i, range) > gpus[i].usable() {
                break;
            }
            take += 1;
        }
        counts[i] = take as u32;
        end -= take;
    }
    // What no device holds goes to the first, to show its overflow.
    counts[0] += end as u32;
    counts
}

/// "GPU0 (24.00 GiB free): layers 0-17, 11.20 GiB (…)".
fn device_line(d: &DevicePlan) -> String {
    let what = match (d.layers, d.output) {
        (Some((a, b)), true) => format!("layers {a}-{b} and the output layer"),
        (Some((a, b)), false) => format!("layers {a}-{b}"),
        (None, true) => "the output layer".into(),
        (None, false) if d.compute > 0 => "no layers, compute for the host's layers".into(),
        (None, false) => "no layers".into(),
    };
    if d.total() == 0 {
        return format!("{} ({} free): {what}", d.name, fmt_bytes(d.free));
    }
    let mut line = format!(
        "{} ({} free): {what}, {} (weights {}, KV cache {}, compute {})",
        d.name,
        fmt_bytes(d.free),
        fmt_bytes(d.total()),
        fmt_bytes(d.weights),
        fmt_bytes(d.kv),
        fmt_bytes(d.compute)
    );
    if !d.fits() {
        line += &format!(
            ": {} over its {} usable",
            fmt_bytes(d.total() - d.usable),
            fmt_bytes(d.usable)
        );
    }
    line
}

/// `-ot` equivalents of `--n-cpu-moe`: the expert tensors of its layers on the CPU.
fn overrides(model: &ModelSummary, offload: Offload) -> Vec<String> {
    let n = offload.n_cpu_moe.min(model.block_count);
    if model.expert_count == 0 || n == 0 {
        return Vec::new();
    }
    let layers: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    vec![format!(
        r"blk\.({})\.ffn_(up|down|gate|gate_up)_(ch|)exps=CPU",
        layers.join("|")
    )]
}

fn join(counts: &[u32]) -> String {
    let counts: Vec<String> = counts.iter().map(u32::to_string).collect();
    counts.join(",")
}
