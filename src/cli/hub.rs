//! The Hugging Face flags `serve`, `plan` and `pull` share (llama-server's `-hf`, `-hff`,
//! `-hft`), and the glue from them to the `hub` module: list the repo, summarise its quants for
//! the planner, and download the pick with a progress bar on a terminal or log lines otherwise.

use crate::gguf::ModelSummary;
use crate::hub::{Candidate, HubConfig, Listing, Progress, RepoRef};
use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default, Args)]
pub struct HfArgs {
    /// A Hugging Face repo: ORG/REPO plans among its quants from their headers and downloads
    /// only the pick; ORG/REPO:QUANT takes that quant. Files go to the Hugging Face cache
    /// (LLAMA_CACHE, HF_HUB_CACHE, HF_HOME/hub or ~/.cache/huggingface/hub); HF_ENDPOINT
    /// names another hub.
    #[arg(long = "hf-repo", alias = "hf", value_name = "ORG/REPO[:QUANT]")]
    pub hf_repo: Option<String>,

    #[command(flatten)]
    pub file: HfFileArgs,
}

/// Which file of a repo, and the token to reach it: `-hff` and `-hft`, for `serve` and `plan`
/// (beside `-hf`) and for `pull` (beside its repo argument).
#[derive(Debug, Clone, Default, Args)]
pub struct HfFileArgs {
    /// This file of the repo (with its split parts) instead of planning among its quants.
    #[arg(long = "hf-file", value_name = "PATH")]
    pub hf_file: Option<String>,

    /// Token for gated or private repos; default: HF_TOKEN, else the token `huggingface-cli
    /// login` saved.
    #[arg(long = "hf-token", value_name = "TOKEN")]
    pub hf_token: Option<String>,
}

/// A repo listed and its candidate models summarised, with the runtime its client lives on.
pub(super) struct Remote {
    runtime: tokio::runtime::Runtime,
    listing: Listing,
    candidates: Vec<Candidate>,
    /// Where messages go: `tracing` when serving, stderr for the store commands.
    log: fn(&str),
}

impl Remote {
    /// Lists `repo` (through the Hub, or the cache offline) and reads the headers of the
    /// models `quant` or `--hf-file` leave to choose from.
    pub fn open(
        args: &HfFileArgs,
        repo: &str,
        quant: Option<&str>,
        offline: bool,
        log: fn(&str),
    ) -> anyhow::Result<Remote> {
        let repo: RepoRef = repo.parse()?;
        let env = |name: &str| std::env::var(name).ok();
        let config = HubConfig::from_env(&env, args.hf_token.clone(), offline)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let selection = repo.selection(args.hf_file.as_deref(), quant);
        let (listing, candidates) = runtime.block_on(async {
            let listing = Listing::open(&config, &repo.repo).await?;
            let candidates = listing.candidates(&selection).await?;
            Ok::<_, crate::hub::HubError>((listing, candidates))
        })?;
        Ok(Remote {
            runtime,
            listing,
            candidates,
            log,
        })
    }

    /// The candidates' summaries; their paths are repo paths.
    pub fn summaries(&self) -> Vec<ModelSummary> {
        self.candidates.iter().map(|c| c.summary.clone()).collect()
    }

    /// Makes the candidate the planner picked (by its repo path) complete in the cache, and
    /// returns its local path.
    pub fn fetch(&self, file: &Path) -> anyhow::Result<PathBuf> {
        let candidate = self
            .candidates
            .iter()
            .find(|c| c.summary.path == file)
            .with_context(|| {
                format!(
                    "{}: not a candidate of {}",
                    file.display(),
                    self.listing.repo
                )
            })?;
        let mut progress = Reporter::new(self.log);
        let path = self
            .runtime
            .block_on(self.listing.fetch(candidate, &mut progress))?;
        Ok(path)
    }

    pub fn repo(&self) -> &str {
        &self.listing.repo
    }
}

/// Download progress: an `indicatif` bar (bytes, rate, ETA) on a terminal, else a line every
/// ten seconds.
struct Reporter {
    bar: Option<ProgressBar>,
    log: fn(&str),
    file: String,
    size: u64,
    have: u64,
    started: Instant,
    last_line: Instant,
}

impl Reporter {
    fn new(log: fn(&str)) -> Reporter {
        Reporter {
            bar: None,
            log,
            file: String::new(),
            size: 0,
            have: 0,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }
}

impl Progress for Reporter {
    fn start(&mut self, file: &str, size: u64, have: u64) {
        (self.file, self.size, self.have) = (file.to_owned(), size, have);
        self.started = Instant::now();
        self.last_line = Instant::now();
        let resumed = if have > 0 {
            format!("; {} already here", crate::plan::fmt_bytes(have))
        } else {
            String::new()
        };
        (self.log)(&format!(
            "downloading {file} ({}{resumed})",
            crate::plan::fmt_bytes(size)
        ));
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(size).with_position(have);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .expect("a valid template"),
            );
            bar.reset_eta();
            self.bar = Some(bar);
        }
    }

    fn advance(&mut self, bytes: u64) {
        self.have += bytes;
        if let Some(bar) = &self.bar {
            bar.set_position(self.have);
        } else if self.last_line.elapsed() >= Duration::from_secs(10) {
            self.last_line = Instant::now();
            let rate = self.have as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
            let eta = self.size.saturating_sub(self.have) as f64 / rate.max(1.0);
            (self.log)(&format!(
                "{}: {} of {} ({:.0}%), {}/s, ETA {:.0} s",
                self.file,
                crate::plan::fmt_bytes(self.have),
                crate::plan::fmt_bytes(self.size),
                self.have as f64 * 100.0 / self.size.max(1) as f64,
                crate::plan::fmt_bytes(rate as u64),
                eta
            ));
        }
    }

    fn finish(&mut self, file: &str) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        (self.log)(&format!("{file}: complete, sha256 checked"));
    }
}

/// Messages through `tracing` (serving).
pub(super) fn log_tracing(line: &str) {
    tracing::info!("{line}");
}

/// Messages on stderr (the store commands).
pub(super) fn log_stderr(line: &str) {
    eprintln!("{line}");
}
