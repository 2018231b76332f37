//! `gguf-serve --models-dir DIR` (no `--model`): the router's flags, the serve flags it hands to
//! every model's server, and the planner it places models with.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args};

use super::serve::ServeArgs;
use crate::plan::{Budget, Decision, Fit, fmt_bytes};
use crate::router::placement::Memory;
use crate::router::{Planned, RouterConfig, instance::Launch};

#[derive(Debug, Clone, Args)]
pub struct RouterArgs {
    /// Serve every model in this folder (without --model): each `.gguf` file, and each
    /// sub-folder of split parts or of quants of one model, loaded when a request names it.
    #[arg(long = "models-dir", value_name = "PATH")]
    pub models_dir: Option<PathBuf>,

    /// With --models-dir: at most this many models loaded at once (0: no limit); besides,
    /// models are only loaded together while their planned memory fits.
    #[arg(long = "models-max", default_value_t = 4, value_name = "N")]
    pub models_max: usize,

    /// With --models-dir: load a model when a request names it (`?autoload=false` asks not to).
    #[arg(long = "models-autoload", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = ArgAction::Set)]
    pub models_autoload: bool,

    /// With --models-dir: the host memory the loaded models may use together (default: what is
    /// available when the server starts, less the margin), e.g. 24GiB.
    #[arg(long = "models-ram", value_name = "SIZE")]
    pub models_ram: Option<String>,
}

/// The serve flags a model's server does not get from the router: the router's own, and those
/// it sets per model (the model, address, name and key) or keeps to itself (TLS, CORS, the
/// connection cap, the page, the log file).
const ROUTER_ONLY: &[&str] = &[
    "model",
    "hf_repo",
    "hf_file",
    "hf_token",
    "alias",
    "tags",
    "host",
    "port",
    "reuse_port",
    "api_key",
    "api_key_file",
    "ssl_key_file",
    "ssl_cert_file",
    "path",
    "ui",
    "cors_origins",
    "cors_methods",
    "cors_headers",
    "cors_credentials",
    "max_connections",
    "log_file",
    "cache_list",
    "list_devices",
    "models_dir",
    "models_max",
    "models_autoload",
    "models_ram",
];

/// The flags given on the command line (or by `LLAMA_ARG_*`, already turned into flags) among
/// `command`'s, written back as gguf-serve's long flags, less [`ROUTER_ONLY`].
pub(super) fn given_flags(command: &clap::Command, matches: &ArgMatches) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if ROUTER_ONLY.contains(&id) || matches.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        let flag = match (arg.get_long(), arg.get_short()) {
            (Some(long), _) => format!("--{long}"),
            (None, Some(short)) => format!("-{short}"),
            (None, None) => continue,
        };
        match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => out.push(flag.into()),
            ArgAction::Count => {
                let n = matches.get_count(id);
                out.extend((0..n).map(|_| OsString::from(&flag)));
            }
            _ => {
                for occurrence in matches.get_raw_occurrences(id).into_iter().flatten() {
                    let values: Vec<&std::ffi::OsStr> = occurrence.collect();
                    if let [value] = values.as_slice() {
                        let mut one = OsString::from(format!("{flag}="));
                        one.push(value);
                        out.push(one);
                    } else {
                        out.push(flag.clone().into());
                        out.extend(values.iter().map(|v| v.to_os_string()));
                    }
                }
            }
        }
    }
    out
}

/// Where the router's models are.
pub(super) enum Source {
    /// `--models-dir`.
    Folder(PathBuf),
    /// The Hugging Face cache (no model and no folder given, as llama-server's router), and
    /// its models (read once: each one's header names its quant).
    Cache(PathBuf, Vec<crate::router::Entry>),
}

/// Whether the command line asks for the router, and over which models: `--models-dir`
/// without a model, or neither with models in the cache.
pub(super) fn wanted(args: &ServeArgs) -> Option<Source> {
    if args.model.is_some() || args.hf.hf_repo.is_some() {
        return None;
    }
    if let Some(dir) = &args.router.models_dir {
        return Some(Source::Folder(dir.clone()));
    }
    let cache = crate::hub::cache_dir(&|name| std::env::var(name).ok())?;
    let catalog = crate::router::catalog::cached(&cache);
    (!catalog.is_empty()).then_some(Source::Cache(cache, catalog))
}

