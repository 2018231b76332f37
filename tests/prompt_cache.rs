//! The host prompt cache (`--cache-ram`, `--cache-idle-slots`), observed from outside: a
//! conversation that lost its slot is restored from host memory and goes on exactly as if it had
//! been computed again, `--cache-ram 0` turns the cache off, a full KV cache takes its room from
//! an idle slot instead of failing the request, and `--cache-reuse` moves cached chunks that a
//! prompt repeats after a change.

mod common;

use std::path::Path;

use common::Server;
use serde_json::{Value, json};

/// A prompt of about `sentences` × 13 tokens about `topic`.
fn essay(topic: &str, sentences: usize) -> String {
    (0..sentences)
        .map(|i| format!("{topic}, note {i}: it matters to everyone here. "))
        .collect()
}

fn complete(server: &Server, prompt: &str, n_predict: u32, cache_prompt: bool) -> Value {
    let body = json!({
        "prompt": prompt,
        "n_predict": n_predict,
        "temperature": 0,
        "cache_prompt": cache_prompt,
    });
    let (status, reply) = server.post("/completion", &body);
    assert_eq!(status, 200, "{reply}");
    reply
}

fn n_tokens(server: &Server, text: &str) -> u64 {
    let (_, reply) = server.post("/tokenize", &json!({ "content": text }));
    reply["tokens"].as_array().unwrap().len() as u64
}

fn cache_n(reply: &Value) -> u64 {
    reply["timings"]["cache_n"].as_u64().unwrap()
}

/// Two slots, three conversations: the first loses its slot, comes back with one more turn, is
/// restored from the host cache, and its greedy continuation equals the one computed from
/// scratch. At `-ub 1` every row is computed alone, so the comparison is about the restored
/// cells, not about how llama.cpp's kernels round batches of different shapes (tests/batching.rs).
#[test]
fn a_restored_conversation_goes_on_as_if_computed_again() {
    let server = Server::start(&["-np", "2", "-ub", "1", "--metrics"]);
    let first = essay("rivers", 15);
    let answer = complete(&server, &first, 12, true)["content"]
        .as_str()
        .unwrap()
        .to_string();
    for topic in ["bread", "stars"] {
        complete(&server, &essay(topic, 15), 4, true);
    }
    let again = format!("{first}{answer} And so,");
    let restored = complete(&server, &again, 16, true);
    assert!(
        cache_n(&restored) >= n_tokens(&server, &first),
        "the first conversation should come back from the host cache: {restored}"
    );
    assert!(server.metric("gguf_serve_prompt_cache_hits_total") >= 1.0);
    assert!(
        server.metric("gguf_serve_prompt_cache_restored_tokens_total")
            >= n_tokens(&server, &first) as f64
    );
    let computed = complete(&server, &again, 16, false);
    assert_eq!(cache_n(&computed), 0, "{computed}");
    assert_eq!(restored["content"], computed["content"]);
}

/// One slot, two conversations taking turns: with the cache the first comes back restored, with
/// `--cache-ram 0` it is computed again.
#[test]
fn cache_ram_zero_turns_the_cache_off() {
    let returning = |server: &Server| {
        let first = essay("harbours", 30);
        complete(server, &first, 4, true);
        complete(server, &essay("orchards", 30), 4, true);
        let reply = complete(server, &format!("{first} Next,"), 4, true);
        (cache_n(&reply), n_tokens(server, &first))
    };

    let on = Server::start(&["-np", "1", "--metrics"]);
    let (cached, n_first) = returning(&on);
    assert!(cached >= n_first, "restored: {cached} of {n_first}");
    assert_eq!(on.metric("gguf_serve_prompt_cache_hits_total"), 1.0);
    assert!(on.metric("gguf_serve_prompt_cache_entries") >= 1.0);
    assert!(on.metric("gguf_serve_prompt_cache_bytes") > 0.0);
    let (_, props) = on.get("/props");
    let cache = &props["memory"]["prompt_cache"];
    // 8 GiB by default, less where the host has less left after the model.
    let limit = cache["limit_bytes"].as_u64().unwrap();
    assert!(limit > 0 && limit <= 8192 << 20, "{cache}");
    assert!(cache["bytes"].as_u64().unwrap() > 0, "{cache}");

    let off = Server::start(&["-np", "1", "--metrics", "--cache-ram", "0"]);
    let (cached, _) = returning(&off);
    assert!(
        cached < 5,
        "nothing to restore from: {cached} tokens cached"
    );
    assert_eq!(off.metric("gguf_serve_prompt_cache_hits_total"), 0.0);
    assert_eq!(off.metric("gguf_serve_prompt_cache_bytes"), 0.0);
    let (_, props) = off.get("/props");
    assert_eq!(props["memory"]["prompt_cache"]["limit_bytes"], 0);
}

