//! Embeddings and rerank on a tiny BERT-style encoder written in test code: the shapes of
//! `/embedding`, `/embeddings`, `/v1/embeddings` and the rerank routes, pooling `none`
//! (per-token vectors), batching (several inputs in one batch equal each alone), base64, and
//! llama-server's error JSON for bad input, after which the server keeps serving.

#[path = "common/bert_fixture.rs"]
mod bert_fixture;
mod common;

use std::path::PathBuf;

use base64::Engine as _;
use serde_json::{Value, json};

use common::{Server, assert_error};

/// The tiny BERT (pooling as llama.cpp numbers it), in a temp folder kept while it serves.
fn tiny_bert(pooling: u32, rank_head: bool) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-bert.gguf");
    bert_fixture::write_tiny_bert(&path, pooling, rank_head);
    (dir, path)
}

fn start(model: &std::path::Path, extra: &[&str]) -> Server {
    let mut args: Vec<String> = ["-m", &model.display().to_string(), "-t", "1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    Server::start_with(&args)
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a vector: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn embedding_routes_on_a_tiny_encoder() {
    let (_dir, model) = tiny_bert(1, false);
    let server = start(&model, &["--embedding"]);

    // llama-server's own shape: a list, each input's vectors nested (one when pooled).
    let (status, body) = server.post("/embedding", &json!({ "content": "hello world" }));
    assert_eq!(status, 200, "{body}");
    let items = body.as_array().expect("a list");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["index"], 0);
    let vectors = items[0]["embedding"].as_array().unwrap();
    assert_eq!(vectors.len(), 1, "pooled: one vector");
    let v = floats(&vectors[0]);
    assert_eq!(v.len(), 32);
    let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(
        (norm - 1.0).abs() < 1e-4,
        "euclidean-normalized by default: {norm}"
    );

    // Identical inputs give identical vectors (and `/embeddings` is the same route).
    let (_, again) = server.post("/embeddings", &json!({ "input": "hello world" }));
    assert_eq!(floats(&again[0]["embedding"][0]), v);

    // OpenAI's shape: strings, token ids, arrays of either; usage counts the tokens read.
    let inputs = json!(["hello world", "a b c", "cat", "d e s"]);
    let (status, batch) = server.post("/v1/embeddings", &json!({ "input": inputs, "model": "m" }));
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["object"], "list");
    assert_eq!(batch["model"], "m");
    let data = batch["data"].as_array().unwrap();
    assert_eq!(data.len(), 4);
    let mut n_tokens = 0;
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["index"], i);
        assert_eq!(item["object"], "embedding");
        let (_, one) = server.post("/v1/embeddings", &json!({ "input": inputs[i] }));
        let d = max_diff(
            &floats(&item["embedding"]),
            &floats(&one["data"][0]["embedding"]),
        );
        assert!(d <= 1e-5, "input {i}: batched differs from alone by {d}");
        n_tokens += one["usage"]["prompt_tokens"].as_u64().unwrap();
    }
    assert_eq!(batch["usage"]["prompt_tokens"], n_tokens);
    assert_eq!(batch["usage"]["total_tokens"], n_tokens);
    // "hello world" is [CLS] hello world [SEP]: token ids give the same vector.
    let (_, ids) = server.post("/v1/embeddings", &json!({ "input": [2, 10, 11, 3] }));
    assert_eq!(ids["usage"]["prompt_tokens"], 4);
    assert!(max_diff(&floats(&ids["data"][0]["embedding"]), &v) <= 1e-6);
    let (_, many) = server.post(
        "/v1/embeddings",
        &json!({ "input": [[2, 10, 11, 3], [2, 12, 3]] }),
    );
    assert_eq!(many["data"].as_array().unwrap().len(), 2);

    // base64: the little-endian f32 bytes of the same vector.
    let (_, b64) = server.post(
        "/v1/embeddings",
        &json!({ "input": "hello world", "encoding_format": "base64" }),
    );
    assert_eq!(b64["data"][0]["encoding_format"], "base64");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(decoded, v);

    // embd_normalize: -1 leaves the pooled vector as it is, 1 gives unit taxicab length.
    let (_, raw) = server.post(
        "/embedding",
        &json!({ "content": "hello world", "embd_normalize": -1 }),
    );
    let raw = floats(&raw[0]["embedding"][0]);
    let raw_norm: f32 = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(max_diff(&raw.iter().map(|x| x / raw_norm).collect::<Vec<_>>(), &v) < 1e-5);
    let (_, l1) = server.post(
        "/embedding",
        &json!({ "content": "hello world", "embd_normalize": 1 }),
    );
    let l1: f32 = floats(&l1[0]["embedding"][0]).iter().map(|x| x.abs()).sum();
    assert!((l1 - 1.0).abs() < 1e-4, "taxicab norm {l1}");

    // Bad input: llama-server's error JSON, and the server keeps serving.
    let cases = [
        (json!({}), "\"input\" or \"content\" must be provided"),
        (json!({ "input": [] }), "\"input\" must not be empty"),
        (
            json!({ "input": "a", "encoding_format": "int8" }),
            "The format to return the embeddings in. Can be either float or base64",
        ),
    ];
    for (body, want) in cases {
        let (status, answer) = server.post("/v1/embeddings", &body);
        assert_eq!(
            assert_error(status, &answer, 400, "invalid_request_error"),
            want
        );
    }
    let (status, answer) = server.post_raw("/v1/embeddings", "{not json");
    assert_error(status, &answer, 400, "invalid_request_error");
    // An encoder cannot generate: llama-server's words, with its 501 for what the server does
    // not support (llama-server itself answers 500).
    let cannot = "the current context does not support logits computation. skipping";
    let (status, answer) = server.post("/completion", &json!({ "prompt": "a", "n_predict": 2 }));
    assert_eq!(
        assert_error(status, &answer, 501, "not_supported_error"),
        cannot
    );
    let chat = json!({ "messages": [{ "role": "user", "content": "a" }], "max_tokens": 2 });
    let (status, answer) = server.post("/v1/chat/completions", &chat);
    assert_eq!(
        assert_error(status, &answer, 501, "not_supported_error"),
        cannot
    );
    // The rerank routes need --reranking.
    let (status, answer) = server.post("/rerank", &json!({ "query": "a", "documents": ["b"] }));
    let message = assert_error(status, &answer, 501, "not_supported_error");
    assert_eq!(
        message,
        "This server does not support reranking. Start it with `--reranking`"
    );
    let (status, _) = server.post("/embedding", &json!({ "content": "a" }));
    assert_eq!(status, 200, "still serving");
}

