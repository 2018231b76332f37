//! `gguf-serve rpc-worker`: this machine's devices for another machine's server, over
//! llama.cpp's RPC protocol (the same flags, defaults and warning as llama.cpp's `rpc-server`,
//! which it replaces); and `--rpc`, the client side that `serve`, `plan` and `devices` share.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::hardware::rpc;

/// `--rpc`: the RPC workers whose devices join this machine's.
#[derive(Debug, Clone, Default, Args)]
pub struct RpcArgs {
    /// RPC workers to use, comma-separated `host:port` (`gguf-serve rpc-worker` or llama.cpp's
    /// `rpc-server`): their devices are added to this machine's, and the model's layers are
    /// split over them all. The traffic is unauthenticated and unencrypted: private networks
    /// only.
    #[arg(long, value_name = "HOST:PORT,…")]
    pub rpc: Option<String>,
}

impl RpcArgs {
    /// Adds the workers' devices, before anything lists devices, plans or loads.
    pub fn add(&self) -> anyhow::Result<()> {
        let Some(list) = &self.rpc else {
            return Ok(());
        };
        let servers = rpc::parse_servers(list)?;
        rpc::add_servers(&servers)?;
        tracing::info!("added the devices of RPC workers {}", servers.join(", "));
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct RpcWorkerArgs {
    /// Address to bind to. Anything but 127.0.0.1 prints llama.cpp's warning: RPC traffic is
    /// unauthenticated and unencrypted, so bind only to a private interface.
    #[arg(short = 'H', long, default_value = rpc::DEFAULT_HOST)]
    pub host: String,

    /// Port to bind to.
    #[arg(short = 'p', long, default_value_t = rpc::DEFAULT_PORT)]
    pub port: u16,

    /// Devices to expose, comma-separated (see `gguf-serve devices`); default: every GPU, or
    /// the CPU when there is none.
    #[arg(short = 'd', long, value_name = "DEV,…", value_delimiter = ',')]
    pub device: Vec<String>,

    /// Keep the tensors clients send in a folder, so that a client loading the same model
    /// again sends hashes instead of weights. Without DIR: llama.cpp's, `$LLAMA_CACHE/rpc`
    /// (else `$XDG_CACHE_HOME/llama.cpp/rpc`, else `~/.cache/llama.cpp/rpc`).
    #[arg(short = 'c', long, value_name = "DIR", num_args = 0..=1, default_missing_value = "")]
    pub cache: Option<PathBuf>,

    /// Threads of the CPU device (default: half the logical CPUs, as `rpc-server`).
    #[arg(short = 't', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,
}

pub fn run(args: RpcWorkerArgs) -> anyhow::Result<()> {
    if args.host != rpc::DEFAULT_HOST {
        // llama.cpp's rpc-server prints this, word for word.
        eprintln!();
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        eprintln!("WARNING: Host ('{}') is != '127.0.0.1'", args.host);
        eprintln!("         Never expose the RPC server to an open network!");
        eprintln!("         This is an experimental feature and is not secure!");
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        eprintln!();
    }
    let cache = match args.cache {
        Some(dir) if dir.as_os_str().is_empty() => Some(llama_cache_dir()?.join("rpc")),
        other => other,
    };
    if let Some(dir) = &cache {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("Failed to create cache directory: {}", dir.display()))?;
    }
    let threads = args.threads.map_or_else(
        || {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get() / 2)
                .max(1)
        },
        |n| n as usize,
    );
    let endpoint = format!("{}:{}", args.host, args.port);
    rpc::serve_worker(&endpoint, cache.as_deref(), threads, &args.device)?;
    Ok(())
}

/// llama.cpp's cache folder (`fs_get_cache_directory`): `$LLAMA_CACHE`, else
/// `$XDG_CACHE_HOME/llama.cpp`, else `~/.cache/llama.cpp`.
fn llama_cache_dir() -> anyhow::Result<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("LLAMA_CACHE") {
        return Ok(dir);
    }
    let base = match var("XDG_CACHE_HOME") {
        Some(dir) => dir,
        None => var("HOME")
            .context("Failed to find $HOME directory")?
            .join(".cache"),
    };
    Ok(base.join("llama.cpp"))
}
