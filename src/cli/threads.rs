//! The CPU flags: threads for generation and for prompt processing, the CPUs they may run on,
//! their priority and how they wait for work, as llama-server's `-t`/`-C`/`--prio`/`--poll` and
//! their `-batch` twins (which default to the generation settings).

use anyhow::Context;
use clap::Args;

use crate::engine::{CpuParams, parse_cpu_mask, parse_cpu_range};

#[derive(Debug, Clone, Args)]
pub struct ThreadArgs {
    /// Threads for generation; default: the number of physical cores, as llama-server.
    #[arg(short = 't', long, value_name = "N", allow_negative_numbers = true)]
    pub threads: Option<i32>,

    /// Threads for prompt processing; default: same as --threads.
    #[arg(
        long = "threads-batch",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub threads_batch: Option<i32>,

    /// CPU affinity mask, hexadecimal of any length (bit i is CPU i).
    #[arg(long = "cpu-mask", value_name = "M")]
    pub cpu_mask: Option<String>,

    /// CPU range for affinity (`lo-hi`, either end may be left out); adds to --cpu-mask.
    #[arg(long = "cpu-range", value_name = "lo-hi")]
    pub cpu_range: Option<String>,

    /// Pin each thread to one CPU of the mask (0 or 1).
    #[arg(long = "cpu-strict", default_value_t = 0, value_name = "0|1")]
    pub cpu_strict: u8,

    /// Thread priority: -1 low, 0 normal, 1 medium, 2 high, 3 realtime.
    #[arg(
        long,
        default_value_t = 0,
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub prio: i32,

    /// How busily threads wait for work, 0 (sleep) to 100.
    #[arg(long, default_value_t = 50, value_name = "0…100")]
    pub poll: u32,

    /// CPU affinity mask for prompt processing; default: --cpu-mask.
    #[arg(long = "cpu-mask-batch", value_name = "M")]
    pub cpu_mask_batch: Option<String>,

    /// CPU range for prompt processing; default: --cpu-range.
    #[arg(long = "cpu-range-batch", value_name = "lo-hi")]
    pub cpu_range_batch: Option<String>,

    /// Strict CPU placement for prompt processing; default: --cpu-strict.
    #[arg(long = "cpu-strict-batch", value_name = "0|1")]
    pub cpu_strict_batch: Option<u8>,

    /// Thread priority for prompt processing: 0 normal, 1 medium, 2 high, 3 realtime.
    #[arg(long = "prio-batch", default_value_t = 0, value_name = "N")]
    pub prio_batch: i32,

    /// Polling level for prompt processing; default: --poll.
    #[arg(long = "poll-batch", value_name = "0…100")]
    pub poll_batch: Option<u32>,
}

impl ThreadArgs {
    /// The generation threads and the prompt-processing threads.
    pub fn cpu_params(&self) -> anyhow::Result<(CpuParams, CpuParams)> {
        let n_threads = match self.threads {
            Some(n) if n > 0 => n,
            // llama.cpp: 0 or negative is every logical CPU; unset, the physical cores.
            Some(_) => std::thread::available_parallelism().map_or(1, |n| n.get() as i32),
            None => crate::hardware::math_threads(),
        };
        anyhow::ensure!(
            (-1..=3).contains(&self.prio),
            "--prio {}: expected -1 to 3",
            self.prio
        );
        anyhow::ensure!(
            (0..=3).contains(&self.prio_batch),
            "--prio-batch {}: expected 0 to 3",
            self.prio_batch
        );
        anyhow::ensure!(self.poll <= 100, "--poll {}: expected 0 to 100", self.poll);
        let cpu = CpuParams {
            n_threads,
            cpumask: mask(self.cpu_mask.as_deref(), self.cpu_range.as_deref())?,
            strict: self.cpu_strict != 0,
            priority: self.prio,
            poll: self.poll,
        };
        let batch_mask = match (&self.cpu_mask_batch, &self.cpu_range_batch) {
            (None, None) => cpu.cpumask.clone(),
            (m, r) => mask(m.as_deref(), r.as_deref())?,
        };
        let batch = CpuParams {
            n_threads: match self.threads_batch {
                Some(n) if n > 0 => n,
                _ => n_threads,
            },
            cpumask: batch_mask,
            strict: self.cpu_strict_batch.map_or(cpu.strict, |s| s != 0),
            priority: self.prio_batch,
            poll: self.poll_batch.unwrap_or(self.poll),
        };
        Ok((cpu, batch))
    }
}

/// A CPU mask from `-C` and `-Cr` together; `None` when neither is given.
fn mask(hex: Option<&str>, range: Option<&str>) -> anyhow::Result<Option<Vec<bool>>> {
    if hex.is_none() && range.is_none() {
        return Ok(None);
    }
    let mut mask = Vec::new();
    if let Some(hex) = hex {
        parse_cpu_mask(hex, &mut mask)
            .map_err(anyhow::Error::msg)
            .context("--cpu-mask")?;
    }
    if let Some(range) = range {
        parse_cpu_range(range, &mut mask)
            .map_err(anyhow::Error::msg)
            .context("--cpu-range")?;
    }
    Ok(Some(mask))
}
