//! The summary as a short table for people; `--json` prints the `Summary` itself instead.

use std::fmt::Write;

use super::conversation::ConversationSummary;
use super::stats::{Distribution, Summary};

/// Renders `summary` as lines of text, ending with a newline.
pub fn render_text(summary: &Summary) -> String {
    let mut out = String::new();
    let s = summary;
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "requests      {} ok, {} failed of {}  (wall {:.2} s, {:.2} req/s)",
        s.succeeded, s.failed, s.requests, s.wall_s, s.requests_per_s
    );
    let _ = writeln!(
        out,
        "output tokens {}  ({:.1} tokens/s aggregate)",
        s.output_tokens, s.output_tokens_per_s
    );
    if s.prompt_tokens > 0 {
        let _ = writeln!(out, "prompt tokens {}", s.prompt_tokens);
    }
    if s.ttft_ms.is_some() || s.latency_ms.is_some() {
        let _ = writeln!(
            out,
            "{:<13} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "", "mean", "p50", "p90", "p99", "max"
        );
    }
    for (name, distribution) in [
        ("TTFT ms", &s.ttft_ms),
        ("ITL ms", &s.itl_ms),
        ("latency ms", &s.latency_ms),
    ] {
        if let Some(d) = distribution {
            let _ = writeln!(out, "{}", row(name, d));
        }
    }
    let rate = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |x| format!("{x:.1}"));
    if s.client_decode_per_second_mean.is_some() || s.server.predicted_per_second_mean.is_some() {
        let _ = writeln!(
            out,
            "decode t/s    {} per stream (client), {} (server)",
            rate(s.client_decode_per_second_mean),
            rate(s.server.predicted_per_second_mean)
        );
    }
    if s.server.prompt_per_second_mean.is_some() {
        let _ = writeln!(
            out,
            "prompt t/s    {} (server; {} tokens evaluated, {} from cache)",
            rate(s.server.prompt_per_second_mean),
            s.server.prompt_n_total,
            s.server.cache_n_total
        );
    }
    if !s.errors.is_empty() {
        let _ = writeln!(out, "errors:");
        for error in &s.errors {
            let _ = writeln!(out, "  {error}");
        }
    }
    out
}

/// The lines a conversation run adds after [`render_text`]: how much of the resent history the
/// server served from its cache, and the conversations a failure cut short.
pub fn render_conversation(c: &ConversationSummary) -> String {
    let mut out = String::new();
    if c.turns > 1 {
        let _ = match c.later_turns_cached_share {
            Some(share) => writeln!(
                out,
                "cached prompt {:.1}% on turns >= 2  ({} of {} tokens)",
                share * 100.0,
                c.later_turns_cached_tokens,
                c.later_turns_prompt_tokens
            ),
            None => writeln!(out, "cached prompt (not reported by the server)"),
        };
    }
    if c.cut_short > 0 {
        let _ = writeln!(
            out,
            "cut short     {} of {} conversations, at a failed turn",
            c.cut_short, c.conversations
        );
    }
    out
}

fn row(name: &str, d: &Distribution) -> String {
    format!(
        "{name:<13} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
        d.mean, d.p50, d.p90, d.p99, d.max
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bench::{Measurement, Outcome, summarize};

    #[test]
    fn renders_counts_percentiles_and_errors() {
        let outcomes = [
            Outcome {
                latency: Duration::from_millis(200),
                result: Ok(Measurement {
                    ttft: Some(Duration::from_millis(50)),
                    chunk_gaps: vec![Duration::from_millis(10); 15],
                    output_tokens: 16,
                    prompt_tokens: Some(8),
                    cached_tokens: None,
                    timings: None,
                }),
            },
            Outcome {
                latency: Duration::from_millis(1),
                result: Err("HTTP 503: busy".to_owned()),
            },
        ];
        let text = render_text(&summarize(&outcomes, Duration::from_secs(2)));
        assert!(text.contains("1 ok, 1 failed of 2"), "{text}");
        assert!(
            text.contains("output tokens 16  (8.0 tokens/s aggregate)"),
            "{text}"
        );
        assert!(text.contains("TTFT ms"), "{text}");
        assert!(
            text.contains("ITL ms             10.0      10.0      10.0      10.0      10.0"),
            "{text}"
        );
        assert!(
            text.contains("decode t/s    100.0 per stream (client), - (server)"),
            "{text}"
        );
        assert!(!text.contains("prompt t/s"), "{text}");
        assert!(text.ends_with("errors:\n  HTTP 503: busy\n"), "{text}");
    }

    #[test]
    fn renders_the_cached_share_and_cut_short_conversations() {
        let mut c = ConversationSummary {
            conversations: 4,
            turns: 3,
            cut_short: 0,
            later_turns_prompt_tokens: 200,
            later_turns_cached_tokens: 150,
            later_turns_cached_share: Some(0.75),
        };
        assert_eq!(
            render_conversation(&c),
            "cached prompt 75.0% on turns >= 2  (150 of 200 tokens)\n"
        );
        c.later_turns_cached_share = None;
        c.cut_short = 1;
        assert_eq!(
            render_conversation(&c),
            "cached prompt (not reported by the server)\n\
             cut short     1 of 4 conversations, at a failed turn\n"
        );
        c.turns = 1;
        assert_eq!(
            render_conversation(&c),
            "cut short     1 of 4 conversations, at a failed turn\n"
        );
    }
}
