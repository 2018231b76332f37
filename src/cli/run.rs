//! `gguf-serve run [FLAGS…] [PROMPT…]`: chat with a model in the terminal, as `ollama run`
//! does. The model is chosen, planned and loaded exactly as `serve` loads it (every serve flag
//! applies: `-m`, `-hf`, `--quant`, `-c`, `--temp`, `-n`, …), by a server on a free loopback
//! port inside this process, and the chat goes through its `/v1/chat/completions` like any
//! client's. With a prompt (or text piped in) it answers once and exits; otherwise it reads
//! messages with line editing until `/bye` or Ctrl-D. Ctrl-C stops an answer, not the program.

use std::io::{IsTerminal, Read, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use serde_json::{Value, json};

use super::serve::{ServeArgs, configs, http_runtime};
use crate::bench::SseDecoder;

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub serve: ServeArgs,

    /// A message to answer once, then exit (text piped in is added after it). Without one,
    /// and at a terminal, a chat: /bye or Ctrl-D ends it, /clear forgets it.
    #[arg(value_name = "PROMPT", trailing_var_arg = true)]
    pub prompt: Vec<String>,
}

/// One chat: the messages so far, and the server they go to.
struct Chat {
    url: String,
    client: reqwest::Client,
    messages: Vec<Value>,
    /// Reasoning is shown (dimmed) only to a person at a terminal.
    terminal: bool,
}

