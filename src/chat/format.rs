//! Which output format a model writes, recognised from its chat template's source.
//!
//! The checks follow llama.cpp's `common_chat_try_specialized_template` where it has one
//! (Harmony: the template mentions `<|channel|>`); for the rest, the marker a template uses to
//! render past tool calls or reasoning is the marker the model was trained to write.

/// The structure of a model's generated text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatFormat {
    /// Plain text: everything is `content`.
    Content,
    /// OpenAI Harmony (gpt-oss): `<|channel|>analysis|commentary|final<|message|>…<|end|>`.
    Harmony,
    /// Hermes / Qwen: optional `<think>…</think>`, then content and
    /// `<tool_call>{"name":…,"arguments":…}</tool_call>` blocks.
    Hermes,
    /// Llama 3.x: a tool call is a bare `{"name":…,"parameters":…}` JSON object as the whole
    /// answer (optionally after `<|python_tag|>`).
    Llama3Json,
    /// `<think>…</think>` reasoning, then content (DeepSeek-R1 distills, QwQ without tools).
    Think,
}

impl ChatFormat {
    /// Recognises the format from a template's source.
    pub fn detect(source: &str) -> ChatFormat {
        if source.contains("<|channel|>") {
            ChatFormat::Harmony
        } else if source.contains("<tool_call>") {
            ChatFormat::Hermes
        } else if source.contains("<|python_tag|>")
            || (source.contains("<|start_header_id|>") && source.contains("\"parameters\": "))
        {
            ChatFormat::Llama3Json
        } else if source.contains("<think>") || source.contains("</think>") {
            ChatFormat::Think
        } else {
            ChatFormat::Content
        }
    }

    /// A short name for logs and `/props`.
    pub fn name(self) -> &'static str {
        match self {
            ChatFormat::Content => "content-only",
            ChatFormat::Harmony => "harmony",
            ChatFormat::Hermes => "hermes",
            ChatFormat::Llama3Json => "llama3-json",
            ChatFormat::Think => "think",
        }
    }

    /// Special tokens the engine must detokenize as text (llama-server's `preserved_tokens`),
    /// because the output parser reads them.
    pub fn preserved_tokens(self) -> &'static [&'static str] {
        match self {
            ChatFormat::Content => &[],
            ChatFormat::Harmony => &[
                "<|channel|>",
                "<|constrain|>",
                "<|message|>",
                "<|start|>",
                "<|end|>",
                "<|call|>",
            ],
            ChatFormat::Hermes => &["<think>", "</think>", "<tool_call>", "</tool_call>"],
            ChatFormat::Llama3Json => &["<|python_tag|>"],
            ChatFormat::Think => &["<think>", "</think>"],
        }
    }

    /// Whether this format can carry `<think>` reasoning.
    pub fn has_think_tags(self) -> bool {
        matches!(self, ChatFormat::Hermes | ChatFormat::Think)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_marker() {
        let cases = [
            ("<|start|>{{ m }}<|channel|>final", ChatFormat::Harmony),
            ("{{ '<tool_call>\\n' }}<think>", ChatFormat::Hermes),
            (
                "<|start_header_id|>ipython<|python_tag|>",
                ChatFormat::Llama3Json,
            ),
            ("{{ '<｜Assistant｜><think>\\n' }}", ChatFormat::Think),
            ("<start_of_turn>{{ role }}", ChatFormat::Content),
        ];
        for (source, want) in cases {
            assert_eq!(ChatFormat::detect(source), want, "{source}");
        }
    }
}
