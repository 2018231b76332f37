//! Sends a workload over HTTP at a fixed concurrency and measures every request. `concurrency`
//! workers take the next request from a shared counter, so the server always has that many in
//! flight until the queue drains; a request's failure is data for the summary, never an abort.
//! `Target` (one request, measured) is shared with the open-loop conversations.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use super::response::{ResponseTokens, StreamFold, http_error, parse_response};
use super::sse::SseDecoder;
use super::workload::{BenchRequest, RequestOptions, request_body};
use super::{BenchError, Endpoint, Measurement, Outcome};

/// Where and how to send a run's requests; validated by the CLI.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The server's base URL (`http://127.0.0.1:8080`); the endpoint's path is appended.
    pub url: String,
    /// Sent as `Authorization: Bearer …`.
    pub api_key: Option<String>,
    /// Requests in flight at once; at least 1.
    pub concurrency: usize,
    /// Limit on one request, from sending to the end of the response.
    pub timeout: Duration,
    pub options: RequestOptions,
}

impl BenchConfig {
    /// The endpoint's full URL; a base ending in `/v1` is not doubled for chat.
    pub fn endpoint_url(&self) -> String {
        let base = self.url.trim_end_matches('/');
        match self.options.endpoint {
            Endpoint::Chat if base.ends_with("/v1") => format!("{base}/chat/completions"),
            endpoint => format!("{base}{}", endpoint.path()),
        }
    }
}

/// Called as each request finishes (for a progress bar); from several tasks at once.
pub type OnDone = Arc<dyn Fn(&Outcome) + Send + Sync>;

/// Sends `requests` and returns their outcomes, in request order, with the wall time from the
/// first request sent to the last response received.
pub async fn run(
    config: &BenchConfig,
    requests: &[BenchRequest],
    on_done: OnDone,
) -> Result<(Vec<Outcome>, Duration), BenchError> {
    let target = Arc::new(Target::new(config)?);
    let bodies: Arc<Vec<Value>> = Arc::new(
        requests
            .iter()
            .map(|r| request_body(r, &config.options))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..config.concurrency.min(bodies.len()))
        .map(|_| {
            let (target, bodies, next, on_done) = (
                target.clone(),
                bodies.clone(),
                next.clone(),
                on_done.clone(),
            );
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let (outcome, _answer) = target.send(body).await;
                    on_done(&outcome);
                    done.push((i, outcome));
                }
                done
            })
        })
        .collect();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; bodies.len()];
    for worker in workers {
        let done = worker
            .await
            .unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()));
        for (i, outcome) in done {
            outcomes[i] = Some(outcome);
        }
    }
    let wall = start.elapsed();
    Ok((outcomes.into_iter().flatten().collect(), wall))
}

/// Everything a worker needs to send one request.
pub(super) struct Target {
    client: reqwest::Client,
    url: String,
    api_key: Option<String>,
    endpoint: Endpoint,
    stream: bool,
}

