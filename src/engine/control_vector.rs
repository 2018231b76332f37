//! Control vectors (`--control-vector`, `--control-vector-scaled`,
//! `--control-vector-layer-range`): per-layer directions that llama.cpp adds to each layer's
//! output, read and summed as llama.cpp's `common_control_vector_load` does. A file holds
//! 1-D F32 tensors named `direction.N` (N ≥ 1, the layer), all of one length (the model's
//! embedding size); each file's directions are scaled by its strength, and the files' sums
//! are added up. Anything else in a file is refused, naming the file, before the model loads.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::lora::{parse_csv_row, parse_scaled_files};
use crate::gguf::{GgufError, GgufFile};

/// ggml's type id of F32.
const GGML_TYPE_F32: u32 = 0;

/// One control vector file and its strength (`--control-vector-scaled FNAME:SCALE`; 1 for
/// `--control-vector`).
#[derive(Debug, Clone, PartialEq)]
pub struct ControlVectorFile {
    pub path: PathBuf,
    pub strength: f32,
}

/// The control vectors a server applies, with the layers they apply to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ControlVectors {
    /// The summed directions.
    pub directions: Directions,
    /// The first and last layer (inclusive) they apply to; 0 or less: llama-server's defaults,
    /// the first layer (1) and the last.
    pub layer_range: (i32, i32),
}

/// Directions summed over every file: `n_embd` values per layer, layer 1 first (llama.cpp
/// never applies one to layer 0).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directions {
    pub n_embd: usize,
    pub data: Vec<f32>,
}

impl Directions {
    /// The direction for `layer` (1-based), if the files gave one (zeros where only another
    /// layer's was given).
    pub fn layer(&self, layer: usize) -> Option<&[f32]> {
        let start = layer.checked_sub(1)? * self.n_embd;
        self.data.get(start..start + self.n_embd)
    }
}

/// Why the control vectors cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ControlVectorError {
    #[error("control vector {0}")]
    Gguf(#[from] GgufError),
    #[error("control vector {path}: {what}")]
    Invalid { path: PathBuf, what: String },
    #[error("control vector {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `--control-vector-scaled`'s value: `FNAME:SCALE`, comma-separated (llama.cpp's CSV).
pub fn parse_scaled(text: &str) -> Result<Vec<ControlVectorFile>, String> {
    Ok(parse_scaled_files(text, "control-vector-scaled")?
        .into_iter()
        .map(|(path, strength)| ControlVectorFile { path, strength })
        .collect())
}

/// `--control-vector`'s value: file names, comma-separated (llama.cpp's CSV), each at
/// strength 1.
pub fn parse_plain(text: &str) -> Vec<ControlVectorFile> {
    parse_csv_row(text)
        .into_iter()
        .map(|path| ControlVectorFile {
            path: PathBuf::from(path),
            strength: 1.0,
        })
        .collect()
}

/// Reads every file and sums their scaled directions.
pub fn load(files: &[ControlVectorFile]) -> Result<Directions, ControlVectorError> {
    let mut sum = Directions::default();
    for file in files {
        let one = load_one(file)?;
        if sum.n_embd != 0 && one.n_embd != sum.n_embd {
            return Err(invalid(
                &file.path,
                format!(
                    "its directions have {} values, those of the files before it {}",
                    one.n_embd, sum.n_embd
                ),
            ));
        }
        sum.n_embd = one.n_embd;
        if sum.data.len() < one.data.len() {
            sum.data.resize(one.data.len(), 0.0);
        }
        for (total, v) in sum.data.iter_mut().zip(&one.data) {
            *total += v;
        }
    }
    Ok(sum)
}

fn load_one(file: &ControlVectorFile) -> Result<Directions, ControlVectorError> {
    let path = &file.path;
    let gguf = GgufFile::read(path)?;
    if gguf.tensors.is_empty() {
        return Err(invalid(path, "no direction tensors".into()));
    }
    let io = |source| ControlVectorError::Io {
        path: path.clone(),
        source,
    };
    let mut reader = std::fs::File::open(path).map_err(io)?;
    let mut out = Directions::default();
    for tensor in &gguf.tensors {
        let name = &tensor.name;
        let layer = name
            .strip_prefix("direction.")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| {
                invalid(
                    path,
                    format!("tensor {name:?}: not a direction (direction.LAYER)"),
                )
            })?;
        if layer == 0 {
            return Err(invalid(
                path,
                format!("tensor {name:?}: layer 0 takes no direction"),
            ));
        }
        if tensor.ggml_type != GGML_TYPE_F32 {
            return Err(invalid(path, format!("tensor {name:?}: not F32")));
        }
        // ggml_n_dims: trailing dimensions of 1 do not count.
        let dims = tensor
            .shape
            .iter()
            .rposition(|&d| d != 1)
            .map_or(1, |i| i + 1);
        if dims != 1 {
            return Err(invalid(
                path,
                format!("tensor {name:?}: {dims} dimensions, not 1"),
            ));
        }
        let n = usize::try_from(tensor.n_elements()).unwrap_or(usize::MAX);
        if out.n_embd == 0 {
            out.n_embd = n;
        } else if n != out.n_embd {
            return Err(invalid(
                path,
                format!(
                    "tensor {name:?}: {n} values, the file's other directions {}",
                    out.n_embd
                ),
            ));
        }
        let values = read_f32(&mut reader, gguf.data_offset + tensor.offset, n).map_err(io)?;
        let end = layer
            .checked_mul(n)
            .filter(|&e| e <= 1 << 30)
            .ok_or_else(|| {
                invalid(
                    path,
                    format!("tensor {name:?}: layer {layer} is out of range"),
                )
            })?;
        if out.data.len() < end {
            out.data.resize(end, 0.0);
        }
        for (dst, v) in out.data[end - n..end].iter_mut().zip(values) {
            *dst += v * file.strength;
        }
    }
    Ok(out)
}