#[test]
fn pooling_none_gives_a_vector_per_token() {
    let (_dir, model) = tiny_bert(1, false);
    let server = start(&model, &["--embedding", "--pooling", "none"]);
    let (status, body) = server.post("/embedding", &json!({ "content": ["hello world", "cat"] }));
    assert_eq!(status, 200, "{body}");
    let per_token: Vec<usize> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["embedding"].as_array().unwrap().len())
        .collect();
    assert_eq!(per_token, [4, 3], "[CLS] … [SEP]: one vector per token");
    // Not normalized: per-token vectors come as the model gives them.
    let first = floats(&body[0]["embedding"][0]);
    assert_eq!(first.len(), 32);
    let (status, answer) = server.post("/v1/embeddings", &json!({ "input": "cat" }));
    let message = assert_error(status, &answer, 400, "invalid_request_error");
    assert_eq!(
        message,
        "Pooling type 'none' is not OAI compatible. Please use a different pooling type"
    );
}

#[test]
fn an_input_longer_than_the_physical_batch_is_refused() {
    let (_dir, model) = tiny_bert(1, false);
    let server = start(&model, &["--embedding", "-ub", "8", "-b", "8"]);
    let (status, answer) = server.post("/embedding", &json!({ "content": "a b c d e a b c d e" }));
    let message = assert_error(status, &answer, 500, "server_error");
    assert_eq!(
        message,
        "input (12 tokens) is too large to process. increase the physical batch size (current batch size: 8)"
    );
    let (status, _) = server.post("/embedding", &json!({ "content": "a b" }));
    assert_eq!(status, 200, "still serving");
}

#[test]
fn embeddings_need_the_flag() {
    let (_dir, model) = tiny_bert(1, false);
    let server = start(&model, &[]);
    for route in ["/embedding", "/embeddings", "/v1/embeddings"] {
        let (status, answer) = server.post(route, &json!({ "input": "a" }));
        let message = assert_error(status, &answer, 501, "not_supported_error");
        assert_eq!(
            message,
            "This server does not support embeddings. Start it with `--embeddings`"
        );
    }
}

