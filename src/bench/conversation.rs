//! Chat traffic for `gguf-serve bench --conversations`: conversations that arrive as a Poisson
//! process (or all at once), each a number of turns that resend the whole history (the user's
//! messages and the server's actual answers), as a chat client does, so that the server's prompt
//! cache and slot choice matter as they do in use. Open loop: a turn waits for its own
//! conversation's previous answer and the user's think time, never for other conversations, so a
//! slow server meets a growing queue rather than a gentler load.
//!
//! What the workload sends is deterministic from its seed, except the answers, which are the
//! server's. The runner is `conversation/run.rs`.

mod run;

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::workload::{Prompt, WORDS, splitmix64};
use super::{Endpoint, Outcome};

pub use run::run_conversations;

/// The workload's seed when `--seed` is not given: runs repeat unless asked otherwise.
pub const DEFAULT_SEED: u64 = 0;

/// A later turn's new user message is about the first message's length over this.
const LATER_TURN_DIVISOR: usize = 4;

/// Message lengths are drawn uniformly within this fraction either side of their mean.
const LENGTH_SPREAD: f64 = 0.5;

/// What `--conversations` sends; validated by the CLI.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationPlan {
    pub conversations: usize,
    /// Requests per conversation; at least 1.
    pub turns: usize,
    /// Conversations started per second, as a Poisson process; `None` starts all at once.
    pub rate: Option<f64>,
    /// How long a user waits between receiving an answer and sending the next turn.
    pub think: Duration,
    /// The mean length of a conversation's first user message, in tokens (words); later
    /// messages are a quarter of it.
    pub prompt_tokens: usize,
    /// Seeds the arrivals and the messages.
    pub seed: u64,
}

/// SplitMix64 over one stream of a seed: stable across releases (rand's `StdRng` is not), so a
/// seed names the same workload in every build.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        let mut mixed = stream;
        Self(seed ^ splitmix64(&mut mixed))
    }

    fn next(&mut self) -> u64 {
        splitmix64(&mut self.0)
    }

    /// Uniform in (0, 1]: never 0, so its logarithm is finite.
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `low..=high`.
    fn between(&mut self, low: usize, high: usize) -> usize {
        low + (self.next() % (high - low + 1) as u64) as usize
    }
}

/// The arrivals' stream; conversation `c` draws its messages from stream `c + 1`.
const ARRIVALS: u64 = 0;

/// When each of `n` conversations starts, from the start of the run: all at once without a
/// rate; else the first at once and each next one an exponential gap (mean `1 / rate` seconds)
/// after the one before, which makes the starts a Poisson process of that rate.
pub fn arrivals(n: usize, rate: Option<f64>, seed: u64) -> Vec<Duration> {
    let Some(rate) = rate else {
        return vec![Duration::ZERO; n];
    };
    let mut rng = Rng::new(seed, ARRIVALS);
    let mut at = 0.0;
    (0..n)
        .map(|i| {
            if i > 0 {
                at += -rng.unit().ln() / rate;
            }
            Duration::try_from_secs_f64(at).unwrap_or(Duration::MAX)
        })
        .collect()
}

/// A length drawn uniformly within [`LENGTH_SPREAD`] of `mean`, at least 1.
fn length_around(mean: usize, rng: &mut Rng) -> usize {
    let low = ((mean as f64 * (1.0 - LENGTH_SPREAD)).ceil() as usize).max(1);
    let high = ((mean as f64 * (1.0 + LENGTH_SPREAD)).floor() as usize).max(low);
    rng.between(low, high)
}

/// The user messages of conversation `index`, one a turn. The first opens with a word chosen by
/// the index and the index itself, so conversations differ from their first token (for up to
/// `WORDS.len()` conversations; beyond, within the first few) and none reuses another's cache;
/// the rest are common words, about one token each.
pub fn user_messages(plan: &ConversationPlan, index: usize) -> Vec<String> {
    let mut rng = Rng::new(plan.seed, index as u64 + 1);
    let later_mean = (plan.prompt_tokens / LATER_TURN_DIVISOR).max(1);
    (0..plan.turns)
        .map(|turn| {
            let mut message = String::new();
            let mut words = if turn == 0 {
                message = format!("{} {index}:", WORDS[index % WORDS.len()]);
                length_around(plan.prompt_tokens, &mut rng).saturating_sub(2)
            } else {
                length_around(later_mean, &mut rng)
            };
            while words > 0 {
                if !message.is_empty() {
                    message.push(' ');
                }
                message.push_str(WORDS[rng.next() as usize % WORDS.len()]);
                words -= 1;
            }
            message
        })
        .collect()
}