pub fn run(mut args: RunArgs) -> anyhow::Result<()> {
    // Only errors reach the terminal, unless asked for more (-v, -lv, RUST_LOG).
    if !args.serve.log.verbose {
        args.serve.log.verbosity = args.serve.log.verbosity.min(1);
    }
    args.serve.log.init()?;
    let (mut server, engine) = configs(&args.serve)?;
    let port = crate::server::free_loopback_port().context("finding a free port")?;
    server.hosts = vec!["127.0.0.1".into()];
    server.port = port;
    server.api_keys.clear();
    server.stop_on_signal = false;
    let runtime = http_runtime(&args.serve)?;
    let serving = runtime.spawn(crate::server::run(server, engine));

    let prompt = prompt(&args.prompt)?;
    let chat = Chat {
        url: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::new(),
        messages: Vec::new(),
        terminal: std::io::stdout().is_terminal(),
    };
    let code = runtime.block_on(async move {
        wait_ready(&chat, serving).await?;
        match prompt {
            Some(text) => chat.once(&text).await,
            None => chat.repl().await,
        }
    });
    let code = match code {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    let _ = std::io::stdout().flush();
    // The engine thread may be inside llama.cpp: end without running C++ static destructors
    // under it (the server's own exit does the same).
    // SAFETY: _exit(2) ends the process without running any user-space code.
    unsafe { libc::_exit(code) }
}

/// The message to answer once: the arguments, then any text piped in; `None` for a chat.
fn prompt(words: &[String]) -> anyhow::Result<Option<String>> {
    let mut text = words.join(" ");
    if !std::io::stdin().is_terminal() {
        let mut piped = String::new();
        std::io::stdin()
            .read_to_string(&mut piped)
            .context("reading standard input")?;
        let piped = piped.trim_end();
        if !piped.is_empty() {
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(piped);
        }
        if text.is_empty() {
            bail!("nothing to answer: give a prompt, or pipe text in");
        }
    }
    Ok((!text.is_empty()).then_some(text))
}

/// Waits for the model to load (a spinner at a terminal); a server that ends meanwhile (a load
/// that failed) ends the wait with its error.
async fn wait_ready(
    chat: &Chat,
    serving: tokio::task::JoinHandle<Result<(), crate::server::ServerError>>,
) -> anyhow::Result<()> {
    let spinner = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner().with_message("loading the model");
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let ready = loop {
        if serving.is_finished() {
            break match serving.await {
                Ok(Err(e)) => Err(e.into()),
                Ok(Ok(())) => Err(anyhow::anyhow!("the server stopped before it was ready")),
                Err(e) => Err(e.into()),
            };
        }
        let health = chat.client.get(format!("{}/health", chat.url)).send().await;
        if health.is_ok_and(|r| r.status().is_success()) {
            break Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    ready
}

impl Chat {
    /// Answers one message; the exit code.
    async fn once(mut self, text: &str) -> anyhow::Result<i32> {
        self.messages
            .push(json!({ "role": "user", "content": text }));
        let finished = self.answer().await?;
        println!();
        Ok(if finished { 0 } else { 130 })
    }

    /// Reads messages until /bye or Ctrl-D.
    async fn repl(mut self) -> anyhow::Result<i32> {
        let mut editor = rustyline::DefaultEditor::new()?;
        eprintln!("/bye or Ctrl-D to leave, /clear to start again, Ctrl-C to stop an answer");
        loop {
            let line = match editor.readline(">>> ") {
                Ok(line) => line,
                Err(rustyline::error::ReadlineError::Interrupted) => continue,
                Err(rustyline::error::ReadlineError::Eof) => return Ok(0),
                Err(e) => return Err(e.into()),
            };
            let text = line.trim();
            match text {
                "" => continue,
                "/bye" | "/exit" => return Ok(0),
                "/clear" => {
                    self.messages.clear();
                    eprintln!("(a new chat)");
                    continue;
                }
                "/help" | "/?" => {
                    eprintln!("/bye: leave · /clear: forget this chat · Ctrl-C: stop an answer");
                    continue;
                }
                _ => {}
            }
            let _ = editor.add_history_entry(text);
            self.messages
                .push(json!({ "role": "user", "content": text }));
            match self.answer().await {
                Ok(_) => println!("\n"),
                Err(e) => {
                    // The message stays unanswered: take it back.
                    self.messages.pop();
                    eprintln!("error: {e:#}");
                }
            }
        }
    }

    /// Streams the answer to the conversation, printing it as it comes, and keeps it (also
    /// when Ctrl-C stopped it); whether it finished.
    async fn answer(&mut self) -> anyhow::Result<bool> {
        let body = json!({ "messages": self.messages, "stream": true });
        let response = self
            .client
            .post(format!("{}/v1/chat/completions", self.url))
            .json(&body)
            .send()
            .await?;
        if !response.status().is_success() {
            let status = response.status();
            let error: Value = response.json().await.unwrap_or_default();
            let message = error["error"]["message"].as_str().unwrap_or("no message");
            bail!("{message} ({status})");
        }
        let mut stream = response.bytes_stream();
        let mut decoder = SseDecoder::default();
        let mut text = String::new();
        let mut thinking = false;
        let mut stdout = std::io::stdout();
        let stopped = loop {
            let chunk = tokio::select! {
                chunk = stream.next() => chunk,
                _ = tokio::signal::ctrl_c() => break true,
            };
            let Some(chunk) = chunk else { break false };
            for data in decoder.feed(&chunk?) {
                if data == "[DONE]" {
                    continue;
                }
                let event: Value = serde_json::from_str(&data)?;
                if let Some(message) = event["error"]["message"].as_str() {
                    bail!("{message}");
                }
                let delta = &event["choices"][0]["delta"];
                if let Some(reasoning) = delta["reasoning_content"].as_str()
                    && self.terminal
                {
                    if !thinking {
                        write!(stdout, "\x1b[2m")?;
                        thinking = true;
                    }
                    write!(stdout, "{reasoning}")?;
                }
                if let Some(content) = delta["content"].as_str() {
                    if thinking {
                        write!(stdout, "\x1b[0m\n\n")?;
                        thinking = false;
                    }
                    write!(stdout, "{content}")?;
                    text.push_str(content);
                }
                stdout.flush()?;
            }
        };
        if thinking {
            write!(stdout, "\x1b[0m")?;
        }
        self.messages
            .push(json!({ "role": "assistant", "content": text }));
        Ok(!stopped)
    }
}