/// Two slots sharing 768 cells and two prompts of about 400 tokens (short of the demo model's
/// 512-token sliding window, so that a whole prompt can be reused): without parking idle slots
/// (`--no-cache-idle-slots`), the second finds the cache full of the first's cells, which are
/// saved to host memory and cleared; the first then comes back restored, making room the same
/// way. Parking idle slots as soon as another request starts (`--cache-idle-after 0`, as
/// llama-server does), the cache is never full.
#[test]
fn a_full_kv_cache_takes_room_from_an_idle_slot() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str], log: &Path| {
        let mut args = vec!["-c", "768", "-np", "2", "--kv-unified", "--metrics"];
        args.extend_from_slice(extra);
        let server = Server::start_logged(&args, "127.0.0.1", log);
        let first = essay("glaciers", 30);
        complete(&server, &first, 4, true);
        complete(&server, &essay("volcanoes", 30), 4, true);
        let back = complete(&server, &first, 4, true);
        assert!(
            cache_n(&back) >= n_tokens(&server, &first) - 1,
            "restored: {back}"
        );
        std::fs::read_to_string(log).unwrap()
    };
    let full = "the KV cache is full";

    let log = run(&["--no-cache-idle-slots"], &dir.path().join("kept.log"));
    assert_eq!(log.matches(full).count(), 2, "{log}");

    let log = run(&["--cache-idle-after", "0"], &dir.path().join("parked.log"));
    assert!(!log.contains(full), "{log}");
}

/// One KV cache of 512 cells for two slots, idle slots left in place: a stream of 300 tokens
/// holds more of it with every token, and a prompt of about 400 tokens that arrives after its
/// 150th finds no room. The prompt waits until the stream has finished and its idle cells are
/// cleared; neither request fails (llama-server, and this engine before, failed both).
#[test]
fn a_prompt_that_finds_the_kv_cache_full_waits_for_room() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let args = [
        "-c",
        "512",
        "-np",
        "2",
        "--kv-unified",
        "--no-cache-idle-slots",
    ];
    let server = Server::start_logged(&args, "127.0.0.1", &log);
    let long_prompt = essay("bread", 30);
    let stream = json!({
        "prompt": essay("rivers", 2),
        "n_predict": 300,
        "ignore_eos": true,
        "temperature": 0,
        "stream": true,
    });
    let response = server
        .client()
        .post(format!("{}/completion", server.url))
        .json(&stream)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut events = BufReader::new(response)
        .lines()
        .map(|line| line.unwrap())
        .filter_map(|line| line.strip_prefix("data: ").map(str::to_string))
        .map(|data| serde_json::from_str::<Value>(&data).unwrap());
    let head: Vec<Value> = events.by_ref().take(150).collect();
    assert_eq!(head.len(), 150);
    let (prompt_reply, last) = std::thread::scope(|s| {
        let prompt = s.spawn(|| {
            let body = json!({ "prompt": long_prompt, "n_predict": 8, "temperature": 0 });
            server.post("/completion", &body)
        });
        let last = events.last().expect("the stream ends with its summary");
        (prompt.join().unwrap(), last)
    });
    assert!(
        n_tokens(&server, &long_prompt) + 150 > 512,
        "the prompt should not fit beside the stream"
    );
    assert_eq!(last["stop"], true, "{last}");
    assert_eq!(last["timings"]["predicted_n"], 300, "{last}");
    let (status, reply) = prompt_reply;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["timings"]["predicted_n"], 8, "{reply}");
    // The stream's idle cells made the room.
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("the KV cache is full: clearing an idle slot"),
        "{log}"
    );
}