#[test]
fn rerank_shapes_on_a_tiny_reranker() {
    let (_dir, model) = tiny_bert(4, true);
    let server = start(&model, &["--reranking"]);
    let documents = json!(["hello world", "a b c", "cat", "d e"]);
    let mut scores = Vec::new();
    for (i, doc) in documents.as_array().unwrap().iter().enumerate() {
        let (status, one) =
            server.post("/rerank", &json!({ "query": "hello", "documents": [doc] }));
        assert_eq!(status, 200, "{one}");
        scores.push((i, one["results"][0]["relevance_score"].as_f64().unwrap()));
    }
    scores.sort_by(|a, b| b.1.total_cmp(&a.1));
    for route in ["/rerank", "/reranking", "/v1/rerank", "/v1/reranking"] {
        let (status, body) = server.post(
            route,
            &json!({ "query": "hello", "documents": documents, "top_n": 3, "model": "r" }),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["object"], "list");
        assert_eq!(body["model"], "r");
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), 3, "top_n");
        for (r, (index, score)) in results.iter().zip(&scores) {
            assert_eq!(r["index"], *index, "sorted by score: {body}");
            let got = r["relevance_score"].as_f64().unwrap();
            assert!(
                (got - score).abs() < 1e-5,
                "batched score {got} vs alone {score}"
            );
        }
        assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    }
    // TEI's shape: `texts`, a bare list with `score`, and `text` on `return_text`.
    let (_, tei) = server.post(
        "/rerank",
        &json!({ "query": "hello", "texts": documents, "return_text": true }),
    );
    let tei = tei.as_array().expect("TEI: a bare list");
    assert_eq!(tei.len(), 4);
    assert_eq!(tei[0]["index"], scores[0].0);
    assert_eq!(tei[0]["text"], documents[scores[0].0]);
    assert!(tei[0]["score"].is_number());

    let cases = [
        (json!({ "documents": ["a"] }), "\"query\" must be provided"),
        (
            json!({ "query": 1, "documents": ["a"] }),
            "\"query\" must be a string",
        ),
        (
            json!({ "query": "a", "documents": [] }),
            "\"documents\" must be a non-empty string array",
        ),
        (
            json!({ "query": "a", "documents": "a" }),
            "\"documents\" must be a non-empty string array",
        ),
    ];
    for (body, want) in cases {
        let (status, answer) = server.post("/v1/rerank", &body);
        assert_eq!(
            assert_error(status, &answer, 400, "invalid_request_error"),
            want
        );
    }
    let (status, _) = server.post("/rerank", &json!({ "query": "a", "documents": ["b"] }));
    assert_eq!(status, 200, "still serving");
}

#[test]
fn a_decoder_generates_and_embeds_side_by_side() {
    // The demo model (Gemma 3, causal) with embeddings on: completions still work, as with
    // llama-server, and an embedding batch read while a completion generates gives the
    // vectors it gives alone.
    let server = Server::start(&["--embedding", "--pooling", "last"]);
    let texts = json!(["The cat sleeps on the sofa.", "Stocks fell sharply today."]);
    let (status, alone) = server.post("/v1/embeddings", &json!({ "input": texts }));
    assert_eq!(status, 200, "{alone}");
    let generating = server.start_long_stream();
    let (_, beside) = server.post("/v1/embeddings", &json!({ "input": texts }));
    drop(generating);
    for i in 0..2 {
        let (a, b) = (
            floats(&alone["data"][i]["embedding"]),
            floats(&beside["data"][i]["embedding"]),
        );
        assert_eq!(a.len(), 640, "Gemma 3 270M's n_embd");
        // On a Q4_K decoder llama.cpp's vectors depend on what shares the ubatch (an input
        // read alone differs from the same input batched by 9e-3, in llama-server too; 0.9989
        // cosine on an AMX CPU), so this checks that nothing mixes, not bit equality.
        let cos: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!(cos > 0.995, "input {i} beside a generation: cosine {cos}");
    }
    let (status, done) = server.post(
        "/completion",
        &json!({ "prompt": "The capital of France is", "n_predict": 4, "temperature": 0 }),
    );
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["tokens_predicted"], 4);
}

#[test]
fn embedding_tokens_count_in_metrics() {
    let (_dir, model) = tiny_bert(1, false);
    let server = start(&model, &["--embedding", "--metrics"]);
    let before = server.metric("llamacpp:prompt_tokens_total");
    let (status, body) = server.post(
        "/v1/embeddings",
        &json!({ "input": ["hello world", "a cat sat on the mat"] }),
    );
    assert_eq!(status, 200, "{body}");
    let used = body["usage"]["prompt_tokens"].as_f64().unwrap();
    assert!(used > 0.0, "{body}");
    // As llama-server counts them: every input token is a prompt token.
    assert_eq!(server.metric("llamacpp:prompt_tokens_total") - before, used);
}
