//! Which output format a model writes, recognised from its chat template's source.
//!
//! The checks follow llama.cpp's `common_chat_try_specialized_template` where it has one
//! (Harmony: the template mentions `<|channel|>`; Functionary v3.2: `>>>all` and
//! `>>>${recipient}`; Qwen3-Coder: `<tool_call>`, `<function=` and `<parameter=`), in its order;
//! for the rest, the marker a template uses to render past tool calls or reasoning is the marker
//! the model was trained to write, as llama.cpp's detection did before its autoparser
//! (`[TOOL_CALLS]` for Mistral Nemo, `<｜tool▁calls▁begin｜>` for DeepSeek R1).

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
    /// `<think>…</think>` reasoning, then content (QwQ without tools).
    Think,
    /// Mistral Nemo: content, then `[TOOL_CALLS]` and a JSON array of
    /// `{"name":…,"arguments":…}` calls to the end of the answer.
    MistralNemo,
    /// DeepSeek R1 (and its distills): `<think>` reasoning, content, then
    /// `<｜tool▁calls▁begin｜>` and calls
    /// `<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{…}\n```<｜tool▁call▁end｜>`.
    DeepSeekR1,
    /// Qwen3-Coder XML (also Qwen3.5, Nemotron Nano 3): content, then blocks
    /// `<tool_call>\n<function=NAME>\n<parameter=P>\nV\n</parameter>\n</function>\n</tool_call>`.
    Qwen3Coder,
    /// Functionary v3.2: the prompt ends with `>>>`; each message is `RECIPIENT\nBODY`, with
    /// recipient `all` for content and a function name for a call with JSON arguments, the
    /// next one again after `>>>`.
    FunctionaryV32,
}

impl ChatFormat {
    /// Recognises the format from a template's source.
    pub fn detect(source: &str) -> ChatFormat {
        if source.contains("<|channel|>") {
            ChatFormat::Harmony
        } else if source.contains(">>>all") && source.contains(">>>${recipient}") {
            ChatFormat::FunctionaryV32
        } else if source.contains("<tool_call>")
            && source.contains("<function=")
            && source.contains("<parameter=")
            && !source.contains("'<tool_call><function=' ~ tool_call.name ~ '>'")
        {
            ChatFormat::Qwen3Coder
        } else if source.contains("<｜tool▁calls▁begin｜>") {
            ChatFormat::DeepSeekR1
        } else if source.contains("[TOOL_CALLS]") {
            ChatFormat::MistralNemo
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
            ChatFormat::MistralNemo => "mistral-nemo",
            ChatFormat::DeepSeekR1 => "deepseek-r1",
            ChatFormat::Qwen3Coder => "qwen3-coder",
            ChatFormat::FunctionaryV32 => "functionary-v3.2",
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
            ChatFormat::MistralNemo => &["[TOOL_CALLS]"],
            ChatFormat::DeepSeekR1 => &[
                "<think>",
                "</think>",
                "<｜tool▁calls▁begin｜>",
                "<｜tool▁call▁begin｜>",
                "<｜tool▁sep｜>",
                "<｜tool▁call▁end｜>",
                "<｜tool▁calls▁end｜>",
            ],
            ChatFormat::Qwen3Coder => &["<think>", "</think>", "<tool_call>", "</tool_call>"],
            ChatFormat::FunctionaryV32 => &[">>>all"],
        }
    }

    /// Whether this format can carry `<think>` reasoning.
    pub fn has_think_tags(self) -> bool {
        matches!(
            self,
            ChatFormat::Hermes
                | ChatFormat::Think
                | ChatFormat::DeepSeekR1
                | ChatFormat::Qwen3Coder
        )
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
            (
                "{{ '>>>all\\n' }} >>>${recipient}",
                ChatFormat::FunctionaryV32,
            ),
            (
                "<tool_call>\\n<function=' + name + '>\\n<parameter=",
                ChatFormat::Qwen3Coder,
            ),
            (
                "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>",
                ChatFormat::DeepSeekR1,
            ),
            (
                "[AVAILABLE_TOOLS]{{ tools }}[TOOL_CALLS]",
                ChatFormat::MistralNemo,
            ),
            ("<start_of_turn>{{ role }}", ChatFormat::Content),
        ];
        for (source, want) in cases {
            assert_eq!(ChatFormat::detect(source), want, "{source}");
        }
    }
}
