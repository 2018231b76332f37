//! `gguf-serve plan`: which quant of a model fits which memory budget, with what offload, and
//! how fast each would decode, without loading anything. The flags that change memory mirror
//! `serve`'s (and llama-server's), so `plan` predicts what `serve` with the same flags will do.

use super::hub::{HfArgs, Remote, log_stderr};
use super::memory::MemoryArgs;
use crate::plan::{self, BandwidthSource, Budget, Decision, FilePlan, Fit, PlanRequest, fmt_bytes};
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

    /// The memory and speed to plan for.
    #[command(flatten)]
    pub budget: BudgetArgs,

    /// The flags that decide memory, as `serve` takes them.
    #[command(flatten)]
    pub memory: MemoryArgs,

    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,

    /// RPC workers whose devices to plan for, with this machine's.
    #[command(flatten)]
    pub rpc: super::RpcArgs,
}

/// The memory budget and speeds to plan for: detected, or given.
#[derive(Debug, Clone, Args)]
pub struct BudgetArgs {
    /// Plan for GPUs with this much free memory instead of the detected devices, one device
    /// per entry (16GiB, 12G, 8000MiB, 8GB; 16GiB,8GiB for two cards).
    #[arg(long, value_name = "SIZE,…", conflicts_with = "gpu_free")]
    pub vram: Option<String>,

    /// Plan for several GPUs with these free memories (comma-separated sizes); `0` or `none`
    /// plans for the CPU only.
    #[arg(long = "gpu-free", value_name = "SIZE,…")]
    pub gpu_free: Option<String>,

    /// Host memory available to the model; default: detected available memory.
    #[arg(long = "host-ram", value_name = "SIZE")]
    pub host_ram: Option<String>,

    /// Memory bandwidth of the GPUs in GB/s; default: by device name from
    /// quant-profiles/gpu-bandwidth.toml, else an assumed 500 (said in the table's header).
    #[arg(long = "gpu-bandwidth", value_name = "GB/s")]
    pub gpu_bandwidth: Option<f64>,

    /// Host memory bandwidth in GB/s; default: measured (about 50 ms).
    #[arg(long = "host-bandwidth", value_name = "GB/s")]
    pub host_bandwidth: Option<f64>,

    /// Decode threads the speed is predicted for; default: the number of physical cores, as
    /// serve's -t.
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<usize>,
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
    /// Files of the folder that could not be read, each with its problem.
    skipped: Vec<String>,
}

pub fn run(args: PlanArgs) -> anyhow::Result<()> {
    // llama.cpp's log (the speed measurement repacks weights) is not part of the plan.
    llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default().with_logs_enabled(false));
    let request = args.memory.plan_request()?;
    args.rpc.add()?;
    // Candidates: a local file or folder, or a Hugging Face repo's files by their headers.
    let (resolved, label) = match (&args.hf.hf_repo, &args.model) {
        (Some(repo), _) => {
            let remote = Remote::open(
                &args.hf.file,
                repo,
                Some(&args.quant),
                args.offline,
                log_stderr,
            )?;
            (source::Resolved::from(remote.summaries()), repo.clone())
        }
        (None, Some(model)) => (
            source::resolve(model, Some(&args.quant))?,
            model.display().to_string(),
        ),
        (None, None) => bail!("--model or --hf-repo is required"),
    };
    let skipped: Vec<String> = resolved.skipped.iter().map(ToString::to_string).collect();
    for s in &skipped {
        eprintln!("gguf-serve: skipped {s}");
    }
    // Choice.
    let budget = args.budget.budget(&args.memory, &resolved)?;
    let result = plan::choose(&resolved, &request, &budget);
    let plans = match &result {
        Ok(d) => d.plans.clone(),
        Err(_) => resolved
            .iter()
            .map(|m| plan::plan_file(m, &request, &budget))
            .collect(),
    };
    // Report.
    if args.json {
        let report = PlanReport {
            request: &request,
            budget: &budget,
            pick: result.as_ref().ok(),
            error: result.as_ref().err().map(ToString::to_string),
            plans: &plans,
            skipped,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&plans, result.as_ref().ok(), &budget, args.budget.threads());
    }
    result.map(|_| ()).with_context(|| label)
}

impl BudgetArgs {
    /// Decode threads: `-t`, else the number of physical cores.
    pub fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| hardware::math_threads().max(1) as usize)
    }

    /// The budget for `models`: the detected devices, host memory and speeds, or those given;
    /// `memory`'s `--fit-target` kept free.
    pub fn budget(
        &self,
        memory: &MemoryArgs,
        models: &[crate::gguf::ModelSummary],
    ) -> anyhow::Result<Budget> {
        budget(self, memory, models)
    }
}

