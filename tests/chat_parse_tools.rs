//! The tool call syntaxes of Mistral Nemo, DeepSeek R1, Qwen3-Coder and Functionary v3.2 on
//! outputs in the shapes llama.cpp's own tests record (tests/test-chat.cpp): a call, content and
//! a call, a truncated answer; each also streamed in every chunking.

#[path = "common/chat_cases.rs"]
mod chat_cases;

use chat_cases::{
    Case, assert_stream_invariant_with, call, check, check_with, config, parse_whole,
    parse_whole_with,
};
use gguf_serve::chat::{ChatFormat, ChatParser, ParserConfig, ReasoningFormat, parse_tools};
use serde_json::json;

const NO_TOOLS: fn(ChatFormat) -> ParserConfig = |format| ParserConfig {
    parse_tool_calls: false,
    ..config(format)
};

#[test]
fn mistral_nemo() {
    let nemo = config(ChatFormat::MistralNemo);
    check(vec![
        Case {
            name: "one call",
            config: nemo,
            text: "[TOOL_CALLS][{\"name\": \"special_function\", \"arguments\": {\"arg1\": 1}}]",
            content: "",
            reasoning: "",
            calls: vec![call("special_function", "{\"arg1\":1}")],
        },
        Case {
            name: "content then two calls",
            config: nemo,
            text: "Checking both.[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Tokyo\"}}, {\"name\": \"get_weather\", \"arguments\": {\"location\": \"Oslo\"}}]",
            content: "Checking both.",
            reasoning: "",
            calls: vec![
                call("get_weather", "{\"location\":\"Tokyo\"}"),
                call("get_weather", "{\"location\":\"Oslo\"}"),
            ],
        },
        Case {
            name: "plain answer with brackets",
            config: nemo,
            text: "Hello, world!\nWhat's up? [1, 2]",
            content: "Hello, world!\nWhat's up? [1, 2]",
            reasoning: "",
            calls: vec![],
        },
        Case {
            name: "truncated array stays content",
            config: nemo,
            text: "Sure.[TOOL_CALLS][{\"name\": \"f\", \"argu",
            content: "Sure.[TOOL_CALLS][{\"name\": \"f\", \"argu",
            reasoning: "",
            calls: vec![],
        },
        Case {
            name: "no tools offered",
            config: NO_TOOLS(ChatFormat::MistralNemo),
            text: "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {}}]",
            content: "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {}}]",
            reasoning: "",
            calls: vec![],
        },
    ]);
}

#[test]
fn mistral_nemo_keeps_the_models_call_id() {
    let text = "[TOOL_CALLS][{\"name\": \"special_function\", \"arguments\": {\"arg1\": 1}, \"id\": \"123456789\"}]";
    let message = parse_whole(config(ChatFormat::MistralNemo), text);
    assert_eq!(message.tool_calls.len(), 1);
    assert_eq!(message.tool_calls[0].id, "123456789");
    chat_cases::assert_stream_invariant(config(ChatFormat::MistralNemo), text);
}

#[test]
fn deepseek_r1() {
    let r1 = config(ChatFormat::DeepSeekR1);
    let forced_open = ParserConfig {
        thinking_forced_open: true,
        ..r1
    };
    check(vec![
        Case {
            name: "one call, fence closed on the arguments' line",
            config: r1,
            text: "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>special_function\n```json\n{\"arg1\": 1}```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
            content: "",
            reasoning: "",
            calls: vec![call("special_function", "{\"arg1\":1}")],
        },
        Case {
            name: "reasoning left open by the prompt, content and two calls",
            config: forced_open,
            text: "Two cities.\n</think>\n\nLet me check.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"location\": \"Tokyo\"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"location\": \"Oslo\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
            content: "Let me check.",
            reasoning: "Two cities.",
            calls: vec![
                call("get_weather", "{\"location\":\"Tokyo\"}"),
                call("get_weather", "{\"location\":\"Oslo\"}"),
            ],
        },
        Case {
            name: "reasoning then plain answer",
            config: forced_open,
            text: "I'm\nthinking</think>Hello, world!\nWhat's up?",
            content: "Hello, world!\nWhat's up?",
            reasoning: "I'm\nthinking",
            calls: vec![],
        },
        Case {
            name: "another spelling of the begin marker, no end marker",
            config: r1,
            text: "<｜tool_calls_begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{}\n```<｜tool▁call▁end｜>",
            content: "",
            reasoning: "",
            calls: vec![call("f", "{}")],
        },
        Case {
            name: "truncated call stays content",
            config: r1,
            text: "Sure.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{\"a",
            content: "Sure.<｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{\"a",
            reasoning: "",
            calls: vec![],
        },
    ]);
}

