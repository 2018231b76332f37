//! What Ollama's clients list and show of the served model (`/api/tags`, `/api/show`,
//! `/api/ps`), from its GGUF header and what llama.cpp allocated: one model, under the name
//! clients use for it (the first alias, else `-m` as given).

use std::path::Path;
use std::time::SystemTime;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::super::AppState;
use super::super::error::ApiError;
use crate::chat::ChatTemplate;
use crate::engine::LoadedModel;
use crate::gguf::{ModelSummary, read_parts};

/// The served model's file, as the listings describe it.
#[derive(Debug)]
pub struct ModelFile {
    pub summary: ModelSummary,
    /// The first file's metadata.
    pub metadata: Vec<(String, crate::gguf::Value)>,
    pub modified: SystemTime,
    /// Parameters, as llama.cpp counted them.
    pub n_params: u64,
}

impl ModelFile {
    /// Reads the header of the served model (a few MB at most: long arrays are skipped).
    pub fn read(model: &LoadedModel) -> Result<Self, ApiError> {
        Self::read_path(&model.path, Some(model.n_params))
    }

    /// Reads the header of the model at `path`; its parameters are `n_params` (llama.cpp's
    /// count, once loaded), else the elements of the file's tensors.
    pub fn read_path(path: &Path, n_params: Option<u64>) -> Result<Self, ApiError> {
        let failed = |e: crate::gguf::GgufError| ApiError::server(e.to_string());
        let files = read_parts(path).map_err(failed)?;
        let summary = ModelSummary::from_files(&files).map_err(failed)?;
        let n_params = n_params.unwrap_or_else(|| {
            files
                .iter()
                .flat_map(|f| &f.tensors)
                .map(|t| t.shape.iter().product::<u64>())
                .sum()
        });
        // The first part holds the model's metadata.
        let metadata = files
            .into_iter()
            .next()
            .map(|f| f.metadata)
            .unwrap_or_default();
        let modified = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(Self {
            summary,
            metadata,
            modified,
            n_params,
        })
    }

    /// Ollama's `details`.
    pub fn details(&self) -> Value {
        let arch = &self.summary.architecture;
        json!({
            "parent_model": "",
            "format": "gguf",
            "family": arch,
            "families": [arch],
            "parameter_size": parameter_size(self.n_params),
            "quantization_level": self.summary.quant_name(),
        })
    }

    /// An identifier in the shape of Ollama's digests (64 hex digits): the SHA-256 of the
    /// file's path, size and modification time, which changes when the file does. Not the
    /// contents' hash, which would mean reading gigabytes.
    pub fn digest(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.summary.path.to_string_lossy().as_bytes());
        hash.update(self.summary.file_size.to_le_bytes());
        let since = self.modified.duration_since(SystemTime::UNIX_EPOCH);
        hash.update(since.map_or(0, |d| d.as_nanos()).to_le_bytes());
        format!("{:x}", hash.finalize())
    }

    /// The fields every listing has: `name`, `model`, `size`, `digest`, `details`.
    fn listing(&self, name: &str) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("name".into(), name.into());
        out.insert("model".into(), name.into());
        out.insert("size".into(), self.summary.file_size.into());
        out.insert("digest".into(), self.digest().into());
        out.insert("details".into(), self.details());
        out
    }

    /// The model's entry in `/api/tags`, under `name`.
    pub fn tag(&self, name: &str) -> Value {
        let mut model = self.listing(name);
        model.insert("modified_at".into(), super::rfc3339(self.modified).into());
        Value::Object(model)
    }
}

/// `/api/tags`: the served model.
pub fn tags(state: &AppState, file: &ModelFile) -> Value {
    json!({ "models": [file.tag(&state.model_name())] })
}

/// `/api/ps`: the served model, loaded, with the memory llama.cpp allocated for it (on the
/// GPUs: `size_vram`) and its context; it stays loaded while the server runs.
pub fn ps(state: &AppState, model: &LoadedModel, file: &ModelFile) -> Value {
    let total: u64 = model.memory.iter().map(|m| m.total()).sum();
    let host: u64 = model
        .memory
        .iter()
        .filter(|m| m.device == "host")
        .map(|m| m.total())
        .sum();
    let mut listing = file.listing(&state.model_name());
    listing.insert("size".into(), total.into());
    listing.insert("size_vram".into(), (total - host).into());
    listing.insert("context_length".into(), model.n_ctx_slot.into());
    // Ollama unloads an idle model after `keep_alive`; this server keeps it until it stops.
    listing.insert("expires_at".into(), "9999-12-31T23:59:59Z".into());
    json!({ "models": [listing] })
}

/// `/api/show`: details, the metadata (`model_info`; arrays too long to keep are `null`, as
/// Ollama shows them unless asked for `verbose`), the chat template in use and what the model
/// can do with it.
pub fn show(model: &LoadedModel, template: &ChatTemplate, file: &ModelFile) -> Value {
    let info: Map<String, Value> = file
        .metadata
        .iter()
        .filter(|(key, _)| key != "tokenizer.chat_template")
        .map(|(key, value)| (key.clone(), value.to_json()))
        .collect();
    let source = template.source();
    let mut capabilities = Vec::new();
    if model.embedding.enabled {
        capabilities.push("embedding");
    } else {
        capabilities.push("completion");
        if template.caps().supports_tool_calls {
            capabilities.push("tools");
        }
        if ["<think>", "reasoning_content", "<|channel|>"]
            .iter()
            .any(|mark| source.contains(mark))
        {
            capabilities.push("thinking");
        }
    }
    json!({
        "modelfile": "",
        "parameters": "",
        "template": source,
        "details": file.details(),
        "model_info": info,
        "capabilities": capabilities,
        "modified_at": super::rfc3339(file.modified),
    })
}

/// Parameters as Ollama writes them: `8B`, `8.0B`… `268.10M`, `12K`.
fn parameter_size(n: u64) -> String {
    let scaled = |unit: f64, suffix: &str, decimals: usize| {
        let x = n as f64 / unit;
        if x.fract() == 0.0 {
            format!("{x:.0}{suffix}")
        } else {
            format!("{x:.decimals$}{suffix}")
        }
    };
    match n {
        1_000_000_000.. => scaled(1e9, "B", 1),
        1_000_000.. => scaled(1e6, "M", 2),
        1_000.. => scaled(1e3, "K", 1),
        _ => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_sizes_as_ollama_writes_them() {
        let cases = [
            (20_914_757_184, "20.9B"),
            (8_000_000_000, "8B"),
            (268_098_176, "268.10M"),
            (12_000, "12K"),
            (999, "999"),
        ];
        for (n, text) in cases {
            assert_eq!(parameter_size(n), text, "{n}");
        }
    }
}
