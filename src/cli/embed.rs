//! The embedding and rerank flags: `--embedding` (the context keeps embeddings and the
//! embedding routes answer), `--pooling`, `--embd-normalize` (the default of the request field
//! `embd_normalize`) and `--reranking` (embeddings with rank pooling, and the rerank routes).

use clap::{Args, ValueEnum};

use crate::engine::Pooling;

#[derive(Debug, Clone, Args)]
pub struct EmbedArgs {
    /// Serve embeddings (/embedding, /embeddings, /v1/embeddings); completions still work
    /// on a model that can generate.
    #[arg(long, alias = "embeddings")]
    pub embedding: bool,

    /// Pooling of embeddings; default: the model's own.
    #[arg(long, value_enum, value_name = "none|mean|cls|last|rank")]
    pub pooling: Option<PoolingArg>,

    /// Normalisation of pooled embeddings when a request gives no `embd_normalize`: -1 none,
    /// 0 max absolute int16, 1 taxicab, 2 euclidean, >2 p-norm.
    #[arg(
        long = "embd-normalize",
        default_value_t = 2,
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub embd_normalize: i32,

    /// Serve reranking (/rerank, /v1/rerank, …): embeddings with rank pooling (it wins over
    /// --pooling).
    #[arg(long, alias = "rerank")]
    pub reranking: bool,
}

/// `--pooling`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PoolingArg {
    None,
    Mean,
    Cls,
    Last,
    Rank,
}

impl EmbedArgs {
    /// Whether the context is made for embeddings.
    pub fn enabled(&self) -> bool {
        self.embedding || self.reranking
    }

    /// The pooling asked for (unspecified: the model's).
    pub fn pooling(&self) -> Pooling {
        if self.reranking {
            return Pooling::Rank;
        }
        match self.pooling {
            None => Pooling::Unspecified,
            Some(PoolingArg::None) => Pooling::None,
            Some(PoolingArg::Mean) => Pooling::Mean,
            Some(PoolingArg::Cls) => Pooling::Cls,
            Some(PoolingArg::Last) => Pooling::Last,
            Some(PoolingArg::Rank) => Pooling::Rank,
        }
    }

    /// The batch size: as llama-server, an embedding server reads at most one ubatch per
    /// decode (an encoder must see a whole input at once; llama.cpp issue 12836).
    pub fn n_batch(&self, n_batch: u32, n_ubatch: u32) -> u32 {
        if self.enabled() && n_batch > n_ubatch {
            tracing::warn!(
                "embeddings enabled with n_batch ({n_batch}) > n_ubatch ({n_ubatch}): setting n_batch = n_ubatch = {n_ubatch}"
            );
            return n_ubatch;
        }
        n_batch
    }
}
