//! A structure-aware fuzzer for the GGUF reader, run as a test (no nightly, no cargo-fuzz):
//! real headers written by our writer (the tests' tiny models) are mutated where a hostile
//! file would strike — counts, lengths, dimensions and offsets set to boundary values (0, 1,
//! 2^31, 2^32, u64::MAX, file size / 8, 20 GiB), type tags changed, bits flipped, headers cut
//! and spliced — and each result goes through the entry points the server, `plan` and the hub
//! use (`GgufFile::from_prefix`, `GgufFile::read`, `ModelSummary`), often claiming a file of
//! 64 GiB (the size checks pass, as for a large sparse file) and sometimes as a real sparse file.
//!
//! Each input must end without a panic, without any single allocation over 256 MiB (a counting
//! global allocator, per thread) and within 1 s. The run is deterministic (seed
//! `GGUF_FUZZ_SEED`, default 1); the CI test runs [`CI_ITERS`] inputs (about a minute on 2
//! cores in release), `GGUF_FUZZ_ITERS` sets another count, and the ignored test runs a
//! million. A failing input is written under the target directory and named in the failure.

#[path = "common/gguf_fixtures.rs"]
mod gguf_fixtures;
#[path = "common/gguf_mutate.rs"]
mod gguf_mutate;

use gguf_mutate::{Corpus, Rng};
use gguf_serve::gguf::{GgufFile, ModelSummary, Prefix};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::time::{Duration, Instant};

/// The inputs the CI test runs: about 60 s on 2 cores in release.
const CI_ITERS: u64 = 500_000;
const MAX_ALLOCATION: usize = 256 << 20;
const MAX_TIME: Duration = Duration::from_secs(1);
/// One input in this many is also read from a real (sparse) file.
const FILE_EVERY: u64 = 10;

/// The system allocator, noting the largest single request of each thread.
struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: allocations during the thread's teardown find no slot; they are not ours.
    let _ = LARGEST.try_with(|m| m.set(m.get().max(size)));
}

// SAFETY: every call forwards to `System` unchanged; the bookkeeping only reads the size.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What one input did wrong.
struct Failure {
    iteration: u64,
    what: String,
    input: Vec<u8>,
}

/// Totals of a run.
#[derive(Default)]
struct Totals {
    inputs: u64,
    files: u64,
    parsed: u64,
    summarised: u64,
    largest_allocation: usize,
    slowest: Duration,
}

/// Parses `input` as a file of `size` bytes through every entry point; the largest allocation
/// and time, or the panic's message.
fn parse(input: &[u8], size: u64, file: Option<&Path>) -> (Result<(bool, bool), String>, usize) {
    LARGEST.with(|m| m.set(0));
    let result = std::panic::catch_unwind(|| {
        let mut parsed = false;
        let mut summarised = false;
        if let Prefix::Header(header) = GgufFile::from_prefix(input, size, Path::new("fuzz.gguf")) {
            parsed = true;
            summarised = ModelSummary::from_files(&[*header]).is_ok();
        }
        if let Some(path) = file {
            let read = GgufFile::read(path);
            parsed |= read.is_ok();
            summarised |= ModelSummary::from_path(path).is_ok();
        }
        (parsed, summarised)
    });
    let largest = LARGEST.with(Cell::get);
    let result = result.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    });
    (result, largest)
}