impl Target {
    pub(super) fn new(config: &BenchConfig) -> Result<Self, BenchError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            // A fresh connection per request: reusing idle keep-alive connections raced with
            // llama-server closing them (requests hung until the timeout). On loopback a connect
            // costs well under a millisecond, far below anything measured here.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|err| BenchError::Client(error_chain(&err)))?;
        Ok(Self {
            client,
            url: config.endpoint_url(),
            api_key: config.api_key.clone(),
            endpoint: config.options.endpoint,
            stream: config.options.stream,
        })
    }

    /// Sends `body` and returns its outcome and the answer's text (empty when it failed).
    pub(super) async fn send(&self, body: &Value) -> (Outcome, String) {
        let start = Instant::now();
        let (result, answer) = match self.measure(body, start).await {
            Ok((measured, answer)) => (Ok(measured), answer),
            Err(err) => (Err(err), String::new()),
        };
        let outcome = Outcome {
            latency: start.elapsed(),
            result,
        };
        (outcome, answer)
    }

    async fn measure(&self, body: &Value, start: Instant) -> Result<(Measurement, String), String> {
        let mut request = self.client.post(&self.url).json(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|err| error_chain(&err))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(http_error(status.as_u16(), &body));
        }
        if !self.stream {
            let text = response.text().await.map_err(|err| error_chain(&err))?;
            let tokens = parse_response(self.endpoint, &text)?;
            return Ok(measurement(tokens, None, Vec::new()));
        }
        let mut decoder = SseDecoder::default();
        let mut fold = StreamFold::new(self.endpoint);
        let mut chunks = ChunkTimes::default();
        // The start of the body, kept until an event arrives, to show what came instead.
        let mut head: Option<Vec<u8>> = Some(Vec::new());
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|err| error_chain(&err))?;
            if let Some(head) = &mut head {
                head.extend(chunk.iter().take(200usize.saturating_sub(head.len())));
            }
            for event in decoder.feed(&chunk) {
                head = None;
                if fold.push(&event)? {
                    chunks.text_at(start.elapsed());
                }
            }
        }
        if let Some(event) = decoder.finish() {
            head = None;
            if fold.push(&event)? {
                chunks.text_at(start.elapsed());
            }
        }
        if let Some(head) = head.filter(|h| !h.is_empty()) {
            return Err(format!(
                "expected server-sent events, got: {}",
                String::from_utf8_lossy(&head).trim()
            ));
        }
        let tokens = fold.finish()?;
        Ok(measurement(tokens, chunks.first, chunks.gaps))
    }
}

/// When a stream's chunks with text arrived, relative to sending the request.
#[derive(Debug, Default)]
struct ChunkTimes {
    /// The first: time to first token.
    first: Option<Duration>,
    last: Option<Duration>,
    /// From each to the next: inter-token latency. Events decoded from one network read share
    /// a time, so a server that batches its chunks shows gaps of zero, as a client sees them.
    gaps: Vec<Duration>,
}

impl ChunkTimes {
    fn text_at(&mut self, at: Duration) {
        match self.last {
            Some(last) => self.gaps.push(at.saturating_sub(last)),
            None => self.first = Some(at),
        }
        self.last = Some(at);
    }
}

/// A measurement and the answer's text, from a response's tokens and its chunks' times.
fn measurement(
    tokens: ResponseTokens,
    ttft: Option<Duration>,
    chunk_gaps: Vec<Duration>,
) -> (Measurement, String) {
    let measured = Measurement {
        ttft,
        chunk_gaps,
        output_tokens: tokens.output_tokens,
        prompt_tokens: tokens.prompt_tokens,
        cached_tokens: tokens.cached_tokens,
        timings: tokens.timings,
    };
    (measured, tokens.content)
}

/// An error with its causes (`error sending request: connection refused`), as reqwest's own
/// message hides the cause.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_times_give_the_first_and_the_gaps() {
        let mut chunks = ChunkTimes::default();
        for ms in [40, 50, 50, 75] {
            chunks.text_at(Duration::from_millis(ms));
        }
        assert_eq!(chunks.first, Some(Duration::from_millis(40)));
        assert_eq!(chunks.gaps, [10, 0, 25].map(Duration::from_millis));
    }

    #[test]
    fn endpoint_url_table() {
        let cases = [
            ("http://h:1", Endpoint::Completion, "http://h:1/completion"),
            (
                "http://h:1/",
                Endpoint::Chat,
                "http://h:1/v1/chat/completions",
            ),
            (
                "http://h:1/v1",
                Endpoint::Chat,
                "http://h:1/v1/chat/completions",
            ),
            (
                "http://h:1/v1/",
                Endpoint::Completion,
                "http://h:1/v1/completion",
            ),
        ];
        for (url, endpoint, want) in cases {
            let config = BenchConfig {
                url: url.to_owned(),
                api_key: None,
                concurrency: 1,
                timeout: Duration::from_secs(1),
                options: RequestOptions {
                    endpoint,
                    max_tokens: 1,
                    temperature: 0.0,
                    top_p: None,
                    stream: false,
                    cache_prompt: None,
                    ignore_eos: false,
                    seed: None,
                    model: None,
                },
            };
            assert_eq!(config.endpoint_url(), want, "{url}");
        }
    }
}
