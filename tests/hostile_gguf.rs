//! Model files that llama.cpp loads and then aborts on (a failed `GGML_ASSERT`, or a C++
//! exception through the FFI) must never reach it: `gguf-serve -m bad.gguf` exits with status
//! 1 and one line naming the file and the key, never by a signal. Each file is the tests' tiny
//! loadable llama with one hostile value.
//!
//! The cases are also run against llama.cpp directly, in a child process, to show each check
//! is still needed: the child must die by SIGABRT. If a llama.cpp update makes a case load and
//! tokenize cleanly, that test fails and the check can go.

mod common;

use common::gguf_fixtures;

use gguf_serve::gguf::{GgufWriter, Value};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The loadable llama's tokens with token #4 (`▁b`) renamed to `▁a`: a repeated token.
fn repeat_a_token(w: &mut GgufWriter) {
    let mut tokens = vec!["<unk>", "<s>", "</s>", "▁a", "▁a", "▁c", "▁d", "▁e"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    w.kv_array(
        "tokenizer.ggml.tokens",
        tokens.into_iter().map(Value::String).collect(),
    );
}

/// Runs `gguf-serve -m path` until it exits (killed after 60 s: a server that started is a
/// failure too); its status and stderr.
fn serve(path: &Path) -> (std::process::ExitStatus, String) {
    let port = common::free_port().to_string();
    let mut child = Command::new(common::binary())
        .args(["-m", path.to_str().unwrap(), "--port", &port, "-t", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("{}: the server started", path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

/// The hostile models: name, the edit of the loadable llama (none: the llama without byte
/// tokens), and what the one line must say. All but the last kill llama.cpp; llama.cpp
/// refuses the last by itself, with a less clear message.
type Edit = fn(&mut GgufWriter);
const CASES: [(&str, Option<Edit>, &str); 8] = [
    (
        "no-byte-tokens",
        None,
        "a SentencePiece (llama) vocabulary without the byte token <0x00>",
    ),
    (
        "repeated-token",
        Some(repeat_a_token),
        "token #4 (\"▁a\") repeats an earlier token",
    ),
    (
        "no-layers",
        Some(|w| {
            w.kv("llama.block_count", Value::U32(0));
        }),
        "llama.block_count is 0; llama.cpp takes 1 to 512 layers",
    ),
    (
        "600-layers",
        Some(|w| {
            w.kv("llama.block_count", Value::U32(600));
        }),
        "llama.block_count is 600",
    ),
    (
        "experts-used-without-experts",
        Some(|w| {
            w.kv("llama.expert_used_count", Value::U32(2));
        }),
        "llama.expert_used_count is 2, more than llama.expert_count (0)",
    ),
    (
        "too-many-experts",
        Some(|w| {
            w.kv("llama.expert_count", Value::U32(4096))
                .kv("llama.expert_used_count", Value::U32(2));
        }),
        "llama.expert_count is 4096 (llama.cpp's limit is 1024)",
    ),
    (
        "no-vocabulary",
        Some(|w| {
            w.kv("tokenizer.ggml.model", Value::String("none".into()))
                .kv("llama.vocab_size", Value::U32(264));
        }),
        "tokenizer.ggml.model is \"none\"",
    ),
    (
        "short-scores",
        Some(|w| {
            w.kv_array("tokenizer.ggml.scores", vec![Value::F32(0.0); 3]);
        }),
        "tokenizer.ggml.scores has 3 entries for 264 tokens",
    ),
];

/// Writes the case `name` into `dir`.
fn write_case(dir: &Path, name: &str) -> PathBuf {
    let (_, edit, _) = CASES.iter().find(|(n, _, _)| *n == name).unwrap();
    let path = dir.join(format!("{name}.gguf"));
    match edit {
        Some(edit) => gguf_fixtures::write_loadable_llama_with(&path, edit),
        None => gguf_fixtures::write_llama_without_byte_tokens(&path),
    }
    path
}

#[test]
fn hostile_models_end_in_one_line_not_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    for (name, _, want) in CASES {
        let path = write_case(dir.path(), name);
        let (status, stderr) = serve(&path);
        assert_eq!(
            status.signal(),
            None,
            "{name}: killed by a signal: {stderr}"
        );
        assert_eq!(status.code(), Some(1), "{name}: {stderr}");
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("gguf-serve:"))
            .collect();
        assert_eq!(lines.len(), 1, "{name}: {stderr}");
        println!("{}", lines[0]);
        assert!(
            lines[0].contains(&format!("{name}.gguf")) && lines[0].contains(want),
            "{name}: {}",
            lines[0]
        );
    }
}

/// Without our checks, llama.cpp kills the process on each case but the last: loading fails a
/// `GGML_ASSERT` (layer and expert counts, a repeated token), or the model loads and
/// tokenizing a character fails one (no vocabulary) or throws through the FFI (no byte tokens).
#[test]
fn llama_cpp_itself_aborts_on_these_files() {
    let dir = tempfile::tempdir().unwrap();
    for (name, _, _) in &CASES[..CASES.len() - 1] {
        let path = write_case(dir.path(), name);
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "load_and_tokenize_in_llama_cpp"])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD_MODEL, &path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "{name}: {:?}\n{stderr}",
            out.status
        );
    }
}

/// The model [`llama_cpp_itself_aborts_on_these_files`] hands its child process.
const CHILD_MODEL: &str = "HOSTILE_GGUF_CHILD_MODEL";

/// The child of [`llama_cpp_itself_aborts_on_these_files`]: loads `CHILD_MODEL` with
/// llama.cpp (no checks of ours) and tokenizes text with a character outside the tiny
/// vocabulary.
#[test]
#[ignore = "run by llama_cpp_itself_aborts_on_these_files in a child process"]
fn load_and_tokenize_in_llama_cpp() {
    use llama_cpp_2::llama_backend::LlamaBackend;
    use llama_cpp_2::model::LlamaModel;
    use llama_cpp_2::model::params::LlamaModelParams;
    let path = std::env::var(CHILD_MODEL).expect("the model to load");
    let backend = LlamaBackend::init().unwrap();
    let model = LlamaModel::load_from_file(&backend, &path, &LlamaModelParams::default())
        .expect("llama.cpp loads it");
    let tokens = model.vocab().tokenize(b"x", true, true);
    panic!("tokenized without aborting: {tokens:?}");
}
