//! Turns the outcomes of a benchmark run into its summary: counts, throughput, percentiles of time
//! to first token, inter-token latency and latency, and the means of the timings the server reported. Pure functions
//! over plain data, so the arithmetic is tested without a server.

use std::time::Duration;

use serde::Serialize;

use super::{Outcome, ServerTimings};

/// How many distinct error messages a summary keeps.
const MAX_ERRORS: usize = 5;

/// The `p`-th percentile (0..=100) of `values` by linear interpolation between closest ranks
/// (numpy's default); `None` when there are no values.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = p.clamp(0.0, 100.0) / 100.0 * (sorted.len() - 1) as f64;
    let low = rank.floor() as usize;
    let high = rank.ceil() as usize;
    Some(sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64))
}

/// The arithmetic mean, `None` when there are no values.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The spread of one measurement, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Distribution {
    pub mean: f64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Distribution {
    /// `None` when there are no values.
    pub fn of(values: &[f64]) -> Option<Self> {
        Some(Self {
            mean: mean(values)?,
            min: percentile(values, 0.0)?,
            p50: percentile(values, 50.0)?,
            p90: percentile(values, 90.0)?,
            p99: percentile(values, 99.0)?,
            max: percentile(values, 100.0)?,
        })
    }
}

/// What the server said about its own speed, averaged over the successful requests that carried
/// llama-server's `timings` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerSummary {
    /// Requests whose response had timings.
    pub requests_with_timings: usize,
    /// Mean of `timings.prompt_per_second`: prompt processing speed.
    pub prompt_per_second_mean: Option<f64>,
    /// Mean of `timings.predicted_per_second`: decode speed of one stream.
    pub predicted_per_second_mean: Option<f64>,
    /// Sum of `timings.prompt_n`: prompt tokens the server evaluated.
    pub prompt_n_total: u64,
    /// Sum of `timings.cache_n`: prompt tokens reused from the prompt cache.
    pub cache_n_total: u64,
    /// Sum of `timings.predicted_n`.
    pub predicted_n_total: u64,
}

/// A benchmark run, summarised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub requests: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// The first distinct error messages, in the order they happened.
    pub errors: Vec<String>,
    /// From the first request sent to the last response received.
    pub wall_s: f64,
    /// Output tokens of the successful requests.
    pub output_tokens: u64,
    /// Prompt tokens of the successful requests, where the server said how many.
    pub prompt_tokens: u64,
    /// Aggregate throughput: output tokens over wall time.
    pub output_tokens_per_s: f64,
    pub requests_per_s: f64,
    /// Time to first token (streaming only).
    pub ttft_ms: Option<Distribution>,
    /// Inter-token latency: the gaps between streamed chunks with text, of every request pooled
    /// (streaming only).
    pub itl_ms: Option<Distribution>,
    /// Time from sending the request to the end of the response.
    pub latency_ms: Option<Distribution>,
    /// Mean per-request decode speed seen by the client: tokens after the first over the time
    /// after the first (streaming only).
    pub client_decode_per_second_mean: Option<f64>,
    pub server: ServerSummary,
}

/// Summarises `outcomes` of a run that took `wall` from first request to last response.
pub fn summarize(outcomes: &[Outcome], wall: Duration) -> Summary {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut errors: Vec<String> = Vec::new();
    let mut ok = Vec::new();
    for outcome in outcomes {
        match &outcome.result {
            Ok(measured) => ok.push((outcome.latency, measured)),
            Err(message) => {
                if errors.len() < MAX_ERRORS && !errors.contains(message) {
                    errors.push(message.clone());
                }
            }
        }
    }
    let latencies: Vec<f64> = ok.iter().map(|(latency, _)| ms(*latency)).collect();
    let ttfts: Vec<f64> = ok.iter().filter_map(|(_, m)| m.ttft.map(ms)).collect();
    let gaps: Vec<f64> = ok
        .iter()
        .flat_map(|(_, m)| m.chunk_gaps.iter().copied().map(ms))
        .collect();
    let client_decode: Vec<f64> = ok
        .iter()
        .filter_map(|(latency, m)| client_decode_per_second(*latency, m.ttft?, m.output_tokens))
        .collect();
    let timings: Vec<&ServerTimings> = ok.iter().filter_map(|(_, m)| m.timings.as_ref()).collect();
    let output_tokens = ok.iter().map(|(_, m)| m.output_tokens).sum();
    let wall_s = wall.as_secs_f64();
    let per_second = |n: f64| if wall_s > 0.0 { n / wall_s } else { 0.0 };
    Summary {
        requests: outcomes.len(),
        succeeded: ok.len(),
        failed: outcomes.len() - ok.len(),
        errors,
        wall_s,
        output_tokens,
        prompt_tokens: ok.iter().filter_map(|(_, m)| m.prompt_tokens).sum(),
        output_tokens_per_s: per_second(output_tokens as f64),
        requests_per_s: per_second(ok.len() as f64),
        ttft_ms: Distribution::of(&ttfts),
        itl_ms: Distribution::of(&gaps),
        latency_ms: Distribution::of(&latencies),
        client_decode_per_second_mean: mean(&client_decode),
        server: summarize_timings(&timings),
    }
}

