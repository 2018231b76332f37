//! What llama.cpp's tokenizer needs of a vocabulary, gathered while the reader passes over
//! `tokenizer.ggml.tokens` (the array is too long to keep, 262k tokens in Gemma 3).
//!
//! Two vocabularies load in llama.cpp and then kill the process, so the server must refuse them
//! before loading: one with a repeated token (`llama_vocab::load` asserts that every token text
//! is distinct: `GGML_ASSERT(id_to_token.size() == token_to_id.size())`, an abort), and a
//! SentencePiece one without byte tokens (`<0x0A>`): its tokenizer writes text it has no token
//! for as byte tokens, and `byte_to_token`'s `token_to_id.at(...)` throws `std::out_of_range`
//! through `llama_tokenize`, which the FFI cannot catch, so the first prompt with such a
//! character aborts the server.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::io::Write;

/// The key of the vocabulary array.
pub(crate) const VOCAB_KEY: &str = "tokenizer.ggml.tokens";
/// The longest vocabulary read; real ones are under a million tokens. Bounds the set of hashes
/// kept to find repeated tokens (8 bytes a token) and the time to read them.
pub(crate) const MAX_VOCAB: u64 = 1 << 20;

/// Facts about `tokenizer.ggml.tokens` ([`crate::gguf::GgufFile::vocab`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VocabScan {
    /// Bit `b`: the vocabulary has the byte token `<0xBB>` (upper-case hex, as llama.cpp
    /// spells it).
    byte_tokens: [u64; 4],
    /// Bit `b`: the vocabulary has the one-byte token `b` (llama.cpp's fallback when `<0xBB>`
    /// is missing).
    single_bytes: [u64; 4],
    /// The first repeated token: its index and text (lossy UTF-8).
    pub duplicate: Option<(u64, String)>,
    /// Hashes of the token texts seen (a 64-bit hash: a false repeat among a million tokens
    /// has odds of 1 in 10^7), dropped by [`VocabScan::finish`].
    seen: Option<HashSet<u64, BuildHasherDefault<DefaultHasher>>>,
}

impl VocabScan {
    /// Notes token `index`, whose text is `text` (llama.cpp takes any bytes).
    pub(crate) fn push(&mut self, index: u64, text: &[u8]) {
        // llama.cpp names an empty token `[EMPTY_i]`; that name may itself repeat a token.
        // (Written on the stack: a sparse file's zeros read as a million empty tokens.)
        let mut empty = [0u8; 32];
        let text = if text.is_empty() {
            let mut rest = &mut empty[..];
            write!(rest, "[EMPTY_{index}]").expect("32 bytes hold it");
            let n = 32 - rest.len();
            &empty[..n]
        } else {
            text
        };
        if let Some(b) = byte_token(text) {
            set(&mut self.byte_tokens, b);
        }
        if let [b] = text {
            set(&mut self.single_bytes, *b);
        }
        if self.duplicate.is_some() {
            return;
        }
        let seen = self.seen.get_or_insert_with(HashSet::default);
        let hash = seen.hasher().hash_one(text);
        if !seen.insert(hash) {
            self.duplicate = Some((index, String::from_utf8_lossy(text).into_owned()));
            self.seen = None;
        }
    }

    /// Ends the scan: frees the hashes.
    pub(crate) fn finish(&mut self) {
        self.seen = None;
    }

    /// Can llama.cpp's SentencePiece tokenizer write byte `b` as a token: `<0xBB>`, or the
    /// byte itself.
    pub fn has_byte(&self, b: u8) -> bool {
        get(&self.byte_tokens, b) || get(&self.single_bytes, b)
    }

    /// The first byte UTF-8 text can hold that the SentencePiece tokenizer has no token for
    /// (`None`: it can write any text). Bytes no UTF-8 text holds (0xC0, 0xC1, 0xF5..) are
    /// not needed.
    pub fn missing_byte(&self) -> Option<u8> {
        (0..=255u8)
            .filter(|&b| !matches!(b, 0xC0 | 0xC1 | 0xF5..=0xFF))
            .find(|&b| !self.has_byte(b))
    }
}

fn set(bits: &mut [u64; 4], b: u8) {
    bits[usize::from(b / 64)] |= 1 << (b % 64);
}

fn get(bits: &[u64; 4], b: u8) -> bool {
    bits[usize::from(b / 64)] & (1 << (b % 64)) != 0
}

/// `<0xBB>` → the byte.
fn byte_token(text: &[u8]) -> Option<u8> {
    let hex = text.strip_prefix(b"<0x")?.strip_suffix(b">")?;
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    match hex {
        [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_tokens_as_llama_cpp_spells_them() {
        let cases = [
            ("<0x0A>", Some(10)),
            ("<0xFF>", Some(255)),
            ("<0x0a>", None),
            ("<0xA>", None),
            ("<0x0A", None),
            ("0x0A", None),
            ("<0x+A>", None),
        ];
        for (text, want) in cases {
            assert_eq!(byte_token(text.as_bytes()), want, "{text}");
        }
    }

    #[test]
    fn missing_bytes_and_repeats() {
        let mut v = VocabScan::default();
        for (i, t) in ["<unk>", "a", "<0x0A>"].iter().enumerate() {
            v.push(i as u64, t.as_bytes());
        }
        assert!(v.has_byte(b'a') && v.has_byte(b'\n') && !v.has_byte(b'b'));
        assert_eq!(v.missing_byte(), Some(0));
        assert_eq!(v.duplicate, None);

        let mut all = VocabScan::default();
        for b in 0..=255u32 {
            all.push(u64::from(b), format!("<0x{b:02X}>").as_bytes());
        }
        assert_eq!(all.missing_byte(), None);
        // Only bytes UTF-8 can hold are needed.
        let mut utf8 = VocabScan::default();
        for b in (0..=0xF4u32).filter(|b| !matches!(b, 0xC0 | 0xC1)) {
            utf8.push(u64::from(b), format!("<0x{b:02X}>").as_bytes());
        }
        assert_eq!(utf8.missing_byte(), None);

        let mut dup = VocabScan::default();
        for (i, t) in ["a", "", "b", "[EMPTY_1]", "a"].iter().enumerate() {
            dup.push(i as u64, t.as_bytes());
        }
        assert_eq!(dup.duplicate, Some((3, "[EMPTY_1]".into())));
    }
}
