//! Assistant prefill: a conversation that ends with an assistant message is continued from it.
//!
//! As llama-server (`continue_final_message` auto): the prompt is the conversation without that
//! message, then the template's generation prompt, then the message's reasoning and content.
//! Harmony writes them as analysis/final messages; templates with `<think>` reopen the tag (and
//! close it when there is content to continue) spelled as the template spells it; others just
//! append the content.

use minijinja::{Environment, Value};
use serde_json::json;

use super::env::TEMPLATE_NAME;
use super::{ChatTemplate, RenderRequest};
use crate::chat::types::{MessageContent, Role};
use crate::chat::{ChatError, ChatFormat};

/// The prompt, and whether the answer continues reasoning (rather than content).
pub fn render(
    template: &ChatTemplate,
    req: &RenderRequest<'_>,
) -> Result<(String, bool), ChatError> {
    let (last, head) = req
        .messages
        .split_last()
        .expect("prefill needs a final assistant message");
    let n = req.messages.len();
    if head.last().is_some_and(|m| m.role == Role::Assistant) {
        return Err(ChatError::field(
            format!("messages[{}]", n - 1),
            "cannot have 2 or more assistant messages at the end of the list",
        ));
    }
    if !last.tool_calls.is_empty() {
        return Err(ChatError::field(
            format!("messages[{}].tool_calls", n - 1),
            "cannot continue an assistant message that contains tool calls",
        ));
    }
    let content = last
        .content
        .as_ref()
        .map(MessageContent::to_text)
        .unwrap_or_default();
    let reasoning = last.reasoning_content.clone().unwrap_or_default();
    // Continue the reasoning when that is all the message has, else the content.
    let continue_content = !content.is_empty() || reasoning.is_empty();

    let mut head_req = req.clone();
    head_req.messages = head;
    head_req.add_generation_prompt = false;
    let prompt = template.render_plain(&head_req)?;
    head_req.add_generation_prompt = true;
    let with_generation = template.render_plain(&head_req)?;
    let mut common = prompt
        .bytes()
        .zip(with_generation.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    while !with_generation.is_char_boundary(common) {
        common -= 1;
    }
    let mut generation = with_generation[common..].to_string();

    if template.format() == ChatFormat::Harmony {
        generation = format!("<|start|>assistant<|channel|>analysis<|message|>{reasoning}");
        if continue_content {
            generation.push_str("<|end|><|start|>assistant<|channel|>final<|message|>");
            generation.push_str(&content);
        }
        return Ok((prompt + &generation, !continue_content));
    }
    if let Some((open, close)) = &template.think_markers {
        generation.truncate(generation.find(open.trim()).unwrap_or(generation.len()));
        generation.push_str(open);
        generation.push_str(&reasoning);
        if continue_content {
            generation.push_str(close);
        }
    }
    if continue_content {
        generation.push_str(&content);
    }
    let continues_reasoning = !continue_content && template.think_markers.is_some();
    Ok((prompt + &generation, continues_reasoning))
}

/// How a template writes reasoning around an assistant message: `(open, close)` including the
/// whitespace it puts inside (Qwen3: `"<think>\n"`, `"\n</think>\n\n"`), found by rendering a
/// probe message, as llama.cpp's template analysis does. Templates that drop reasoning from
/// history get the bare tags. `None` for templates without `<think>`.
pub fn think_markers(env: &Environment<'static>, source: &str) -> Option<(String, String)> {
    if !source.contains("<think>") {
        return None;
    }
    const REASONING: &str = "REASONING_MARKER_5c1e";
    const CONTENT: &str = "CONTENT_MARKER_5c1e";
    let ctx = json!({
        "messages": [
            {"role": "user", "content": "User message"},
            {"role": "assistant", "content": CONTENT, "reasoning_content": REASONING}
        ],
        "bos_token": "", "eos_token": ""
    });
    let probe = env
        .get_template(TEMPLATE_NAME)
        .ok()
        .and_then(|t| t.render(Value::from_serialize(&ctx)).ok());
    let derived = probe.and_then(|out| {
        let reasoning_at = out.find(REASONING)?;
        let open_at = out[..reasoning_at].rfind("<think>")?;
        let after = reasoning_at + REASONING.len();
        let content_at = after + out[after..].find(CONTENT)?;
        let close = &out[after..content_at];
        close
            .contains("</think>")
            .then(|| (out[open_at..reasoning_at].to_string(), close.to_string()))
    });
    Some(derived.unwrap_or_else(|| ("<think>".to_string(), "</think>".to_string())))
}
