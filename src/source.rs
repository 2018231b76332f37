//! Where a model comes from: a GGUF file, a folder of quants of one model, or split files,
//! resolved to the files the planner chooses among (one `ModelSummary` per model file).

use crate::gguf::{GgufError, ModelSummary, quant_by_name};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("{path}: no .gguf files in this folder")]
    Empty { path: PathBuf },
    #[error("unknown quant \"{name}\" (llama.cpp names: q4_k_m, q8_0, f16, …)")]
    UnknownQuant { name: String },
    #[error("{path}: no {name} file here; it has: {available}")]
    QuantNotFound {
        path: PathBuf,
        name: String,
        available: String,
    },
}

/// The models at `path` (a file, a split part, or a folder), optionally only the quant `quant`
/// (llama.cpp's name, case-insensitive; `None` or `auto` keeps all).
pub fn resolve(path: &Path, quant: Option<&str>) -> Result<Vec<ModelSummary>, SourceError> {
    let quant = quant.filter(|q| !q.eq_ignore_ascii_case("auto"));
    let wanted = quant
        .map(|name| {
            quant_by_name(name).ok_or_else(|| SourceError::UnknownQuant {
                name: name.to_owned(),
            })
        })
        .transpose()?;
    let models = if path.is_dir() {
        let files = model_files(path)?;
        if files.is_empty() {
            return Err(SourceError::Empty {
                path: path.to_owned(),
            });
        }
        files
            .iter()
            .map(|f| ModelSummary::from_path(f))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        vec![ModelSummary::from_path(path)?]
    };
    let Some(wanted) = wanted else {
        return Ok(models);
    };
    let available = models
        .iter()
        .map(ModelSummary::quant_name)
        .collect::<Vec<_>>()
        .join(", ");
    let matching: Vec<_> = models
        .into_iter()
        .filter(|m| m.quant.as_ref().is_some_and(|q| q.name == wanted.name))
        .collect();
    if matching.is_empty() {
        return Err(SourceError::QuantNotFound {
            path: path.to_owned(),
            name: wanted.display_name(),
            available,
        });
    }
    Ok(matching)
}

/// The model files of a folder, sorted: every unsplit `.gguf`, and the first part of each split
/// set. Multimodal projectors (`mmproj*`) are not models.
fn model_files(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let io = |source| SourceError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if !name.ends_with(".gguf") || name.starts_with("mmproj") || !path.is_file() {
            continue;
        }
        match crate::gguf::split_name(&path) {
            Some((_, 1, _)) | None => files.push(path),
            Some(_) => {}
        }
    }
    files.sort();
    Ok(files)
}
