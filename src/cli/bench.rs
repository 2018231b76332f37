//! `gguf-serve bench`: flags, their validation, the progress bar and the printed summary. The load
//! generator itself is `crate::bench`; this file only turns flags into its typed config. Two
//! workloads: prompts at a fixed concurrency (`--requests`, `--synthetic`; closed loop) and chat
//! conversations arriving at a rate (`--conversations`; open loop).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::bench::{self, BenchConfig, ConversationPlan, Endpoint, Outcome, RequestOptions};

/// Turns per conversation without --turns.
const DEFAULT_TURNS: usize = 4;

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("workload")
        .required(true)
        .args(["requests", "synthetic", "conversations"])
))]
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

    /// Index of the first synthetic prompt [default: 0]: runs from different indexes share no
    /// prompt, so a wave on a server that kept an earlier one's prompts computes its own.
    #[arg(long, value_name = "I")]
    pub synthetic_from: Option<usize>,

    /// Chat traffic instead: N conversations of --turns turns, each turn resending the whole
    /// history (the user's messages and the server's streamed answers) and a new user message.
    /// Open loop: turns wait for their own conversation only, never for a free place, so
    /// --concurrency is refused; --rate and --think set the load.
    #[arg(long, value_name = "N")]
    pub conversations: Option<usize>,

    /// Turns (requests) per conversation [default: 4].
    #[arg(long, value_name = "T")]
    pub turns: Option<usize>,

    /// Conversations started per second, as a Poisson process (exponential gaps drawn from
    /// --seed). Default: all start at once.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,

    /// Seconds a user waits between receiving an answer and sending the next turn [default: 0].
    #[arg(long, value_name = "S")]
    pub think: Option<f64>,

    /// Requests in flight at once [default: 1]. Not with --conversations.
    #[arg(long, value_name = "C")]
    pub concurrency: Option<usize>,

    /// Tokens to generate per request, unless a JSONL line says otherwise (llama-server:
    /// n_predict; OpenAI: max_tokens).
    #[arg(long, default_value_t = 128, value_name = "M")]
    pub max_tokens: u32,

    /// API to call: `chat` (POST /v1/chat/completions) or `completion` (POST /completion,
    /// llama-server's native API).
    #[arg(long, default_value = "chat", value_name = "chat|completion")]
    pub endpoint: Endpoint,

    /// Approximate prompt length of synthetic requests, in tokens. With --conversations: the
    /// mean length of a conversation's first user message; later turns add about a quarter of
    /// it; lengths are drawn uniformly within ±50% of their mean.
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
    /// (llama-server: ignore_eos). Default: on for --synthetic and --conversations, off for
    /// --requests.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub ignore_eos: Option<bool>,

    /// Let the server reuse cached prompt prefixes (llama-server: cache_prompt, default on).
    /// Not sent unless given.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub cache_prompt: Option<bool>,

    /// Sampling seed sent with every request (llama-server: seed). With --conversations it also
    /// seeds the arrivals and the messages (default 0: every run sends the same conversations).
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
    check(&args)?;
    let config = BenchConfig {
        url: args.url.clone(),
        api_key: args.api_key.clone(),
        concurrency: args.concurrency.unwrap_or(1),
        timeout: Duration::from_secs(args.timeout),
        options: RequestOptions {
            endpoint: args.endpoint,
            max_tokens: args.max_tokens,
            temperature: args.temperature,
            top_p: args.top_p,
            stream: !args.no_stream,
            cache_prompt: args.cache_prompt,
            ignore_eos: args.ignore_eos.unwrap_or(args.requests.is_none()),
            seed: args.seed,
            model: args.model.clone(),
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let summary = match args.conversations {
        Some(conversations) => {
            let plan = ConversationPlan {
                conversations,
                turns: args.turns.unwrap_or(DEFAULT_TURNS),
                rate: args.rate,
                think: Duration::from_secs_f64(args.think.unwrap_or(0.0)),
                prompt_tokens: args.prompt_tokens,
                seed: args.seed.unwrap_or(bench::DEFAULT_SEED),
            };
            let (progress, on_done) =
                progress((plan.conversations * plan.turns) as u64, !args.json);
            let run = runtime.block_on(bench::run_conversations(&config, &plan, on_done))?;
            progress.finish_and_clear();
            let summary = bench::summarize(&run.outcomes(), run.wall);
            let chat = bench::summarize_conversations(&plan, &run.turns);
            if args.json {
                let mut report = report_head(&config, &summary);
                report["concurrency"] = json!(null);
                report["conversations"] = json!({
                    "conversations": plan.conversations,
                    "turns": plan.turns,
                    "rate": plan.rate,
                    "think_s": plan.think.as_secs_f64(),
                    "prompt_tokens": plan.prompt_tokens,
                    "seed": plan.seed,
                    "summary": chat,
                });
                println!("{report}");
            } else {
                let rate = plan
                    .rate
                    .map_or_else(|| "all at once".to_owned(), |r| format!("{r}/s"));
                println!(
                    "{} conversations x {} turns to {} (open loop, started {rate}, think {} s)",
                    plan.conversations,
                    plan.turns,
                    config.endpoint_url(),
                    plan.think.as_secs_f64()
                );
                print!("{}", bench::render_text(&summary));
                print!("{}", bench::render_conversation(&chat));
            }
            summary
        }
        None => {
            let requests = match (&args.requests, args.synthetic) {
                (Some(path), _) => bench::load_requests(path, args.endpoint)?,
                (None, Some(n)) => bench::synthetic_requests(
                    args.synthetic_from.unwrap_or(0),
                    n,
                    args.prompt_tokens,
                ),
                (None, None) => {
                    bail!("give --requests FILE.jsonl, --synthetic N or --conversations N")
                }
            };
            let (progress, on_done) = progress(requests.len() as u64, !args.json);
            let (outcomes, wall) = runtime.block_on(bench::run(&config, &requests, on_done))?;
            progress.finish_and_clear();
            let summary = bench::summarize(&outcomes, wall);
            if args.json {
                println!("{}", report_head(&config, &summary));
            } else {
                println!(
                    "{} requests to {} at concurrency {}",
                    summary.requests,
                    config.endpoint_url(),
                    config.concurrency
                );
                print!("{}", bench::render_text(&summary));
            }
            summary
        }
    };
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

/// Refuses flags that make no run, before anything is sent.
fn check(args: &BenchArgs) -> anyhow::Result<()> {
    if args.conversations.is_none()
        && (args.turns.is_some() || args.rate.is_some() || args.think.is_some())
    {
        bail!("--turns, --rate and --think describe --conversations: give --conversations N");
    }
    if args.synthetic.is_none() && args.synthetic_from.is_some() {
        bail!("--synthetic-from picks the first of --synthetic's prompts: give --synthetic N");
    }
    if args.conversations.is_some() && args.concurrency.is_some() {
        bail!(
            "--concurrency does not apply to --conversations: conversations are an open loop \
             (each turn waits for its own conversation only); set the load with --rate and --think"
        );
    }
    if args.concurrency == Some(0) {
        bail!("--concurrency must be at least 1");
    }
    for (flag, n) in [
        ("--synthetic", args.synthetic),
        ("--conversations", args.conversations),
        ("--turns", args.turns),
    ] {
        if n == Some(0) {
            bail!("{flag} must be at least 1");
        }
    }
    if let Some(rate) = args.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        bail!("--rate {rate}: expected conversations per second, above 0");
    }
    if let Some(think) = args.think
        && !(think.is_finite() && (0.0..=86_400.0).contains(&think))
    {
        bail!("--think {think}: expected seconds, from 0 to 86400");
    }
    if args.timeout == 0 {
        bail!("--timeout must be at least 1 second");
    }
    if !(args.url.starts_with("http://") || args.url.starts_with("https://")) {
        bail!("--url {}: expected http://HOST:PORT", args.url);
    }
    Ok(())
}

/// The `--json` report's fields that every workload has.
fn report_head(config: &BenchConfig, summary: &bench::Summary) -> serde_json::Value {
    json!({
        "url": config.endpoint_url(),
        "endpoint": config.options.endpoint,
        "concurrency": config.concurrency,
        "max_tokens": config.options.max_tokens,
        "stream": config.options.stream,
        "ignore_eos": config.options.ignore_eos,
        "summary": summary,
    })
}

/// A progress bar over `len` requests and the callback that advances it.
fn progress(len: u64, show: bool) -> (ProgressBar, bench::OnDone) {
    let progress = progress_bar(len, show);
    let on_done: bench::OnDone = {
        let progress = progress.clone();
        Arc::new(move |outcome: &Outcome| {
            if outcome.result.is_err() {
                progress.set_message("(some failed)");
            }
            progress.inc(1);
        })
    };
    (progress, on_done)
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
