//! Fitting one file into a budget (how many layers, or which experts, go to the GPU) and choosing
//! among the quants of a model.

use super::memory::{
    ContextParams, MemoryEstimate, Offload, checkpoint_bytes, effective_n_ctx, estimate,
    estimate_cpu_only,
};
use super::speed::decode_speed;
use super::split;
use super::{
    BALANCED_SHARE, Budget, Decision, FilePlan, Fit, GPU_UBATCH, GpuLayers, PlanError, PlanRequest,
    Prefer, fmt_bytes,
};
use crate::gguf::ModelSummary;

/// Plans one file: the offload that fits the budget (or the requested one) and its memory.
pub fn plan_file(model: &ModelSummary, request: &PlanRequest, budget: &Budget) -> FilePlan {
    let main_only = split::main_gpu_only(budget, &request.split);
    let budget = main_only.as_ref().unwrap_or(budget);
    let several = budget.gpus.len() > 1;
    let gpu = budget.gpu_usable();
    let host = budget.host_usable();
    let all = model.block_count + 1;
    let at = |n_gpu_layers, n_cpu_moe| Offload {
        n_gpu_layers,
        n_cpu_moe,
    };
    let place = |ctx: &ContextParams, o| split::place(model, ctx, o, &budget.gpus, &request.split);

    let n_cpu_moe = request.n_cpu_moe.unwrap_or(0);
    let has_gpu = !budget.gpus.is_empty();
    // The offload the user fixed (no GPU fixes it at 0), or None for the planner to choose.
    let fixed = if has_gpu {
        match request.n_gpu_layers {
            GpuLayers::Count(n) => Some(at(n.min(all), n_cpu_moe)),
            GpuLayers::All => Some(at(all, n_cpu_moe)),
            GpuLayers::Auto => None,
        }
    } else {
        Some(at(0, 0))
    };
    let estimate_at = |ctx: &ContextParams, o: Offload| {
        if has_gpu {
            estimate(model, ctx, o)
        } else {
            estimate_cpu_only(model, ctx)
        }
    };
    // Host memory, and the GPUs as one pool or, with several, device by device.
    let fits_with = |ctx: &ContextParams, o: Offload| {
        let m = estimate_at(ctx, o);
        m.host_total() <= host
            && (if several {
                place(ctx, o).fits()
            } else {
                m.gpu_total() <= gpu
            })
    };
    let fits = |o: Offload| fits_with(&request.context, o);
    let mut chosen = match fixed {
        Some(o) => Some(o).filter(|o| fits(*o)),
        None => auto_offload(model, request, &fits),
    };
    // A GPU too small for even the compute buffers is better left unused.
    let mut use_gpu = has_gpu;
    let cpu_only = estimate_cpu_only(model, &request.context);
    if chosen.is_none()
        && fixed.is_none()
        && cpu_only.host_total() <= host
        && cpu_only.gpu_total() <= gpu
    {
        chosen = Some(at(0, 0));
        use_gpu = false;
    }
    let fit = match chosen {
        None => Fit::None,
        Some(o) if o.n_gpu_layers == 0 => Fit::Cpu,
        Some(o) if o.n_gpu_layers == all && o.n_cpu_moe == 0 => Fit::FullGpu,
        Some(_) => Fit::PartialGpu,
    };
    // A model wholly on the GPU computes prompts faster in larger ubatches, where they fit.
    let raised = chosen
        .filter(|_| request.ubatch_auto && fit == Fit::FullGpu)
        .and_then(|o| {
            let n_ubatch = GPU_UBATCH.min(request.context.n_batch);
            let raised = ContextParams {
                n_ubatch,
                ..request.context.clone()
            };
            (n_ubatch > request.context.n_ubatch && fits_with(&raised, o)).then_some(raised)
        });
    let ctx = raised.as_ref().unwrap_or(&request.context);
    // When nothing fits, report what the fixed offload, or everything on the GPU, would need.
    let offload = chosen.or(fixed).unwrap_or(at(all, n_cpu_moe));
    let split = (several && use_gpu).then(|| place(ctx, offload));
    let mut predicted = if use_gpu {
        estimate(model, ctx, offload)
    } else {
        estimate_cpu_only(model, ctx)
    };
    if let Some(split) = &split {
        // One compute buffer per device that runs part of the graph.
        predicted.gpu_compute = split.devices.iter().map(|d| d.compute).sum();
    }
    let full = estimate(model, ctx, at(all, 0));
    let weights = predicted.gpu_weights + predicted.host_weights;
    let gpu_fraction = if weights == 0 {
        0.0
    } else {
        predicted.gpu_weights as f64 / weights as f64
    };
    let n_ctx = effective_n_ctx(model, ctx);
    let mut reason = file_reason(
        model,
        fit,
        offload,
        &predicted,
        &full,
        budget,
        n_ctx,
        gpu_fraction,
    );
    if has_gpu && fit == Fit::Cpu {
        reason.push_str(&if use_gpu {
            format!(
                "; the GPU holds the compute buffers ({})",
                fmt_bytes(predicted.gpu_total())
            )
        } else {
            "; the GPU cannot hold even the compute buffers: load without it (--device none)".into()
        });
    }
    if let Some(split) = split.as_ref().filter(|_| fit == Fit::None) {
        for d in split.devices.iter().filter(|d| !d.fits()) {
            reason.push_str(&format!(
                "; {} would need {}, {} usable",
                d.name,
                fmt_bytes(d.total()),
                fmt_bytes(d.usable)
            ));
        }
    }
    if raised.is_some() {
        reason.push_str(&format!(
            "; -ub {}: the larger compute buffers fit too, for faster prompt processing",
            ctx.n_ubatch
        ));
    }
    if let Some(only) = main_only.as_ref().and_then(|b| b.gpus.first()) {
        reason.push_str(&format!(
            "; --split-mode none: everything on {} (--main-gpu {})",
            only.name, request.split.main_gpu
        ));
    }
    let speed = decode_speed(model, ctx, offload, use_gpu, budget);
    FilePlan {
        file: model.path.clone(),
        quant: model.quant_name(),
        quality_rank: model.quant.as_ref().map_or(0, |q| q.quality_rank),
        file_size: model.file_size,
        n_ctx,
        fit,
        offload,
        n_ubatch: ctx.n_ubatch,
        use_gpu,
        gpu_fraction,
        predicted,
        speed,
        split,
        reason,
    }
}

