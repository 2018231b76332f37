//! Rendering a conversation into a prompt with the model's Jinja chat template.
//!
//! Built once per model ([`ChatTemplate::new`]) from `tokenizer.chat_template` or
//! `--chat-template-file`, then [`ChatTemplate::render`] is a pure function of the request
//! (the clock is an input too). The template's input is assembled exactly as llama-server's
//! `common_chat_templates_apply_jinja` does, so `/apply-template` answers byte for byte alike.

mod caps;
mod env;
mod input;
mod prefill;
mod time;

use std::time::SystemTime;

use minijinja::{Environment, Value};
use serde_json::{Map, Value as Json};

pub use caps::TemplateCaps;

use super::types::{ChatMessage, ReasoningEffort, Role, Tool};
use super::{ChatError, ChatFormat};

/// llama.cpp's fallback when a model has no template (common/chat.cpp `CHATML_TEMPLATE_SRC`).
pub const CHATML_TEMPLATE: &str = "{%- for message in messages -%}\n  {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}\n{%- endfor -%}\n{%- if add_generation_prompt -%}\n  {{- '<|im_start|>assistant\\n' -}}\n{%- endif -%}";

/// The model's BOS/EOS texts and whether the tokenizer adds them itself; a template that also
/// writes them would double them, so llama.cpp strips them from the rendered prompt.
#[derive(Debug, Clone, Default)]
pub struct SpecialTokens {
    pub bos: String,
    pub eos: String,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: bool,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: bool,
}

/// llama.cpp's own (non-Jinja) template renderer, `llama_chat_apply_template`: role and content
/// pairs and whether to add the assistant header, to the prompt. The server supplies it (it calls
/// into llama.cpp, which this module does not).
pub type LegacyApply =
    std::sync::Arc<dyn Fn(&[(String, String)], bool) -> Result<String, String> + Send + Sync>;

/// llama.cpp's built-in template names (`llama_chat_builtin_templates`), which
/// `--chat-template NAME` selects.
pub const BUILTIN_TEMPLATES: &[&str] = &[
    "bailing",
    "bailing-think",
    "bailing2",
    "chatglm3",
    "chatglm4",
    "chatml",
    "command-r",
    "deepseek",
    "deepseek-ocr",
    "deepseek2",
    "deepseek3",
    "exaone-moe",
    "exaone3",
    "exaone4",
    "falcon3",
    "gemma",
    "gigachat",
    "glmedge",
    "gpt-oss",
    "granite",
    "granite-4.0",
    "granite-4.1",
    "grok-2",
    "hunyuan-dense",
    "hunyuan-moe",
    "hunyuan-vl",
    "kimi-k2",
    "llama2",
    "llama2-sys",
    "llama2-sys-bos",
    "llama2-sys-strip",
    "llama3",
    "llama4",
    "megrez",
    "minicpm",
    "mistral-v1",
    "mistral-v3",
    "mistral-v3-tekken",
    "mistral-v7",
    "mistral-v7-tekken",
    "monarch",
    "openchat",
    "orion",
    "pangu-embedded",
    "phi3",
    "phi4",
    "rwkv-world",
    "seed_oss",
    "smolvlm",
    "solar-open",
    "vicuna",
    "vicuna-orca",
    "yandex",
    "zephyr",
];

/// A compiled chat template and what we learned about it.
pub struct ChatTemplate {
    env: Environment<'static>,
    /// Rendered by llama.cpp's built-in templates instead of Jinja (`--no-jinja`, or a built-in
    /// name given to `--chat-template`).
    legacy: Option<LegacyApply>,
    source: String,
    tokens: SpecialTokens,
    format: ChatFormat,
    caps: TemplateCaps,
    /// How the template writes `<think>` around reasoning, for assistant prefill.
    think_markers: Option<(String, String)>,
    is_fallback: bool,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("format", &self.format)
            .field("caps", &self.caps)
            .field("is_fallback", &self.is_fallback)
            .finish_non_exhaustive()
    }
}

/// One render's inputs beyond the template itself.
#[derive(Debug, Clone)]
pub struct RenderRequest<'a> {
    pub messages: &'a [ChatMessage],
    pub tools: &'a [Tool],
    /// End the prompt with the assistant header (request `add_generation_prompt`, default true).
    pub add_generation_prompt: bool,
    /// The request's `chat_template_kwargs` (after the server's `--chat-template-kwargs`).
    pub kwargs: &'a Map<String, Json>,
    /// The request's top-level `reasoning_effort`; it overrides `kwargs.reasoning_effort`.
    pub reasoning_effort: Option<ReasoningEffort>,
    /// The clock for `strftime_now` and `date_string`.
    pub now: SystemTime,
    /// Continue a final assistant message instead of starting a new one (llama-server's
    /// default; `--no-prefill-assistant` turns it off).
    pub prefill_assistant: bool,
}

impl<'a> RenderRequest<'a> {
    /// A request with llama-server's defaults: generation prompt on, no kwargs, now.
    pub fn new(
        messages: &'a [ChatMessage],
        tools: &'a [Tool],
        kwargs: &'a Map<String, Json>,
    ) -> Self {
        RenderRequest {
            messages,
            tools,
            add_generation_prompt: true,
            kwargs,
            reasoning_effort: None,
            now: SystemTime::now(),
            prefill_assistant: true,
        }
    }
}

/// A rendered prompt and how to read the answer to it.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedPrompt {
    pub prompt: String,
    pub format: ChatFormat,
    /// Special tokens to detokenize as text so the parser sees them (llama-server's
    /// `preserved_tokens`).
    pub preserved_tokens: Vec<String>,
    /// Extra stop strings for this format (none of our formats needs one today: their
    /// end-of-turn markers are end-of-generation tokens).
    pub additional_stops: Vec<String>,
    /// The prompt ends inside open reasoning (a `<think>` the template opens, as newer
    /// DeepSeek-R1 templates do, or a prefilled assistant message whose reasoning is being
    /// continued, Harmony included): the answer starts with reasoning and has no opening tag.
    pub thinking_forced_open: bool,
}

