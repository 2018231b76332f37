//! OpenAI Harmony, the gpt-oss output format.
//!
//! The answer is a run of messages, each
//! `[<|start|>assistant][ to=R]<|channel|>C[ to=R][ <|constrain|>json]<|message|>BODY` ended by
//! `<|end|>`, `<|call|>` or `<|return|>` (the last two end generation, so usually the text just
//! stops). Channel `analysis` is reasoning, `final` is content, a recipient `functions.NAME` makes
//! the body a tool call's arguments (streamed as they come), `commentary` without a recipient is
//! a preamble (content), and calls to built-in tools (other recipients) are dropped, as
//! llama-server does. Text outside any header is content.

use super::scan::{emit, find_first};
use super::{RawCall, Snapshot};

const START: &str = "<|start|>";
const CHANNEL: &str = "<|channel|>";
const MESSAGE: &str = "<|message|>";
const END: &str = "<|end|>";
const CALL: &str = "<|call|>";
const RETURN: &str = "<|return|>";
const BODY_ENDS: [&str; 4] = [END, CALL, RETURN, START];
const HEADER_STARTS: [&str; 2] = [START, CHANNEL];

pub fn parse(
    text: &str,
    partial: bool,
    extract_reasoning: bool,
    parse_tool_calls: bool,
) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let mut pos = 0;
    while pos < text.len() {
        let rest = &text[pos..];
        if !rest.starts_with(START) && !rest.starts_with(CHANNEL) {
            // Plain text up to the next header.
            match find_first(rest, &HEADER_STARTS) {
                Some((i, _)) => {
                    snapshot.content.push_str(&rest[..i]);
                    pos += i;
                    continue;
                }
                None => {
                    snapshot
                        .content
                        .push_str(emit(rest, &HEADER_STARTS, partial));
                    break;
                }
            }
        }
        let Some(header_len) = rest.find(MESSAGE) else {
            // The header is still being written (or the stream was cut inside it).
            break;
        };
        let header = Header::parse(&rest[..header_len]);
        let body_start = header_len + MESSAGE.len();
        let after_header = &rest[body_start..];
        let (body, end_marker, consumed) = match find_first(after_header, &BODY_ENDS) {
            Some((i, marker)) => {
                // A `<|start|>` ends the body but belongs to the next message.
                let used = if marker == START { i } else { i + marker.len() };
                (&after_header[..i], Some(marker), body_start + used)
            }
            None => (emit(after_header, &BODY_ENDS, partial), None, rest.len()),
        };
        match header.recipient {
            Some(recipient) => {
                if let Some(name) = recipient
                    .strip_prefix("functions.")
                    .filter(|_| parse_tool_calls)
                {
                    snapshot.calls.push(RawCall::new(name, body));
                }
            }
            None if header.channel == "analysis" && extract_reasoning => {
                snapshot.reasoning.push_str(body);
            }
            None if header.channel == "analysis" => {
                // Reasoning format `none`: the analysis message stays in the content verbatim.
                snapshot.content.push_str(header.from_channel);
                snapshot.content.push_str(MESSAGE);
                snapshot.content.push_str(body);
                if end_marker == Some(END) {
                    snapshot.content.push_str(END);
                }
            }
            None => snapshot.content.push_str(body),
        }
        pos += consumed;
    }
    snapshot
}

/// A message header: what sits between the message start and `<|message|>`.
struct Header<'a> {
    channel: &'a str,
    /// `functions.NAME` for a tool call, in the role part or after the channel.
    recipient: Option<&'a str>,
    /// The header from `<|channel|>` on, as written.
    from_channel: &'a str,
}

impl<'a> Header<'a> {
    fn parse(header: &'a str) -> Self {
        let from_channel = header.find(CHANNEL).map_or("", |i| &header[i..]);
        let channel = from_channel.strip_prefix(CHANNEL).map_or("", |c| {
            c.split(|ch: char| ch.is_whitespace() || ch == '<')
                .next()
                .unwrap_or("")
        });
        let recipient = header.find(" to=").map(|i| {
            let r = &header[i + 4..];
            r.split(|ch: char| ch.is_whitespace() || ch == '<')
                .next()
                .unwrap_or("")
        });
        Header {
            channel,
            recipient,
            from_channel,
        }
    }
}