/// The most GPU use that fits: all layers with fewer experts on the CPU (MoE), else fewer layers.
fn auto_offload(
    model: &ModelSummary,
    request: &PlanRequest,
    fits: &dyn Fn(Offload) -> bool,
) -> Option<Offload> {
    let all = model.block_count + 1;
    let try_at = |n_gpu_layers, n_cpu_moe| {
        let o = Offload {
            n_gpu_layers,
            n_cpu_moe,
        };
        fits(o).then_some(o)
    };
    if let Some(n_cpu_moe) = request.n_cpu_moe {
        return (0..=all).rev().find_map(|ngl| try_at(ngl, n_cpu_moe));
    }
    if model.expert_count > 0 {
        // Experts are the bulk of a MoE model and the cheapest part to run on the CPU: keep all
        // layers' attention on the GPU and move experts layer by layer first.
        if let Some(o) = (0..=model.block_count).find_map(|k| try_at(all, k)) {
            return Some(o);
        }
    }
    (0..=all).rev().find_map(|ngl| try_at(ngl, 0))
}

#[allow(clippy::too_many_arguments)]
fn file_reason(
    model: &ModelSummary,
    fit: Fit,
    offload: Offload,
    predicted: &MemoryEstimate,
    full: &MemoryEstimate,
    budget: &Budget,
    n_ctx: u64,
    gpu_fraction: f64,
) -> String {
    let quant = model.quant_name();
    let parts = |m: &MemoryEstimate, gpu: bool| {
        let (w, kv, c) = if gpu {
            (m.gpu_weights, m.gpu_kv, m.gpu_compute)
        } else {
            (m.host_weights, m.host_kv, m.host_compute + m.host_output)
        };
        format!(
            "weights {}, KV cache {} at n_ctx {n_ctx}, compute {}",
            fmt_bytes(w),
            fmt_bytes(kv),
            fmt_bytes(c)
        )
    };
    match fit {
        Fit::FullGpu => format!(
            "{quant} fits entirely in GPU memory: {} of {} ({})",
            fmt_bytes(predicted.gpu_total()),
            fmt_bytes(budget.gpu_usable()),
            parts(predicted, true)
        ),
        Fit::PartialGpu => format!(
            "{quant} needs {} of GPU memory, {} usable; -ngl {} --n-cpu-moe {} keeps {:.0}% of the weights on the GPU ({} GPU, {} host)",
            fmt_bytes(full.gpu_total()),
            fmt_bytes(budget.gpu_usable()),
            offload.n_gpu_layers,
            offload.n_cpu_moe,
            gpu_fraction * 100.0,
            fmt_bytes(predicted.gpu_total()),
            fmt_bytes(predicted.host_total())
        ),
        Fit::Cpu => format!(
            "{quant} runs on the CPU: {} of {} host memory ({})",
            fmt_bytes(predicted.host_total()),
            fmt_bytes(budget.host_usable()),
            parts(predicted, false)
        ),
        Fit::None => format!(
            "{quant} does not fit: needs {} GPU + {} host, {} GPU + {} host usable",
            fmt_bytes(predicted.gpu_total()),
            fmt_bytes(predicted.host_total()),
            fmt_bytes(budget.gpu_usable()),
            fmt_bytes(budget.host_usable())
        ),
    }
}