#[test]
fn qwen3_coder() {
    let coder = config(ChatFormat::Qwen3Coder);
    check(vec![
        Case {
            name: "one call, a number argument",
            config: coder,
            text: "<tool_call>\n<function=special_function>\n<parameter=arg1>\n1\n</parameter>\n</function>\n</tool_call>",
            content: "",
            reasoning: "",
            calls: vec![call("special_function", "{\"arg1\":1}")],
        },
        Case {
            name: "reasoning, content and two calls with text arguments",
            config: coder,
            text: "<think>\nTwo files.\n</think>\n\nReading both.\n<tool_call>\n<function=read_file>\n<parameter=path>\nsrc/main.rs\n</parameter>\n<parameter=lines>\n[1, 20]\n</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=write_file>\n<parameter=path>\nout.txt\n</parameter>\n<parameter=text>\nline one\nline two\n</parameter>\n</function>\n</tool_call>",
            content: "Reading both.",
            reasoning: "Two files.",
            calls: vec![
                call("read_file", "{\"path\":\"src/main.rs\",\"lines\":[1,20]}"),
                call(
                    "write_file",
                    "{\"path\":\"out.txt\",\"text\":\"line one\\nline two\"}",
                ),
            ],
        },
        Case {
            name: "not a function block stays content",
            config: coder,
            text: "<tool_call>\n{\"name\": \"f\"}\n</tool_call>",
            content: "<tool_call>\n{\"name\": \"f\"}\n</tool_call>",
            reasoning: "",
            calls: vec![],
        },
        Case {
            name: "truncated call stays content",
            config: coder,
            text: "Sure.\n<tool_call>\n<function=f>\n<parameter=a>\nx",
            content: "Sure.\n<tool_call>\n<function=f>\n<parameter=a>\nx",
            reasoning: "",
            calls: vec![],
        },
    ]);
}

/// Qwen3-Coder models sometimes start the first call at `<function=NAME>` without
/// `<tool_call>`: with that tool offered, it is a call (llama.cpp's rule); later calls need the
/// opener, and without the tool the text is content.
#[test]
fn qwen3_coder_first_call_without_its_opener() {
    let tools = parse_tools(Some(&json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}}}},
    ])))
    .unwrap();
    let coder = config(ChatFormat::Qwen3Coder);
    let bare = "Let me check.\n<function=get_weather>\n<parameter=city>\nOslo\n</parameter>\n</function>\n</tool_call>";
    let message = parse_whole_with(coder, &tools, bare);
    assert_eq!(message.content, "Let me check.");
    assert_eq!(message.tool_calls.len(), 1, "{message:?}");
    assert_eq!(message.tool_calls[0].name, "get_weather");
    assert_eq!(message.tool_calls[0].arguments, r#"{"city":"Oslo"}"#);
    assert_stream_invariant_with(coder, &tools, bare);

    // A second bare call is not one.
    let second = format!(
        "{bare}\n<function=get_weather>\n<parameter=city>\nRome\n</parameter>\n</function>\n</tool_call>"
    );
    let message = parse_whole_with(coder, &tools, &second);
    assert_eq!(message.tool_calls.len(), 1, "{message:?}");
    assert!(
        message.content.contains("<function=get_weather>"),
        "{message:?}"
    );

    // A tool that was not offered: content, as written.
    let message = parse_whole_with(coder, &[], bare);
    assert!(message.tool_calls.is_empty());
    assert_eq!(message.content, bare);
}

