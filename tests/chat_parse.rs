//! Output parsers on recorded model outputs: the parsed message per format, and the streaming
//! invariant (deltas from any chunking concatenate to the non-streamed parse).

#[path = "common/chat_cases.rs"]
mod chat_cases;

use chat_cases::{Case, call, check, config};
use gguf_serve::chat::{ChatFormat, ChatParser, ParserConfig, ReasoningFormat};

#[test]
fn harmony() {
    let harmony = config(ChatFormat::Harmony);
    let no_reasoning = ParserConfig {
        reasoning_format: ReasoningFormat::None,
        ..harmony
    };
    check(vec![
        Case {
            name: "reasoning then final",
            config: harmony,
            text: "<|channel|>analysis<|message|>User asks 2+2. Simple.<|end|><|start|>assistant<|channel|>final<|message|>2 + 2 = 4.",
            content: "2 + 2 = 4.",
            reasoning: "User asks 2+2. Simple.",
            calls: vec![],
        },
        Case {
            name: "final ended by <|return|>",
            config: harmony,
            text: "<|channel|>final<|message|>Bonjour !<|return|>",
            content: "Bonjour !",
            reasoning: "",
            calls: vec![],
        },
        Case {
            name: "tool call with <|call|>",
            config: harmony,
            text: "<|channel|>analysis<|message|>Need weather; call the tool.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"location\":\"Tokyo\"}<|call|>",
            content: "",
            reasoning: "Need weather; call the tool.",
            calls: vec![call("get_weather", "{\"location\":\"Tokyo\"}")],
        },
        Case {
            name: "tool call, recipient in the role, EOG stripped",
            config: harmony,
            text: "<|start|>assistant to=functions.get_time<|channel|>commentary json<|message|>{\"tz\":\"UTC\"}",
            content: "",
            reasoning: "",
            calls: vec![call("get_time", "{\"tz\":\"UTC\"}")],
        },
        Case {
            name: "preamble then two calls",
            config: harmony,
            text: "<|channel|>commentary<|message|>Checking both.<|end|><|start|>assistant<|channel|>commentary to=functions.a <|constrain|>json<|message|>{}<|call|><|start|>assistant<|channel|>commentary to=functions.b <|constrain|>json<|message|>{\"x\":1}<|call|>",
            content: "Checking both.",
            reasoning: "",
            calls: vec![call("a", "{}"), call("b", "{\"x\":1}")],
        },
        Case {
            name: "built-in tool call is dropped",
            config: harmony,
            text: "<|channel|>analysis<|message|>Search.<|end|><|start|>assistant<|channel|>commentary to=browser.search <|constrain|>json<|message|>{\"q\":\"x\"}<|call|>",
            content: "",
            reasoning: "Search.",
            calls: vec![],
        },
        Case {
            name: "truncated in reasoning",
            config: harmony,
            text: "<|channel|>analysis<|message|>Let me think about this carefu",
            content: "",
            reasoning: "Let me think about this carefu",
            calls: vec![],
        },
        Case {
            name: "truncated in a header",
            config: harmony,
            text: "<|channel|>analysis<|message|>Done.<|end|><|start|>assistant<|channel|>fin",
            content: "",
            reasoning: "Done.",
            calls: vec![],
        },
        Case {
            name: "truncated in tool arguments",
            config: harmony,
            text: "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"location\":\"Tok",
            content: "",
            reasoning: "",
            calls: vec![call("get_weather", "{\"location\":\"Tok")],
        },
        Case {
            name: "plain text from a model that ignores the format",
            config: harmony,
            text: "Hello <b>there</b> <|channel|>final<|message|>ok",
            content: "Hello <b>there</b> ok",
            reasoning: "",
            calls: vec![],
        },
        Case {
            name: "reasoning format none keeps analysis in content",
            config: no_reasoning,
            text: "<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>final<|message|>Answer.",
            content: "<|channel|>analysis<|message|>Think.<|end|>Answer.",
            reasoning: "",
            calls: vec![],
        },
        Case {
            name: "continuing a prefilled analysis message",
            config: ParserConfig {
                thinking_forced_open: true,
                ..harmony
            },
            text: " four.<|end|><|start|>assistant<|channel|>final<|message|>4",
            content: "4",
            reasoning: " four.",
            calls: vec![],
        },
        Case {
            name: "no tools offered: calls are not parsed",
            config: ParserConfig {
                parse_tool_calls: false,
                ..harmony
            },
            text: "<|channel|>commentary to=functions.f <|constrain|>json<|message|>{}<|call|>",
            content: "",
            reasoning: "",
            calls: vec![],
        },
    ]);
}

