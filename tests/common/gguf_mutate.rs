//! The GGUF fuzzer's corpus and mutator (`tests/gguf_fuzz.rs`): real headers from the tests'
//! tiny models, a map of where each header keeps its counts, lengths, type tags, dimensions
//! and offsets, and mutations aimed at those fields with the values that break readers.

#![allow(dead_code)]

use super::gguf_fixtures;
use gguf_serve::gguf::GgufFile;

/// A small deterministic generator (xorshift64*): the same seed gives the same run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// What a header field holds, for the values a mutation puts there.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A u64 count or length (tensor and key counts, string and array lengths).
    Length,
    /// A u64 tensor dimension.
    Dim,
    /// A u64 tensor data offset.
    Offset,
    /// A u32 type tag (value type, array item type, ggml type) or n_dims.
    Tag,
}

/// One real header and where its fields are.
struct Seed {
    bytes: Vec<u8>,
    /// The header's length (where the tensor data starts).
    header: usize,
    /// The whole file's size (`bytes` holds the header and some data).
    file_size: u64,
    fields: Vec<(usize, Kind)>,
}

/// The seeds: the headers of the tests' tiny models (and a little of their data).
pub struct Corpus {
    seeds: Vec<Seed>,
}

impl Corpus {
    /// Writes the tiny models and maps their headers.
    pub fn write() -> Corpus {
        let dir = tempfile::tempdir().unwrap();
        type Write = fn(&std::path::Path);
        let writers: [(&str, Write); 5] = [
            ("tiny", |p| gguf_fixtures::write_tiny_llama(p, 2)),
            ("loadable", gguf_fixtures::write_loadable_llama),
            ("no-bytes", gguf_fixtures::write_llama_without_byte_tokens),
            ("gpt-oss", |p| {
                gguf_fixtures::write_tiny_gpt_oss(p, "{{ x }}")
            }),
            ("fim", |p| gguf_fixtures::write_fim_llama(p, true)),
        ];
        let seeds = writers
            .iter()
            .map(|(name, write)| {
                let path = dir.path().join(format!("{name}.gguf"));
                write(&path);
                let header = GgufFile::read(&path).unwrap().data_offset as usize;
                let mut bytes = std::fs::read(&path).unwrap();
                let file_size = bytes.len() as u64;
                // The header and a few KB of data: enough for cuts inside the data.
                bytes.truncate(header + 4096);
                let fields = map_fields(&bytes[..header]);
                assert!(fields.len() > 20, "{name}: {} fields", fields.len());
                Seed {
                    bytes,
                    header,
                    file_size,
                    fields,
                }
            })
            .collect();
        Corpus { seeds }
    }

    /// One mutated input: a seed with one mutation (half the time) or two to four; and the
    /// size of the seed's whole file.
    pub fn mutant(&self, rng: &mut Rng) -> (Vec<u8>, u64) {
        let seed = rng.pick(&self.seeds);
        let mut bytes = seed.bytes.clone();
        let n = if rng.below(2) == 0 {
            1
        } else {
            2 + rng.below(3)
        };
        for _ in 0..n {
            self.mutate(seed, &mut bytes, rng);
        }
        (bytes, seed.file_size)
    }

