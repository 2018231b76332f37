//! The typed side of embedding and rerank tasks: what a request asks of the engine (a
//! [`TaskKind`] on the same [`super::GenerateRequest`] a generation uses, so that both share
//! the queue, the slots and the batches), what comes back, and what the server needs to know
//! of the context to validate inputs before they reach the engine.

use llama_cpp_2::token::LlamaToken;

pub use super::pooling::{Pooling, normalize};

/// What a task does with its prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskKind {
    /// Read the prompt, then generate.
    #[default]
    Generate,
    /// Read the prompt and return its embedding, normalized with this `embd_normalize` when
    /// pooled (per-token vectors are returned as they are).
    Embed { normalize: i32 },
    /// Read a query/document prompt and return the reranker's score.
    Rerank,
}

impl TaskKind {
    /// Whether the task reads embeddings rather than sampling from logits.
    pub fn needs_embeddings(self) -> bool {
        !matches!(self, Self::Generate)
    }
}

/// The result of an embedding or rerank task.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// One pooled vector, or one per token (pooling `none`); a rerank task's one score is
    /// `vectors[0][0]`.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens read (llama-server's `tokens_evaluated`).
    pub n_tokens: usize,
}

/// What the server checks embedding inputs against, and how reranking lays out a prompt.
#[derive(Debug, Clone)]
pub struct EmbeddingInfo {
    /// The context was created for embeddings (`--embedding`).
    pub enabled: bool,
    /// The pooling in effect (`--pooling`, else the model's).
    pub pooling: Pooling,
    /// An input may be read over several batches (pooling `last`, or `rank` on a causal
    /// model); otherwise it must fit in one ubatch, as llama-server requires.
    pub can_split: bool,
    /// The physical batch (`n_ubatch`): the largest input that cannot be split.
    pub n_ubatch: u32,
    /// Length of each vector.
    pub n_embd_out: usize,
    /// The model's rerank prompt with `{query}` and `{document}`, if it has one.
    pub rerank_template: Option<String>,
    /// The separator llama-server puts between query and document (EOS, else SEP) and the
    /// vocabulary's rules for BOS, EOS and SEP.
    pub eos_or_sep: LlamaToken,
    pub sep: LlamaToken,
    pub add_sep: bool,
}
