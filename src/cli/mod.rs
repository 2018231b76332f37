//! The command line: bare flags serve a model (as `llama-server` does), subcommands plan, inspect
//! devices, quantize and benchmark. Each subcommand's flags live in its own file; this is the only
//! module (with `main.rs`) that turns errors into `anyhow` reports for the user.

mod bench;
mod chat;
mod control_vector;
mod devices;
mod embed;
mod flags;
mod http;
mod hub;
pub mod llama_flags;
mod load;
mod log;
mod lora;
mod memory;
mod plan;
mod quantize;
mod router;
mod rpc_worker;
mod run;
mod sampling;
mod serve;
mod slots;
pub mod store;
mod threads;

pub use bench::BenchArgs;
pub use devices::DevicesArgs;
pub use flags::FlagsArgs;
pub use plan::PlanArgs;
pub use quantize::QuantizeArgs;
pub use rpc_worker::{RpcArgs, RpcWorkerArgs};
pub use serve::ServeArgs;

use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub use llama_flags::{Class, FlagError, LlamaFlag, Support};
use llama_flags::{rewrite_spellings, translate};

/// Serve GGUF language models over llama-server's HTTP API, choosing the quant and GPU offload
/// that fit your hardware.
#[derive(Debug, Parser)]
#[command(
    name = "gguf-serve",
    version,
    long_version = crate::build_info::LONG_VERSION,
    args_conflicts_with_subcommands = true,
    args_override_self = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Serve flags, usable without the `serve` subcommand (`gguf-serve -m model.gguf`).
    #[command(flatten)]
    pub serve: ServeArgs,

    /// Where to load llama.cpp's backends from (CPU variants, CUDA, Vulkan …) in a build with
    /// the `dynamic-backends` feature. Default: `backends/` beside the binary if it exists, else
    /// llama.cpp's own search (its build folder, the binary's folder, the current folder).
    #[arg(long, global = true, value_name = "DIR")]
    pub backends_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a model over HTTP (the default when no subcommand is given).
    Serve(Box<ServeArgs>),
    /// Show which quants fit which memory budget, without loading anything.
    Plan(PlanArgs),
    /// List the compute devices llama.cpp sees, with their memory.
    Devices(DevicesArgs),
    /// Quantize a GGUF model, or make a ladder of quants.
    Quantize(QuantizeArgs),
    /// Benchmark a running llama.cpp-style or OpenAI-compatible server.
    Bench(BenchArgs),
    /// List llama-server's flags and what gguf-serve does with each.
    Flags(FlagsArgs),
    /// Download a model from Hugging Face into the cache: the quant that fits this machine, or
    /// the one named.
    Pull(store::PullArgs),
    /// List the models in the Hugging Face cache.
    List(store::ListArgs),
    /// Remove a repo, or one quant of it, from the Hugging Face cache.
    Rm(store::RmArgs),
    /// Chat with a model in the terminal (every serve flag applies): a prompt is answered once,
    /// otherwise a chat until /bye.
    Run(Box<run::RunArgs>),
    /// Serve this machine's devices to another machine's server over llama.cpp's RPC protocol
    /// (as llama.cpp's `rpc-server`; the server adds it with `--rpc HOST:PORT`).
    RpcWorker(RpcWorkerArgs),
}

impl Cli {
    /// Runs the chosen command to completion.
    pub fn run(self) -> anyhow::Result<()> {
        // `bench` only speaks HTTP: no backend (a GPU one initializes its driver) to load.
        if !matches!(
            self.command,
            Some(Command::Bench(_) | Command::Flags(_) | Command::List(_) | Command::Rm(_))
        ) {
            crate::hardware::load_backends(self.backends_dir.as_deref())?;
        }
        match self.command {
            None => serve::run(self.serve),
            Some(Command::Serve(args)) => serve::run(*args),
            Some(Command::Plan(args)) => plan::run(args),
            Some(Command::Devices(args)) => devices::run(args),
            Some(Command::Quantize(args)) => quantize::run(args),
            Some(Command::Bench(args)) => bench::run(args),
            Some(Command::Flags(args)) => flags::run(args),
            Some(Command::Pull(args)) => store::pull(args),
            Some(Command::List(args)) => store::list(&args),
            Some(Command::Rm(args)) => store::rm(args),
            Some(Command::RpcWorker(args)) => rpc_worker::run(args),
            Some(Command::Run(args)) => run::run(*args),
        }
    }
}