/// Chooses among the quants of one model (see the module doc for the policy).
pub fn choose(
    candidates: &[ModelSummary],
    request: &PlanRequest,
    budget: &Budget,
) -> Result<Decision, PlanError> {
    if candidates.is_empty() {
        return Err(PlanError::NoCandidates);
    }
    let plans: Vec<FilePlan> = candidates
        .iter()
        .map(|m| plan_file(m, request, budget))
        .collect();
    let Some((pick, why)) = pick(&plans, request.prefer, budget) else {
        return Err(nothing_fits(candidates, &plans, request, budget));
    };
    let chosen = &plans[pick];
    let mut reasons = vec![format!(
        "picked {} ({}): {why}",
        chosen.quant,
        chosen.file.display()
    )];
    reasons.push(chosen.reason.clone());
    if let Some(split) = &chosen.split {
        reasons.extend(split.reasons.iter().cloned());
    }
    let fastest = fastest(&plans);
    for p in plans
        .iter()
        .filter(|p| p.quality_rank > chosen.quality_rank)
    {
        let why_not = match request.prefer {
            Prefer::Balanced | Prefer::Speed if p.fit != Fit::None => format!(
                "predicted {:.1} tokens/s, under {:.0}% of the fastest ({:.1} tokens/s)",
                p.speed.tokens_per_second,
                share(request.prefer) * 100.0,
                fastest
            ),
            _ => p.reason.clone(),
        };
        reasons.push(format!("not {}: {why_not}", p.quant));
    }
    // One plan per candidate, in order.
    let model = &candidates[pick];
    let mut warnings: Vec<String> = context_warning(model, &request.context)
        .into_iter()
        .collect();
    let checkpoints = checkpoints(model, request, budget, &chosen.predicted);
    if let Some(why) = checkpoints.why {
        reasons.push(why);
    }
    warnings.extend(checkpoints.warning);
    let (prompt_cache, why) = super::prompt_cache::prompt_cache(
        request.cache_ram_mib,
        budget,
        chosen.predicted.host_total(),
        checkpoints.bytes,
    );
    reasons.push(why);
    Ok(Decision {
        file: chosen.file.clone(),
        quant: chosen.quant.clone(),
        n_gpu_layers: chosen.offload.n_gpu_layers,
        n_cpu_moe: chosen.offload.n_cpu_moe,
        n_ubatch: chosen.n_ubatch,
        use_gpu: chosen.use_gpu,
        predicted: chosen.predicted,
        speed: chosen.speed,
        split: chosen.split.clone(),
        prompt_cache,
        checkpoints: checkpoints.bytes,
        reasons,
        warnings,
        plans,
    })
}

/// The slots' context checkpoints as planned: the most host memory they take, the reason line,
/// and a warning when that is more than the host has left after the model.
struct CheckpointPlan {
    bytes: u64,
    why: Option<String>,
    warning: Option<String>,
}

