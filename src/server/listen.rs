//! Listening and serving: one listener per `--host` address (TCP, or a Unix socket for a path
//! ending in `.sock`), at most `--max-connections` connections at once, each (in TLS with
//! `--ssl-cert-file`, on TCP) served by hyper with llama-server's `--timeout` on every write and
//! its keep-alive timeout on the TLS handshake and on waiting for and reading a request's
//! headers, the model loaded on the engine thread meanwhile, and a graceful shutdown on Ctrl-C
//! or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, watch};
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::TlsAcceptor;

use super::connections::{IDLE_TIMEOUT, connection_cap};
use super::memory::memory_report;
use super::{AppState, ServerConfig, ServerError, TemplateChoice, router};
use crate::chat::{ChatTemplate, LegacyApply, SpecialTokens};
use crate::engine::{Engine, EngineConfig, EngineError, LoadedModel};

/// A bound listener.
enum Listener {
    Tcp(tokio::net::TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener, String),
}

impl Listener {
    /// The listener's URL (`https` when `tls`).
    fn describe(&self, tls: bool) -> String {
        let scheme = if tls { "https" } else { "http" };
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(SocketAddr::V6(a)) => format!("{scheme}://[{}]:{}", a.ip(), a.port()),
                Ok(a) => format!("{scheme}://{a}"),
                Err(_) => "?".into(),
            },
            #[cfg(unix)]
            Listener::Unix(_, path) => format!("unix://{path}"),
        }
    }
}

/// Binds every address of `--host` on `--port`; with several TCP addresses each IPv6 socket is
/// IPv6-only, so that `0.0.0.0,::` works, as in llama-server.
fn bind(config: &ServerConfig) -> Result<Vec<Listener>, ServerError> {
    let tcp_hosts = config
        .hosts
        .iter()
        .filter(|h| !h.ends_with(".sock"))
        .count();
    if tcp_hosts > 1 && config.port == 0 {
        return Err(ServerError::Config(
            "--port 0 is not supported with multiple TCP addresses".into(),
        ));
    }
    config
        .hosts
        .iter()
        .map(|host| {
            #[cfg(unix)]
            if host.ends_with(".sock") {
                let _ = std::fs::remove_file(host);
                let listener =
                    tokio::net::UnixListener::bind(host).map_err(|source| ServerError::Bind {
                        addr: host.clone(),
                        source,
                    })?;
                return Ok(Listener::Unix(listener, host.clone()));
            }
            let addr = format!("{}:{}", bracket(host), config.port);
            tcp_listener(&addr, config.reuse_port, tcp_hosts > 1)
                .map(Listener::Tcp)
                .map_err(|source| ServerError::Bind { addr, source })
        })
        .collect()
}

/// A loopback port nobody listens on now (for a server of this process's own: `run`'s, or a
/// router's model servers).
pub fn free_loopback_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `::1` as `[::1]`, for joining with a port.
fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn tcp_listener(
    addr: &str,
    reuse_port: bool,
    v6_only: bool,
) -> std::io::Result<tokio::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let addr: SocketAddr = addr.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind")
    })?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() && v6_only {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    tokio::net::TcpListener::from_std(socket.into())
}

/// The bound listeners of `--host`/`--port`, with TLS when asked, and their URLs.
pub(crate) struct Listeners {
    listeners: Vec<Listener>,
    tls: Option<TlsAcceptor>,
    pub urls: Vec<String>,
}

impl Listeners {
    /// Binds every address, warning when one other machines can reach has no API key.
    pub(crate) fn bind(config: &ServerConfig) -> Result<Listeners, ServerError> {
        let tls = config.tls.as_ref().map(super::tls::acceptor).transpose()?;
        let listeners = bind(config)?;
        if config.api_keys.is_empty() {
            for listener in &listeners {
                if let Listener::Tcp(l) = listener
                    && l.local_addr().is_ok_and(|a| !a.ip().is_loopback())
                {
                    tracing::warn!(
                        "{} is reachable from other machines and no --api-key is set: anyone who can reach it can use the model",
                        listener.describe(tls.is_some())
                    );
                }
            }
        }
        let urls = listeners
            .iter()
            .map(|l| l.describe(tls.is_some()))
            .collect();
        Ok(Listeners {
            listeners,
            tls,
            urls,
        })
    }

    /// Serves `app` on every listener until [`Serving::stop`].
    pub(crate) fn serve(self, app: axum::Router, config: &ServerConfig) -> Serving {
        let timeout = Duration::from_secs(config.timeout_secs.max(1));
        // One cap for all listeners: it stands for the process's file descriptors.
        let permits = Arc::new(Semaphore::new(connection_cap(config.max_connections)));
        let (stop, stop_rx) = watch::channel(false);
        let servers = self
            .listeners
            .into_iter()
            .map(|listener| {
                tokio::spawn(serve(
                    listener,
                    app.clone(),
                    self.tls.clone(),
                    timeout,
                    Arc::clone(&permits),
                    stop_rx.clone(),
                ))
            })
            .collect();
        Serving { servers, stop }
    }
}

