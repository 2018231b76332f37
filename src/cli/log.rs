//! The logging flags, llama-server's: how much (`-v`, `-lv`), where (`--log-file`, none with
//! `--log-disable`), and how lines look (`--log-jsonl`, `--log-colors`, `--log-prefix`,
//! `--log-timestamps`). `RUST_LOG`, when set, overrides the level.

use clap::Args;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log everything, llama.cpp's own messages too.
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// How much to log: 0-1 errors, 2 warnings, 3 information (default), 4 more, 5 debug.
    #[arg(long = "verbosity", default_value_t = 3, value_name = "N")]
    pub verbosity: u8,

    /// No log at all.
    #[arg(long = "log-disable")]
    pub log_disable: bool,

    /// Also write the log to this file.
    #[arg(long = "log-file", value_name = "FNAME")]
    pub log_file: Option<std::path::PathBuf>,

    /// One JSON object per line (on stderr), without colors.
    #[arg(long = "log-jsonl", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub log_jsonl: bool,

    /// Colors: on, off or auto (when stderr is a terminal).
    #[arg(
        long = "log-colors",
        default_value = "auto",
        value_name = "on|off|auto"
    )]
    pub log_colors: String,

    /// The level of each line before its message (default on).
    #[arg(long = "log-prefix", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub log_prefix: bool,

    /// A timestamp on each line (default on).
    #[arg(long = "log-timestamps", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub log_timestamps: bool,
}

impl LogArgs {
    /// Installs the global subscriber for these flags.
    pub fn init(&self) -> anyhow::Result<()> {
        if self.log_disable {
            return Ok(());
        }
        let level = match (self.verbose, self.verbosity) {
            (true, _) => "debug",
            (false, 0..=1) => "error",
            (false, 2) => "warn",
            (false, 3) => "info",
            (false, 4) => "debug",
            (false, _) => "trace",
        };
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
        let ansi = match self.log_colors.as_str() {
            "on" | "enabled" | "true" | "1" => true,
            "off" | "disabled" | "false" | "0" => false,
            "auto" | "-1" => {
                std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
            other => anyhow::bail!("--log-colors {other}: expected on, off or auto"),
        };
        let file = match &self.log_file {
            Some(path) => Some(std::sync::Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| anyhow::anyhow!("--log-file {}: {e}", path.display()))?,
            )),
            None => None,
        };
        let file_layer = file.map(|f| {
            tracing_subscriber::fmt::layer()
                .with_writer(f)
                .with_ansi(false)
                .with_level(self.log_prefix)
        });
        let registry = tracing_subscriber::registry().with(filter).with(file_layer);
        let stderr = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_level(self.log_prefix);
        let result = match (self.log_jsonl, self.log_timestamps) {
            (true, _) => registry.with(stderr.json().with_ansi(false)).try_init(),
            (false, true) => registry.with(stderr.with_ansi(ansi)).try_init(),
            (false, false) => registry
                .with(stderr.with_ansi(ansi).without_time())
                .try_init(),
        };
        // A subscriber set before (tests) stays.
        let _ = result;
        Ok(())
    }
}
