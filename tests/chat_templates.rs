//! Template conformance: our rendering of real chat templates equals llama-server's
//! `/apply-template` output, byte for byte, for the conversations in
//! tests/data/chat/conversations.json. The expected outputs were recorded with the reference
//! llama-server by tests/data/chat/generate.py (see the README there), so this test needs no
//! llama-server. Known differences are listed in `KNOWN_DIFFERENCES` with the reason.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use gguf_serve::chat::{
    ChatError, ChatFormat, ChatTemplate, ReasoningEffort, RenderRequest, SpecialTokens,
    parse_messages, parse_tools,
};
use serde_json::Value;

/// (template, conversation, why we differ from llama-server).
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[];

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/chat")
}

/// The demo model's special tokens, which the reference outputs were rendered with.
fn gemma3_tokens() -> SpecialTokens {
    SpecialTokens {
        bos: "<bos>".into(),
        eos: "<eos>".into(),
        add_bos: true,
        add_eos: false,
    }
}

fn render(
    template: &ChatTemplate,
    conversation: &Value,
    now_secs: u64,
) -> Result<String, ChatError> {
    let messages = parse_messages(&conversation["messages"])?;
    let tools = parse_tools(conversation.get("tools"))?;
    let kwargs = conversation
        .get("chat_template_kwargs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut request = RenderRequest::new(&messages, &tools, &kwargs);
    request.now = UNIX_EPOCH + Duration::from_secs(now_secs);
    request.add_generation_prompt = conversation
        .get("add_generation_prompt")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    request.reasoning_effort = conversation
        .get("reasoning_effort")
        .and_then(Value::as_str)
        .map(ReasoningEffort::parse)
        .transpose()?;
    Ok(template.render(&request)?.prompt)
}

#[test]
fn templates_render_like_llama_server() {
    let dir = data_dir();
    let conversations: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("conversations.json")).unwrap())
            .unwrap();
    let now_secs: u64 = std::fs::read_to_string(dir.join("expected/generated_at"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut templates: Vec<(String, Option<String>)> = std::fs::read_dir(dir.join("templates"))
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            (stem, Some(std::fs::read_to_string(&path).unwrap()))
        })
        .collect();
    templates.sort();
    templates.push(("chatml-fallback".into(), None));

    let mut failures = Vec::new();
    let mut checked = 0;
    for (stem, source) in &templates {
        let template = ChatTemplate::new(source.as_deref(), gemma3_tokens())
            .unwrap_or_else(|e| panic!("{stem}: {e}"));
        for (conv, body) in conversations.as_object().unwrap() {
            let expected = dir.join(format!("expected/{stem}.{conv}.txt"));
            let expected_error = dir.join(format!("expected/{stem}.{conv}.error"));
            let known = KNOWN_DIFFERENCES
                .iter()
                .find(|(t, c, _)| t == stem && c == conv);
            let ours = render(&template, body, now_secs);
            let outcome = if expected.exists() {
                let want = std::fs::read_to_string(&expected).unwrap();
                match &ours {
                    Ok(got) if *got == want => Ok(()),
                    Ok(got) => Err(format!(
                        "prompt differs\n--- llama-server\n{want}\n--- ours\n{got}"
                    )),
                    Err(e) => Err(format!("llama-server renders it, we fail: {e}")),
                }
            } else if expected_error.exists() {
                // llama-server refused the conversation (the template raised); so must we.
                match &ours {
                    Err(ChatError::TemplateRender(_)) => Ok(()),
                    other => Err(format!("llama-server refuses it, we give {other:?}")),
                }
            } else {
                Err("no expected output recorded; run tests/data/chat/generate.py".into())
            };
            checked += 1;
            match (outcome, known) {
                (Ok(()), Some((_, _, why))) => failures.push(format!(
                    "{stem}.{conv}: listed as a known difference ({why}) but now matches"
                )),
                (Err(e), None) => failures.push(format!("{stem}.{conv}: {e}")),
                _ => {}
            }
        }
    }
    assert!(checked >= 30, "only {checked} renders checked");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn formats_of_real_templates() {
    let cases = [
        ("openai-gpt-oss-120b", ChatFormat::Harmony),
        ("Qwen-Qwen2.5-7B-Instruct", ChatFormat::Hermes),
        ("Qwen-Qwen3-0.6B", ChatFormat::Hermes),
        ("Qwen-QwQ-32B", ChatFormat::Hermes),
        (
            "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use",
            ChatFormat::Hermes,
        ),
        ("meta-llama-Llama-3.1-8B-Instruct", ChatFormat::Llama3Json),
        ("meta-llama-Llama-3.2-3B-Instruct", ChatFormat::Llama3Json),
        (
            "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
            ChatFormat::DeepSeekR1,
        ),
        (
            "mistralai-Mistral-Nemo-Instruct-2407",
            ChatFormat::MistralNemo,
        ),
        ("google-gemma-2-2b-it", ChatFormat::Content),
    ];
    let more = [
        (
            "meetkai-functionary-medium-v3.2",
            ChatFormat::FunctionaryV32,
        ),
        ("Qwen3-Coder", ChatFormat::Qwen3Coder),
    ];
    let cases = cases
        .iter()
        .map(|(stem, want)| (format!("templates/{stem}"), *want))
        .chain(
            more.iter()
                .map(|(stem, want)| (format!("format-templates/{stem}"), *want)),
        );
    for (stem, want) in cases {
        let source = std::fs::read_to_string(data_dir().join(format!("{stem}.jinja"))).unwrap();
        let template = ChatTemplate::new(Some(&source), gemma3_tokens()).unwrap();
        assert_eq!(template.format(), want, "{stem}");
    }
    assert!(
        ChatTemplate::new(None, gemma3_tokens())
            .unwrap()
            .is_fallback()
    );
}

