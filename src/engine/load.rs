//! Loading: the model (with its tensor overrides), the context sized for the slots over its
//! thread pools, and what the server needs to know about both.

use std::sync::Arc;

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::llama::{Context, ContextParams};
use super::llama_load::{LoadError, Threadpools};
use super::{EmbeddingInfo, EngineConfig, EngineError, LoadedModel, Pooling};

pub(super) fn load_model(config: &EngineConfig) -> Result<LlamaModel, EngineError> {
    super::llama_load::numa_init(config.numa);
    super::llama_load::set_process_priority(config.cpu.priority);
    super::llama_load::load_model(&config.model_path, &config.model).map_err(|e| match e {
        LoadError::Failed => EngineError::Load {
            path: config.model_path.clone(),
        },
        other => EngineError::Config(other.to_string()),
    })
}

pub(super) fn new_context<'m>(
    model: &'m LlamaModel,
    config: &EngineConfig,
) -> Result<Context<'m>, EngineError> {
    let c = &config.context;
    let n_ctx = match (c.n_ctx, c.n_ctx_slot_max) {
        // `--kv-unified-per-slot N` without `-c`: room for N tokens in every slot.
        (0, Some(per_slot)) => per_slot.saturating_mul(c.n_parallel),
        (0, None) => model.n_ctx_train(),
        (n, _) => n,
    };
    let params = ContextParams {
        config: c.clone(),
        n_ctx,
        n_threads: config.cpu.n_threads,
        n_threads_batch: config.cpu_batch.n_threads,
    };
    let pools = Threadpools::new(&config.cpu, &config.cpu_batch);
    if pools.is_none() {
        tracing::warn!("the CPU backend offers no thread pools: llama.cpp runs its own");
    }
    Context::new(model, &params, pools).ok_or_else(|| EngineError::Context {
        n_ctx,
        reason: "llama.cpp returned no context (see the log above)".into(),
    })
}

/// Adds the server's control vectors to the context, at llama-server's default layers (1 to
/// the last) unless a range was given.
pub(super) fn apply_control_vectors<'m>(
    model: &'m LlamaModel,
    mut ctx: Context<'m>,
    config: &EngineConfig,
) -> Result<Context<'m>, EngineError> {
    let Some(cv) = &config.control_vectors else {
        return Ok(ctx);
    };
    let n_embd = usize::try_from(model.n_embd()).unwrap_or(0);
    let refuse = |reason: String| EngineError::Config(format!("control vectors: {reason}"));
    if cv.directions.n_embd != n_embd {
        return Err(refuse(format!(
            "their directions have {} values, the model's embedding {n_embd}",
            cv.directions.n_embd
        )));
    }
    let (start, end) = cv.layer_range;
    let start = if start <= 0 { 1 } else { start };
    let end = if end <= 0 {
        i32::try_from(model.n_layer()).unwrap_or(i32::MAX)
    } else {
        end
    };
    if !ctx.set_control_vector(n_embd, &cv.directions.data, start, end) {
        return Err(refuse("llama.cpp refused them (see the log above)".into()));
    }
    tracing::info!(
        "control vectors: {} layers of {n_embd} values, applied to layers {start} to {end}",
        cv.directions.data.len() / n_embd.max(1)
    );
    Ok(ctx)
}

/// A slot's context, as llama-server sizes it: its share of the cache (all of it when the
/// cache is unified), at most `--kv-unified-per-slot`, at most the training context.
fn n_ctx_slot(model: &LlamaModel, ctx: &Context<'_>, config: &EngineConfig) -> u32 {
    let n = ctx.n_ctx_seq();
    let n = config.context.n_ctx_slot_max.map_or(n, |max| n.min(max));
    if n > model.n_ctx_train() {
        tracing::warn!(
            "the slot context ({n}) exceeds the training context of the model ({}): capping",
            model.n_ctx_train()
        );
    }
    n.min(model.n_ctx_train())
}

pub(super) fn describe(
    model: &Arc<LlamaModel>,
    ctx: &Context<'_>,
    config: &EngineConfig,
) -> LoadedModel {
    let vocab = model.vocab();
    // A vocabulary without BOS or EOS (BERT has no EOS) names no token: llama.cpp would throw.
    let text = |t: LlamaToken| {
        if t.0 < 0 {
            return String::new();
        }
        String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned()
    };
    LoadedModel {
        model: Arc::clone(model),
        path: config.model_path.clone(),
        n_ctx: ctx.n_ctx(),
        n_ctx_slot: n_ctx_slot(model, ctx, config),
        n_ctx_train: model.n_ctx_train(),
        n_vocab: model.n_vocab(),
        n_params: model.n_params(),
        size: model.size(),
        n_slots: config.context.n_parallel,
        chat_template: model.meta_val_str("tokenizer.chat_template").ok(),
        bos_token: text(vocab.bos()),
        eos_token: text(vocab.eos()),
        add_bos: vocab.should_add_bos(),
        add_eos: vocab.should_add_eos(),
        memory: super::llama_log::allocated(),
        layers: super::llama_log::layers(),
        backend_sampling: config.backend_sampling,
        ftype: super::llama::ftype_name(model),
        vocab_type: super::llama::vocab_type(model),
        n_embd: model.n_embd(),
        embedding: embedding_info(model, ctx, config),
    }
}

/// The context's pooling and input limits for embedding and rerank tasks (llama-server's
/// `can_split`: only pooling `last`, or `rank` on a causal model with a KV cache, may read an
/// input over several batches).
fn embedding_info(model: &LlamaModel, ctx: &Context<'_>, config: &EngineConfig) -> EmbeddingInfo {
    use super::llama::embd;
    let vocab = model.vocab();
    let pooling = ctx.pooling();
    let eos = vocab.eos();
    EmbeddingInfo {
        enabled: config.context.embeddings,
        pooling,
        can_split: ctx.has_memory()
            && (pooling == Pooling::Last || (pooling == Pooling::Rank && ctx.causal_attn())),
        n_ubatch: config.context.n_ubatch.min(config.context.n_batch),
        n_embd_out: embd::n_embd_out(model),
        rerank_template: embd::rerank_template(model),
        eos_or_sep: if eos.0 >= 0 { eos } else { vocab.sep() },
        sep: vocab.sep(),
        add_sep: vocab.should_add_sep(),
    }
}