fn checkpoints(
    model: &ModelSummary,
    request: &PlanRequest,
    budget: &Budget,
    predicted: &MemoryEstimate,
) -> CheckpointPlan {
    let each = checkpoint_bytes(model, &request.context);
    let (per_slot, slots) = (request.ctx_checkpoints, request.context.n_seq.max(1));
    let bytes = each * u64::from(per_slot) * u64::from(slots);
    if bytes == 0 {
        return CheckpointPlan {
            bytes,
            why: None,
            warning: None,
        };
    }
    let why = format!(
        "context checkpoints: up to {} of host memory ({per_slot} per slot × {slots} slots × {})",
        fmt_bytes(bytes),
        fmt_bytes(each)
    );
    let left = budget.host_usable().saturating_sub(predicted.host_total());
    let warning = (bytes > left).then(|| {
        format!(
            "the slots' context checkpoints may take up to {}, more than the {} of host memory \
             left after the model; lower --ctx-checkpoints (each takes {})",
            fmt_bytes(bytes),
            fmt_bytes(left),
            fmt_bytes(each)
        )
    });
    CheckpointPlan {
        bytes,
        why: Some(why),
        warning,
    }
}

/// The share of the fastest speed a pick must keep under `prefer` (quality: none).
fn share(prefer: Prefer) -> f64 {
    match prefer {
        Prefer::Quality => 0.0,
        Prefer::Speed => 1.0,
        Prefer::Balanced => BALANCED_SHARE,
    }
}

/// The fastest predicted decode among the plans that fit, tokens per second.
fn fastest(plans: &[FilePlan]) -> f64 {
    plans
        .iter()
        .filter(|p| p.fit != Fit::None)
        .map(|p| p.speed.tokens_per_second)
        .fold(0.0, f64::max)
}

