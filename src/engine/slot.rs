//! A slot: one sequence of the shared KV cache, the tokens it holds (the prompt cache), and the
//! request it is serving, if any. Slots know nothing of llama.cpp contexts: the worker decodes.

use std::time::Instant;

use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use super::checkpoint::Checkpoints;
use super::request::{
    Completion, Event, GenerateRequest, SlotInfo, SlotTask, StopType, Timings, TokenProbs,
};
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
    /// When the first token was sampled (the end of prompt processing).
    pub t_prompt_done: Option<Instant>,
    /// When the last token was sampled.
    pub t_last_token: Option<Instant>,
    /// Whether the text so far has a newline (llama-server's `has_new_line`).
    pub has_new_line: bool,
    /// Where the current line starts in the text, for `n_indent`.
    line_start: usize,
    /// The context was shifted (tokens dropped) during generation.
    pub truncated: bool,
    /// A group member waiting for the slot whose task reads the shared prompt.
    pub waiting_for: Option<usize>,
    /// The test hook (`crate::test_hook`) marked this request to panic after its first token.
    pub test_panic: bool,
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
            t_last_token: None,
            has_new_line: false,
            line_start: 0,
            truncated: false,
            waiting_for: None,
            test_panic: false,
        }
    }

    /// Whether the prompt still has tokens to feed.
    pub fn in_prompt(&self) -> bool {
        self.n_prompt_fed < self.req.prompt.len()
    }

    /// Takes a token piece; returns the stop reason if this token ended the generation (a stop
    /// string, or a limit on indentation or time). `Err` when the client has gone.
    pub fn push_token(
        &mut self,
        token: LlamaToken,
        piece: &[u8],
        probs: Option<TokenProbs>,
    ) -> Result<Option<StopType>, ()> {
        self.generated.push(token);
        let now = Instant::now();
        self.t_prompt_done.get_or_insert(now);
        self.t_last_token = Some(now);
        if let Some(sampler) = &mut self.sampler {
            sampler.accept(token);
        }
        let sent_before = self.text.sent();
        let (mut text, mut stop) = match self.text.push(piece, &self.req.params.stop) {
            Pushed::Text(text) => (text, None),
            Pushed::Stop { text, word } => (text, Some(StopType::Word(word))),
        };
        if stop.is_none()
            && self.req.params.n_indent > 0
            && let Some(cut) = self.under_indented()
        {
            // llama-server drops the under-indented line and stops.
            self.text.cut(cut);
            text.truncate(cut.saturating_sub(sent_before).min(text.len()));
            stop = Some(StopType::Limit);
        }
        if text.contains('\n') {
            self.has_new_line = true;
            let t_max = self.req.params.t_max_predict_ms;
            if stop.is_none() && t_max > 0 && self.predicted_ms() > t_max as f64 {
                stop = Some(StopType::Limit);
            }
        }
        let timings = self.req.timings_per_token.then(|| self.timings());
        self.tx
            .send(Event::Token {
                token,
                text,
                probs,
                timings,
            })
            .map_err(|_| ())?;
        Ok(stop)
    }

    /// Where to cut the text if its last line (after a newline) has content indented less than
    /// `n_indent` spaces or tabs (llama-server then stops there).
    fn under_indented(&mut self) -> Option<usize> {
        let text = self.text.text();
        if let Some(nl) = text[self.line_start..].rfind('\n') {
            self.line_start += nl + 1;
        }
        if self.line_start == 0 {
            return None;
        }
        let line = &text[self.line_start..];
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        (indent < line.len() && indent < self.req.params.n_indent as usize)
            .then_some(self.line_start + indent)
    }

    /// Milliseconds from the first generated token to the last.
    fn predicted_ms(&self) -> f64 {
        match (self.t_prompt_done, self.t_last_token) {
            (Some(first), Some(last)) => (last - first).as_secs_f64() * 1e3,
            _ => 0.0,
        }
    }

    /// llama-server's timings so far.
    fn timings(&self) -> Timings {
        let prompt_done = self.t_prompt_done.unwrap_or_else(Instant::now);
        let prompt_ms = (prompt_done - self.t_start).as_secs_f64() * 1e3;
        let prompt_n = self.req.prompt.len() - self.n_cached;
        Timings::new(
            self.n_cached,
            prompt_n,
            prompt_ms,
            self.n_decoded(),
            self.predicted_ms(),
        )
    }

    /// The final event for this task; `n_cache` is how many tokens its slot holds now.
    pub fn completion(
        &mut self,
        stop_type: StopType,
        id_slot: usize,
        truncated: bool,
        n_cache: usize,
    ) -> Completion {
        let n_decoded = self.n_decoded();
        let timings = self.timings();
        let tail = self.text.flush();
        Completion {
            text: self.text.final_text(),
            tail,
            tokens: std::mem::take(&mut self.generated),
            tokens_predicted: n_decoded,
            tokens_evaluated: self.req.prompt.len(),
            tokens_cached: n_cache,
            id_slot,
            truncated,
            timings,
            stop_type,
        }
    }

    /// What `/slots` shows of this task.
    pub fn summary(&self, n_cache: usize) -> SlotTask {
        let req = &self.req;
        SlotTask {
            id_task: req.id,
            n_prompt_tokens: n_cache,
            n_prompt_tokens_processed: self.n_prompt_fed.saturating_sub(self.n_cached),
            n_prompt_tokens_cache: self.n_cached,
            n_decoded: self.n_decoded(),
            n_remain: req
                .params
                .max_tokens()
                .map_or(-1, |n| i64::from(n.max(1)) - self.n_decoded() as i64),
            has_next_token: true,
            has_new_line: self.has_new_line,
            params: req.params.clone(),
            backend_sampling: self.sampler.is_none(),
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
    /// What `/slots` shows of the last task once it is done.
    pub last_task: Option<SlotTask>,
    pub last_used: Instant,
    pub n_ctx: u32,
    /// The host prompt cache has been given what `cache` holds since the slot last changed it
    /// (saved, or found there already): an idle slot is offered to the cache once, not at
    /// every request that starts while it waits (each offer costs llama.cpp a pass over every
    /// sequence's cells).
    pub parked: bool,
    /// Context checkpoints of what `cache` holds (sliding-window models).
    pub checkpoints: Checkpoints,
}

impl Slot {
    pub fn new(id: usize, n_ctx: u32) -> Self {
        Self {
            id,
            cache: Vec::new(),
            task: None,
            last_task: None,
            last_used: Instant::now(),
            n_ctx,
            parked: false,
            checkpoints: Checkpoints::default(),
        }
    }

    pub fn seq_id(&self) -> i32 {
        self.id as i32
    }

    /// Ends the slot's task (done, failed or cancelled): the slot is free, its cache kept.
    pub fn release(&mut self) -> Option<Task> {
        let task = self.task.take()?;
        let mut summary = task.summary(self.cache.len());
        summary.has_next_token = false;
        self.last_task = Some(summary);
        self.last_used = Instant::now();
        self.parked = false;
        Some(task)
    }

    pub fn info(&self) -> SlotInfo {
        SlotInfo {
            id: self.id,
            n_ctx: self.n_ctx,
            is_processing: self.task.is_some(),
            task: match &self.task {
                Some(task) => Some(task.summary(self.cache.len())),
                None => self.last_task.clone(),
            },
        }
    }
}

/// Length of the common prefix of two token sequences.
pub fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
