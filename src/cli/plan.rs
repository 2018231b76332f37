//! `gguf-serve plan`: which quant of a model fits which memory budget, and with what offload,
//! without loading anything. The flags that change memory mirror `serve`'s (and llama-server's),
//! so `plan` predicts what `serve` with the same flags will do.

use super::hub::{HfArgs, Remote, log_stderr};
use super::memory::MemoryArgs;
use crate::plan::{self, Budget, Decision, FilePlan, Fit, GpuBudget, PlanRequest, fmt_bytes};
use crate::{hardware, source};
use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Model: a GGUF file, a folder of quants of one model, or a split GGUF (llama-server: -m).
    #[arg(
        short = 'm',
        long,
        value_name = "PATH",
        required_unless_present = "hf_repo"
    )]
    pub model: Option<PathBuf>,

    /// A Hugging Face repo to plan from its files' headers, without downloading weights.
    #[command(flatten)]
    pub hf: HfArgs,

    /// Plan a Hugging Face repo from the cache only, without any request.
    #[arg(long)]
    pub offline: bool,

    /// Plan only this quant (a llama.cpp name such as q4_k_m); `auto` compares them all.
    #[arg(long, default_value = "auto", value_name = "auto|NAME")]
    pub quant: String,

    /// The memory to plan for.
    #[command(flatten)]
    pub budget: BudgetArgs,

    /// The flags that decide memory, as `serve` takes them.
    #[command(flatten)]
    pub memory: MemoryArgs,

    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The memory budget to plan for: detected, or given.
#[derive(Debug, Clone, Args)]
pub struct BudgetArgs {
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
    let request = args.memory.plan_request()?;
    let budget = args.budget.budget(args.memory.fit_margin()?)?;
    let (candidates, label) = match (&args.hf.hf_repo, &args.model) {
        (Some(repo), _) => {
            let remote = Remote::open(&args.hf, repo, Some(&args.quant), args.offline, log_stderr)?;
            (remote.summaries(), repo.clone())
        }
        (None, Some(model)) => (
            source::resolve(model, Some(&args.quant))?,
            model.display().to_string(),
        ),
        (None, None) => bail!("--model or --hf-repo is required"),
    };
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
    result.map(|_| ()).with_context(|| label)
}

impl BudgetArgs {
    /// The budget: the detected devices and host memory, or the sizes given; `margin` kept
    /// free on each device.
    pub fn budget(&self, margin: u64) -> anyhow::Result<Budget> {
        let args = self;
        let mut budget = match (&args.vram, &args.gpu_free) {
            (None, None) => hardware::budget(margin, None),
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
