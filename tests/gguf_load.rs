//! A model written by our GGUF writer loads and runs in llama.cpp, and our reader and planner
//! agree with llama.cpp about it: the writer is good enough to make test models of architectures
//! we have no download for.

#[path = "common/gguf_fixtures.rs"]
mod gguf_fixtures;

use gguf_serve::gguf::ModelSummary;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;

#[test]
fn written_model_loads_and_decodes_in_llama_cpp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-f16.gguf");
    gguf_fixtures::write_loadable_llama(&path);

    let summary = ModelSummary::from_path(&path).unwrap();
    assert_eq!((summary.block_count, summary.vocab_size), (2, 8 + 256));
    assert_eq!(summary.quant_name(), "F16");

    let backend = LlamaBackend::init().unwrap();
    let model = LlamaModel::load_from_file(&backend, &path, &LlamaModelParams::default()).unwrap();
    assert_eq!(model.n_vocab(), 8 + 256);
    assert_eq!(model.n_layer(), 2);
    // llama.cpp's size of the weights is our tensor byte count.
    assert_eq!(model.size(), summary.tensor_bytes());

    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(256))
        .with_n_threads(1);
    let mut ctx = model.new_context(&backend, params).unwrap();
    let mut batch = LlamaBatch::new(8, 1);
    for (pos, token) in [1, 3, 4, 5].into_iter().enumerate() {
        batch
            .add(LlamaToken(token), pos as i32, &[0], pos == 3)
            .unwrap();
    }
    ctx.decode(&mut batch).unwrap();
    let logits = ctx.get_logits_ith(3);
    assert_eq!(logits.len(), 8 + 256);
    assert!(logits.iter().all(|l| l.is_finite()), "{logits:?}");
}