/// Tokens after the first over the time after the first; `None` with fewer than two tokens.
fn client_decode_per_second(latency: Duration, ttft: Duration, output_tokens: u64) -> Option<f64> {
    let decode_s = latency.checked_sub(ttft)?.as_secs_f64();
    (output_tokens >= 2 && decode_s > 0.0).then(|| (output_tokens - 1) as f64 / decode_s)
}

fn summarize_timings(timings: &[&ServerTimings]) -> ServerSummary {
    // A rate over zero tokens (an empty prompt fully cached) is not a speed: leave it out.
    let rates = |n: fn(&ServerTimings) -> u64, rate: fn(&ServerTimings) -> Option<f64>| {
        timings
            .iter()
            .filter(|t| n(t) > 0)
            .filter_map(|t| rate(t))
            .collect::<Vec<f64>>()
    };
    ServerSummary {
        requests_with_timings: timings.len(),
        prompt_per_second_mean: mean(&rates(|t| t.prompt_n, |t| t.prompt_per_second)),
        predicted_per_second_mean: mean(&rates(|t| t.predicted_n, |t| t.predicted_per_second)),
        prompt_n_total: timings.iter().map(|t| t.prompt_n).sum(),
        cache_n_total: timings.iter().map(|t| t.cache_n).sum(),
        predicted_n_total: timings.iter().map(|t| t.predicted_n).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Measurement;

    #[test]
    fn percentile_table() {
        let cases: &[(&[f64], f64, Option<f64>)] = &[
            (&[], 50.0, None),
            (&[7.0], 0.0, Some(7.0)),
            (&[7.0], 99.0, Some(7.0)),
            (&[1.0, 2.0, 3.0, 4.0], 50.0, Some(2.5)),
            (&[4.0, 1.0, 3.0, 2.0], 50.0, Some(2.5)),
            (&[1.0, 2.0, 3.0, 4.0, 5.0], 50.0, Some(3.0)),
            (&[1.0, 2.0, 3.0, 4.0, 5.0], 90.0, Some(4.6)),
            (&[1.0, 2.0, 3.0, 4.0, 5.0], 0.0, Some(1.0)),
            (&[1.0, 2.0, 3.0, 4.0, 5.0], 100.0, Some(5.0)),
            (&[10.0, 20.0], 99.0, Some(19.9)),
            (&[1.0, f64::NAN, 3.0], 50.0, Some(2.0)),
        ];
        for (values, p, want) in cases {
            let got = percentile(values, *p);
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{values:?} p{p}: {g} != {w}"),
                _ => assert_eq!(got, *want, "{values:?} p{p}"),
            }
        }
    }

    #[test]
    fn percentile_of_1_to_100() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.5));
        assert!((percentile(&values, 99.0).unwrap() - 99.01).abs() < 1e-9);
    }

    fn timings(prompt_n: u64, pps: f64, predicted_n: u64, tps: f64) -> ServerTimings {
        ServerTimings {
            cache_n: 1,
            prompt_n,
            prompt_per_second: Some(pps),
            predicted_n,
            predicted_per_second: Some(tps),
            ..ServerTimings::default()
        }
    }

    fn ok(latency_ms: u64, ttft_ms: Option<u64>, tokens: u64, t: Option<ServerTimings>) -> Outcome {
        Outcome {
            latency: Duration::from_millis(latency_ms),
            result: Ok(Measurement {
                ttft: ttft_ms.map(Duration::from_millis),
                // Evenly spaced tokens after the first.
                chunk_gaps: ttft_ms
                    .map(|ttft| {
                        let gap = (latency_ms - ttft) / tokens.max(2).saturating_sub(1);
                        vec![Duration::from_millis(gap); tokens.saturating_sub(1) as usize]
                    })
                    .unwrap_or_default(),
                output_tokens: tokens,
                prompt_tokens: Some(10),
                cached_tokens: None,
                timings: t,
            }),
        }
    }

    fn failed(message: &str) -> Outcome {
        Outcome {
            latency: Duration::from_millis(5),
            result: Err(message.to_owned()),
        }
    }

    #[test]
    fn summary_of_a_mixed_run() {
        let outcomes = vec![
            ok(1000, Some(100), 10, Some(timings(100, 1000.0, 10, 20.0))),
            failed("HTTP 503: busy"),
            ok(2000, Some(200), 10, Some(timings(100, 500.0, 10, 10.0))),
            failed("HTTP 503: busy"),
            failed("connection refused"),
            ok(3000, None, 20, None),
        ];
        let s = summarize(&outcomes, Duration::from_secs(4));
        assert_eq!((s.requests, s.succeeded, s.failed), (6, 3, 3));
        assert_eq!(s.errors, ["HTTP 503: busy", "connection refused"]);
        assert_eq!(s.output_tokens, 40);
        assert_eq!(s.prompt_tokens, 30);
        assert_eq!(s.output_tokens_per_s, 10.0);
        assert_eq!(s.requests_per_s, 0.75);
        let latency = s.latency_ms.unwrap();
        assert_eq!(
            (latency.min, latency.p50, latency.max),
            (1000.0, 2000.0, 3000.0)
        );
        assert_eq!(latency.mean, 2000.0);
        let ttft = s.ttft_ms.unwrap();
        assert_eq!((ttft.p50, ttft.max), (150.0, 200.0));
        // 9 gaps of 100 ms and 9 of 200 ms, pooled; none from the request without a stream.
        let itl = s.itl_ms.unwrap();
        assert_eq!(
            (itl.min, itl.p50, itl.max, itl.mean),
            (100.0, 150.0, 200.0, 150.0)
        );
        // 9 tokens in 0.9 s and 9 tokens in 1.8 s.
        assert!((s.client_decode_per_second_mean.unwrap() - 7.5).abs() < 1e-9);
        assert_eq!(s.server.requests_with_timings, 2);
        assert_eq!(s.server.prompt_per_second_mean, Some(750.0));
        assert_eq!(s.server.predicted_per_second_mean, Some(15.0));
        assert_eq!(s.server.prompt_n_total, 200);
        assert_eq!(s.server.cache_n_total, 2);
        assert_eq!(s.server.predicted_n_total, 20);
    }

    #[test]
    fn summary_of_nothing_succeeding() {
        let s = summarize(&[failed("x")], Duration::ZERO);
        assert_eq!((s.succeeded, s.failed), (0, 1));
        assert_eq!(s.latency_ms, None);
        assert_eq!(s.ttft_ms, None);
        assert_eq!(s.itl_ms, None);
        assert_eq!(s.output_tokens_per_s, 0.0);
        assert_eq!(s.server.predicted_per_second_mean, None);
    }

    #[test]
    fn zero_token_rates_are_left_out() {
        let cached = timings(0, 0.0, 5, 50.0);
        let s = summarize(&[ok(10, None, 5, Some(cached))], Duration::from_secs(1));
        assert_eq!(s.server.prompt_per_second_mean, None);
        assert_eq!(s.server.predicted_per_second_mean, Some(50.0));
    }

    #[test]
    fn client_decode_table() {
        let cases = [
            (1000, 100, 10, Some(10.0)),
            (1000, 100, 1, None),
            (1000, 1000, 10, None),
            (100, 1000, 10, None),
        ];
        for (latency, ttft, tokens, want) in cases {
            let got = client_decode_per_second(
                Duration::from_millis(latency),
                Duration::from_millis(ttft),
                tokens,
            );
            assert_eq!(got, want, "{latency} {ttft} {tokens}");
        }
    }
}