/// Listeners at work.
pub(crate) struct Serving {
    servers: Vec<tokio::task::JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Serving {
    /// Stops accepting connections; the task ends when every open one has closed.
    pub(crate) fn stop(self) -> tokio::task::JoinHandle<()> {
        let _ = self.stop.send(true);
        tokio::spawn(async move {
            for server in self.servers {
                let _ = server.await;
            }
            drop(self.stop);
        })
    }
}

/// Listens, loads the model on the engine thread, and serves until Ctrl-C/SIGTERM or until
/// loading fails (then returns the load error).
pub async fn run(config: ServerConfig, engine_config: EngineConfig) -> Result<(), ServerError> {
    let listeners = Listeners::bind(&config)?;
    let (engine, ready, engine_thread) = Engine::spawn(engine_config, config.max_queue);
    let state = Arc::new(AppState::new(engine.clone(), config));
    let urls = listeners.urls.clone();
    for url in &urls {
        tracing::info!("HTTP server listening on {url} (loading model)");
    }

    let on_signal = state.config.stop_on_signal;
    let loader = tokio::spawn(load(Arc::clone(&state), ready, urls));
    let serving = listeners.serve(router(Arc::clone(&state)), &state.config);
    let load_error = tokio::select! {
        _ = shutdown_signal(on_signal) => {
            tracing::info!("shutting down");
            None
        }
        result = loader => match result {
            Ok(Ok(())) => {
                shutdown_signal(on_signal).await;
                tracing::info!("shutting down");
                None
            }
            Ok(Err(e)) => Some(e),
            Err(_) => Some(EngineError::Stopped.into()),
        },
    };
    exit_on_second_signal(on_signal);
    // Listeners stop accepting; requests in flight get --shutdown-timeout to finish, then the
    // engine ends them (each stream gets a last error event) and their connections close.
    let grace = Duration::from_secs(state.config.shutdown_timeout_secs);
    let mut drained = serving.stop();
    let finished = tokio::time::timeout(grace, &mut drained).await.is_ok();
    if !finished {
        tracing::warn!(
            "requests still running after --shutdown-timeout {}s: ending them",
            grace.as_secs()
        );
    }
    engine.shutdown();
    if !finished {
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut drained).await;
    }
    // After a lost RPC worker (before, or while freeing the model) the engine thread waits
    // inside llama.cpp for good: it is not waited for.
    while !engine_thread.is_finished() && crate::engine::device_lost().is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if engine_thread.is_finished() {
        let _ = engine_thread.join();
    }
    load_error.map_or(Ok(()), Err)
}

/// A second signal does not wait for anything. `_exit`, not `exit`: the engine thread may be
/// inside llama.cpp (its OpenMP workers too), and `exit` would run C++ static destructors
/// under it, which killed the process with a signal instead of exiting 130. The log writers
/// are unbuffered, so nothing is lost.
pub(crate) fn exit_on_second_signal(on_signal: bool) {
    tokio::spawn(async move {
        shutdown_signal(on_signal).await;
        tracing::warn!("second stop signal: exiting now");
        // SAFETY: _exit(2) ends the process without running any user-space code.
        unsafe { libc::_exit(130) };
    });
}

/// Waits for the model, then makes the server ready (the template built, memory reported).
async fn load(
    state: Arc<AppState>,
    ready: crate::engine::Ready,
    urls: Vec<String>,
) -> Result<(), ServerError> {
    let model = match ready.await {
        Ok(Ok(model)) => model,
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err(EngineError::Stopped.into()),
    };
    let template = chat_template(&state.config.template, state.config.chat.jinja, &model)?;
    let _ = state.template.set(template);
    for line in memory_report(
        state.config.predicted.as_ref(),
        &state.config.predicted_devices,
        &model.memory,
    ) {
        tracing::info!("memory: {line}");
    }
    tracing::info!(
        n_ctx = model.n_ctx,
        n_ctx_slot = model.n_ctx_slot,
        n_slots = model.n_slots,
        "model loaded: {}; server is ready on {}",
        model.path.display(),
        urls.join(", ")
    );
    let _ = state
        .load_seconds
        .set(state.started.elapsed().as_secs_f64());
    let _ = state.model.set(model);
    Ok(())
}

