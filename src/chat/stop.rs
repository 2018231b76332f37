//! Stop strings that may span token boundaries (request `stop`).
//!
//! Generated text goes through a [`StopMatcher`] before the output parser: text that might be
//! the start of a stop string is held back until the next piece decides it, so a stream never
//! shows part of a stop string, and the stop string itself is not part of the answer (as in
//! llama-server).

use crate::chat::parse::scan::safe_end;

/// What one piece of text did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StopStep {
    /// Text that can be passed on now.
    pub text: String,
    /// The stop string that ended generation, if one did; stop decoding then.
    pub stopped: Option<String>,
}

/// Watches generated text for stop strings.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
    stopped: bool,
}

impl StopMatcher {
    /// A matcher for `stops` (empty strings are ignored).
    pub fn new(stops: impl IntoIterator<Item = String>) -> Self {
        StopMatcher {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
            stopped: false,
        }
    }

    /// Feeds the next piece of generated text.
    pub fn push(&mut self, piece: &str) -> StopStep {
        if self.stopped {
            return StopStep::default();
        }
        self.held.push_str(piece);
        let first = self
            .stops
            .iter()
            .filter_map(|stop| self.held.find(stop.as_str()).map(|i| (i, stop)))
            .min_by_key(|(i, _)| *i);
        if let Some((i, stop)) = first {
            let stop = stop.clone();
            let text = self.held[..i].to_string();
            self.held.clear();
            self.stopped = true;
            return StopStep {
                text,
                stopped: Some(stop),
            };
        }
        let markers: Vec<&str> = self.stops.iter().map(String::as_str).collect();
        let safe = safe_end(&self.held, &markers);
        let text = self.held[..safe].to_string();
        self.held.drain(..safe);
        StopStep {
            text,
            stopped: None,
        }
    }

    /// Generation ended without a stop string: the held-back text is answer after all.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (stops, pieces, emitted text per piece, stop hit, text left at finish)
    type Case = (
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
        Option<&'static str>,
        &'static str,
    );

    #[test]
    fn holds_back_partial_stop_strings() {
        let cases: &[Case] = &[
            (
                &["###"],
                &["Hello", " wor", "ld"],
                &["Hello", " wor", "ld"],
                None,
                "",
            ),
            (
                &["###"],
                &["Hello #", "#", "# rest"],
                &["Hello ", "", ""],
                Some("###"),
                "",
            ),
            (&["###"], &["a #", "b"], &["a ", "#b"], None, ""),
            (&["###"], &["end ##"], &["end "], None, "##"),
            (
                &["</s>", "User:"],
                &["Hi.\nUs", "er: x"],
                &["Hi.\n", ""],
                Some("User:"),
                "",
            ),
            (&["stop"], &["nonstop"], &["non"], Some("stop"), ""),
            (&[], &["free"], &["free"], None, ""),
        ];
        for (stops, pieces, want, want_stop, want_left) in cases {
            let mut matcher = StopMatcher::new(stops.iter().map(|s| s.to_string()));
            let mut stop = None;
            for (piece, want) in pieces.iter().zip(want.iter()) {
                let step = matcher.push(piece);
                assert_eq!(step.text, *want, "{stops:?} {pieces:?} at {piece:?}");
                stop = stop.or(step.stopped);
            }
            assert_eq!(stop.as_deref(), *want_stop, "{stops:?} {pieces:?}");
            assert_eq!(matcher.finish(), *want_left, "{stops:?} {pieces:?}");
        }
    }
}
