//! The model store over the Hugging Face cache: `pull` plans a repo for this machine (or the
//! budget given) and downloads only the pick, `list` shows what is cached, `rm` removes a repo or
//! one quant of it. The cache is the one llama.cpp and `huggingface_hub` use, so their
//! downloads show up here and ours there.

use super::hub::{HfFileArgs, Remote, log_stderr};
use super::memory::MemoryArgs;
use super::plan::BudgetArgs;
use crate::hub::{RepoRef, cache_dir, cached_models, remove};
use crate::plan::fmt_bytes;
use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct PullArgs {
    /// ORG/REPO to plan for this machine's memory and fetch the pick, or ORG/REPO:QUANT.
    #[arg(value_name = "ORG/REPO[:QUANT]")]
    pub repo: String,

    #[command(flatten)]
    pub hf: HfFileArgs,

    /// A quant to fetch (llama.cpp's name, as after `:`); `auto` plans.
    #[arg(long, default_value = "auto", value_name = "auto|NAME")]
    pub quant: String,

    /// The memory to plan for (default: this machine's).
    #[command(flatten)]
    pub budget: BudgetArgs,

    /// The flags that decide memory, as `serve` will take them.
    #[command(flatten)]
    pub memory: MemoryArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print the cached models as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// ORG/REPO to remove the whole repo, ORG/REPO:QUANT for one quant.
    #[arg(value_name = "ORG/REPO[:QUANT]")]
    pub repo: String,
}

pub fn pull(args: PullArgs) -> anyhow::Result<()> {
    let remote = Remote::open(&args.hf, &args.repo, Some(&args.quant), false, log_stderr)?;
    let request = args.memory.plan_request()?;
    let models = remote.summaries();
    let budget = args.budget.budget(&args.memory, &models)?;
    let decision =
        crate::plan::choose(&models, &request, &budget).with_context(|| args.repo.clone())?;
    for line in decision.warnings.iter().chain(&decision.reasons) {
        eprintln!("{line}");
    }
    let path = remote.fetch(&decision.file)?;
    eprintln!(
        "{}: {} is in the cache; serve it with: gguf-serve -hf {}:{}",
        remote.repo(),
        decision.file.display(),
        remote.repo(),
        decision.quant
    );
    println!("{}", path.display());
    Ok(())
}

fn store_dir() -> anyhow::Result<std::path::PathBuf> {
    cache_dir(&|name| std::env::var(name).ok())
        .context("no cache folder: set HF_HUB_CACHE, HF_HOME or HOME")
}

pub fn list(args: &ListArgs) -> anyhow::Result<()> {
    let dir = store_dir()?;
    let models = cached_models(&dir);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&models)?);
        return Ok(());
    }
    if models.is_empty() {
        println!("No models in {}", dir.display());
        return Ok(());
    }
    println!("Models in {}:\n", dir.display());
    println!("| Repo | Quant | Size | Path |");
    println!("|------|-------|------|------|");
    for m in &models {
        println!(
            "| {} | {} | {} | {} |",
            m.repo,
            m.quant,
            fmt_bytes(m.size),
            m.path.display()
        );
    }
    Ok(())
}

pub fn rm(args: RmArgs) -> anyhow::Result<()> {
    let what: RepoRef = args.repo.parse()?;
    let removed = remove(&store_dir()?, &what)?;
    for path in &removed {
        eprintln!("removed {}", path.display());
    }
    Ok(())
}
