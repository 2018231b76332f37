//! Server-sent events, as llama-server and OpenAI stream them: `data: {json}` lines, events ended
//! by a blank line, `:` comments as keep-alive pings. Network reads split events anywhere (even
//! inside a UTF-8 character), so the decoder buffers bytes until a line is complete.

/// Incremental SSE decoder: feed it the body's chunks as they arrive, get each event's data back.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes after the last line terminator seen so far.
    partial_line: Vec<u8>,
    /// The data lines of the event being read, joined with `\n` as the SSE spec says.
    data: Option<String>,
}

impl SseDecoder {
    /// Takes the next chunk of the body and returns the data of every event it completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        let mut rest = bytes;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            self.partial_line.extend_from_slice(&rest[..newline]);
            rest = &rest[newline + 1..];
            let line = std::mem::take(&mut self.partial_line);
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        self.partial_line.extend_from_slice(rest);
        events
    }

    /// Ends the body: an unterminated last line or event still counts (some servers omit the
    /// final blank line).
    pub fn finish(&mut self) -> Option<String> {
        let line = std::mem::take(&mut self.partial_line);
        let event = if line.is_empty() {
            None
        } else {
            self.line(&line)
        };
        event.or_else(|| self.data.take())
    }

    /// Handles one line (without its `\n`); returns an event's data when the line ends one.
    fn line(&mut self, line: &[u8]) -> Option<String> {
        let line = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line));
        if line.is_empty() {
            return self.data.take();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one after the other and returns all events, `finish` included.
    fn decode(chunks: &[&[u8]]) -> Vec<String> {
        let mut decoder = SseDecoder::default();
        let mut events: Vec<String> = chunks.iter().flat_map(|c| decoder.feed(c)).collect();
        events.extend(decoder.finish());
        events
    }

    /// Name, network reads, expected event data.
    type Case<'a> = (&'a str, &'a [&'a [u8]], &'a [&'a str]);

    #[test]
    fn events_table() {
        let cases: &[Case] = &[
            ("one event", &[b"data: {\"a\":1}\n\n"], &["{\"a\":1}"]),
            (
                "two events in one read",
                &[b"data: 1\n\ndata: 2\n\n"],
                &["1", "2"],
            ),
            (
                "split inside the field name",
                &[b"da", b"ta: x\n", b"\n"],
                &["x"],
            ),
            (
                "split between the two newlines",
                &[b"data: x\n", b"\ndata: y\n\n"],
                &["x", "y"],
            ),
            ("crlf line ends", &[b"data: x\r\n\r\n"], &["x"]),
            ("no space after colon", &[b"data:x\n\n"], &["x"]),
            ("multi-line data", &[b"data: a\ndata: b\n\n"], &["a\nb"]),
            ("comment ping ignored", &[b":\n\ndata: x\n\n"], &["x"]),
            (
                "event field ignored, data kept",
                &[b"event: error\ndata: x\n\n"],
                &["x"],
            ),
            ("unterminated last line", &[b"data: x"], &["x"]),
            ("missing final blank line", &[b"data: x\n"], &["x"]),
            ("done marker", &[b"data: [DONE]\n\n"], &["[DONE]"]),
            ("empty body", &[], &[]),
            (
                "utf-8 char split across reads",
                &[b"data: caf\xc3", b"\xa9\n\n"],
                &["caf\u{e9}"],
            ),
        ];
        for (name, chunks, want) in cases {
            assert_eq!(decode(chunks), *want, "{name}");
        }
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let body =
            b"data: {\"content\":\"a\"}\n\n: ping\n\ndata: {\"content\":\"b\",\"stop\":true}\n\n";
        let whole = decode(&[body]);
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(decode(&bytes), whole);
        assert_eq!(whole.len(), 2);
    }
}