/// `--cache-idle-after MS`: an idle slot goes to the host cache once it has been idle that long
/// while another slot works, not before. A conversation that comes back sooner finds its cells
/// in place (no save, no restore); with 0 its slot is parked as soon as another request starts,
/// as llama-server parks it, and the conversation comes back restored.
#[test]
fn an_idle_slot_is_parked_after_its_delay_not_before() {
    let first = essay("rivers", 10);
    // A long second request on the other slot: at 2 threads, well over a second.
    let long_other = json!({
        "prompt": essay("bread", 10),
        "n_predict": 256,
        "ignore_eos": true,
        "temperature": 0,
    });
    // Parked entries after the other request, then hits and cached tokens of the return.
    let run = |after: &str, other: &Value| {
        let server = Server::start(&[
            "-np",
            "2",
            "--kv-unified",
            "--metrics",
            "--cache-idle-after",
            after,
        ]);
        let answer = complete(&server, &first, 4, true)["content"]
            .as_str()
            .unwrap()
            .to_string();
        let started = std::time::Instant::now();
        let (status, reply) = server.post("/completion", other);
        assert_eq!(status, 200, "{reply}");
        let took = started.elapsed();
        let entries = server.metric("gguf_serve_prompt_cache_entries");
        let back = complete(&server, &format!("{first}{answer} And so,"), 4, true);
        let hits = server.metric("gguf_serve_prompt_cache_hits_total");
        assert!(
            cache_n(&back) >= n_tokens(&server, &first),
            "the conversation should keep its prompt: {back}"
        );
        (entries, hits, took)
    };
    let short_other = json!({ "prompt": essay("bread", 10), "n_predict": 4, "temperature": 0 });

    let (entries, hits, _) = run("0", &short_other);
    assert_eq!((entries, hits), (1.0, 1.0), "parked at once, then restored");

    let (entries, hits, _) = run("600000", &long_other);
    assert_eq!(
        (entries, hits),
        (0.0, 0.0),
        "left in place, then taken up again"
    );

    let (entries, hits, took) = run("300", &long_other);
    assert!(
        took.as_millis() > 600,
        "the other request took only {took:?}"
    );
    assert_eq!((entries, hits), (1.0, 1.0), "parked while the other worked");
}

/// An engine with nothing to do saves its idle slots to the host cache, but the one used last:
/// two conversations that finish together (one request of two prompts) leave the engine idle
/// with two slots that no step parked. The older is saved before another request comes
/// (which then copies nothing out before its prompt starts) and, with one KV cache per slot,
/// keeps its cells, so that it comes back without a restore; the newer, which an agent's next
/// turn would continue, is not copied. `--cache-idle-slots=false` saves none.
#[test]
fn an_idle_engine_saves_its_idle_slots() {
    let prompts = [essay("rivers", 10), essay("bread", 10)];
    let run = |flags: &[&str], wait: std::time::Duration| {
        let server = Server::start(&[&["-np", "3", "--metrics"], flags].concat());
        let (status, reply) = server.post(
            "/completion",
            &json!({ "prompt": prompts, "n_predict": 4, "ignore_eos": true, "temperature": 0 }),
        );
        assert_eq!(status, 200, "{reply}");
        let until = std::time::Instant::now() + wait;
        while server.metric("gguf_serve_prompt_cache_entries") < 1.0
            && std::time::Instant::now() < until
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Time for a second save, were the newer slot taken too.
        std::thread::sleep(wait / 20);
        let entries = server.metric("gguf_serve_prompt_cache_entries");
        let mut cached = Vec::new();
        for (prompt, result) in prompts.iter().zip(reply.as_array().unwrap()) {
            let text = format!("{prompt}{} And so,", result["content"].as_str().unwrap());
            let back = complete(&server, &text, 4, true);
            assert!(
                cache_n(&back) >= n_tokens(&server, prompt),
                "the conversation should keep its prompt: {back}"
            );
            cached.push(server.metric("gguf_serve_prompt_cache_hits_total"));
        }
        (entries, cached)
    };
    let wait = std::time::Duration::from_secs(10);
    assert_eq!(
        run(&[], wait),
        (1.0, vec![0.0, 0.0]),
        "one saved while idle, both taken up again in place"
    );
    let (entries, _) = run(&["--cache-idle-slots=false"], wait / 10);
    assert_eq!(entries, 0.0, "--cache-idle-slots=false saves no idle slot");
}