#[test]
fn gpt_oss_reasoning_effort() {
    let source =
        std::fs::read_to_string(data_dir().join("templates/openai-gpt-oss-120b.jinja")).unwrap();
    let template = ChatTemplate::new(Some(&source), gemma3_tokens()).unwrap();
    let messages = parse_messages(&serde_json::json!([{"role": "user", "content": "hi"}])).unwrap();
    let render = |effort: Option<ReasoningEffort>, kwargs: serde_json::Map<String, Value>| {
        let mut request = RenderRequest::new(&messages, &[], &kwargs);
        request.reasoning_effort = effort;
        template.render(&request).unwrap().prompt
    };
    let none = serde_json::Map::new();
    let mut low = serde_json::Map::new();
    low.insert("reasoning_effort".into(), "low".into());
    assert!(
        render(None, none.clone()).contains("Reasoning: medium"),
        "default is medium"
    );
    assert!(render(Some(ReasoningEffort::High), none).contains("Reasoning: high"));
    assert!(
        render(None, low.clone()).contains("Reasoning: low"),
        "from chat_template_kwargs"
    );
    assert!(
        render(Some(ReasoningEffort::High), low).contains("Reasoning: high"),
        "request field wins"
    );
}

#[test]
fn prefilled_reasoning_is_continued_as_reasoning() {
    let messages = parse_messages(&serde_json::json!([
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "reasoning_content": "Sum of", "content": ""}
    ]))
    .unwrap();
    let kwargs = serde_json::Map::new();
    for (stem, want_end) in [
        (
            "openai-gpt-oss-120b",
            "<|channel|>analysis<|message|>Sum of",
        ),
        ("Qwen-Qwen3-0.6B", "<think>\nSum of"),
    ] {
        let source =
            std::fs::read_to_string(data_dir().join(format!("templates/{stem}.jinja"))).unwrap();
        let template = ChatTemplate::new(Some(&source), gemma3_tokens()).unwrap();
        let rendered = template
            .render(&RenderRequest::new(&messages, &[], &kwargs))
            .unwrap();
        assert!(
            rendered.prompt.ends_with(want_end),
            "{stem}: {}",
            rendered.prompt
        );
        assert!(rendered.thinking_forced_open, "{stem}");
    }
}
