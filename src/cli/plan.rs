//! `gguf-serve plan`: which quant of a model fits which memory budget, and with what offload,
//! without loading anything. The flags that change memory mirror `serve`'s (and llama-server's),
//! so `plan` predicts what `serve` with the same flags will do.

use super::serve::{FlashAttn, GpuLayers};
use crate::gguf::ggml_type_by_name;
use crate::plan::{
    self, Budget, ContextParams, Decision, FilePlan, Fit, GpuBudget, PlanRequest, fmt_bytes,
};
use crate::{hardware, source};
use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Model: a GGUF file, a folder of quants of one model, or a split GGUF (llama-server: -m).
    #[arg(short = 'm', long, value_name = "PATH")]
    pub model: PathBuf,

    /// Plan only this quant (a llama.cpp name such as q4_k_m); `auto` compares them all.
    #[arg(long, default_value = "auto", value_name = "auto|NAME")]
    pub quant: String,

    /// Plan for one GPU with this much free memory (16GiB, 12G, 8000MiB) instead of the
    /// detected devices.
    #[arg(long, value_name = "SIZE", conflicts_with = "gpu_free")]
    pub vram: Option<String>,

    /// Plan for several GPUs with these free memories (comma-separated sizes); `0` or `none`
    /// plans for the CPU only.
    #[arg(long = "gpu-free", value_name = "SIZE,…")]
    pub gpu_free: Option<String>,

    /// Host memory available to the model; default: detected available memory.
    #[arg(long = "host-ram", value_name = "SIZE")]
    pub host_ram: Option<String>,

    /// Memory kept free on every device, in MiB (llama-server: --fit-margin).
    #[arg(long = "fit-margin", default_value_t = 1024, value_name = "MiB")]
    pub fit_margin: u64,

    /// Context size shared by all slots; 0 uses the model's training context
    /// (llama-server: -c/--ctx-size).
    #[arg(short = 'c', long = "ctx-size", default_value_t = 0, value_name = "N")]
    pub ctx_size: u32,

    /// Number of slots (llama-server: -np/--parallel).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub parallel: u32,

    /// Logical batch size (llama-server: -b/--batch-size); with llama-cpp-2's default
    /// n_outputs_max it bounds the logits rows of the compute buffer.
    #[arg(
        short = 'b',
        long = "batch-size",
        default_value_t = 2048,
        value_name = "N"
    )]
    pub batch_size: u32,

    /// Physical batch size (llama-server: -ub/--ubatch-size).
    #[arg(long = "ubatch-size", default_value_t = 512, value_name = "N")]
    pub ubatch_size: u32,

    /// KV cache type for K: f16, q8_0, q4_0, … (llama-server: -ctk/--cache-type-k).
    #[arg(long = "cache-type-k", default_value = "f16")]
    pub cache_type_k: String,

    /// KV cache type for V (llama-server: -ctv/--cache-type-v).
    #[arg(long = "cache-type-v", default_value = "f16")]
    pub cache_type_v: String,

    /// Flash attention: on, off or auto (llama-server: -fa/--flash-attn); auto plans as on.
    #[arg(long = "flash-attn", default_value = "auto")]
    pub flash_attn: FlashAttn,

    /// Full-size cache for sliding-window layers (llama-server: --swa-full).
    #[arg(long = "swa-full")]
    pub swa_full: bool,

    /// Layers to offload: auto, all, or a number (llama-server: -ngl/--n-gpu-layers).
    #[arg(
        long = "n-gpu-layers",
        default_value = "auto",
        value_name = "auto|all|N"
    )]
    pub n_gpu_layers: GpuLayers,

    /// Keep the MoE experts of the first N layers on the CPU (llama-server: -ncmoe/--n-cpu-moe).
    #[arg(long = "n-cpu-moe", value_name = "N")]
    pub n_cpu_moe: Option<u32>,

    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--json` output.
#[derive(Serialize)]
struct PlanReport<'a> {
    request: &'a PlanRequest,
    budget: &'a Budget,
    /// The chosen file, or null when nothing fits.
    pick: Option<&'a Decision>,
    error: Option<String>,
    plans: &'a [FilePlan],
}

pub fn run(args: PlanArgs) -> anyhow::Result<()> {
    let request = request(&args)?;
    let budget = budget(&args)?;
    let candidates = source::resolve(&args.model, Some(&args.quant))?;
    let result = plan::choose(&candidates, &request, &budget);
    let plans = match &result {
        Ok(d) => d.plans.clone(),
        Err(_) => candidates
            .iter()
            .map(|m| plan::plan_file(m, &request, &budget))
            .collect(),
    };
    if args.json {
        let report = PlanReport {
            request: &request,
            budget: &budget,
            pick: result.as_ref().ok(),
            error: result.as_ref().err().map(ToString::to_string),
            plans: &plans,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&plans, result.as_ref().ok(), &budget);
    }
    result
        .map(|_| ())
        .with_context(|| args.model.display().to_string())
}

fn request(args: &PlanArgs) -> anyhow::Result<PlanRequest> {
    plan_request(&MemoryFlags {
        ctx_size: args.ctx_size,
        parallel: args.parallel,
        batch_size: args.batch_size,
        ubatch_size: args.ubatch_size,
        cache_type_k: &args.cache_type_k,
        cache_type_v: &args.cache_type_v,
        flash_attn: args.flash_attn,
        swa_full: args.swa_full,
        n_gpu_layers: args.n_gpu_layers,
        n_cpu_moe: args.n_cpu_moe,
    })
}

/// The flags that change memory, as `serve` and `plan` both take them.
pub(super) struct MemoryFlags<'a> {
    pub ctx_size: u32,
    pub parallel: u32,
    pub batch_size: u32,
    pub ubatch_size: u32,
    pub cache_type_k: &'a str,
    pub cache_type_v: &'a str,
    pub flash_attn: FlashAttn,
    pub swa_full: bool,
    pub n_gpu_layers: GpuLayers,
    pub n_cpu_moe: Option<u32>,
}

/// The planner's request for these flags.
pub(super) fn plan_request(flags: &MemoryFlags<'_>) -> anyhow::Result<PlanRequest> {
    let cache_type = |name: &str, flag: &str| {
        ggml_type_by_name(name)
            .map(|t| t.id)
            .with_context(|| format!("{flag} {name}: unknown cache type (f16, q8_0, q4_0, …)"))
    };
    Ok(PlanRequest {
        context: ContextParams {
            n_ctx: flags.ctx_size,
            n_seq: flags.parallel.max(1),
            n_batch: flags.batch_size.max(1),
            n_ubatch: flags.ubatch_size.max(1),
            // llama-cpp-2 0.1.160 does not expose n_outputs_max: serve gets llama.cpp's default.
            n_outputs_max: 0,
            type_k: cache_type(flags.cache_type_k, "--cache-type-k")?,
            type_v: cache_type(flags.cache_type_v, "--cache-type-v")?,
            flash_attn: flags.flash_attn != FlashAttn::Off,
            swa_full: flags.swa_full,
            kv_unified: true,
        },
        n_gpu_layers: match flags.n_gpu_layers {
            GpuLayers::Auto => plan::GpuLayers::Auto,
            GpuLayers::All => plan::GpuLayers::All,
            GpuLayers::Count(n) => plan::GpuLayers::Count(n),
        },
        n_cpu_moe: flags.n_cpu_moe,
    })
}

fn budget(args: &PlanArgs) -> anyhow::Result<Budget> {
    let margin = args.fit_margin << 20;
    let mut budget = match (&args.vram, &args.gpu_free) {
        (None, None) => Budget::detected(margin),
        (vram, gpu_free) => {
            let sizes = vram.as_deref().or(gpu_free.as_deref()).unwrap_or_default();
            let gpus = if sizes == "none" {
                vec![]
            } else {
                sizes
                    .split(',')
                    .map(parse_size)
                    .collect::<anyhow::Result<Vec<_>>>()?
                    .into_iter()
                    .filter(|&free| free > 0)
                    .enumerate()
                    .map(|(i, free)| GpuBudget {
                        name: format!("GPU{i}"),
                        free,
                    })
                    .collect()
            };
            Budget {
                gpus,
                host_free: hardware::host_memory().available,
                margin,
            }
        }
    };
    if let Some(host) = &args.host_ram {
        budget.host_free = parse_size(host)?;
    }
    Ok(budget)
}

/// `16GiB`, `16G` (binary), `16GB` (decimal), `1.5TiB`, `8000MiB`, or plain bytes.
fn parse_size(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("{text:?}: not a size (try 16GiB)"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        other => bail!("{text:?}: unknown size unit {other:?} (B, KiB, MiB, GiB, TiB, KB, MB, GB)"),
    };
    Ok((number * scale) as u64)
}

fn print_table(plans: &[FilePlan], pick: Option<&Decision>, budget: &Budget) {
    let gpu = if budget.gpus.is_empty() {
        "no GPU".to_owned()
    } else {
        format!("GPU {} usable", fmt_bytes(budget.gpu_usable()))
    };
    println!(
        "Budget: {gpu}, host {} usable (margin {} per device)\n",
        fmt_bytes(budget.host_usable()),
        fmt_bytes(budget.margin)
    );
    let n_ctx = plans.first().map_or(0, |p| p.n_ctx);
    println!(
        "|   | Quant | File size | GPU memory (n_ctx {n_ctx}) | Host memory | Fits? | Offload |"
    );
    println!("|---|-------|-----------|------------|-------------|-------|---------|");
    let mut sorted: Vec<&FilePlan> = plans.iter().collect();
    sorted.sort_by_key(|p| std::cmp::Reverse(p.quality_rank));
    for p in sorted {
        let mark = if pick.is_some_and(|d| d.file == p.file) {
            "➜"
        } else {
            " "
        };
        let fits = match p.fit {
            Fit::FullGpu => format!(
                "✅ fits ({} headroom)",
                fmt_bytes(budget.gpu_usable() - p.predicted.gpu_total())
            ),
            Fit::PartialGpu => format!("🟡 partial ({:.0}% on GPU)", p.gpu_fraction * 100.0),
            Fit::Cpu => format!(
                "🟠 CPU only ({} headroom)",
                fmt_bytes(budget.host_usable() - p.predicted.host_total())
            ),
            Fit::None => "❌ does not fit".to_owned(),
        };
        println!(
            "| {mark} | {} | {} | {} | {} | {fits} | -ngl {} --n-cpu-moe {} |",
            p.quant,
            fmt_bytes(p.file_size),
            fmt_bytes(p.predicted.gpu_total()),
            fmt_bytes(p.predicted.host_total()),
            p.offload.n_gpu_layers,
            p.offload.n_cpu_moe
        );
    }
    println!();
    match pick {
        Some(d) => d.reasons.iter().for_each(|r| println!("{r}")),
        None => plans.iter().for_each(|p| println!("{}", p.reason)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        let cases = [
            ("16GiB", 16 << 30),
            ("16G", 16 << 30),
            ("16GB", 16_000_000_000),
            ("1.5GiB", 3 << 29),
            ("8000MiB", 8000 << 20),
            ("123", 123),
        ];
        for (text, want) in cases {
            assert_eq!(super::parse_size(text).unwrap(), want, "{text}");
        }
        assert!(super::parse_size("lots").is_err());
        assert!(super::parse_size("16 parsecs").is_err());
    }
}
