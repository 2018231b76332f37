//! `gguf-serve bench`: flags, their validation, the progress bar and the printed summary. The load
//! generator itself is `crate::bench`; this file only turns flags into its typed config.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::bench::{self, BenchConfig, Endpoint, Outcome, RequestOptions};

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("workload").required(true).args(["requests", "synthetic"])))]
pub struct BenchArgs {
    /// Base URL of the server (gguf-serve, llama-server or OpenAI-compatible).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,

    /// JSONL file of requests: one object a line with `prompt` (string) or `messages` (chat),
    /// and optionally `max_tokens`.
    #[arg(long, value_name = "FILE.jsonl")]
    pub requests: Option<PathBuf>,

    /// Send N synthetic prompts instead: deterministic, distinct per request, about
    /// --prompt-tokens tokens each.
    #[arg(long, value_name = "N")]
    pub synthetic: Option<usize>,

    /// Requests in flight at once.
    #[arg(long, default_value_t = 1, value_name = "C")]
    pub concurrency: usize,

    /// Tokens to generate per request, unless a JSONL line says otherwise (llama-server:
    /// n_predict; OpenAI: max_tokens).
    #[arg(long, default_value_t = 128, value_name = "M")]
    pub max_tokens: u32,

    /// API to call: `chat` (POST /v1/chat/completions) or `completion` (POST /completion,
    /// llama-server's native API).
    #[arg(long, default_value = "chat", value_name = "chat|completion")]
    pub endpoint: Endpoint,

    /// Approximate prompt length of synthetic requests, in tokens.
    #[arg(long, default_value_t = 64, value_name = "P")]
    pub prompt_tokens: usize,

    /// Sampling temperature (llama-server: temperature).
    #[arg(long, default_value_t = 0.0, value_name = "T")]
    pub temperature: f32,

    /// Nucleus sampling threshold (llama-server: top_p); default: the server's.
    #[arg(long, value_name = "P")]
    pub top_p: Option<f32>,

    /// Stream responses (the default; needed for time to first token).
    #[arg(long, overrides_with = "no_stream")]
    pub stream: bool,

    /// Wait for whole responses instead of streaming.
    #[arg(long, overrides_with = "stream")]
    pub no_stream: bool,

    /// Keep generating past end-of-sequence so every request yields --max-tokens tokens
    /// (llama-server: ignore_eos). Default: on for --synthetic, off for --requests.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub ignore_eos: Option<bool>,

    /// Let the server reuse cached prompt prefixes (llama-server: cache_prompt, default on).
    /// Not sent unless given.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub cache_prompt: Option<bool>,

    /// Sampling seed sent with every request (llama-server: seed).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// `model` field of each request, which OpenAI-compatible servers require.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,

    /// Sent as `Authorization: Bearer KEY` (llama-server: --api-key).
    #[arg(
        long,
        env = "GGUF_SERVE_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,

    /// Limit on one request, in seconds.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub timeout: u64,

    /// Print one JSON object (config and summary) instead of text, and no progress bar.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if args.synthetic == Some(0) {
        bail!("--synthetic must be at least 1");
    }
    if args.timeout == 0 {
        bail!("--timeout must be at least 1 second");
    }
    if !(args.url.starts_with("http://") || args.url.starts_with("https://")) {
        bail!("--url {}: expected http://HOST:PORT", args.url);
    }
    let requests = match (&args.requests, args.synthetic) {
        (Some(path), _) => bench::load_requests(path, args.endpoint)?,
        (None, Some(n)) => bench::synthetic_requests(n, args.prompt_tokens),
        (None, None) => bail!("give --requests FILE.jsonl or --synthetic N"),
    };
    let config = BenchConfig {
        url: args.url.clone(),
        api_key: args.api_key.clone(),
        concurrency: args.concurrency,
        timeout: Duration::from_secs(args.timeout),
        options: RequestOptions {
            endpoint: args.endpoint,
            max_tokens: args.max_tokens,
            temperature: args.temperature,
            top_p: args.top_p,
            stream: !args.no_stream,
            cache_prompt: args.cache_prompt,
            ignore_eos: args.ignore_eos.unwrap_or(args.synthetic.is_some()),
            seed: args.seed,
            model: args.model.clone(),
        },
    };

    let progress = progress_bar(requests.len() as u64, !args.json);
    let on_done: bench::OnDone = {
        let progress = progress.clone();
        Arc::new(move |outcome: &Outcome| {
            if outcome.result.is_err() {
                progress.set_message("(some failed)");
            }
            progress.inc(1);
        })
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (outcomes, wall) = runtime.block_on(bench::run(&config, &requests, on_done))?;
    progress.finish_and_clear();
    let summary = bench::summarize(&outcomes, wall);

    if args.json {
        let report = json!({
            "url": config.endpoint_url(),
            "endpoint": config.options.endpoint,
            "concurrency": config.concurrency,
            "max_tokens": config.options.max_tokens,
            "stream": config.options.stream,
            "ignore_eos": config.options.ignore_eos,
            "summary": summary,
        });
        println!("{report}");
    } else {
        println!(
            "{} requests to {} at concurrency {}",
            summary.requests,
            config.endpoint_url(),
            config.concurrency
        );
        print!("{}", bench::render_text(&summary));
    }
    if summary.succeeded == 0 {
        bail!(
            "all {} requests failed{}",
            summary.requests,
            summary
                .errors
                .first()
                .map_or_else(String::new, |e| format!(", first with: {e}"))
        );
    }
    Ok(())
}

/// A bar on stderr, hidden when `show` is off or stderr is not a terminal.
fn progress_bar(len: u64, show: bool) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