/// `--cache-reuse N`, and a request's `n_cache_reuse`: a prompt that drops the middle of the
/// cached one reuses the part after it by shifting its cells, instead of computing it again.
/// The host cache is off, so that it cannot serve the prompts whole; `--swa-full`, because a
/// sliding-window cache cannot shift positions otherwise (llama-server ignores the flag then).
#[test]
fn cache_reuse_moves_the_chunks_a_prompt_repeats() {
    let (head, middle, tail) = (essay("maps", 8), essay("lamps", 8), essay("roads", 8));
    let first = format!("{head}{middle}{tail}");
    let second = format!("{head}{tail}");
    let second_reused = |server: &Server, body: Value| {
        complete(server, &first, 4, true);
        let (status, reply) = server.post("/completion", &body);
        assert_eq!(status, 200, "{reply}");
        (cache_n(&reply), n_tokens(server, &second))
    };
    let body = json!({ "prompt": second, "n_predict": 4, "temperature": 0 });

    let shifting = Server::start(&[
        "-np",
        "1",
        "--cache-ram",
        "0",
        "--swa-full",
        "--cache-reuse",
        "16",
    ]);
    let (cached, n) = second_reused(&shifting, body.clone());
    // The prompt is BOS and the text's n tokens: all but the last are reused.
    assert_eq!(cached, n, "all but the last token reused");

    let plain = Server::start(&["-np", "1", "--cache-ram", "0", "--swa-full"]);
    let (cached, n) = second_reused(&plain, body.clone());
    assert!(
        cached < n / 2 + 5,
        "only the head is a common prefix: {cached} of {n}"
    );
    let mut asked = body;
    asked["n_cache_reuse"] = json!(16);
    let (cached, n) = second_reused(&plain, asked);
    assert_eq!(cached, n, "the request's n_cache_reuse reuses the tail");
}