    fn mutate(&self, seed: &Seed, bytes: &mut Vec<u8>, rng: &mut Rng) {
        let file_size = bytes.len() as u64;
        match rng.below(12) {
            // A field set to a boundary value (the most likely mutation: it finds the bugs).
            0..=4 => {
                let &(at, kind) = rng.pick(&seed.fields);
                if kind == Kind::Tag {
                    let tags = [0, 1, 7, 8, 9, 10, 12, 13, 39, 40, 255, 1 << 31, u32::MAX];
                    let value = if rng.below(2) == 0 {
                        *rng.pick(&tags)
                    } else {
                        rng.below(64) as u32
                    };
                    put(bytes, at, &value.to_le_bytes());
                } else {
                    let large = 64u64 << 30;
                    let values = [
                        0,
                        1,
                        2,
                        255,
                        4096,
                        4097,
                        1 << 24,
                        (1 << 24) + 1,
                        1 << 31,
                        1 << 32,
                        (1 << 32) - 1,
                        i64::MAX as u64,
                        1 << 63,
                        u64::MAX,
                        u64::MAX - 7,
                        20 << 30,
                        file_size / 8,
                        large / 8,
                        large / 13,
                        large / 26,
                        large,
                    ];
                    let mut old = [0u8; 8];
                    for (o, b) in old.iter_mut().zip(bytes.iter().skip(at)) {
                        *o = *b;
                    }
                    let old = u64::from_le_bytes(old);
                    let value = match rng.below(4) {
                        0 => old.wrapping_add(rng.below(5)).wrapping_sub(2),
                        1 => rng.next() >> rng.below(64),
                        _ => *rng.pick(&values),
                    };
                    put(bytes, at, &value.to_le_bytes());
                }
            }
            // Bits flipped in the header.
            5 => {
                let at = rng.below(seed.header as u64) as usize;
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
            }
            // Cut anywhere.
            6 => {
                let len = rng.below(bytes.len() as u64 + 1) as usize;
                bytes.truncate(len);
            }
            // Spliced: from a field on, another seed's bytes from one of its fields on.
            7 => {
                let other = rng.pick(&self.seeds);
                let &(from, _) = rng.pick(&other.fields);
                let &(at, _) = rng.pick(&seed.fields);
                if at < bytes.len() {
                    bytes.truncate(at);
                    bytes.extend_from_slice(&other.bytes[from..]);
                }
            }
            // A stretch of the header repeated (more keys or tensors than announced).
            8 => {
                let start = (rng.below(seed.header as u64) as usize).min(bytes.len());
                let len = (rng.below(256) as usize).min(bytes.len() - start);
                let copy = bytes[start..start + len].to_vec();
                let at = rng.below(bytes.len() as u64 + 1) as usize;
                bytes.splice(at..at, copy);
            }
            // The tensor or key count set to a large value.
            10 => {
                let at = if rng.below(2) == 0 { 8 } else { 16 };
                let value = *rng.pick(&[1 << 20, 1 << 31, (64u64 << 30) / 13, u64::MAX]);
                put(bytes, at, &u64::to_le_bytes(value));
            }
            // Cut at a field: in a sparse file, zeros follow.
            11 => {
                let &(at, _) = rng.pick(&seed.fields);
                bytes.truncate(at);
            }
            // Random bytes over a field.
            _ => {
                let &(at, _) = rng.pick(&seed.fields);
                for b in bytes.iter_mut().skip(at).take(8) {
                    *b = rng.next() as u8;
                }
            }
        }
    }
}

/// Writes `value` at `at`, as far as the input goes.
fn put(bytes: &mut [u8], at: usize, value: &[u8]) {
    let end = (at + value.len()).min(bytes.len());
    if at < end {
        bytes[at..end].copy_from_slice(&value[..end - at]);
    }
}

/// Where a valid header's fields are: a walk of the layout (`gguf.md`) that notes positions
/// only; the first 16 items of each array are mapped, the rest walked past.
fn map_fields(h: &[u8]) -> Vec<(usize, Kind)> {
    let mut walk = Walk {
        h,
        pos: 8,
        fields: Vec::new(),
    };
    let n_tensors = walk.u64(Kind::Length, true);
    let n_kv = walk.u64(Kind::Length, true);
    for _ in 0..n_kv {
        walk.string(true);
        let ty = walk.u32(true);
        walk.value(ty, true);
    }
    for _ in 0..n_tensors {
        walk.string(true);
        let n_dims = walk.u32(true);
        for _ in 0..n_dims {
            walk.u64(Kind::Dim, true);
        }
        walk.u32(true);
        walk.u64(Kind::Offset, true);
    }
    walk.fields
}

struct Walk<'a> {
    h: &'a [u8],
    pos: usize,
    fields: Vec<(usize, Kind)>,
}

impl Walk<'_> {
    fn u64(&mut self, kind: Kind, keep: bool) -> u64 {
        self.note(kind, keep);
        let v = u64::from_le_bytes(self.h[self.pos..self.pos + 8].try_into().unwrap());
        self.pos += 8;
        v
    }

    fn u32(&mut self, keep: bool) -> u32 {
        self.note(Kind::Tag, keep);
        let v = u32::from_le_bytes(self.h[self.pos..self.pos + 4].try_into().unwrap());
        self.pos += 4;
        v
    }

    fn note(&mut self, kind: Kind, keep: bool) {
        if keep {
            self.fields.push((self.pos, kind));
        }
    }

    fn string(&mut self, keep: bool) {
        self.note(Kind::Length, keep);
        let len = u64::from_le_bytes(self.h[self.pos..self.pos + 8].try_into().unwrap());
        self.pos += 8 + len as usize;
    }

    fn value(&mut self, ty: u32, keep: bool) {
        match ty {
            0 | 1 | 7 => self.pos += 1,
            2 | 3 => self.pos += 2,
            4..=6 => self.pos += 4,
            10..=12 => self.pos += 8,
            8 => self.string(keep),
            9 => {
                let item = self.u32(keep);
                let n = self.u64(Kind::Length, keep);
                for i in 0..n {
                    self.value(item, keep && i < 16);
                }
            }
            _ => panic!("value type {ty} in a seed"),
        }
    }
}