fn budget(
    args: &BudgetArgs,
    memory: &MemoryArgs,
    models: &[crate::gguf::ModelSummary],
) -> anyhow::Result<Budget> {
    let margin = memory.fit_margin()?;
    let gb_per_s = |flag: &str, v: Option<f64>| match v {
        Some(v) if !(v > 0.0 && v.is_finite()) => bail!("{flag} {v}: expected GB/s above 0"),
        v => Ok(v.map(|v| v * 1e9)),
    };
    let gpu_bandwidth = gb_per_s("--gpu-bandwidth", args.gpu_bandwidth)?;
    let host_bandwidth = gb_per_s("--host-bandwidth", args.host_bandwidth)?;
    let host = hardware::speed::host_speed(args.threads(), host_bandwidth, models);
    let mut budget = match (&args.vram, &args.gpu_free) {
        (None, None) => hardware::budget(margin, None, host, gpu_bandwidth),
        (vram, gpu_free) => {
            let (flag, sizes) = match (vram, gpu_free) {
                (Some(v), _) => ("--vram", v.as_str()),
                (None, Some(g)) => ("--gpu-free", g.as_str()),
                (None, None) => unreachable!(),
            };
            let mut gpus = Vec::new();
            if sizes != "none" {
                for size in sizes.split(',') {
                    let free = if flag == "--gpu-free" && size.trim() == "0" {
                        0
                    } else {
                        parse_size(flag, size)?
                    };
                    if free > 0 {
                        let name = format!("GPU{}", gpus.len());
                        let (bandwidth, source) =
                            hardware::speed::gpu_bandwidth_or_default(&name, gpu_bandwidth);
                        gpus.push((name, free, bandwidth, source));
                    }
                }
            }
            Budget::new(gpus, hardware::host_memory().available, margin, host)
        }
    };
    if let Some(host) = &args.host_ram {
        budget.host_free = parse_size("--host-ram", host)?;
        budget.host_margin = margin.for_free(budget.host_free);
    }
    memory.check_main_gpu(budget.gpus.len())?;
    Ok(budget)
}

/// `16GiB`, `16G` (binary), `16GB` (decimal), `1.5TiB`, `8000MiB`, `512B`. A bare number is
/// refused: `--vram 8` meaning 8 bytes is never what was meant.
pub(super) fn parse_size(flag: &str, text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("{flag} {text:?}: not a size (try 16GiB)"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" => bail!("{flag} {t}: give a unit ({t}GiB, {t}000MiB, {t}GB)"),
        "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        other => bail!(
            "{flag} {text:?}: unknown size unit {other:?} (B, KiB, MiB, GiB, TiB, KB, MB, GB)"
        ),
    };
    Ok((number * scale) as u64)
}

/// Bytes/s as GB/s with where the figure comes from.
fn fmt_bandwidth(bytes_per_s: f64, source: &BandwidthSource, flag: &str) -> String {
    let gb = bytes_per_s / 1e9;
    match source {
        BandwidthSource::Measured => format!("{gb:.1} GB/s measured ({flag} sets it)"),
        BandwidthSource::Given => format!("{gb:.1} GB/s from {flag}"),
        BandwidthSource::Table => format!("{gb:.0} GB/s by device name ({flag} sets it)"),
        BandwidthSource::Assumed => format!("{gb:.0} GB/s assumed ({flag} sets it)"),
    }
}

/// The budget, per device: free − margin = usable, and its bandwidth.
fn print_header(budget: &Budget, threads: usize) {
    println!("Budget ({}):", budget.margin_rule.describe());
    if budget.gpus.is_empty() {
        println!("- no GPU");
    }
    for g in &budget.gpus {
        println!(
            "- {}: {} free − {} margin = {} usable; {}",
            g.name,
            fmt_bytes(g.free),
            fmt_bytes(g.margin),
            fmt_bytes(g.usable()),
            fmt_bandwidth(g.bandwidth, &g.bandwidth_source, "--gpu-bandwidth")
        );
    }
    println!(
        "- host: {} free − {} margin = {} usable; {}, {threads} threads",
        fmt_bytes(budget.host_free),
        fmt_bytes(budget.host_margin),
        fmt_bytes(budget.host_usable()),
        fmt_bandwidth(
            budget.host.bandwidth,
            &budget.host.bandwidth_source,
            "--host-bandwidth"
        )
    );
    println!(
        "Decode speed predicted for one sequence with {} tokens in its context.\n",
        plan::KV_FILL
    );
}

