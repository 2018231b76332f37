//! The flags of the HTTP side: addresses, names, keys, which endpoints are on, CORS, timeouts.

use anyhow::Context;
use clap::Args;

use crate::server::Cors;

#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Model names for the API, comma-separated (the first in sorted order is the one answers
    /// carry); default: the -m argument.
    #[arg(short = 'a', long, value_name = "STRING")]
    pub alias: Vec<String>,

    /// Model tags shown by /v1/models, comma-separated.
    #[arg(long, value_name = "STRING")]
    pub tags: Vec<String>,

    /// Addresses to listen on, comma-separated; a path ending in .sock is a Unix socket.
    #[arg(long, default_value = "127.0.0.1", value_name = "HOST")]
    pub host: String,

    /// Port to listen on.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,

    /// Let several sockets bind the same port.
    #[arg(long = "reuse-port")]
    pub reuse_port: bool,

    /// API keys clients must send (`Authorization: Bearer KEY`), comma-separated.
    #[arg(long = "api-key", value_name = "KEY")]
    pub api_key: Vec<String>,

    /// A file of API keys, one per line (lines starting with # are comments).
    #[arg(long = "api-key-file", value_name = "FNAME")]
    pub api_key_file: Option<std::path::PathBuf>,

    /// A PEM private key: serve HTTPS (with --ssl-cert-file).
    #[arg(long = "ssl-key-file", value_name = "FNAME")]
    pub ssl_key_file: Option<std::path::PathBuf>,

    /// A PEM certificate chain: serve HTTPS (with --ssl-key-file).
    #[arg(long = "ssl-cert-file", value_name = "FNAME")]
    pub ssl_cert_file: Option<std::path::PathBuf>,

    /// The /slots endpoint (default on).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub slots: bool,

    /// Accept POST /props.
    #[arg(long)]
    pub props: bool,

    /// Seconds a client may stop reading an answer before its connection is dropped; a TLS
    /// handshake and each request's headers get 5 s (or this, when shorter), counted from when
    /// the server starts waiting for them, so idle and trickling connections close then.
    #[arg(long, default_value_t = 3600, value_name = "N")]
    pub timeout: u64,

    /// On SIGTERM or Ctrl-C, seconds to let requests in flight finish before they are ended
    /// (each gets a last error event or answer); a second signal exits at once.
    #[arg(long = "shutdown-timeout", default_value_t = 5, value_name = "SECONDS")]
    pub shutdown_timeout: u64,

    /// Seconds of silence after which a stream sends an SSE comment (-1: never).
    #[arg(
        long = "sse-ping-interval",
        default_value_t = 30,
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub sse_ping_interval: i64,

    /// Threads for HTTP requests (-1: one per core). They parse, tokenize and stream; too few
    /// delay every stream's tokens while the engine is fast (on an H200 with 32 chat streams,
    /// 2 threads made time to first token p99 2.8x that of one per core).
    #[arg(long = "threads-http", default_value_t = -1, value_name = "N", allow_negative_numbers = true)]
    pub threads_http: i32,

    /// Serve static files from this folder for other GET paths (in place of the chat page).
    #[arg(long, value_name = "PATH")]
    pub path: Option<std::path::PathBuf>,

    /// Serve the chat page at / (`--no-ui` turns it off).
    #[arg(long = "ui", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub ui: bool,

    /// Serve every route under this prefix (no trailing slash).
    #[arg(long = "api-prefix", default_value = "", value_name = "PREFIX")]
    pub api_prefix: String,

    /// Allowed CORS origins, comma-separated; `*` (default), or `localhost` to allow only
    /// local pages.
    #[arg(long = "cors-origins", default_value = "*", value_name = "ORIGINS")]
    pub cors_origins: String,

    /// Allowed CORS methods.
    #[arg(
        long = "cors-methods",
        default_value = "GET, POST, DELETE, OPTIONS",
        value_name = "METHODS"
    )]
    pub cors_methods: String,

    /// Allowed CORS headers.
    #[arg(long = "cors-headers", default_value = "*", value_name = "HEADERS")]
    pub cors_headers: String,

    /// Allow credentials in CORS requests (default on).
    #[arg(long = "cors-credentials", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub cors_credentials: bool,

    /// Never use the network: a Hugging Face repo is planned and served from the cache (as
    /// HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,

    /// Requests waiting for a free slot beyond which new ones get 503 (0: no bound).
    #[arg(long = "max-queue", default_value_t = 256, value_name = "N")]
    pub max_queue: usize,

    /// Connections served at once; further ones wait in the listen backlog until one closes
    /// (0: as many as the open-file limit allows, after raising it to its hard limit).
    #[arg(long = "max-connections", default_value_t = 0, value_name = "N")]
    pub max_connections: usize,
}

impl HttpArgs {
    /// The addresses of `--host`, as llama-server splits them.
    pub fn hosts(&self) -> anyhow::Result<Vec<String>> {
        let hosts: Vec<String> = self
            .host
            .split(',')
            .map(|h| h.trim().trim_matches('"').to_string())
            .filter(|h| !h.is_empty())
            .collect();
        anyhow::ensure!(!hosts.is_empty(), "--host requires at least one address");
        Ok(hosts)
    }

    /// Every API key: `--api-key` (comma-separated, repeatable) and `--api-key-file`.
    pub fn api_keys(&self) -> anyhow::Result<Vec<String>> {
        let mut keys = split_list(&self.api_key);
        if let Some(path) = &self.api_key_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--api-key-file {}: cannot read it", path.display()))?;
            keys.extend(
                text.lines()
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string),
            );
        }
        Ok(keys)
    }

    /// `--ssl-cert-file` and `--ssl-key-file`: both, or neither.
    pub fn tls(&self) -> anyhow::Result<Option<crate::server::TlsFiles>> {
        match (&self.ssl_cert_file, &self.ssl_key_file) {
            (Some(cert), Some(key)) => Ok(Some(crate::server::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })),
            (None, None) => Ok(None),
            (Some(_), None) => anyhow::bail!("--ssl-cert-file needs --ssl-key-file too"),
            (None, Some(_)) => anyhow::bail!("--ssl-key-file needs --ssl-cert-file too"),
        }
    }

    pub fn cors(&self) -> Cors {
        Cors {
            origins: self.cors_origins.clone(),
            methods: self.cors_methods.clone(),
            headers: self.cors_headers.clone(),
            credentials: self.cors_credentials,
        }
    }
}

/// Comma-separated values of a repeatable flag, trimmed, empties dropped.
pub fn split_list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A comma-separated list as llama-server keeps it: a sorted set.
pub fn sorted_set(values: &[String]) -> Vec<String> {
    let mut set = split_list(values);
    set.sort();
    set.dedup();
    set
}
