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
    #[error("{path}: no readable model in this folder: {problems}")]
    NoneReadable { path: PathBuf, problems: String },
    #[error("unknown quant \"{name}\" (llama.cpp names: q4_k_m, q8_0, f16, …)")]
    UnknownQuant { name: String },
    #[error("{path}: no {name} file here; it has: {available}")]
    QuantNotFound {
        path: PathBuf,
        name: String,
        available: String,
    },
}

/// The models of a source, and the files of a folder that could not be read (each error names
/// its file). Derefs to the models.
#[derive(Debug)]
pub struct Resolved {
    pub models: Vec<ModelSummary>,
    /// Files of the folder skipped because their headers are unreadable.
    pub skipped: Vec<GgufError>,
}

impl From<Vec<ModelSummary>> for Resolved {
    /// Models read elsewhere (a Hugging Face repo's headers), none skipped.
    fn from(models: Vec<ModelSummary>) -> Resolved {
        Resolved {
            models,
            skipped: Vec::new(),
        }
    }
}

impl std::ops::Deref for Resolved {
    type Target = [ModelSummary];
    fn deref(&self) -> &[ModelSummary] {
        &self.models
    }
}

/// The models at `path` (a file, a split part, or a folder), optionally only the quant `quant`
/// (llama.cpp's name, case-insensitive; `None` or `auto` keeps all). In a folder, a file whose
/// header cannot be read is skipped and returned in [`Resolved::skipped`], so that one bad
/// download does not hide the others; if no file can be read, the error names them all.
pub fn resolve(path: &Path, quant: Option<&str>) -> Result<Resolved, SourceError> {
    let quant = quant.filter(|q| !q.eq_ignore_ascii_case("auto"));
    let wanted = quant
        .map(|name| {
            quant_by_name(name).ok_or_else(|| SourceError::UnknownQuant {
                name: name.to_owned(),
            })
        })
        .transpose()?;
    let mut skipped = Vec::new();
    let models = if path.is_dir() {
        let files = model_files(path)?;
        if files.is_empty() {
            return Err(SourceError::Empty {
                path: path.to_owned(),
            });
        }
        let mut models = Vec::new();
        for file in &files {
            match ModelSummary::from_path(file) {
                Ok(m) => models.push(m),
                Err(e) => skipped.push(e),
            }
        }
        if models.is_empty() {
            let problems: Vec<String> = skipped.iter().map(ToString::to_string).collect();
            return Err(SourceError::NoneReadable {
                path: path.to_owned(),
                problems: problems.join("; "),
            });
        }
        models
    } else {
        vec![ModelSummary::from_path(path)?]
    };
    let Some(wanted) = wanted else {
        return Ok(Resolved { models, skipped });
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
    Ok(Resolved {
        models: matching,
        skipped,
    })
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