fn print_table(plans: &[FilePlan], pick: Option<&Decision>, budget: &Budget, threads: usize) {
    print_header(budget, threads);
    if let Some(d) = pick {
        d.warnings.iter().for_each(|w| println!("warning: {w}\n"));
    }
    let n_ctx = plans.first().map_or(0, |p| p.n_ctx);
    println!(
        "|   | Quant | File size | GPU memory (n_ctx {n_ctx}) | Host memory | Fits? | Offload | Decode |"
    );
    println!("|---|-------|-----------|------------|-------------|-------|---------|--------|");
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
        let decode = if p.fit == Fit::None {
            "–".to_owned()
        } else {
            format!("{:.1} t/s", p.speed.tokens_per_second)
        };
        // The split over several GPUs: the planner's -ts, or the user's as given.
        let ts = match &p.split {
            Some(s) if !s.given => format!(" -ts {}", s.tensor_split_arg()),
            _ => String::new(),
        };
        println!(
            "| {mark} | {} | {} | {} | {} | {fits} | -ngl {} --n-cpu-moe {}{ts} | {decode} |",
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
            ("123B", 123),
        ];
        for (text, want) in cases {
            assert_eq!(super::parse_size("--vram", text).unwrap(), want, "{text}");
        }
        assert!(super::parse_size("--vram", "lots").is_err());
        assert!(super::parse_size("--vram", "16 parsecs").is_err());
        let bare = super::parse_size("--vram", "8").unwrap_err().to_string();
        assert_eq!(bare, "--vram 8: give a unit (8GiB, 8000MiB, 8GB)");
    }

    /// Flags in the string literals of the planner's sources (its reasons and hints), each with
    /// the word after it when there is one (`{}` placeholders read as 1).
    fn suggested_flags() -> Vec<(String, Option<String>)> {
        let sources = [
            include_str!("../plan/mod.rs"),
            include_str!("../plan/choose.rs"),
            include_str!("../plan/speed.rs"),
            include_str!("../plan/memory.rs"),
            include_str!("../plan/split.rs"),
        ];
        // The contents of the string literals, comments left out.
        let mut texts = Vec::new();
        for source in sources {
            let (mut in_string, mut text, mut escaped) = (false, String::new(), false);
            for line in source.lines() {
                if !in_string && line.trim_start().starts_with("//") {
                    continue;
                }
                for c in line.chars() {
                    match (in_string, c) {
                        (true, _) if escaped => escaped = false,
                        (true, '\\') => escaped = true,
                        (true, '"') => {
                            in_string = false;
                            texts.push(std::mem::take(&mut text));
                        }
                        (true, c) => text.push(c),
                        (false, '"') => in_string = true,
                        (false, _) => {}
                    }
                }
                // A `\` at the end of a line continues the string after the indentation.
                escaped = false;
                text.push(' ');
            }
        }
        let mut flags = Vec::new();
        for text in &texts {
            let words: Vec<&str> = text.split([' ', '(', ')', ';', ',']).collect();
            for (i, w) in words.iter().enumerate() {
                let is_flag = w.starts_with('-')
                    && w.trim_start_matches('-')
                        .starts_with(|c: char| c.is_ascii_lowercase());
                if !is_flag {
                    continue;
                }
                let value = words.get(i + 1).and_then(|v| match v.chars().next() {
                    Some('{') => Some("1".to_owned()),
                    Some(c) if c.is_ascii_alphanumeric() => Some((*v).to_owned()),
                    _ => None,
                });
                flags.push(((*w).to_owned(), value));
            }
        }
        flags.sort();
        flags.dedup();
        flags
    }

    #[test]
    fn every_flag_the_planner_suggests_is_accepted_by_serve() {
        let flags = suggested_flags();
        let names: Vec<&str> = flags.iter().map(|(f, _)| f.as_str()).collect();
        for expected in [
            "-c",
            "--device",
            "-ngl",
            "--n-cpu-moe",
            "--prefer",
            "--fit-target",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} not found in {names:?}"
            );
        }
        for (flag, value) in &flags {
            let parse = |extra: &[&str]| {
                let argv = ["gguf-serve", "-m", "model.gguf"].iter().chain(extra);
                crate::cli::Cli::parse_with_env(argv.map(Into::into), &|_| None)
            };
            // A flag named without a value (`… from --fit-target`) must exist with some value.
            let value = value.as_deref().unwrap_or("1");
            let ok = parse(&[flag, value]).is_ok() || parse(&[flag]).is_ok();
            assert!(
                ok,
                "serve rejects the planner's suggestion {flag} {value:?}"
            );
        }
        // The suggestion to run without the GPU means no device at all.
        let argv = ["gguf-serve", "-m", "model.gguf", "--device", "none"];
        let cli = crate::cli::Cli::parse_with_env(argv.map(Into::into), &|_| None).unwrap();
        assert_eq!(cli.serve.load.devices(), Some(Vec::new()));
    }
}
