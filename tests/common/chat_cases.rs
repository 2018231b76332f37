//! Checking output parsers on recorded model outputs: the parsed message of each case, and the
//! streaming invariant (deltas from any chunking concatenate to the non-streamed parse).

#![allow(dead_code)] // each test binary uses a different part

use gguf_serve::chat::{
    ChatFormat, ChatParser, ParsedMessage, ParserConfig, ReasoningFormat, Tool, ToolCall,
};

pub fn config(format: ChatFormat) -> ParserConfig {
    ParserConfig {
        format,
        reasoning_format: ReasoningFormat::Auto,
        parse_tool_calls: true,
        thinking_forced_open: false,
    }
}

/// The non-streamed parse.
pub fn parse_whole(config: ParserConfig, text: &str) -> ParsedMessage {
    parse_whole_with(config, &[], text)
}

/// The non-streamed parse, with these tools offered.
pub fn parse_whole_with(config: ParserConfig, tools: &[Tool], text: &str) -> ParsedMessage {
    let mut parser = ChatParser::with_id_seed(config, 7).with_tools(tools);
    parser.push(text);
    parser.finish().1
}

/// Streams `chunks` and rebuilds the message from the deltas, as a client does.
pub fn parse_streamed(config: ParserConfig, tools: &[Tool], chunks: &[&str]) -> ParsedMessage {
    let mut parser = ChatParser::with_id_seed(config, 7).with_tools(tools);
    let mut message = ParsedMessage::default();
    for chunk in chunks {
        for delta in parser.push(chunk) {
            message.apply(&delta);
        }
    }
    let (deltas, whole) = parser.finish();
    for delta in &deltas {
        message.apply(delta);
    }
    assert_eq!(
        message, whole,
        "finish() disagrees with its own deltas for {chunks:?}"
    );
    message
}

/// Every split into two and three chunks at char boundaries, and one char at a time.
pub fn assert_stream_invariant(config: ParserConfig, text: &str) {
    assert_stream_invariant_with(config, &[], text);
}

/// [`assert_stream_invariant`] with these tools offered.
pub fn assert_stream_invariant_with(config: ParserConfig, tools: &[Tool], text: &str) {
    let whole = parse_whole_with(config, tools, text);
    let cuts: Vec<usize> = (0..=text.len())
        .filter(|&i| text.is_char_boundary(i))
        .collect();
    for &i in &cuts {
        for &j in cuts.iter().filter(|&&j| j >= i) {
            let chunks = [&text[..i], &text[i..j], &text[j..]];
            assert_eq!(
                parse_streamed(config, tools, &chunks),
                whole,
                "chunks {chunks:?}"
            );
        }
    }
    let chars: Vec<String> = text.chars().map(String::from).collect();
    let chars: Vec<&str> = chars.iter().map(String::as_str).collect();
    assert_eq!(parse_streamed(config, tools, &chars), whole, "char by char");
}

pub fn call(name: &str, arguments: &str) -> (String, String) {
    (name.to_string(), arguments.to_string())
}

pub struct Case {
    pub name: &'static str,
    pub config: ParserConfig,
    pub text: &'static str,
    pub content: &'static str,
    pub reasoning: &'static str,
    pub calls: Vec<(String, String)>,
}

pub fn check(cases: Vec<Case>) {
    check_with(&[], cases);
}

/// [`check`] with these tools offered.
pub fn check_with(tools: &[Tool], cases: Vec<Case>) {
    for case in cases {
        let got = parse_whole_with(case.config, tools, case.text);
        assert_eq!(got.content, case.content, "{}: content", case.name);
        assert_eq!(
            got.reasoning_content, case.reasoning,
            "{}: reasoning",
            case.name
        );
        let calls: Vec<(String, String)> = got
            .tool_calls
            .iter()
            .map(|c: &ToolCall| (c.name.clone(), c.arguments.clone()))
            .collect();
        assert_eq!(calls, case.calls, "{}: tool calls", case.name);
        assert_eq!(
            got.finish_reason(true),
            if case.calls.is_empty() {
                "stop"
            } else {
                "tool_calls"
            },
            "{}: finish reason",
            case.name
        );
        assert_eq!(got.finish_reason(false), "length");
        assert!(
            got.tool_calls
                .iter()
                .all(|c| c.id.starts_with("call_") && c.id.len() == 29)
        );
        assert_stream_invariant_with(case.config, tools, case.text);
    }
}