impl ChatTemplate {
    /// Compiles `source` (from the GGUF or a template file). `None` or an empty string falls
    /// back to ChatML, as llama-server does; the caller should warn (see [`Self::is_fallback`]).
    pub fn new(source: Option<&str>, tokens: SpecialTokens) -> Result<Self, ChatError> {
        let (source, is_fallback) = match source {
            Some(s) if !s.is_empty() && s != "chatml" => (patch_known_issues(s), false),
            _ => (CHATML_TEMPLATE.to_string(), true),
        };
        let env = env::environment(source.clone())
            .map_err(|e| ChatError::TemplateSyntax(describe(&e)))?;
        let caps = caps::detect(&env);
        let think_markers = prefill::think_markers(&env, &source);
        Ok(ChatTemplate {
            think_markers,
            format: ChatFormat::detect(&source),
            env,
            legacy: None,
            source,
            tokens,
            caps,
            is_fallback,
        })
    }

    /// A template llama.cpp renders itself (a built-in name, or a template it recognizes):
    /// answers are plain content, as llama-server's legacy path parses them.
    pub fn legacy(source: &str, tokens: SpecialTokens, apply: LegacyApply) -> Self {
        ChatTemplate {
            env: Environment::new(),
            legacy: Some(apply),
            source: source.to_string(),
            tokens,
            format: ChatFormat::Content,
            caps: TemplateCaps {
                supports_system_role: true,
                supports_tool_calls: false,
                supports_object_arguments: false,
            },
            think_markers: None,
            is_fallback: false,
        }
    }

    /// The output format the model writes.
    pub fn format(&self) -> ChatFormat {
        self.format
    }

    /// What the template does with its inputs.
    pub fn caps(&self) -> TemplateCaps {
        self.caps
    }

    /// True when the model had no template and ChatML is used instead.
    pub fn is_fallback(&self) -> bool {
        self.is_fallback
    }

    /// The template source in use (after llama.cpp's patches).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders the conversation into a prompt. A conversation ending with an assistant message
    /// is continued from that message (llama-server's assistant prefill) unless
    /// [`RenderRequest::prefill_assistant`] is off.
    pub fn render(&self, req: &RenderRequest<'_>) -> Result<RenderedPrompt, ChatError> {
        let prefill = req.prefill_assistant
            && req
                .messages
                .last()
                .is_some_and(|m| m.role == Role::Assistant);
        let (prompt, continues_reasoning) = if prefill {
            prefill::render(self, req)?
        } else {
            (self.render_plain(req)?, false)
        };
        let thinking_forced_open = continues_reasoning
            || (req.add_generation_prompt
                && self.format.has_think_tags()
                && prompt.trim_end().ends_with("<think>"));
        Ok(RenderedPrompt {
            prompt,
            format: self.format,
            preserved_tokens: self
                .format
                .preserved_tokens()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            additional_stops: Vec::new(),
            thinking_forced_open,
        })
    }

    /// The template's output for `req` as it is, less a BOS/EOS the tokenizer adds itself.
    fn render_plain(&self, req: &RenderRequest<'_>) -> Result<String, ChatError> {
        if let Some(apply) = &self.legacy {
            // Content parts are joined with newlines, as llama-server's legacy path does.
            let messages: Vec<(String, String)> = req
                .messages
                .iter()
                .map(|m| {
                    let text = m.content.as_ref().map(|c| c.to_text()).unwrap_or_default();
                    (m.role.as_str().to_string(), text)
                })
                .collect();
            return apply(&messages, req.add_generation_prompt).map_err(ChatError::TemplateRender);
        }
        let ctx = input::build_context(req, &self.tokens, self.format, self.caps)?;
        let template = self
            .env
            .get_template(env::TEMPLATE_NAME)
            .map_err(|e| ChatError::TemplateSyntax(describe(&e)))?;
        let mut prompt = template
            .render(Value::from_serialize(&ctx))
            .map_err(|e| ChatError::TemplateRender(describe(&e)))?;
        let tokens = &self.tokens;
        if tokens.add_bos && !tokens.bos.is_empty() && prompt.starts_with(&tokens.bos) {
            prompt.drain(..tokens.bos.len());
        }
        if tokens.add_eos && !tokens.eos.is_empty() && prompt.ends_with(&tokens.eos) {
            prompt.truncate(prompt.len() - tokens.eos.len());
        }
        Ok(prompt)
    }
}

/// llama.cpp rewrites two known template bugs before use; we do the same so prompts match.
fn patch_known_issues(source: &str) -> String {
    let mut source = source.to_string();
    if source.contains("<|channel|>") && source.contains("in message.content or") {
        source = source.replace(
            "{%- if \"<|channel|>analysis<|message|>\" in message.content or \"<|channel|>final<|message|>\" in message.content %}",
            "{%- if false %}",
        );
    }
    if source.contains("[TOOL_CALLS]") && source.contains("if (message['content'] is none or") {
        source = source.replace(
            "{%- if (message['content'] is none or message['content'] == '' or message['content']|length == 0) and (message['tool_calls'] is not defined or message['tool_calls'] is none or message['tool_calls']|length == 0) %}",
            "{%- if false %}",
        );
    }
    source
}

/// minijinja's error with its detail and template line.
fn describe(err: &minijinja::Error) -> String {
    let mut text = err.to_string();
    if let Some(detail) = err.detail()
        && !text.contains(detail)
    {
        text = format!("{text}: {detail}");
    }
    text
}
