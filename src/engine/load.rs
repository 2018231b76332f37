//! Loading: the model (with its MoE expert overrides), the context sized for the slots, and
//! what the server needs to know about both.

use std::sync::Arc;

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;

use super::llama::{Context, ContextParams};
use super::{EngineConfig, EngineError, LoadedModel};

pub(super) fn load_model(
    backend: &LlamaBackend,
    config: &EngineConfig,
) -> Result<LlamaModel, EngineError> {
    let mut params = Box::pin(LlamaModelParams::default().with_n_gpu_layers(config.n_gpu_layers));
    // llama.cpp reads these patterns during the load: they must outlive it.
    let patterns: Vec<std::ffi::CString> = (0..config.n_cpu_moe)
        .map(|i| {
            let pattern = format!(r"blk\.{i}\.ffn_(up|down|gate|gate_up)_(ch|)exps");
            std::ffi::CString::new(pattern).expect("no NUL in the pattern")
        })
        .collect();
    if config.cpu_moe {
        params.as_mut().add_cpu_moe_override();
    } else {
        for pattern in &patterns {
            params.as_mut().add_cpu_buft_override(pattern);
        }
    }
    let model = LlamaModel::load_from_file(backend, &config.model_path, &params).map_err(|_| {
        EngineError::Load {
            path: config.model_path.clone(),
        }
    });
    drop(params);
    drop(patterns);
    model
}

pub(super) fn new_context<'m>(
    model: &'m LlamaModel,
    config: &EngineConfig,
) -> Result<Context<'m>, EngineError> {
    let n_ctx = if config.n_ctx == 0 {
        model.n_ctx_train()
    } else {
        config.n_ctx
    };
    let params = ContextParams {
        n_ctx,
        n_batch: config.n_batch,
        n_ubatch: config.n_ubatch,
        n_seq_max: config.n_parallel,
        n_threads: config.n_threads,
        n_threads_batch: config.n_threads_batch,
        flash_attn: config.flash_attn,
        type_k: config.cache_type_k,
        type_v: config.cache_type_v,
    };
    Context::new(model, &params).ok_or_else(|| EngineError::Context {
        n_ctx,
        reason: "llama.cpp returned no context (see the log above)".into(),
    })
}

pub(super) fn describe(
    model: &Arc<LlamaModel>,
    ctx: &Context<'_>,
    config: &EngineConfig,
) -> LoadedModel {
    let vocab = model.vocab();
    let text =
        |t: LlamaToken| String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned();
    LoadedModel {
        model: Arc::clone(model),
        path: config.model_path.clone(),
        n_ctx: ctx.n_ctx(),
        n_ctx_slot: ctx.n_ctx(),
        n_ctx_train: model.n_ctx_train(),
        n_vocab: model.n_vocab(),
        n_params: model.n_params(),
        size: model.size(),
        n_slots: config.n_parallel,
        chat_template: model.meta_val_str("tokenizer.chat_template").ok(),
        bos_token: text(vocab.bos()),
        eos_token: text(vocab.eos()),
        add_bos: vocab.should_add_bos(),
        add_eos: vocab.should_add_eos(),
        memory: super::llama_log::allocated(),
        backend_sampling: config.backend_sampling,
    }
}

/// The sliding-window size of the model's SWA layers (0 if none), from the GGUF metadata.
pub(super) fn n_swa(model: &LlamaModel) -> u32 {
    let arch = model
        .meta_val_str("general.architecture")
        .unwrap_or_default();
    model
        .meta_val_str(&format!("{arch}.attention.sliding_window"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