/// Runs `iterations` mutated headers from `seed`; every failure, and the totals.
fn fuzz(iterations: u64, seed: u64) -> (Vec<Failure>, Totals) {
    let corpus = Corpus::write();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.gguf");
    let mut rng = Rng::new(seed);
    let mut failures = Vec::new();
    let mut totals = Totals::default();
    let large = 64u64 << 30;
    for iteration in 0..iterations {
        let (input, file_size) = corpus.mutant(&mut rng);
        // The size the header is read against: the input's, the seed file's, or a large file's.
        let size = match rng.below(4) {
            0 => input.len() as u64,
            1 => file_size,
            _ => large,
        };
        let file = (iteration % FILE_EVERY == 0).then(|| {
            std::fs::write(&path, &input).unwrap();
            if size > input.len() as u64 {
                // A sparse file: the header, then a hole.
                let f = std::fs::File::options().write(true).open(&path).unwrap();
                f.set_len(size).unwrap();
            }
            totals.files += 1;
            path.as_path()
        });
        let prefix = &input[..input.len().min(size as usize)];
        let started = Instant::now();
        let (result, largest) = parse(prefix, size, file);
        let elapsed = started.elapsed();
        totals.inputs += 1;
        totals.largest_allocation = totals.largest_allocation.max(largest);
        totals.slowest = totals.slowest.max(elapsed);
        let mut fail = |what: String| {
            failures.push(Failure {
                iteration,
                what: format!("{what} (file size {size})"),
                input: input.clone(),
            })
        };
        match result {
            Ok((parsed, summarised)) => {
                totals.parsed += u64::from(parsed);
                totals.summarised += u64::from(summarised);
            }
            Err(panic) => fail(format!("panicked: {panic}")),
        }
        if largest > MAX_ALLOCATION {
            fail(format!("allocated {largest} bytes at once"));
        }
        if elapsed > MAX_TIME {
            fail(format!("took {elapsed:?}"));
        }
    }
    (failures, totals)
}

/// Runs the fuzzer and fails naming every bad input (each written to a file to replay).
fn run(iterations: u64) {
    let seed = std::env::var("GGUF_FUZZ_SEED").map_or(1, |s| s.parse().expect("a number"));
    let started = Instant::now();
    let (failures, t) = fuzz(iterations, seed);
    println!(
        "gguf fuzz: {} inputs (seed {seed}, {} also as sparse files) in {:.1?}: {} headers parsed, \
         {} summarised; largest allocation {} KiB, slowest input {:.1?}; {} failures",
        t.inputs,
        t.files,
        started.elapsed(),
        t.parsed,
        t.summarised,
        t.largest_allocation >> 10,
        t.slowest,
        failures.len()
    );
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let report: Vec<String> = failures
        .iter()
        .take(20)
        .map(|f| {
            let file = out.join(format!("gguf-fuzz-{seed}-{}.gguf", f.iteration));
            std::fs::write(&file, &f.input).unwrap();
            format!("input {}: {} ({})", f.iteration, f.what, file.display())
        })
        .collect();
    assert!(failures.is_empty(), "{}", report.join("\n"));
    // The fuzzer must reach past the reader: some mutants still summarise.
    assert!(
        t.summarised > 0 && t.parsed > t.summarised,
        "nothing parsed"
    );
}

/// The allocator's bookkeeping sees a request over the limit (never touched, so it costs no
/// memory): the fuzzer's allocation check can fail.
#[test]
fn the_counting_allocator_sees_large_requests() {
    LARGEST.with(|m| m.set(0));
    let big: Vec<u8> = Vec::with_capacity(MAX_ALLOCATION + 1);
    assert!(LARGEST.with(Cell::get) > MAX_ALLOCATION);
    drop(big);
}

/// The inputs the fuzzer once failed on (`tests/data/gguf-fuzz/`), replayed as they are and
/// as the start of a sparse 64 GiB file.
#[test]
fn inputs_found_by_the_fuzzer_stay_fixed() {
    let found = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gguf-fuzz");
    let dir = tempfile::tempdir().unwrap();
    let mut replayed = 0;
    for entry in std::fs::read_dir(&found).unwrap() {
        let input = std::fs::read(entry.unwrap().path()).unwrap();
        for size in [input.len() as u64, 64 << 30] {
            let path = dir.path().join("input.gguf");
            std::fs::write(&path, &input).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(size)
                .unwrap();
            let started = Instant::now();
            let (result, largest) = parse(&input, size, Some(&path));
            let elapsed = started.elapsed();
            assert!(result.is_ok(), "{result:?}");
            assert!(largest <= MAX_ALLOCATION, "{largest} bytes");
            assert!(elapsed <= MAX_TIME, "{elapsed:?}");
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no inputs in {}", found.display());
}

#[test]
fn mutated_headers_never_crash_allocate_or_stall() {
    let iterations = std::env::var("GGUF_FUZZ_ITERS").map_or(CI_ITERS, |s| s.parse().unwrap());
    run(iterations);
}

/// The acceptance run: `cargo test --release --test gguf_fuzz -- --ignored --nocapture`.
#[test]
#[ignore = "a million inputs, about 2 minutes"]
fn a_million_mutated_headers() {
    run(1_000_000);
}