/// Context checkpoints (`--ctx-checkpoints`) on a sliding-window model, the tiny gpt-oss (a
/// 128-token window, whose cache holds 256 cells at `-ub 1`): after a 256-token answer the
/// window has moved past the prompt's end, so a next prompt that keeps the prompt but not the
/// answer (a chat whose template re-renders the last answer) finds the window it needs gone.
/// The checkpoint taken 4 tokens before the prompt's end serves it: all but those few tokens
/// are reused, from the slot and from the host cache, and the greedy continuation equals the
/// one computed from scratch (`-ub 1`, see tests/batching.rs). `--ctx-checkpoints 0` computes
/// the whole prompt again.
#[test]
fn a_prompt_that_departs_inside_the_window_restores_a_context_checkpoint() {
    let first = essay("rivers", 12);
    let next = format!("{first} Then the plains,");
    let run = |extra: &[&str], away: bool| {
        let mut args = vec!["-np", "1", "-ub", "1", "--metrics"];
        args.extend_from_slice(extra);
        let (_dir, server) = common::serve_tiny_gpt_oss(&args);
        complete(&server, &first, 256, true);
        if away {
            // Another conversation takes the slot: the first goes to the host cache.
            complete(&server, &essay("bread", 12), 4, true);
        }
        let (_, props) = server.get("/props");
        let checkpoints = &props["memory"]["context_checkpoints"];
        let held = checkpoints["bytes"].as_u64().unwrap();
        let planned = checkpoints["limit_bytes"].as_u64().unwrap();
        assert!(held <= planned, "{checkpoints}: more than planned");
        let restored_before = server.metric("gguf_serve_context_checkpoints_restored_total");
        let reused = complete(&server, &next, 16, true);
        let restored = server.metric("gguf_serve_context_checkpoints_restored_total");
        let computed = complete(&server, &next, 16, false);
        assert_eq!(cache_n(&computed), 0, "{computed}");
        assert_eq!(reused["content"], computed["content"], "{extra:?} {away}");
        let n_restored = restored - restored_before;
        (
            cache_n(&reused),
            n_tokens(&server, &first),
            (held, planned),
            n_restored,
        )
    };
    for away in [false, true] {
        let (cached, n_first, (held, planned), n_restored) = run(&[], away);
        assert!(
            (n_first - 8..n_first).contains(&cached),
            "away {away}: {cached} of {n_first} tokens reused"
        );
        // Counted: in `/props` while a slot holds them (the first conversation's went to the
        // host cache with it when another took the slot), and in `/metrics` when one serves.
        assert!(held > 0, "away {away}: /props shows no checkpoint bytes");
        // The plan's 32 checkpoints of the window's cells each, and the one or two a prompt
        // takes at that size (llama.cpp's state adds a few bytes of header).
        let each = planned as f64 / 32.0;
        let taken = (held as f64 / each).round();
        assert!(
            (1.0..=2.0).contains(&taken) && (held as f64 - taken * each).abs() < 0.01 * held as f64,
            "away {away}: {held} bytes held, {each} planned per checkpoint"
        );
        assert_eq!(n_restored, 1.0, "away {away}");
    }
    let (cached, _, held, n_restored) = run(&["--ctx-checkpoints", "0"], false);
    assert_eq!(cached, 0, "without checkpoints the window is gone");
    assert_eq!((held, n_restored), ((0, 0), 0.0));
}

/// Which layers slide is llama.cpp's to say, not the GGUF key's: it ignores the key on
/// architectures it builds with full attention (Phi-3's files carry one) and sets Llama 4's chunk
/// itself. A llama carrying the key takes no context checkpoints: on a cache without a window,
/// each would have been a copy of the whole sequence.
#[test]
fn a_window_key_that_llama_cpp_ignores_takes_no_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("llama-with-a-window-key.gguf");
    common::gguf_fixtures::write_loadable_llama_with(&path, |w| {
        w.kv(
            "llama.attention.sliding_window",
            gguf_serve::gguf::Value::U32(16),
        );
    });
    let args = [
        "-m",
        path.to_str().unwrap(),
        "-c",
        "512",
        "-np",
        "1",
        "-t",
        "1",
    ];
    let server = Server::start_with(&args.map(String::from));
    let reply = complete(&server, &essay("rivers", 4), 8, true);
    assert!(
        reply["timings"]["prompt_n"].as_u64().unwrap() > 32,
        "{reply}"
    );
    let (_, props) = server.get("/props");
    let checkpoints = &props["memory"]["context_checkpoints"];
    assert_eq!(checkpoints["bytes"], 0, "{checkpoints}");
}

/// A chat turn resends its history and adds to it: the prompt extends what the slot holds. On a
/// sliding-window model in one unified cache, streams that decode together take each other's
/// cells once the window has moved past them, so a slot comes back holding exactly the window
/// its next token needs and nothing before it. That window serves as it is: the whole history
/// is reused without a checkpoint, and the next token's distribution is the one computed from
/// scratch. Not bit for bit: the reused cells lie interleaved with other streams', so attention
/// sums them in another order (about 1e-4 in a log probability at `-ub 1`, enough to flip a
/// random model's near-ties later on). Idle slots stay in place (`--no-cache-idle-slots`), so
/// the reuse is the slot's own, not a restore from the host cache.
#[test]
fn a_prompt_that_extends_its_slot_keeps_the_window_other_streams_left() {
    let (_dir, server) = serve_interleaving_gpt_oss();
    let (firsts, answers) = decode_four_streams_together(&server);
    let more = tokenize(&server, " Then the plains,");
    for (first, answer) in firsts.iter().zip(&answers) {
        let next: Vec<Value> = [first.as_slice(), answer, &more].concat();
        let reused = next_token(&server, &next, true);
        // All of the history but the answer's last token, which was sampled, never decoded.
        let history = (first.len() + answer.len() - 1) as u64;
        assert!(
            cache_n(&reused) >= history,
            "{} of {history} history tokens reused",
            cache_n(&reused)
        );
        let computed = next_token(&server, &next, false);
        assert_eq!(cache_n(&computed), 0, "{computed}");
        assert_same_top3(&reused, &computed);
    }
}