/// The router's settings: the models, the devices' memory now, and the planner.
pub(super) fn config(args: &ServeArgs, source: Source) -> anyhow::Result<RouterConfig> {
    let (dir, catalog) = match source {
        Source::Folder(dir) => {
            refuse_single_model_flags(args)?;
            let catalog = crate::router::catalog::scan(&dir)
                .with_context(|| format!("--models-dir {}", dir.display()))?;
            if catalog.is_empty() {
                anyhow::bail!(
                    "--models-dir {}: no models in it (a .gguf file, or a folder holding them)",
                    dir.display()
                );
            }
            (dir, catalog)
        }
        Source::Cache(dir, catalog) => {
            refuse_single_model_flags(args)?;
            (dir, catalog)
        }
    };
    args.load.rpc.add()?;
    let budget = super::serve::detected_budget(args, &[])?;
    let mut capacity = Memory {
        gpus: budget.gpus.iter().map(|g| g.usable()).collect(),
        host: budget.host_usable(),
    };
    if let Some(size) = &args.router.models_ram {
        capacity.host = super::plan::parse_size("--models-ram", size)?;
    }
    let mut server = super::serve::server_config_of(args)?;
    server.model_arg = dir.display().to_string();
    let planner_args = args.clone();
    Ok(RouterConfig {
        models_dir: dir,
        catalog,
        max_models: args.router.models_max,
        autoload: args.router.models_autoload,
        capacity,
        launch: Launch {
            program: std::env::current_exe().context("the path of this program")?,
            args: std::iter::once(OsString::from("serve"))
                .chain(args.given.iter().cloned())
                .collect(),
            // The key only the router sends to its models' servers.
            key: crate::server::random_id(),
            prefix: server.api_prefix.clone(),
            stop_timeout: std::time::Duration::from_secs(STOP_TIMEOUT_SECS),
        },
        planner: Box::new(move |path| {
            plan(&planner_args, &budget, path).map_err(|e| format!("{e:#}"))
        }),
        server,
    })
}

/// The flags of one served model that mean nothing for a folder of them: refused by name
/// rather than ignored.
fn refuse_single_model_flags(args: &ServeArgs) -> anyhow::Result<()> {
    let given = [
        (
            !args.http.alias.is_empty(),
            "--alias",
            "each model is named by its file or folder",
        ),
        (
            !args.http.tags.is_empty(),
            "--tags",
            "each model is named by its file or folder",
        ),
        (
            args.http.path.is_some(),
            "--path",
            "the router serves the chat page, not a folder",
        ),
        (
            args.hf.file.hf_file.is_some(),
            "--hf-file",
            "the router serves the files it found",
        ),
    ];
    match given.iter().find(|(set, _, _)| *set) {
        Some((_, flag, why)) => {
            anyhow::bail!("{flag}: not supported when serving several models: {why}")
        }
        None => Ok(()),
    }
}

/// Seconds a model's server gets to exit after SIGTERM (llama-server's `stop-timeout`).
const STOP_TIMEOUT_SECS: u64 = 10;

/// The planner's choice for the model at `path` with the router's flags, on the budget the
/// router started with.
fn plan(args: &ServeArgs, budget: &Budget, path: &Path) -> anyhow::Result<Planned> {
    let decision = super::serve::plan_on(args, budget, path)?;
    Ok(Planned {
        file: decision.file.clone(),
        memory: memory_of(&decision, budget.gpus.len()),
        summary: summary(&decision),
    })
}

/// The memory a decision takes on each device.
fn memory_of(decision: &Decision, n_gpus: usize) -> Memory {
    let predicted = &decision.predicted;
    let mut gpus = vec![0; n_gpus];
    match &decision.split {
        Some(split) => {
            for (slot, device) in gpus.iter_mut().zip(&split.devices) {
                *slot = device.total();
            }
        }
        None => {
            if let Some(first) = gpus.first_mut() {
                *first = predicted.gpu_total();
            }
        }
    }
    Memory {
        gpus,
        host: predicted.host_total(),
    }
}

fn summary(decision: &Decision) -> String {
    let place = match decision.plans.iter().find(|p| p.file == decision.file) {
        Some(p) if p.fit == Fit::FullGpu => "all on the GPU".to_string(),
        Some(p) if p.fit == Fit::Cpu => "on the CPU".to_string(),
        _ => format!("{} layers on the GPU", decision.n_gpu_layers),
    };
    format!(
        "{} ({}), {place}: {} of GPU memory, {} of host memory",
        decision.file.display(),
        decision.quant,
        fmt_bytes(decision.predicted.gpu_total()),
        fmt_bytes(decision.predicted.host_total())
    )
}

#[cfg(test)]
mod tests {
    fn given(argv: &[&str]) -> Vec<String> {
        let cli = crate::cli::Cli::parse_with_env(
            std::iter::once("gguf-serve")
                .chain(argv.iter().copied())
                .map(Into::into),
            &|_| None,
        )
        .unwrap();
        let serve = match &cli.command {
            Some(crate::cli::Command::Serve(args)) => args.as_ref(),
            _ => &cli.serve,
        };
        serve
            .given
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn models_servers_get_the_serve_flags_but_not_the_routers() {
        let got = given(&[
            "--models-dir",
            "/m",
            "--models-max",
            "2",
            "--port",
            "9000",
            "--host",
            "0.0.0.0",
            "--api-key",
            "k",
            "-c",
            "4096",
            "-np",
            "2",
            "--metrics",
            "--temp",
            "0.5",
            "-v",
            "--no-models-autoload",
            "--jinja",
        ]);
        let mut got = got;
        got.sort();
        let mut want = vec![
            "--ctx-size=4096",
            "--parallel=2",
            "--metrics",
            "--temp=0.5",
            "--verbose",
            "--jinja=true",
        ];
        want.sort();
        assert_eq!(got, want);
        // The same through the serve subcommand and llama-server's variables.
        let got = given(&["serve", "--models-dir", "/m", "-c", "2048"]);
        assert_eq!(got, vec!["--ctx-size=2048"]);
    }
}