/// Why a command line could not be parsed.
#[derive(Debug)]
pub enum ParseError {
    /// A llama-server flag gguf-serve refuses, or one nobody knows: one line names it.
    Flag(FlagError),
    /// clap's own report (help and version requests too), printed and exited by clap.
    Clap(clap::Error),
}

impl Cli {
    /// Parses a command line: llama-server's spellings and its `LLAMA_ARG_*` environment
    /// (read through `env`) are translated into gguf-serve's flags first, when serving
    /// (`llama_flags.rs` decides each); the other subcommands take llama-server's spellings of
    /// the flags they share (`plan -ngl 99`).
    pub fn parse_with_env(
        args: impl IntoIterator<Item = OsString>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ParseError> {
        let args: Vec<OsString> = args.into_iter().collect();
        let mut command = Self::command_with_llama_help();
        let subcommand = args.get(1).and_then(|a| a.to_str()).filter(|a| {
            command
                .get_subcommands()
                .any(|s| s.get_name() == *a || s.get_all_aliases().any(|alias| alias == *a))
        });
        let args = match subcommand {
            None => translate(args, env, &|s| own_flag(&command, s)).map_err(ParseError::Flag)?,
            // `run` serves too, with the same flags.
            Some(name @ ("serve" | "run")) => {
                let serve = command.find_subcommand(name).expect("matched above");
                let (head, rest) = args.split_at(2);
                let mut translated = translate(
                    std::iter::once(head[1].clone())
                        .chain(rest.iter().cloned())
                        .collect(),
                    env,
                    &|s| own_flag(serve, s),
                )
                .map_err(ParseError::Flag)?;
                translated.insert(0, head[0].clone());
                translated
            }
            // rpc-worker takes llama.cpp's rpc-server flags (`-c` is its cache, not -c N).
            Some("rpc-worker") => args,
            Some(name) => {
                let sub = command.find_subcommand(name).expect("matched above");
                rewrite_spellings(args, &|s| own_flag(sub, s))
            }
        };
        let matches = command
            .try_get_matches_from_mut(args)
            .map_err(ParseError::Clap)?;
        let mut cli = Self::from_arg_matches(&matches).map_err(ParseError::Clap)?;
        match (&mut cli.command, matches.subcommand()) {
            (None, _) => cli.serve.given = router::given_flags(&command, &matches),
            (Some(Command::Serve(serve)), Some((name, sub))) => {
                if let Some(sub_command) = command.find_subcommand(name) {
                    serve.given = router::given_flags(sub_command, sub);
                }
            }
            _ => {}
        }
        Ok(cli)
    }

    /// clap's command, each implemented llama-server flag's help naming the llama-server
    /// spellings and the environment variable it answers to.
    pub fn command_with_llama_help() -> clap::Command {
        let annotate = |mut command: clap::Command| {
            let ids: Vec<(clap::Id, String)> = command
                .get_arguments()
                .filter_map(|a| Some((a.get_id().clone(), a.get_long()?.to_string())))
                .collect();
            for (id, long) in ids {
                if let Some(suffix) = llama_flags::help_suffix(&long) {
                    command = command.mut_arg(id, |arg| {
                        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                        arg.help(format!("{help} {suffix}"))
                    });
                }
            }
            command
        };
        let command = annotate(Self::command());
        command.mut_subcommand("serve", annotate)
    }
}

/// Whether `spelling` is one of gguf-serve's own flags of `command` (and if so, whether it
/// takes a value).
fn own_flag(command: &clap::Command, spelling: &str) -> Option<bool> {
    let arg = if let Some(long) = spelling.strip_prefix("--") {
        command.get_arguments().find(|a| {
            a.get_long() == Some(long) || a.get_all_aliases().is_some_and(|v| v.contains(&long))
        })
    } else {
        let mut chars = spelling.strip_prefix('-')?.chars();
        let short = chars.next()?;
        if chars.next().is_some() {
            return None;
        }
        command
            .get_arguments()
            .find(|a| a.get_short() == Some(short))
    }?;
    Some(arg.get_action().takes_values())
}