#[test]
fn think_tags() {
    let think = config(ChatFormat::Think);
    check(vec![
        Case {
            name: "DeepSeek-R1 reasoning",
            config: think,
            text: "<think>\nI need to add 2 and 2.\n</think>\n\nThe answer is 4.",
            content: "The answer is 4.",
            reasoning: "I need to add 2 and 2.",
            calls: vec![],
        },
        Case {
            name: "prompt left <think> open",
            config: ParserConfig {
                thinking_forced_open: true,
                ..think
            },
            text: "Adding.\n</think>\n\n4",
            content: "4",
            reasoning: "Adding.",
            calls: vec![],
        },
        Case {
            name: "truncated reasoning",
            config: think,
            text: "<think>\nStill thinking about </thi",
            content: "",
            reasoning: "Still thinking about </thi",
            calls: vec![],
        },
        Case {
            name: "no reasoning",
            config: think,
            text: "Just <b>content</b>.",
            content: "Just <b>content</b>.",
            reasoning: "",
            calls: vec![],
        },
        Case {
            name: "reasoning format none",
            config: ParserConfig {
                reasoning_format: ReasoningFormat::None,
                ..think
            },
            text: "<think>\nHmm.\n</think>\n\nYes.",
            content: "<think>\nHmm.\n</think>\n\nYes.",
            reasoning: "",
            calls: vec![],
        },
    ]);
}

#[test]
fn hermes_tool_calls() {
    let hermes = config(ChatFormat::Hermes);
    check(vec![
        Case {
            name: "Qwen 2.5 call after content",
            config: hermes,
            text: "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Tokyo\", \"unit\": \"celsius\"}}\n</tool_call>",
            content: "Let me check.",
            reasoning: "",
            calls: vec![call(
                "get_weather",
                "{\"location\":\"Tokyo\",\"unit\":\"celsius\"}",
            )],
        },
        Case {
            name: "Qwen3 reasoning and two parallel calls",
            config: hermes,
            text: "<think>\nTwo cities.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Tokyo\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Oslo\"}}\n</tool_call>",
            content: "",
            reasoning: "Two cities.",
            calls: vec![
                call("get_weather", "{\"location\":\"Tokyo\"}"),
                call("get_weather", "{\"location\":\"Oslo\"}"),
            ],
        },
        Case {
            name: "invalid JSON stays content",
            config: hermes,
            text: "<tool_call>\nnot json\n</tool_call>",
            content: "<tool_call>\nnot json\n</tool_call>",
            reasoning: "",
            calls: vec![],
        },
        Case {
            name: "unclosed call with whole JSON",
            config: hermes,
            text: "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}",
            content: "",
            reasoning: "",
            calls: vec![call("f", "{}")],
        },
        Case {
            name: "truncated call becomes content",
            config: hermes,
            text: "Sure. <tool_call>\n{\"name\": \"f\", \"argu",
            content: "Sure. <tool_call>\n{\"name\": \"f\", \"argu",
            reasoning: "",
            calls: vec![],
        },
        Case {
            name: "no tools offered",
            config: ParserConfig {
                parse_tool_calls: false,
                ..hermes
            },
            text: "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
            content: "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
            reasoning: "",
            calls: vec![],
        },
    ]);
}

#[test]
fn llama3_json_calls() {
    let llama3 = config(ChatFormat::Llama3Json);
    check(vec![
        Case {
            name: "bare JSON call",
            config: llama3,
            text: "{\"name\": \"get_weather\", \"parameters\": {\"location\": \"Tokyo\"}}",
            content: "",
            reasoning: "",
            calls: vec![call("get_weather", "{\"location\":\"Tokyo\"}")],
        },
        Case {
            name: "python tag",
            config: llama3,
            text: "<|python_tag|>{\"name\": \"f\", \"parameters\": {}}",
            content: "",
            reasoning: "",
            calls: vec![call("f", "{}")],
        },
        Case {
            name: "plain answer",
            config: llama3,
            text: "It is sunny {mostly}.",
            content: "It is sunny {mostly}.",
            reasoning: "",
            calls: vec![],
        },
        Case {
            name: "JSON that is not a call",
            config: llama3,
            text: "{\"answer\": 4}",
            content: "{\"answer\": 4}",
            reasoning: "",
            calls: vec![],
        },
    ]);
}

#[test]
fn streamed_tool_call_fragments_look_like_openai() {
    let mut parser = ChatParser::with_id_seed(config(ChatFormat::Harmony), 1);
    let mut deltas = parser
        .push("<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"loc");
    deltas.extend(parser.push("ation\":\"Oslo\"}"));
    deltas.extend(parser.finish().0);
    let calls: Vec<_> = deltas.iter().flat_map(|d| d.tool_calls.clone()).collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].index, 0);
    assert_eq!(calls[0].name.as_deref(), Some("get_weather"));
    assert!(calls[0].id.is_some());
    assert_eq!(calls[0].arguments, "{\"loc");
    assert_eq!((calls[1].id.as_ref(), calls[1].name.as_ref()), (None, None));
    assert_eq!(calls[1].arguments, "ation\":\"Oslo\"}");
}

/// Plain content streams chunk by chunk (no re-parse), and markup of other formats in it is
/// just text.
#[test]
fn plain_content_is_the_text_as_streamed() {
    let text = "Plain <think>not reasoning</think> and <tool_call>{}</tool_call> ünïcode.";
    check(vec![Case {
        name: "markup is text",
        config: config(ChatFormat::Content),
        text,
        content: text,
        reasoning: "",
        calls: vec![],
    }]);
    let mut parser = ChatParser::with_id_seed(config(ChatFormat::Content), 7);
    assert!(parser.push("").is_empty());
    let deltas = parser.push("Plain");
    assert_eq!(deltas.len(), 1);
    assert_eq!(deltas[0].content.as_deref(), Some("Plain"));
    let (last, message) = parser.finish();
    assert!(last.is_empty());
    assert_eq!(message.content, "Plain");
}
