//! Runs a conversation plan: one task per conversation, started at its arrival time, sending its
//! turns one after the other with the answers folded into its history. No cap on requests in
//! flight (open loop): the load is set by the arrivals and think time, and the server's queue
//! shows in the time to first token.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep, sleep_until};

use super::{Conversation, ConversationPlan, ConversationRun, Turn, arrivals};
use crate::bench::client::Target;
use crate::bench::workload::{BenchRequest, RequestOptions, request_body};
use crate::bench::{BenchConfig, BenchError, OnDone, Outcome};

/// The error of a turn left unsent because an earlier turn of its conversation failed: the
/// history it would resend has no answer.
pub const NOT_SENT: &str = "not sent: an earlier turn of its conversation failed";

/// Sends `plan`'s conversations to the server of `config` (its `concurrency` is not used) and
/// returns every turn, grouped by conversation, with the run's wall time.
pub async fn run_conversations(
    config: &BenchConfig,
    plan: &ConversationPlan,
    on_done: OnDone,
) -> Result<ConversationRun, BenchError> {
    let target = Arc::new(Target::new(config)?);
    let options = Arc::new(config.options.clone());
    let start = Instant::now();
    let tasks: Vec<_> = arrivals(plan.conversations, plan.rate, plan.seed)
        .into_iter()
        .enumerate()
        .map(|(index, at)| {
            let conversation = Conversation::new(plan, index);
            let user = User {
                target: target.clone(),
                options: options.clone(),
                think: plan.think,
                on_done: on_done.clone(),
            };
            tokio::spawn(async move {
                // A start beyond what an Instant holds (a vanishing --rate) never comes.
                match start.checked_add(at) {
                    Some(deadline) => sleep_until(deadline).await,
                    None => sleep(at).await,
                }
                user.converse(index, conversation).await
            })
        })
        .collect();
    let mut turns = Vec::new();
    for task in tasks {
        let done = task
            .await
            .unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()));
        turns.extend(done);
    }
    Ok(ConversationRun {
        turns,
        wall: start.elapsed(),
    })
}

/// What one conversation's task needs.
struct User {
    target: Arc<Target>,
    options: Arc<RequestOptions>,
    think: Duration,
    on_done: OnDone,
}

impl User {
    /// Sends the turns of conversation `index` in order; after a failure, the rest are recorded
    /// as failed without being sent.
    async fn converse(&self, index: usize, mut conversation: Conversation) -> Vec<Turn> {
        let mut turns = Vec::with_capacity(conversation.turns());
        while conversation.turn() < conversation.turns() {
            let turn = conversation.turn();
            if turn > 0 && !self.think.is_zero() {
                sleep(self.think).await;
            }
            let request = BenchRequest {
                prompt: conversation.prompt(self.options.endpoint),
                max_tokens: None,
            };
            let (outcome, answer) = self
                .target
                .send(&request_body(&request, &self.options))
                .await;
            (self.on_done)(&outcome);
            let failed = outcome.result.is_err();
            turns.push(Turn {
                conversation: index,
                turn,
                outcome,
            });
            if failed {
                break;
            }
            conversation.answered(answer);
        }
        for turn in turns.len()..conversation.turns() {
            let outcome = Outcome {
                latency: Duration::ZERO,
                result: Err(NOT_SENT.to_owned()),
            };
            (self.on_done)(&outcome);
            turns.push(Turn {
                conversation: index,
                turn,
                outcome,
            });
        }
        turns
    }
}