fn read_f32(reader: &mut std::fs::File, at: u64, n: usize) -> std::io::Result<Vec<f32>> {
    reader.seek(SeekFrom::Start(at))?;
    let mut bytes = vec![0u8; n * 4];
    reader.read_exact(&mut bytes)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn invalid(path: &Path, what: String) -> ControlVectorError {
    ControlVectorError::Invalid {
        path: path.to_path_buf(),
        what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufWriter;

    fn write(dir: &Path, name: &str, build: impl FnOnce(&mut GgufWriter)) -> PathBuf {
        let path = dir.join(name);
        let mut w = GgufWriter::new();
        build(&mut w);
        w.write(&path).unwrap();
        path
    }

    fn file(path: &Path, strength: f32) -> ControlVectorFile {
        ControlVectorFile {
            path: path.to_path_buf(),
            strength,
        }
    }

    #[test]
    fn directions_are_scaled_and_summed_by_layer() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.gguf", |w| {
            w.tensor_f32("direction.1", &[2], &[1.0, 2.0]);
            w.tensor_f32("direction.3", &[2], &[3.0, 4.0]);
        });
        let b = write(dir.path(), "b.gguf", |w| {
            w.tensor_f32("direction.1", &[2], &[10.0, 20.0]);
            // Trailing dimensions of 1 do not count.
            w.tensor_f32("direction.2", &[2, 1], &[4.0, 4.0]);
        });
        let sum = load(&[file(&a, 2.0), file(&b, 0.5)]).unwrap();
        assert_eq!(sum.n_embd, 2);
        assert_eq!(sum.layer(1), Some(&[7.0, 14.0][..]));
        assert_eq!(sum.layer(2), Some(&[2.0, 2.0][..]));
        assert_eq!(sum.layer(3), Some(&[6.0, 8.0][..]));
        assert_eq!(sum.layer(4), None);
        assert_eq!(sum.layer(0), None);
    }

    /// A file's name, how to write it, and what its refusal says.
    type Case = (&'static str, fn(&mut GgufWriter), &'static str);

    #[test]
    fn malformed_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [Case; 6] = [
            ("empty", |_| {}, "no direction tensors"),
            (
                "name",
                |w| {
                    w.tensor_f32("blk.0.weight", &[2], &[0.0; 2]);
                },
                "not a direction",
            ),
            (
                "zero",
                |w| {
                    w.tensor_f32("direction.0", &[2], &[0.0; 2]);
                },
                "layer 0 takes no direction",
            ),
            (
                "f16",
                |w| {
                    w.tensor_f16("direction.1", &[2], &[0.0; 2]);
                },
                "not F32",
            ),
            (
                "2d",
                |w| {
                    w.tensor_f32("direction.1", &[2, 2], &[0.0; 4]);
                },
                "2 dimensions, not 1",
            ),
            (
                "lengths",
                |w| {
                    w.tensor_f32("direction.1", &[2], &[0.0; 2]);
                    w.tensor_f32("direction.2", &[3], &[0.0; 3]);
                },
                "3 values, the file's other directions 2",
            ),
        ];
        for (name, build, want) in cases {
            let path = write(dir.path(), &format!("{name}.gguf"), build);
            let err = load(&[file(&path, 1.0)]).unwrap_err().to_string();
            assert!(
                err.contains(&path.display().to_string()) && err.contains(want),
                "{name}: {err}"
            );
        }
        let two = write(dir.path(), "two.gguf", |w| {
            w.tensor_f32("direction.1", &[2], &[0.0; 2]);
        });
        let three = write(dir.path(), "three.gguf", |w| {
            w.tensor_f32("direction.1", &[3], &[0.0; 3]);
        });
        let err = load(&[file(&two, 1.0), file(&three, 1.0)]).unwrap_err();
        assert!(
            err.to_string()
                .contains("3 values, those of the files before it 2"),
            "{err}"
        );
        let missing = dir.path().join("missing.gguf");
        assert!(load(&[file(&missing, 1.0)]).is_err());
    }

    #[test]
    fn flag_values() {
        assert_eq!(
            parse_scaled("a.gguf:0.5,b.gguf:-2").unwrap(),
            [
                file(Path::new("a.gguf"), 0.5),
                file(Path::new("b.gguf"), -2.0)
            ]
        );
        assert!(parse_scaled("a.gguf").unwrap_err().contains("FNAME:SCALE"));
        assert!(
            parse_scaled("a.gguf:x")
                .unwrap_err()
                .contains("not a number")
        );
        assert_eq!(
            parse_plain("a.gguf,b.gguf"),
            [
                file(Path::new("a.gguf"), 1.0),
                file(Path::new("b.gguf"), 1.0)
            ]
        );
    }
}