#[test]
fn qwen3_coder_types_values_by_the_tools_schema() {
    let tools = parse_tools(Some(&json!([{"type": "function", "function": {
        "name": "write_file",
        "parameters": {"type": "object", "properties": {
            "path": {"type": "string"},
            "content": {"type": ["string"]},
            "mode": {"enum": ["w", "a"]},
            "line": {"type": "integer"},
            "data": {"type": ["object", "string"]},
        }},
    }}])))
    .unwrap();
    let text = "<tool_call>\n<function=write_file>\n<parameter=path>\n404\n</parameter>\n<parameter=content>\n{\"a\": [1, 2]}\n</parameter>\n<parameter=mode>\nw\n</parameter>\n<parameter=line>\n7\n</parameter>\n<parameter=data>\n{\"k\": true}\n</parameter>\n<parameter=other>\nnull\n</parameter>\n</function>\n</tool_call>";
    let mut parser = ChatParser::with_id_seed(config(ChatFormat::Qwen3Coder), 7).with_tools(&tools);
    parser.push(text);
    let (_, message) = parser.finish();
    assert_eq!(
        message.tool_calls[0].arguments,
        r#"{"path":"404","content":"{\"a\": [1, 2]}","mode":"w","line":7,"data":{"k":true},"other":null}"#
    );
}

#[test]
fn functionary_v3_2() {
    let functionary = config(ChatFormat::FunctionaryV32);
    let names = ["special_function", "get_weather", "python"];
    let tools: Vec<_> = names
        .iter()
        .map(|name| json!({"type": "function", "function": {"name": name, "parameters": {}}}))
        .collect();
    let tools = parse_tools(Some(&json!(tools))).unwrap();
    check_with(
        &tools,
        vec![
            Case {
                name: "content",
                config: functionary,
                text: "all\nHello, world!\nWhat's up?",
                content: "Hello, world!\nWhat's up?",
                reasoning: "",
                calls: vec![],
            },
            Case {
                name: "one call",
                config: functionary,
                text: "special_function\n{\"arg1\": 1}",
                content: "",
                reasoning: "",
                calls: vec![call("special_function", "{\"arg1\":1}")],
            },
            Case {
                name: "content then two calls, python code",
                config: functionary,
                text: "all\nLet me check.>>>get_weather\n{\"location\": \"Oslo\"}>>>python\nprint(2 + 2)",
                content: "Let me check.",
                reasoning: "",
                calls: vec![
                    call("get_weather", "{\"location\":\"Oslo\"}"),
                    call("python", "{\"code\":\"print(2 + 2)\"}"),
                ],
            },
            Case {
                name: "truncated call stays content",
                config: functionary,
                text: "all\nSure.>>>get_weather\n{\"location\": \"Os",
                content: "Sure.>>>get_weather\n{\"location\": \"Os",
                reasoning: "",
                calls: vec![],
            },
            Case {
                name: "no recipient line",
                config: functionary,
                text: "Hello there.\nBye.",
                content: "Hello there.\nBye.",
                reasoning: "",
                calls: vec![],
            },
            Case {
                name: "a tool that was not offered stays content",
                config: functionary,
                text: "all\nOn it.>>>send_email\n{\"to\": \"a@b.c\"}>>>get_weather\n{\"location\": \"Oslo\"}",
                content: "On it.>>>send_email\n{\"to\": \"a@b.c\"}",
                reasoning: "",
                calls: vec![call("get_weather", "{\"location\":\"Oslo\"}")],
            },
            Case {
                name: "no tools offered",
                config: NO_TOOLS(ChatFormat::FunctionaryV32),
                text: "all\nUse >>>name\\n{…} to call.",
                content: "Use >>>name\\n{…} to call.",
                reasoning: "",
                calls: vec![],
            },
        ],
    );
}

#[test]
fn reasoning_format_none_keeps_think_tags() {
    let coder = ParserConfig {
        reasoning_format: ReasoningFormat::None,
        ..config(ChatFormat::Qwen3Coder)
    };
    let message = parse_whole(coder, "<think>\nHm.\n</think>\n\nHi.");
    assert_eq!(message.content, "<think>\nHm.\n</think>\n\nHi.");
    assert_eq!(message.reasoning_content, "");
}
