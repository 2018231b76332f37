//! `gguf-serve quantize IN OUT --type q4_k_m`, or `quantize IN --ladder DIR` for the standard
//! ladder of quants (Q8_0 … Q2_K) that `plan` and `--quant auto` choose among.

use crate::gguf::{QuantProfile, quant_by_name};
use crate::plan::fmt_bytes;
use crate::quantize::{self, QuantizeReport};
use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// The GGUF model to quantize (f32/f16/bf16 ideally; a quantized one is requantized).
    #[arg(value_name = "IN")]
    pub input: PathBuf,

    /// The output file (with --type).
    #[arg(value_name = "OUT", required_unless_present = "ladder")]
    pub output: Option<PathBuf>,

    /// Target quant, as llama-quantize names it: q4_k_m, q8_0, q6_k, … (case-insensitive).
    #[arg(long = "type", value_name = "NAME", required_unless_present = "ladder")]
    pub quant: Option<String>,

    /// Write the ladder (Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q3_K_M, Q2_K) into this folder.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["output", "quant"])]
    pub ladder: Option<PathBuf>,

    /// Only these quants of the ladder (comma-separated names).
    #[arg(long, value_name = "NAME,…", requires = "ladder")]
    pub only: Option<String>,

    /// Threads; default: the number of physical cores (llama-quantize's nthreads argument).
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<i32>,

    /// Show llama.cpp's per-tensor log.
    #[arg(long)]
    pub verbose: bool,
}

pub fn run(args: QuantizeArgs) -> anyhow::Result<()> {
    llama_cpp_2::send_logs_to_tracing(
        llama_cpp_2::LogOptions::default().with_logs_enabled(args.verbose),
    );
    let threads = args.threads.unwrap_or_else(crate::hardware::math_threads);
    let jobs: Vec<(&QuantProfile, PathBuf)> = match (&args.ladder, &args.output, &args.quant) {
        (Some(dir), _, _) => {
            std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
            let only = args
                .only
                .as_deref()
                .map(|list| {
                    list.split(',')
                        .map(parse_quant)
                        .collect::<anyhow::Result<Vec<_>>>()
                })
                .transpose()?;
            quantize::ladder()
                .into_iter()
                .filter(|q| {
                    only.as_ref()
                        .is_none_or(|o| o.iter().any(|w| w.name == q.name))
                })
                .map(|q| (q, dir.join(quantize::ladder_file_name(&args.input, q))))
                .collect()
        }
        (None, Some(out), Some(name)) => vec![(parse_quant(name)?, out.clone())],
        _ => bail!("give OUT and --type NAME, or --ladder DIR"),
    };

    let bar = ProgressBar::new(jobs.len() as u64).with_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {pos}/{len} {wide_msg}")
            .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    for (quant, output) in jobs {
        bar.set_message(format!("{} → {}", quant.display_name(), output.display()));
        let report = quantize::quantize(&args.input, &output, quant, threads)?;
        bar.inc(1);
        // suspend: prints whether or not the bar is drawn (it is hidden off a terminal).
        bar.suspend(|| println!("{}", done_line(&args.input, &report)));
    }
    bar.finish_and_clear();
    Ok(())
}

fn done_line(input: &Path, report: &QuantizeReport) -> String {
    let mut line = format!(
        "{}: {} ({})",
        report.quant,
        report.output.display(),
        fmt_bytes(report.output_size)
    );
    if let Some(from) = &report.requantized_from {
        line.push_str(&format!(
            "; requantized from {from} ({} is already quantized: quality lost there does not come back)",
            input.display()
        ));
    }
    line
}

fn parse_quant(name: &str) -> anyhow::Result<&'static QuantProfile> {
    quant_by_name(name.trim()).with_context(|| {
        format!("unknown quant type {name:?} (llama.cpp names: q8_0, q6_k, q5_k_m, q4_k_m, q3_k_m, q2_k, f16, …)")
    })
}
