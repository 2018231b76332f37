//! A slot: one sequence of the shared KV cache, the tokens it holds (the prompt cache), and the
//! request it is serving, if any. Slots know nothing of llama.cpp contexts: the worker decodes.

use std::time::Instant;

use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use super::request::{Completion, Event, GenerateRequest, SlotInfo, StopType, Timings, TokenProbs};
use super::sampler::Sampler;
use super::text::{Pushed, TextStream};

/// A request being served by a slot.
#[derive(Debug)]
pub struct Task {
    pub req: GenerateRequest,
    pub tx: mpsc::UnboundedSender<Event>,
    /// The host sampler; `None` when the slot's sequence has a sampler chain attached to the
    /// context (backend sampling): the token then comes out of the decode.
    pub sampler: Option<Sampler>,
    /// Prompt tokens reused from the slot's cache.
    pub n_cached: usize,
    /// Next prompt token to feed; `prompt.len()` once the prompt is in the cache.
    pub n_prompt_fed: usize,
    /// A sampled token not yet decoded (fed at the next step).
    pub pending: Option<LlamaToken>,
    /// Where this slot's logits are in the current batch.
    pub i_batch: Option<i32>,
    pub generated: Vec<LlamaToken>,
    pub text: TextStream,
    pub t_start: Instant,
    pub t_prompt_done: Option<Instant>,
}

impl Task {
    pub fn new(
        req: GenerateRequest,
        tx: mpsc::UnboundedSender<Event>,
        sampler: Option<Sampler>,
    ) -> Self {
        Self {
            req,
            tx,
            sampler,
            n_cached: 0,
            n_prompt_fed: 0,
            pending: None,
            i_batch: None,
            generated: Vec::new(),
            text: TextStream::default(),
            t_start: Instant::now(),
            t_prompt_done: None,
        }
    }

    /// Whether the prompt still has tokens to feed.
    pub fn in_prompt(&self) -> bool {
        self.n_prompt_fed < self.req.prompt.len()
    }

    /// Takes a token piece; returns the stop reason if this token ended the generation.
    pub fn push_token(
        &mut self,
        token: LlamaToken,
        piece: &[u8],
        probs: Option<TokenProbs>,
    ) -> Result<Option<StopType>, ()> {
        self.generated.push(token);
        if let Some(sampler) = &mut self.sampler {
            sampler.accept(token);
        }
        let (text, stop) = match self.text.push(piece, &self.req.stop) {
            Pushed::Text(text) => (text, None),
            Pushed::Stop { text, word } => (text, Some(StopType::Word(word))),
        };
        self.tx
            .send(Event::Token { token, text, probs })
            .map_err(|_| ())?;
        Ok(stop)
    }

    /// The final event for this task.
    pub fn completion(
        &mut self,
        stop_type: StopType,
        id_slot: usize,
        truncated: bool,
    ) -> Completion {
        let now = Instant::now();
        let prompt_done = self.t_prompt_done.unwrap_or(now);
        let prompt_ms = (prompt_done - self.t_start).as_secs_f64() * 1e3;
        let predicted_ms = (now - prompt_done).as_secs_f64() * 1e3;
        let prompt_n = self.req.prompt.len() - self.n_cached;
        let n_decoded = self.n_decoded();
        let tail = self.text.flush();
        Completion {
            text: self.text.text().to_string(),
            tail,
            tokens: std::mem::take(&mut self.generated),
            tokens_predicted: n_decoded,
            tokens_evaluated: self.req.prompt.len(),
            tokens_cached: self.n_cached,
            id_slot,
            truncated,
            timings: Timings::new(self.n_cached, prompt_n, prompt_ms, n_decoded, predicted_ms),
            stop_type,
        }
    }

    /// Tokens sampled so far.
    pub fn n_decoded(&self) -> usize {
        self.generated.len()
    }
}

/// One sequence of the KV cache.
#[derive(Debug)]
pub struct Slot {
    pub id: usize,
    /// Tokens held in the KV cache for this sequence, positions 0..len.
    pub cache: Vec<LlamaToken>,
    pub task: Option<Task>,
    pub last_used: Instant,
    pub n_ctx: u32,
}

impl Slot {
    pub fn new(id: usize, n_ctx: u32) -> Self {
        Self {
            id,
            cache: Vec::new(),
            task: None,
            last_used: Instant::now(),
            n_ctx,
        }
    }

    pub fn seq_id(&self) -> i32 {
        self.id as i32
    }

    pub fn info(&self) -> SlotInfo {
        SlotInfo {
            id: self.id,
            id_task: self.task.as_ref().map_or(-1, |t| t.req.id as i64),
            n_ctx: self.n_ctx,
            is_processing: self.task.is_some(),
            n_cached: self.cache.len(),
            n_decoded: self.task.as_ref().map_or(0, Task::n_decoded),
            backend_sampling: self.task.as_ref().is_some_and(|t| t.sampler.is_none()),
        }
    }
}

/// Length of the common prefix of two token sequences.
pub fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