/// Serves one listener until `stop` turns true, then lets open connections finish. Each
/// connection holds one of `permits` while it is open; with none left, the listener waits.
async fn serve(
    listener: Listener,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
    timeout: Duration,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    // A client gets IDLE_TIMEOUT (or --timeout, when shorter) for its TLS handshake and for each
    // request's headers, counted from when the server starts waiting for them: a connection
    // kept open without a request, or with headers trickled in, is closed then.
    let header_timeout = timeout.min(IDLE_TIMEOUT);
    let mut at_cap = false;
    loop {
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => {
                at_cap = false;
                permit
            }
            Err(_) => {
                if !at_cap {
                    tracing::warn!(
                        "every connection the server holds is taken (--max-connections): new \
                         ones wait until one closes"
                    );
                    at_cap = true;
                }
                tokio::select! {
                    _ = stop.changed() => break,
                    permit = Arc::clone(&permits).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                }
            }
        };
        let (io, tcp) = tokio::select! {
            _ = stop.changed() => break,
            accepted = accept(&listener) => match accepted {
                Ok(io) => io,
                Err(e) => {
                    // Out of descriptors or memory: retrying at once would spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let tls = tls.clone().filter(|_| tcp);
        let watcher = graceful.watcher();
        let app = app.clone();
        // The handshake runs in the connection's task, so that a slow client never holds up
        // the accept loop.
        tokio::spawn(async move {
            let _permit = permit;
            let io = match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(io)).await {
                        Ok(Ok(stream)) => Box::new(stream) as Box<dyn Io>,
                        Ok(Err(e)) => {
                            tracing::debug!("TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => return,
                    }
                }
                None => io,
            };
            // A client that stops reading for `timeout` is dropped, as llama-server's write
            // timeout.
            let mut stream = TimeoutStream::new(io);
            stream.set_write_timeout(Some(timeout));
            // HTTP/1.1 only, as llama-server: hyper's own builder, whose header timeout also
            // runs while the connection waits for its first request (hyper-util's auto builder
            // would first wait, without a bound, for bytes to tell HTTP/1 from HTTP/2).
            let service = TowerToHyperService::new(app);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(Box::pin(stream)), service);
            let _ = watcher.watch(conn).await;
        });
    }
    graceful.shutdown().await;
}

/// The pause after a failed `accept` before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// The next connection, and whether it came over TCP (TLS applies to TCP only).
async fn accept(listener: &Listener) -> std::io::Result<(Box<dyn Io>, bool)> {
    match listener {
        Listener::Tcp(l) => {
            let (stream, _) = l.accept().await?;
            let _ = stream.set_nodelay(true);
            Ok((Box::new(stream), true))
        }
        #[cfg(unix)]
        Listener::Unix(l, _) => Ok((Box::new(l.accept().await?.0), false)),
    }
}

/// The template chats are rendered with (see [`TemplateChoice`]): with `--no-jinja`, llama.cpp's
/// own renderer over the model's template (which it must recognize, as llama-server requires).
fn chat_template(
    choice: &TemplateChoice,
    jinja: bool,
    model: &LoadedModel,
) -> Result<ChatTemplate, ServerError> {
    let tokens = SpecialTokens {
        bos: model.bos_token.clone(),
        eos: model.eos_token.clone(),
        add_bos: model.add_bos,
        add_eos: model.add_eos,
    };
    let template_error = |source| ServerError::Template {
        path: model.path.display().to_string(),
        source,
    };
    let legacy_source = match (choice, jinja) {
        (TemplateChoice::Builtin(name), _) => Some(name.clone()),
        (TemplateChoice::Jinja(source), false) => Some(source.clone()),
        (TemplateChoice::Model, false) => Some(
            model
                .chat_template
                .clone()
                .unwrap_or_else(|| "chatml".into()),
        ),
        _ => None,
    };
    let template = match legacy_source {
        Some(source) => {
            let apply = legacy_apply(model, &source);
            apply(&[("user".into(), "hello".into())], true).map_err(|_| {
                ServerError::Config(format!(
                    "the supplied chat template is not supported: {source}\nnote: llama.cpp's \
                     built-in templates are: {}",
                    crate::chat::BUILTIN_TEMPLATES.join(", ")
                ))
            })?;
            ChatTemplate::legacy(&source, tokens, apply)
        }
        None => {
            let source = match choice {
                TemplateChoice::Jinja(source) => Some(source.as_str()),
                _ => model.chat_template.as_deref(),
            };
            let template = ChatTemplate::new(source, tokens).map_err(template_error)?;
            if template.is_fallback() {
                tracing::warn!("the model has no chat template: chats are rendered with ChatML");
            }
            template
        }
    };
    tracing::info!(format = template.format().name(), "chat template ready");
    Ok(template)
}

/// llama.cpp's `llama_chat_apply_template` with this template (a built-in name or a template it
/// recognizes), as the chat module's renderer.
fn legacy_apply(model: &LoadedModel, source: &str) -> LegacyApply {
    use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate};
    let llama = Arc::clone(&model.model);
    let source = source.to_string();
    Arc::new(move |messages: &[(String, String)], add_ass: bool| {
        let template = LlamaChatTemplate::new(&source).map_err(|e| e.to_string())?;
        let chat = messages
            .iter()
            .map(|(role, content)| LlamaChatMessage::new(role.clone(), content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        llama
            .apply_chat_template(&template, &chat, add_ass)
            .map_err(|e| e.to_string())
    })
}

/// Ctrl-C or SIGTERM; never, for a server that is not stopped by signals (`run`'s, whose
/// Ctrl-C stops an answer, and which ends with the process).
pub(crate) async fn shutdown_signal(on_signal: bool) {
    if !on_signal {
        return std::future::pending().await;
    }
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
