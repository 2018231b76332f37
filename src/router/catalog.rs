//! The models a router serves, as llama-server's router finds them. In a `--models-dir` folder,
//! each `.gguf` file at the top is one model named by its file name without `.gguf`; each
//! sub-folder holding a `.gguf` is one model named by the folder (split parts, or several quants
//! of one model, which the model's server then chooses among as `--model FOLDER` does).
//! Multimodal projectors (`mmproj` in the name) are never models of their own. Without a
//! folder, the models of the Hugging Face cache (`gguf-serve pull`, `-hf`), each named
//! `ORG/REPO:QUANT`.

use std::path::{Path, PathBuf};

/// One model the router can load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name clients give in `"model"`.
    pub id: String,
    /// What the model's server gets as `--model`: a file or a folder.
    pub path: PathBuf,
    /// Where it was found, as llama-server's `/models` says: `models_dir` or `cache`.
    pub source: &'static str,
}

/// The models of `dir`, sorted by id.
pub fn scan(dir: &Path) -> std::io::Result<Vec<Entry>> {
    if !dir.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{}: does not exist or is not a folder", dir.display()),
        ));
    }
    let mut entries = Vec::new();
    for item in std::fs::read_dir(dir)? {
        let path = item?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if path.is_dir() {
            if holds_a_model(&path)? {
                entries.push(Entry {
                    id: name.to_owned(),
                    path,
                    source: "models_dir",
                });
            }
        } else if let Some(id) = model_file_id(name)
            && path.is_file()
        {
            entries.push(Entry {
                id: id.to_owned(),
                path,
                source: "models_dir",
            });
        }
    }
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(entries)
}

/// The models of the Hugging Face cache at `dir`, each named `ORG/REPO:QUANT` (or
/// `ORG/REPO:FILE` where a repo holds two of one quant), sorted by id.
pub fn cached(dir: &Path) -> Vec<Entry> {
    let models = crate::hub::cached_models(dir);
    let mut entries: Vec<Entry> = models
        .iter()
        .map(|m| {
            let twins = models
                .iter()
                .filter(|o| o.repo == m.repo && o.quant == m.quant)
                .count();
            let tag = if twins > 1 || m.quant == "?" {
                m.file.trim_end_matches(".gguf").to_owned()
            } else {
                m.quant.clone()
            };
            Entry {
                id: format!("{}:{tag}", m.repo),
                path: m.path.clone(),
                source: "cache",
            }
        })
        .collect();
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    entries
}

/// The id of a file that is a model by its name (`x.gguf`, not a projector).
fn model_file_id(name: &str) -> Option<&str> {
    name.strip_suffix(".gguf")
        .filter(|_| !name.contains("mmproj"))
}

fn holds_a_model(dir: &Path) -> std::io::Result<bool> {
    for item in std::fs::read_dir(dir)? {
        let path = item?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if model_file_id(name).is_some() && path.is_file() {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_folders_are_models_projectors_and_other_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in [
            "b-model-Q4_K_M.gguf",
            "a-model.gguf",
            "mmproj-F16.gguf",
            "notes.txt",
            "vision/model-Q8_0.gguf",
            "vision/mmproj-F16.gguf",
            "big/big-00001-of-00002.gguf",
            "big/big-00002-of-00002.gguf",
            "empty/readme.md",
            "only-projector/mmproj.gguf",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        }
        let got: Vec<(String, PathBuf)> = scan(root)
            .unwrap()
            .into_iter()
            .map(|e| (e.id, e.path.strip_prefix(root).unwrap().to_owned()))
            .collect();
        let want: Vec<(String, PathBuf)> = [
            ("a-model", "a-model.gguf"),
            ("b-model-Q4_K_M", "b-model-Q4_K_M.gguf"),
            ("big", "big"),
            ("vision", "vision"),
        ]
        .iter()
        .map(|(id, p)| (id.to_string(), PathBuf::from(p)))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_it() {
        let err = scan(Path::new("/no/such/models")).unwrap_err();
        assert!(err.to_string().contains("/no/such/models"), "{err}");
    }
}
