//! The chat flags: which template (the model's, a file, a Jinja text or one of llama.cpp's
//! built-in names), Jinja on or off, the template's default variables, and how reasoning is
//! rendered and returned.

use anyhow::{Context, bail};
use clap::Args;

use crate::chat::{BUILTIN_TEMPLATES, ChatOptions, ReasoningFormat};
use crate::server::TemplateChoice;

#[derive(Debug, Clone, Args)]
pub struct ChatArgs {
    /// Render chats with Jinja templates (default on); off, with llama.cpp's built-in
    /// templates (no tools).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub jinja: bool,

    /// The chat template: one of llama.cpp's built-in names (gemma, llama3, chatml, …; see
    /// `gguf-serve flags`), or Jinja source. Default: the model's.
    #[arg(long = "chat-template", value_name = "JINJA_TEMPLATE")]
    pub chat_template: Option<String>,

    /// A file holding the Jinja chat template.
    #[arg(long = "chat-template-file", value_name = "FILE")]
    pub chat_template_file: Option<std::path::PathBuf>,

    /// Template variables every request starts from, as a JSON object.
    #[arg(long = "chat-template-kwargs", value_name = "JSON")]
    pub chat_template_kwargs: Vec<String>,

    /// How reasoning is returned: none (left in content), auto or deepseek (in
    /// reasoning_content).
    #[arg(
        long = "reasoning-format",
        default_value = "auto",
        value_name = "FORMAT"
    )]
    pub reasoning_format: String,

    /// Thinking in templates that support it: on, off or auto (the template's default).
    #[arg(long, default_value = "auto", value_name = "on|off|auto")]
    pub reasoning: String,

    /// The template's reasoning effort (low, medium, high), or `default` for the template's.
    #[arg(
        long = "reasoning-effort",
        default_value = "default",
        value_name = "LEVEL"
    )]
    pub reasoning_effort: String,

    /// Token budget for thinking; only -1 (unrestricted) is supported.
    #[arg(long = "reasoning-budget", default_value_t = -1, value_name = "N", allow_negative_numbers = true)]
    pub reasoning_budget: i32,

    /// Keep the reasoning of earlier assistant messages in the prompt (templates that support
    /// it; default on).
    #[arg(long = "reasoning-preserve", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub reasoning_preserve: bool,

    /// Return everything the model writes as content (no reasoning or tool-call parsing).
    #[arg(long = "skip-chat-parsing", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub skip_chat_parsing: bool,

    /// Continue a final assistant message instead of answering it (default on).
    #[arg(long = "prefill-assistant", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub prefill_assistant: bool,
}

impl ChatArgs {
    /// The template to render with: a built-in name selects llama.cpp's template of that name
    /// (as llama-server's help describes), anything else is Jinja.
    pub fn template(&self) -> anyhow::Result<TemplateChoice> {
        if let Some(path) = &self.chat_template_file {
            let source = std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot read the chat template", path.display()))?;
            return Ok(TemplateChoice::Jinja(source));
        }
        Ok(match &self.chat_template {
            None => TemplateChoice::Model,
            Some(name) if BUILTIN_TEMPLATES.contains(&name.as_str()) && name != "chatml" => {
                TemplateChoice::Builtin(name.clone())
            }
            Some(source) => TemplateChoice::Jinja(source.clone()),
        })
    }

    pub fn options(&self) -> anyhow::Result<ChatOptions> {
        let mut kwargs = serde_json::Map::new();
        for text in &self.chat_template_kwargs {
            let value: serde_json::Value = serde_json::from_str(text)
                .with_context(|| format!("--chat-template-kwargs {text}: not JSON"))?;
            if let serde_json::Value::Object(map) = value {
                kwargs.extend(map);
            }
        }
        kwargs
            .entry("preserve_reasoning")
            .or_insert(serde_json::Value::Bool(self.reasoning_preserve));
        if self.reasoning_budget != -1 {
            bail!(
                "--reasoning-budget {}: not supported: only -1 (unrestricted) is supported yet",
                self.reasoning_budget
            );
        }
        Ok(ChatOptions {
            kwargs,
            enable_thinking: match self.reasoning.as_str() {
                "on" | "enabled" | "true" | "1" => Some(true),
                "off" | "disabled" | "false" | "0" => Some(false),
                "auto" | "-1" => None,
                other => bail!("--reasoning {other}: expected on, off or auto"),
            },
            reasoning_effort: match self.reasoning_effort.as_str() {
                "default" => None,
                level => Some(level.to_string()),
            },
            prefill_assistant: self.prefill_assistant,
            reasoning_format: ReasoningFormat::parse(&self.reasoning_format)
                .map_err(|e| anyhow::anyhow!("--reasoning-format: {e}"))?,
            skip_parsing: self.skip_chat_parsing,
            jinja: self.jinja,
        })
    }
}