/// The other way back into a slot: an edited turn departs from the history halfway through the
/// last answer. The sliding window at that point lies behind cells other streams have taken
/// since (llama.cpp keeps each sequence's positions gapless, so what is left is a tail, never
/// one with holes), so the slot may reuse only up to a context checkpoint, never all it kept,
/// and the next token's distribution is the one computed from scratch.
#[test]
fn a_prompt_that_departs_inside_the_answer_never_reuses_a_lost_window() {
    let (_dir, server) = serve_interleaving_gpt_oss();
    let (firsts, answers) = decode_four_streams_together(&server);
    let edit = tokenize(&server, " Or rather, the hills,");
    for (first, answer) in firsts.iter().zip(&answers) {
        let kept = first.len() + answer.len() / 2;
        let edited: Vec<Value> = [first.as_slice(), &answer[..answer.len() / 2], &edit].concat();
        let reused = next_token(&server, &edited, true);
        // Reusing all `kept` tokens would keep a window that is gone. (Measured: the checkpoint
        // a few tokens before the first prompt's end serves, e.g. 347 of 452.)
        assert!(
            cache_n(&reused) < kept as u64,
            "{} tokens reused from a history that departs after {kept}, its window lost",
            cache_n(&reused)
        );
        let computed = next_token(&server, &edited, false);
        assert_eq!(cache_n(&computed), 0, "{computed}");
        assert_same_top3(&reused, &computed);
    }
}

/// The tiny gpt-oss (a 128-token window) with four slots in one cache, each row computed alone
/// (`-ub 1`), idle slots left in place (`--no-cache-idle-slots`): what a slot reuses is its own.
fn serve_interleaving_gpt_oss() -> (tempfile::TempDir, Server) {
    common::serve_tiny_gpt_oss(&[
        "-np",
        "4",
        "--kv-unified",
        "-ub",
        "1",
        "--no-cache-idle-slots",
    ])
}

fn tokenize(server: &Server, text: &str) -> Vec<Value> {
    let (_, reply) = server.post("/tokenize", &json!({ "content": text }));
    reply["tokens"].as_array().unwrap().clone()
}

