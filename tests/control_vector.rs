//! Control vectors on the demo model, with a vector file written here (a direction for each of
//! its 17 upper layers): at strength 0, cancelled by its negative, or confined to layers the
//! model lacks, the greedy answer is the plain one; at strength 1 it changes; a bad file, or
//! one of the wrong width, stops the start naming it; and (an ignored test that needs the
//! reference llama-server) the same flags give the same greedy text as llama-server's.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use gguf_serve::gguf::GgufWriter;
use serde_json::{Value, json};

use common::{Server, demo_args};

/// The demo model's embedding width and layer count.
const N_EMBD: usize = 640;
const N_LAYER: usize = 18;

/// A control vector of `width` values per layer for layers 1..N_LAYER, strong enough to move
/// greedy choices.
fn write_vector(path: &Path, width: usize) {
    let mut w = GgufWriter::new();
    for layer in 1..N_LAYER {
        let values: Vec<f32> = (0..width)
            .map(|i| 0.5 * ((i * 7 + layer * 13) as f32 * 0.37).sin())
            .collect();
        w.tensor_f32(&format!("direction.{layer}"), &[width as u64], &values);
    }
    w.write(path).unwrap();
}

fn vector_file(dir: &Path) -> PathBuf {
    let path = dir.join("cvec.gguf");
    write_vector(&path, N_EMBD);
    path
}

fn greedy(server: &Server) -> Value {
    let (status, reply) = server.post(
        "/completion",
        &json!({ "prompt": "The capital of France is", "n_predict": 16, "temperature": 0,
                 "cache_prompt": false }),
    );
    assert_eq!(status, 200, "{reply}");
    reply["content"].clone()
}

#[test]
fn control_vectors_steer_greedy_output_within_their_layers() {
    let dir = tempfile::tempdir().unwrap();
    let cvec = vector_file(dir.path());
    let cvec = cvec.to_str().unwrap();
    let plain = greedy(&Server::start(&["-np", "1"]));
    let answer = |flags: &[&str]| {
        let mut args = vec!["-np", "1"];
        args.extend_from_slice(flags);
        greedy(&Server::start(&args))
    };
    let steered = answer(&["--control-vector", cvec]);
    assert_ne!(
        steered, plain,
        "a control vector at strength 1 left the answer as it was"
    );
    let zero = format!("{cvec}:0");
    assert_eq!(answer(&["--control-vector-scaled", &zero]), plain);
    // The file twice, once negated: the sums cancel.
    let cancelled = format!("{cvec}:0.5,{cvec}:-0.5");
    assert_eq!(answer(&["--control-vector-scaled", &cancelled]), plain);
    // Layers beyond the model's: nothing to steer.
    assert_eq!(
        answer(&[
            "--control-vector",
            cvec,
            "--control-vector-layer-range",
            "30",
            "40"
        ]),
        plain
    );
    // Strength 1 given either way is the same vector.
    let one = format!("{cvec}:1");
    assert_eq!(answer(&["--control-vector-scaled", &one]), steered);
}

#[test]
fn a_bad_control_vector_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let narrow = dir.path().join("narrow.gguf");
    write_vector(&narrow, 3);
    let missing = dir.path().join("missing.gguf");
    let cases = [
        (
            vec!["--control-vector", narrow.to_str().unwrap()],
            "control vectors: their directions have 3 values, the model's embedding 640",
        ),
        (
            vec!["--control-vector", missing.to_str().unwrap()],
            missing.to_str().unwrap(),
        ),
        (
            vec!["--control-vector-scaled", "x.gguf"],
            "control-vector-scaled format: FNAME:SCALE",
        ),
    ];
    for (flags, want) in cases {
        let out = Command::new(common::binary())
            .args(demo_args(&flags))
            .args(["--port", &common::free_port().to_string()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {stderr}");
        assert!(stderr.contains(want), "{flags:?}: {stderr}");
    }
}

/// The same greedy answers as the reference llama-server, on the same flags.
#[test]
#[ignore = "needs the reference llama-server: GGUF_SERVE_LLAMA_SERVER"]
fn the_same_answers_as_llama_server() {
    let reference = common::reference_llama_server();
    let dir = tempfile::tempdir().unwrap();
    let cvec = vector_file(dir.path());
    let cvec = cvec.to_str().unwrap();
    let scaled = format!("{cvec}:0.6");
    let runs = [
        vec!["--control-vector", cvec],
        vec!["--control-vector-scaled", &scaled],
        vec![
            "--control-vector",
            cvec,
            "--control-vector-layer-range",
            "4",
            "12",
        ],
    ];
    for flags in runs {
        let mut extra = vec!["-np", "1"];
        extra.extend_from_slice(&flags);
        let args = demo_args(&extra);
        let ours = greedy(&Server::start_with(&args));
        let theirs = greedy(&Server::start_program(&reference, &args));
        assert_eq!(ours, theirs, "{flags:?}");
    }
}
