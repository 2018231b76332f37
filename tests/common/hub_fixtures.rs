//! The models the hub tests serve from the fake Hub: a llama that llama.cpp loads, quantized by
//! our own `gguf-serve quantize --ladder` into Q8_0, Q6_K, Q4_K_M and Q2_K (each over 2 MiB, so
//! a header read is clearly not a download), the Q8_0 split in two parts with llama.cpp's split
//! keys, and the files a GGUF repo also holds that are never models (`mmproj-F16.gguf`,
//! `imatrix.gguf`, README, .gitattributes). Made once per test binary, in a folder under
//! cargo's target/tmp named by the test process (folders of exited ones are removed).
//!
//! Needs `mod fake_hub;`, `mod gguf_fixtures;` and `mod sha;` beside it in the test crate.

#![allow(dead_code)]

use crate::fake_hub::RepoSpec;
use crate::gguf_fixtures;
use gguf_serve::gguf::{GgufFile, GgufWriter, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The quants of the ladder, best first, as the file names spell them.
pub const LADDER: [&str; 4] = ["Q8_0", "Q6_K", "Q4_K_M", "Q2_K"];

/// The ladder's file names: `tiny-Q8_0.gguf` …
pub fn ladder_file(quant: &str) -> String {
    format!("tiny-{quant}.gguf")
}

/// The two parts of the split Q8_0.
pub const SPLIT_PARTS: [&str; 2] = [
    "tiny-Q8_0-00001-of-00002.gguf",
    "tiny-Q8_0-00002-of-00002.gguf",
];

/// Files every GGUF repo here holds that are not models.
pub const NOT_MODELS: [&str; 2] = ["mmproj-F16.gguf", "imatrix.gguf"];

/// The fixture folder: the ladder, the split parts, the mmproj and the imatrix.
pub fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(build)
}

/// The local copy of fixture `name` (a ladder file, a split part, or one of [`NOT_MODELS`]).
pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// The header size (the offset of the tensor data) of fixture `name`.
pub fn header_size(name: &str) -> u64 {
    GgufFile::read(&fixture(name)).unwrap().data_offset
}

/// A repo `id` with the whole ladder as single files, the mmproj, the imatrix, and text files.
pub fn ladder_repo(id: &str) -> RepoSpec {
    let mut repo = RepoSpec::new(id);
    for quant in LADDER {
        let name = ladder_file(quant);
        repo = repo.file_from(&name, &fixture(&name));
    }
    with_extras(repo)
}

/// A repo `id` whose Q8_0 is split in two parts, beside single-file Q4_K_M and Q2_K, the
/// mmproj, the imatrix, and text files.
pub fn split_repo(id: &str) -> RepoSpec {
    let mut repo = RepoSpec::new(id);
    for part in SPLIT_PARTS {
        repo = repo.file_from(part, &fixture(part));
    }
    for quant in ["Q4_K_M", "Q2_K"] {
        let name = ladder_file(quant);
        repo = repo.file_from(&name, &fixture(&name));
    }
    with_extras(repo)
}

/// A repo `id` with no GGUF file: a safetensors model card.
pub fn no_gguf_repo(id: &str) -> RepoSpec {
    RepoSpec::new(id)
        .file("README.md", "# not GGUF\n")
        .file(
            "config.json",
            "{\"architectures\":[\"LlamaForCausalLM\"]}\n",
        )
        .file("model.safetensors", vec![7u8; 4096])
}

fn with_extras(mut repo: RepoSpec) -> RepoSpec {
    for name in NOT_MODELS {
        repo = repo.file_from(name, &fixture(name));
    }
    repo.file(
        "README.md",
        "---\nlicense: mit\n---\n# tiny\nA test model.\n",
    )
    .file(
        ".gitattributes",
        "*.gguf filter=lfs diff=lfs merge=lfs -text\n",
    )
}

fn build() -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    // Folders of earlier runs: named by the pid of a test process that has exited.
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.strip_prefix("hub-fixtures-");
            if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = root.join(format!("hub-fixtures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("tiny-F16.gguf");
    gguf_fixtures::write_ladder_llama(&source);
    let out = Command::new(env!("CARGO_BIN_EXE_gguf-serve"))
        .args(["quantize", source.to_str().unwrap(), "--ladder"])
        .arg(&dir)
        .args(["--only", &LADDER.join(",").to_lowercase(), "-t", "2"])
        .output()
        .expect("running gguf-serve quantize");
    assert!(
        out.status.success(),
        "quantize --ladder failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&source).unwrap();
    for quant in LADDER {
        let path = dir.join(ladder_file(quant));
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(
            size >= 2 << 20,
            "{}: {size} bytes, under 2 MiB",
            path.display()
        );
    }
    split(&dir.join(ladder_file("Q8_0")), &dir);
    not_model(&dir.join(NOT_MODELS[0]), "clip", "mmproj");
    not_model(&dir.join(NOT_MODELS[1]), "llama", "imatrix");
    dir
}

/// Writes `file` as the two parts of [`SPLIT_PARTS`] into `dir`, as `gguf-split` does: the
/// metadata in the first, half the tensors in each, and in every part `split.no` (from 0),
/// `split.count` and `split.tensors.count`.
fn split(file: &Path, dir: &Path) {
    let header = GgufFile::read(file).unwrap();
    let bytes = std::fs::read(file).unwrap();
    let n = header.tensors.len();
    let split_keys = |w: &mut GgufWriter, no: u16| {
        w.kv("split.no", Value::U16(no))
            .kv("split.count", Value::U16(2))
            .kv("split.tensors.count", Value::I32(n as i32));
    };
    let mut parts = [GgufWriter::new(), GgufWriter::new()];
    for (k, v) in &header.metadata {
        if k != "general.alignment" {
            parts[0].kv(k, v.clone());
        }
    }
    split_keys(&mut parts[0], 0);
    split_keys(&mut parts[1], 1);
    for (i, t) in header.tensors.iter().enumerate() {
        let start = (header.data_offset + t.offset) as usize;
        let data = bytes[start..start + t.n_bytes as usize].to_vec();
        parts[usize::from(i >= n / 2)].tensor(&t.name, t.ggml_type, &t.shape, data);
    }
    for (w, name) in parts.iter().zip(SPLIT_PARTS) {
        w.write(&dir.join(name)).unwrap();
    }
}

/// A 2 MiB GGUF that is not a language model: a projector or an importance matrix.
fn not_model(path: &Path, architecture: &str, kind: &str) {
    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::String(architecture.into()))
        .kv("general.type", Value::String(kind.into()))
        .kv("general.name", Value::String(format!("tiny {kind}")));
    let values: Vec<f32> = (0..(512 * 1024)).map(|i| (i % 97) as f32 * 1e-3).collect();
    w.tensor_f32(&format!("{kind}.weight"), &[512, 1024], &values);
    w.write(path).unwrap();
}