/// One conversation: the user's messages, drawn in advance, and the server's answers so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    user: Vec<String>,
    answers: Vec<String>,
}

impl Conversation {
    pub fn new(plan: &ConversationPlan, index: usize) -> Self {
        Self {
            user: user_messages(plan, index),
            answers: Vec::new(),
        }
    }

    /// The index of the next turn; the conversation is over when it reaches [`Self::turns`].
    pub fn turn(&self) -> usize {
        self.answers.len()
    }

    pub fn turns(&self) -> usize {
        self.user.len()
    }

    /// Records the answer to the current turn, which the next one sends back.
    pub fn answered(&mut self, answer: String) {
        self.answers.push(answer);
    }

    /// The current turn's prompt: the history so far and the turn's user message. For chat, the
    /// messages list; for `/completion`, the same dialogue as text, each answer placed exactly
    /// where it was generated (after `Assistant:`), so each turn's prompt begins with the
    /// previous turn's prompt and answer, and only the new user message is new.
    pub fn prompt(&self, endpoint: Endpoint) -> Prompt {
        let turn = self.turn().min(self.turns().saturating_sub(1));
        let history = self.user[..=turn]
            .iter()
            .zip(self.answers.iter().map(Some).chain(std::iter::repeat(None)));
        match endpoint {
            Endpoint::Chat => {
                let mut messages: Vec<Value> = Vec::new();
                for (user, answer) in history {
                    messages.push(json!({"role": "user", "content": user}));
                    if let Some(answer) = answer {
                        messages.push(json!({"role": "assistant", "content": answer}));
                    }
                }
                Prompt::Messages(messages)
            }
            Endpoint::Completion => {
                let mut text = String::new();
                for (user, answer) in history {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str("User: ");
                    text.push_str(user);
                    text.push_str("\nAssistant:");
                    text.push_str(answer.map_or("", String::as_str));
                }
                Prompt::Text(text)
            }
        }
    }
}

/// One turn of one conversation, and how it went.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub conversation: usize,
    /// 0 for the first.
    pub turn: usize,
    pub outcome: Outcome,
}

/// A run of conversations: every turn (those left unsent after a failure too, as failures) and
/// the wall time from the first request sent to the last response received.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationRun {
    pub turns: Vec<Turn>,
    pub wall: Duration,
}

impl ConversationRun {
    /// The outcomes, for [`super::summarize`].
    pub fn outcomes(&self) -> Vec<Outcome> {
        self.turns.iter().map(|t| t.outcome.clone()).collect()
    }
}

/// What only conversations have to report: how much of the resent history the server served
/// from its cache.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConversationSummary {
    pub conversations: usize,
    pub turns: usize,
    /// Conversations that stopped at a failed turn (their later turns were not sent).
    pub cut_short: usize,
    /// Prompt tokens of the successful turns after the first whose response said how many of
    /// them were cached (llama-server's `timings.cache_n` or
    /// `usage.prompt_tokens_details.cached_tokens`).
    pub later_turns_prompt_tokens: u64,
    /// Of those, the tokens served from the cache.
    pub later_turns_cached_tokens: u64,
    /// The share of later turns' prompt tokens served from the cache; `None` where the server
    /// never said.
    pub later_turns_cached_share: Option<f64>,
}

/// Summarises the conversation side of a run of `plan`.
pub fn summarize_conversations(plan: &ConversationPlan, turns: &[Turn]) -> ConversationSummary {
    let mut prompt = 0;
    let mut cached = 0;
    for turn in turns.iter().filter(|t| t.turn > 0) {
        let Ok(m) = &turn.outcome.result else {
            continue;
        };
        let total = m
            .prompt_tokens
            .or_else(|| m.timings.as_ref().map(|t| t.cache_n + t.prompt_n));
        if let (Some(total), Some(from_cache)) = (total, m.cached_tokens) {
            prompt += total;
            cached += from_cache.min(total);
        }
    }
    let cut_short: BTreeSet<usize> = turns
        .iter()
        .filter(|t| t.outcome.result.is_err() && t.turn + 1 < plan.turns)
        .map(|t| t.conversation)
        .collect();
    ConversationSummary {
        conversations: plan.conversations,
        turns: plan.turns,
        cut_short: cut_short.len(),
        later_turns_prompt_tokens: prompt,
        later_turns_cached_tokens: cached,
        later_turns_cached_share: (prompt > 0).then(|| cached as f64 / prompt as f64),
    }
}

#[cfg(test)]
mod tests;
