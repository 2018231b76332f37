//! Turning sampled token pieces into text a client may see: complete UTF-8 only, and never a
//! piece of a stop string. A stop string can span several tokens, so text that could be the start
//! of one is held back until the next token decides (llama-server does the same).

/// Generated text of one request and how much of it has been sent.
#[derive(Debug, Default)]
pub struct TextStream {
    /// Bytes of an incomplete UTF-8 sequence at the end of the last piece.
    pending: Vec<u8>,
    /// All text generated so far (complete UTF-8).
    text: String,
    /// Bytes of `text` already handed out.
    sent: usize,
}

/// What pushing a piece produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Text that is safe to send now (may be empty while a stop string is possible).
    Text(String),
    /// A stop string matched: the text before it, and the stop string.
    Stop { text: String, word: String },
}

impl TextStream {
    /// Appends a token's bytes; `stops` are the request's stop strings.
    pub fn push(&mut self, bytes: &[u8], stops: &[String]) -> Pushed {
        self.pending.extend_from_slice(bytes);
        loop {
            let (valid, invalid) = match std::str::from_utf8(&self.pending) {
                Ok(_) => (self.pending.len(), None),
                Err(e) => (e.valid_up_to(), e.error_len()),
            };
            let complete = std::str::from_utf8(&self.pending[..valid]).unwrap_or_default();
            self.text.push_str(complete);
            match invalid {
                // An invalid sequence becomes U+FFFD, as llama-server's JSON writer replaces it;
                // what follows it is read on its own, so a character a later token completes is
                // kept whole.
                Some(n) => {
                    self.text.push(char::REPLACEMENT_CHARACTER);
                    self.pending.drain(..valid + n);
                }
                // The rest is empty, or an incomplete sequence: wait for more bytes.
                None => {
                    self.pending.drain(..valid);
                    break;
                }
            }
        }
        self.scan(stops)
    }

    /// Everything generated so far, complete UTF-8 only.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The whole answer, as a response that is not streamed gives it: the text, and an
    /// incomplete UTF-8 sequence that generation ended on as U+FFFD (llama-server's answer
    /// holds the bytes, which its JSON writer replaces). A stream never sends those bytes.
    pub fn final_text(&self) -> String {
        let mut text = self.text.clone();
        text.push_str(&String::from_utf8_lossy(&self.pending));
        text
    }

    /// How many bytes of the text have been handed out.
    pub fn sent(&self) -> usize {
        self.sent
    }

    /// Cuts the text at `len` bytes (a char boundary): what follows is dropped, sent or not.
    pub fn cut(&mut self, len: usize) {
        self.text.truncate(len);
        self.sent = self.sent.min(len);
    }

    /// Text not yet sent, released at the end of generation (a partial stop that never completed).
    pub fn flush(&mut self) -> String {
        let rest = self.text[self.sent..].to_string();
        self.sent = self.text.len();
        rest
    }

    fn scan(&mut self, stops: &[String]) -> Pushed {
        let longest = stops.iter().map(String::len).max().unwrap_or(0);
        // A stop string can only start in the unsent tail or in the last `longest` bytes.
        let mut from = self.sent.saturating_sub(longest);
        while !self.text.is_char_boundary(from) {
            from -= 1;
        }
        let full = stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.text[from..].find(s.as_str()).map(|p| (from + p, s)))
            .min_by_key(|(pos, _)| *pos);
        if let Some((pos, word)) = full {
            let pos = pos.max(self.sent);
            let text = self.text[self.sent..pos].to_string();
            self.text.truncate(pos);
            self.sent = pos;
            return Pushed::Stop {
                text,
                word: word.clone(),
            };
        }
        let hold = partial_stop_start(&self.text[self.sent..], stops)
            .map_or(self.text.len(), |p| self.sent + p);
        let text = self.text[self.sent..hold].to_string();
        self.sent = hold;
        Pushed::Text(text)
    }
}

/// Where in `text` a suffix begins that is a proper prefix of some stop string.
fn partial_stop_start(text: &str, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter_map(|stop| {
            (1..stop.len().min(text.len() + 1))
                .rev()
                .filter(|&n| stop.is_char_boundary(n))
                .find(|&n| text.ends_with(&stop[..n]))
                .map(|n| text.len() - n)
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stops(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    fn run(pieces: &[&[u8]], stop: &[&str]) -> (String, Option<String>) {
        let stops = stops(stop);
        let mut stream = TextStream::default();
        let mut out = String::new();
        for piece in pieces {
            match stream.push(piece, &stops) {
                Pushed::Text(t) => out.push_str(&t),
                Pushed::Stop { text, word } => {
                    out.push_str(&text);
                    return (out, Some(word));
                }
            }
        }
        out.push_str(&stream.flush());
        (out, None)
    }

    #[test]
    fn an_answer_that_ends_inside_a_character_ends_with_a_replacement_character() {
        let mut t = TextStream::default();
        assert_eq!(t.push("né".as_bytes(), &[]), Pushed::Text("né".into()));
        // The first two bytes of "€" (E2 82 AC): held back, never streamed.
        assert_eq!(t.push(&[0xE2, 0x82], &[]), Pushed::Text(String::new()));
        assert_eq!(t.flush(), "");
        assert_eq!(t.text(), "né");
        assert_eq!(t.final_text(), "né\u{FFFD}");
        assert_eq!(t.push(&[0xAC], &[]), Pushed::Text("€".into()));
        assert_eq!(t.final_text(), "né€");
        // An invalid byte, then the first byte of "߶" (DF B6) that the next token completes:
        // one replacement, and the character whole.
        assert_eq!(t.push(&[0xFF, 0xDF], &[]), Pushed::Text("\u{FFFD}".into()));
        assert_eq!(t.push(&[0xB6], &[]), Pushed::Text("߶".into()));
    }

    #[test]
    fn stop_strings_and_utf8() {
        let euro = "€".as_bytes();
        // (pieces, stop strings, text a client sees, stop string that matched)
        type Case<'a> = (&'a [&'a [u8]], &'a [&'a str], &'a str, Option<&'a str>);
        let cases: &[Case] = &[
            (&[b"Hello", b" world"], &[], "Hello world", None),
            // A stop string split over three tokens is not leaked.
            (
                &[b"Hi ", b"<|e", b"nd", b"|> tail"],
                &["<|end|>"],
                "Hi ",
                Some("<|end|>"),
            ),
            // A partial stop that turns out not to be one is released.
            (&[b"a <", b"b"], &["<|end|>"], "a <b", None),
            // A partial stop at the very end is released by flush.
            (&[b"a <|"], &["<|end|>"], "a <|", None),
            // UTF-8 split across tokens is held until complete.
            (&[&euro[..1], &euro[1..]], &[], "€", None),
            // The earliest of several stops wins.
            (&[b"one two three"], &["three", "two"], "one ", Some("two")),
            // A stop inside the first piece.
            (&[b"xSTOPy"], &["STOP"], "x", Some("STOP")),
        ];
        for (pieces, stop, text, word) in cases {
            let (got, got_word) = run(pieces, stop);
            assert_eq!(got, *text, "pieces {pieces:?} stops {stop:?}");
            assert_eq!(
                got_word.as_deref(),
                *word,
                "pieces {pieces:?} stops {stop:?}"
            );
        }
    }

    #[test]
    fn text_holds_everything_before_stop() {
        let stops = stops(&["END"]);
        let mut stream = TextStream::default();
        stream.push(b"abc E", &stops);
        assert!(matches!(
            stream.push(b"ND more", &stops),
            Pushed::Stop { .. }
        ));
        assert_eq!(stream.text(), "abc ");
    }
}