/// Four streams decode together, 200 tokens each: the window moves on and the cells behind it go
/// to whichever stream needs one. Returns each stream's prompt and answer, as tokens.
fn decode_four_streams_together(server: &Server) -> (Vec<Vec<Value>>, Vec<Vec<Value>>) {
    let firsts: Vec<Vec<Value>> = ["rivers", "bread", "stone", "wind"]
        .map(|topic| tokenize(server, &essay(topic, 8)))
        .to_vec();
    let answers: Vec<Vec<Value>> = std::thread::scope(|s| {
        let handles: Vec<_> = firsts
            .iter()
            .map(|prompt| {
                s.spawn(move || {
                    let body = json!({ "prompt": prompt, "n_predict": 200, "temperature": 0,
                        "ignore_eos": true, "return_tokens": true });
                    let (status, reply) = server.post("/completion", &body);
                    assert_eq!(status, 200, "{reply}");
                    reply["tokens"].as_array().unwrap().clone()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for answer in &answers {
        assert_eq!(answer.len(), 200);
    }
    (firsts, answers)
}

/// One greedy token for `prompt` with its top 3 log probabilities.
fn next_token(server: &Server, prompt: &[Value], cache_prompt: bool) -> Value {
    let body = json!({ "prompt": prompt, "n_predict": 1, "temperature": 0,
        "cache_prompt": cache_prompt, "n_probs": 3, "post_sampling_probs": false });
    let (status, reply) = server.post("/completion", &body);
    assert_eq!(status, 200, "{reply}");
    reply
}

/// The same three most likely next tokens, with log probabilities within 1e-2 (the cells' order
/// changes how attention sums them; about 1e-4 is measured).
fn assert_same_top3(reused: &Value, computed: &Value) {
    let top = |reply: &Value| -> Vec<(u64, f64)> {
        let probs = reply["completion_probabilities"][0]["top_logprobs"].as_array();
        let probs = probs.unwrap_or_else(|| panic!("no probabilities: {reply}"));
        probs
            .iter()
            .map(|p| (p["id"].as_u64().unwrap(), p["logprob"].as_f64().unwrap()))
            .collect()
    };
    let (reused, computed) = (top(reused), top(computed));
    assert_eq!(reused.len(), 3);
    for ((id, logprob), (want_id, want)) in reused.iter().zip(&computed) {
        assert_eq!(id, want_id, "{reused:?} against {computed:?}");
        assert!(
            (logprob - want).abs() < 1e-2,
            "{reused:?} against {computed:?}"
        );
    }
}

/// Writes a model file at the path.
type WriteModel = fn(&Path);

/// Models with a recurrent state, written by the tests: Mamba (every layer recurrent) and LFM2
/// (a hybrid: short-convolution layers around an attention layer).
const RECURRENT_MODELS: [(&str, WriteModel); 2] = [
    ("tiny-mamba", common::gguf_fixtures::write_tiny_mamba),
    ("tiny-lfm2", common::gguf_fixtures::write_tiny_lfm2),
];

/// A recurrent model (one state per sequence, which llama.cpp cannot roll back; in a hybrid,
/// beside the attention layers' cells) reuses a cached prompt only where the state stands: a
/// prompt that departs earlier, or one that repeats what is cached (its last token must be
/// decoded again), needs a context checkpoint, as llama-server takes them for any memory it
/// cannot truncate, also when the conversation went to the host cache and back. Each answer
/// equals the one computed from scratch; without checkpoints the prompt is computed again,
/// never continued from a state that went past it.
#[test]
fn a_recurrent_model_goes_back_to_a_context_checkpoint() {
    for (name, write) in RECURRENT_MODELS {
        recurrent_model_goes_back_to_a_context_checkpoint(name, write);
    }
}

/// A recurrent test model written to a temporary directory (held here), its server flags (one
/// slot, one thread), and the two prompts the recurrent tests send: an essay, and the essay
/// going on past it.
struct RecurrentCase {
    _dir: tempfile::TempDir,
    args: Vec<String>,
    first: String,
    next: String,
}

fn recurrent_case(name: &str, write: WriteModel) -> RecurrentCase {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.gguf"));
    write(&path);
    let args = [
        "-m",
        path.to_str().unwrap(),
        "-c",
        "4096",
        "-np",
        "1",
        "-t",
        "1",
    ];
    let first = essay("rivers", 12);
    RecurrentCase {
        args: args.map(String::from).to_vec(),
        next: format!("{first} Then the plains,"),
        first,
        _dir: dir,
    }
}

fn recurrent_model_goes_back_to_a_context_checkpoint(name: &str, write: WriteModel) {
    let RecurrentCase {
        _dir,
        args,
        first,
        next,
    } = recurrent_case(name, write);
    let run = |extra: &[&str], away: bool| {
        let mut args = args.clone();
        args.extend(extra.iter().map(|s| s.to_string()));
        let server = Server::start_with(&args);
        let computed = |prompt: &str| {
            let reply = complete(&server, prompt, 16, false);
            assert_eq!(cache_n(&reply), 0, "{reply}");
            reply["content"].clone()
        };
        // The state matters: the prompt's last few tokens alone (bytes, in this vocabulary)
        // answer otherwise.
        assert_ne!(computed(&first), computed(&first[first.len() - 6..]));
        // The same prompt again: the state stands one token past what can be kept.
        complete(&server, &first, 1, true);
        let again = complete(&server, &first, 16, true);
        assert_eq!(
            again["content"],
            computed(&first),
            "{name} {extra:?}: the same prompt again"
        );
        // A prompt that extends the first prompt but not its answer.
        complete(&server, &first, 24, true);
        let (_, props) = server.get("/props");
        let checkpoints = &props["memory"]["context_checkpoints"];
        let held = checkpoints["bytes"].as_u64().unwrap();
        let planned = checkpoints["limit_bytes"].as_u64().unwrap();
        if away {
            // Another conversation takes the slot: the first goes to the host cache.
            complete(&server, &essay("bread", 12), 4, true);
        }
        let reused = complete(&server, &next, 16, true);
        assert_eq!(
            reused["content"],
            computed(&next),
            "{name} {extra:?} {away}: a departing prompt"
        );
        eprintln!("{name} checkpoints: {held} bytes held, {planned} planned");
        (
            cache_n(&again),
            cache_n(&reused),
            n_tokens(&server, &first),
            (held, planned),
        )
    };
    for away in [false, true] {
        let (again, reused, n_first, (held, planned)) = run(&[], away);
        assert!(
            (n_first - 8..n_first).contains(&again),
            "{name}: {again} of {n_first} reused"
        );
        assert!(
            (n_first - 8..n_first).contains(&reused),
            "{name}: {reused} of {n_first} reused"
        );
        // Planned as 32 checkpoints of one sequence's recurrent state; a prompt takes one or
        // two. llama.cpp's state adds a header of a few dozen bytes per layer, which these tiny
        // states (2 to 19 KiB) feel and a real model's (megabytes) do not.
        let each = planned as f64 / 32.0;
        let taken = (held as f64 / each).floor();
        let header = (held as f64 - taken * each) / taken;
        assert!(
            (1.0..=2.0).contains(&taken) && (0.0..128.0).contains(&header),
            "{name}: {held} bytes held, {each} planned per checkpoint"
        );
    }
    let (again, reused, _, (held, planned)) = run(&["--ctx-checkpoints", "0"], false);
    assert_eq!((again, reused), (0, 0), "without checkpoints");
    assert_eq!((held, planned), (0, 0));
}

/// The requests of [`a_recurrent_model_goes_back_to_a_context_checkpoint`] to the reference
/// llama-server named by `GGUF_SERVE_LLAMA_SERVER` and to gguf-serve on each recurrent model: the same
/// cached and computed prompt tokens and greedy answers, request by request. Ignored in the
/// default run (no reference build); run on its own, it fails when the reference is missing.
#[test]
#[ignore = "needs the reference llama-server: GGUF_SERVE_LLAMA_SERVER"]
fn recurrent_checkpoints_match_the_reference_llama_server() {
    for (name, write) in RECURRENT_MODELS {
        recurrent_checkpoints_match_the_reference(name, write);
    }
}

fn recurrent_checkpoints_match_the_reference(name: &str, write: WriteModel) {
    let reference = common::reference_llama_server();
    let RecurrentCase {
        _dir,
        args,
        first,
        next,
    } = recurrent_case(name, write);
    let requests = [
        (&first, 1, true),
        (&first, 16, true),
        (&first, 24, true),
        (&next, 16, true),
        (&next, 16, false),
    ];
    let replies = |server: Server| -> Vec<(Value, Value, Value)> {
        requests
            .iter()
            .map(|&(prompt, n, cache)| {
                let reply = complete(&server, prompt, n, cache);
                let timings = &reply["timings"];
                (
                    timings["cache_n"].clone(),
                    timings["prompt_n"].clone(),
                    reply["content"].clone(),
                )
            })
            .collect()
    };
    let theirs = replies(Server::start_program(&reference, &args));
    let ours = replies(Server::start_with(&args));
    assert_eq!(ours, theirs, "{name}");
    // The same prompt again and the departing one reuse all but a few tokens.
    assert!(ours[1].0.as_u64().unwrap() > 600, "{name}: {ours:?}");
}
