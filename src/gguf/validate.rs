//! Checks a model's metadata for values llama.cpp asserts on instead of rejecting. A failed
//! `GGML_ASSERT` aborts the process (SIGABRT, a core dump, no message a user can act on), and a
//! C++ exception thrown from a call the FFI makes after loading does the same; the server runs
//! these checks on the headers before it hands the file to llama.cpp, so such a file ends in one
//! line naming the key. What llama.cpp refuses by itself (an exception inside
//! `llama_model_load`, which it catches) is left to it.
//!
//! Sources (the vendored llama.cpp): `llama_model_base::load_hparams` in `src/llama-model.cpp`
//! (layer and expert counts), `llama_vocab::impl::load` and `byte_to_token` in
//! `src/llama-vocab.cpp` (the vocabulary).

use super::read::GgufFile;
use super::value::Value;
use super::vocab::VOCAB_KEY;

/// `LLAMA_MAX_LAYERS` and `LLAMA_MAX_EXPERTS` (`src/llama-hparams.h`).
pub(crate) const LLAMA_MAX_LAYERS: u64 = 512;
const LLAMA_MAX_EXPERTS: u64 = 1024;

/// The first value llama.cpp would abort on, as a sentence naming the key.
pub(crate) fn check(file: &GgufFile, arch: &str) -> Result<(), String> {
    hparams(file, arch)?;
    vocabulary(file)
}

/// A scalar, or the largest item of a per-layer array, as llama.cpp's `get_key_or_arr` reads
/// it (0 when absent).
fn max_of(file: &GgufFile, key: &str) -> u64 {
    match file.get(key) {
        Some(v) => match v.as_array() {
            Some(items) => items.iter().filter_map(Value::as_u64).max().unwrap_or(0),
            None => v.as_u64().unwrap_or(0),
        },
        None => 0,
    }
}

/// The asserts of `load_hparams` on layer and expert counts.
fn hparams(file: &GgufFile, arch: &str) -> Result<(), String> {
    let key = |name: &str| format!("{arch}.{name}");
    let n_layer = max_of(file, &key("block_count"));
    if !(1..=LLAMA_MAX_LAYERS).contains(&n_layer) {
        return Err(format!(
            "{} is {n_layer}; llama.cpp takes 1 to {LLAMA_MAX_LAYERS} layers",
            key("block_count")
        ));
    }
    let nextn = max_of(file, &key("nextn_predict_layers"));
    if nextn > n_layer {
        return Err(format!(
            "{} is {nextn}, more than the {n_layer} layers",
            key("nextn_predict_layers")
        ));
    }
    let n_expert = max_of(file, &key("expert_count"));
    let used = max_of(file, &key("expert_used_count"));
    let groups = max_of(file, &key("expert_group_count"));
    let group_used = max_of(file, &key("expert_group_used_count"));
    let (expert_count, expert_used) = (key("expert_count"), key("expert_used_count"));
    let (group_count, group_used_count) =
        (key("expert_group_count"), key("expert_group_used_count"));
    let problem = if n_expert > LLAMA_MAX_EXPERTS {
        Some(format!(
            "{expert_count} is {n_expert} (llama.cpp's limit is {LLAMA_MAX_EXPERTS})"
        ))
    } else if used > n_expert {
        Some(format!(
            "{expert_used} is {used}, more than {expert_count} ({n_expert})"
        ))
    } else if n_expert > 0 && used == 0 {
        Some(format!("{expert_used} is 0 with {n_expert} experts"))
    } else if n_expert > 0 && groups >= n_expert {
        Some(format!(
            "{group_count} is {groups}, not fewer than the {n_expert} experts"
        ))
    } else if n_expert == 0 && groups != 0 {
        Some(format!("{group_count} is {groups} with no experts"))
    } else if groups > 1 && !n_expert.is_multiple_of(groups) {
        Some(format!(
            "{group_count} ({groups}) does not divide {expert_count} ({n_expert})"
        ))
    } else if groups > 1 && !(1..groups).contains(&group_used) {
        Some(format!(
            "{group_used_count} is {group_used}; with {groups} groups llama.cpp takes 1 to {}",
            groups - 1
        ))
    } else {
        None
    };
    problem.map_or(Ok(()), Err)
}

/// The vocabulary: a tokenizer at all, distinct tokens, and byte tokens for SentencePiece.
fn vocabulary(file: &GgufFile) -> Result<(), String> {
    let model = file.get_str("tokenizer.ggml.model");
    if let Some(model @ ("none" | "no_vocab")) = model {
        // llama.cpp loads it, then asserts on the first text it is asked to tokenize.
        return Err(format!(
            "tokenizer.ggml.model is \"{model}\": the model has no vocabulary to read prompts with"
        ));
    }
    let Some(scan) = &file.vocab else {
        // No tokens (llama.cpp refuses that itself) or tokens of the wrong type (likewise).
        return Ok(());
    };
    if let Some((index, text)) = &scan.duplicate {
        return Err(format!(
            "{VOCAB_KEY}: token #{index} ({text:?}) repeats an earlier token; llama.cpp aborts on \
             a vocabulary whose tokens are not distinct"
        ));
    }
    let n_tokens = match file.get(VOCAB_KEY) {
        Some(Value::Array { len, .. }) => *len,
        _ => 0,
    };
    for key in ["tokenizer.ggml.scores", "tokenizer.ggml.token_type"] {
        if let Some(Value::Array { len, .. }) = file.get(key)
            && *len < n_tokens
        {
            return Err(format!(
                "{key} has {len} entries for {n_tokens} tokens in {VOCAB_KEY}"
            ));
        }
    }
    if model == Some("llama")
        && let Some(b) = scan.missing_byte()
    {
        return Err(format!(
            "{VOCAB_KEY}: a SentencePiece (llama) vocabulary without the byte token <0x{b:02X}>; \
             llama.cpp aborts on the first prompt with a character it has no token for"
        ));
    }
    Ok(())
}