/// The index of the pick under `prefer`, and why; `None` when nothing fits.
fn pick(plans: &[FilePlan], prefer: Prefer, budget: &Budget) -> Option<(usize, String)> {
    let where_ = |p: &FilePlan| match p.fit {
        Fit::FullGpu => "fits entirely in GPU memory",
        Fit::PartialGpu if plans.iter().any(|p| p.fit == Fit::FullGpu) => "runs partly on the GPU",
        Fit::PartialGpu => "runs partly on the GPU (no quant fits entirely in GPU memory)",
        Fit::Cpu if budget.gpus.is_empty() => "runs on the CPU (no GPU)",
        Fit::Cpu => "runs on the CPU (nothing fits on the GPU)",
        Fit::None => "does not fit",
    };
    if prefer == Prefer::Quality {
        return pick_quality(plans, budget);
    }
    let fastest = fastest(plans);
    let floor = fastest * share(prefer);
    let i = plans
        .iter()
        .enumerate()
        .filter(|(_, p)| p.fit != Fit::None && p.speed.tokens_per_second >= floor)
        .max_by(|(_, a), (_, b)| {
            let key = |p: &FilePlan| match prefer {
                Prefer::Speed => (p.speed.tokens_per_second, f64::from(p.quality_rank)),
                _ => (f64::from(p.quality_rank), p.speed.tokens_per_second),
            };
            key(a)
                .partial_cmp(&key(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|(i, _)| i)?;
    let p = &plans[i];
    if plans.iter().filter(|p| p.fit != Fit::None).count() == 1 {
        return Some((i, format!("the only file that fits; it {}", where_(p))));
    }
    let why = match prefer {
        Prefer::Speed => format!(
            "the fastest predicted decode ({:.1} tokens/s; --prefer speed); it {}",
            p.speed.tokens_per_second,
            where_(p)
        ),
        _ => format!(
            "the highest-quality quant predicted to decode at least {:.0}% as fast as the fastest \
             ({:.1} of {fastest:.1} tokens/s; --prefer balanced); it {}",
            BALANCED_SHARE * 100.0,
            p.speed.tokens_per_second,
            where_(p)
        ),
    };
    Some((i, why))
}

/// `--prefer quality`: the highest-quality quant that fits entirely on the GPU; else the one
/// with the largest share of its weights on the GPU; else the highest-quality one on the CPU.
fn pick_quality(plans: &[FilePlan], budget: &Budget) -> Option<(usize, String)> {
    let best_quality = |fit: Fit| {
        plans
            .iter()
            .enumerate()
            .filter(|(_, p)| p.fit == fit)
            .max_by_key(|(_, p)| (p.quality_rank, p.file_size))
            .map(|(i, _)| i)
    };
    if let Some(i) = best_quality(Fit::FullGpu) {
        return Some((
            i,
            "the highest-quality quant that fits entirely in GPU memory".to_owned(),
        ));
    }
    if let Some(i) = plans
        .iter()
        .enumerate()
        .filter(|(_, p)| p.fit == Fit::PartialGpu)
        .max_by(|(_, a), (_, b)| {
            (a.gpu_fraction, a.quality_rank)
                .partial_cmp(&(b.gpu_fraction, b.quality_rank))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|(i, _)| i)
    {
        let why = format!(
            "no quant fits entirely in GPU memory; the most of its weights on the GPU: {:.0}%",
            plans[i].gpu_fraction * 100.0
        );
        return Some((i, why));
    }
    let i = best_quality(Fit::Cpu)?;
    let why = if budget.gpus.is_empty() {
        "no GPU: the highest-quality quant that fits in host memory"
    } else {
        "nothing fits on the GPU; the highest-quality quant that fits in host memory"
    };
    Some((i, why.to_owned()))
}

/// A warning when each sequence's context exceeds the model's training context (llama.cpp:
/// "possible training context overflow").
pub fn context_warning(model: &ModelSummary, ctx: &ContextParams) -> Option<String> {
    let n_ctx_train = model.context_length;
    if ctx.n_ctx == 0 || n_ctx_train == 0 {
        return None;
    }
    let n_ctx = u64::from(ctx.n_ctx);
    let per_seq = if ctx.kv_unified {
        n_ctx
    } else {
        n_ctx / u64::from(ctx.n_seq.max(1))
    };
    (per_seq > n_ctx_train).then(|| {
        format!(
            "-c {n_ctx} gives a sequence {per_seq} tokens, more than {}'s training context \
             ({n_ctx_train}): expect worse output past {n_ctx_train} tokens unless the model \
             supports RoPE scaling (--rope-scaling yarn)",
            model.quant_name()
        )
    })
}

/// The error for a budget nothing fits: what the smallest file needs, and the context it would
/// fit at, if any.
fn nothing_fits(
    candidates: &[ModelSummary],
    plans: &[FilePlan],
    request: &PlanRequest,
    budget: &Budget,
) -> PlanError {
    let (i, smallest) = plans
        .iter()
        .enumerate()
        .min_by_key(|(_, p)| p.predicted.total())
        .expect("candidates is not empty");
    let model = &candidates[i];
    let available = budget.gpu_usable() + budget.host_usable();
    // The largest context (multiple of 256) at which the smallest file would fit.
    let fits_at = |n_ctx: u32| {
        let request = PlanRequest {
            context: ContextParams {
                n_ctx,
                ..request.context.clone()
            },
            ..request.clone()
        };
        plan_file(model, &request, budget).fit != Fit::None
    };
    let n_ctx = smallest.n_ctx as u32;
    let (mut lo, mut hi) = (0u32, n_ctx / 256);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits_at(mid * 256) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let mut hint = if lo > 0 {
        format!("{} would fit with -c {}", smallest.quant, lo * 256)
    } else {
        format!("{} does not fit even with -c 256", smallest.quant)
    };
    // Over several GPUs, the devices that overflow.
    if let Some(split) = &smallest.split {
        let ts = if split.given { " (-ts given)" } else { "" };
        for d in split.devices.iter().filter(|d| !d.fits()) {
            hint = format!(
                "{} would need {}, {} usable, {} over{ts}; {hint}",
                d.name,
                fmt_bytes(d.total()),
                fmt_bytes(d.usable),
                fmt_bytes(d.total() - d.usable)
            );
        }
    }
    PlanError::NothingFits {
        quant: smallest.quant.clone(),
        needed: smallest.predicted.total(),
        available,
        n_ctx: smallest.n_ctx,
        hint,
    }
}
