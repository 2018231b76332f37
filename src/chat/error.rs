//! The one error type of the chat boundary.
//!
//! Request problems name the JSON field they come from (`messages[1].role`) so the HTTP edge can
//! answer 400 with a message the client can act on; template problems carry minijinja's message.

/// Everything that can go wrong between a chat request and a prompt (or a grammar).
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// A request field is missing, has the wrong type or an unsupported value (HTTP 400),
    /// worded as llama-server words a field's mistake.
    #[error("Field '{field}': {reason}")]
    InvalidField { field: String, reason: String },
    /// A request llama-server refuses with this very message (HTTP 400).
    #[error("{0}")]
    Request(String),
    /// A request llama-server's chat layer refuses at run time (llama-server: HTTP 500; here a
    /// 400, the request's mistake), such as tools without Jinja templates.
    #[error("{0}")]
    Unsupported(String),
    /// The chat template does not parse (bad `tokenizer.chat_template` or template file).
    #[error("chat template does not parse: {0}")]
    TemplateSyntax(String),
    /// The template failed while rendering, e.g. `raise_exception("...")` on an unsupported
    /// conversation shape (HTTP 400, as llama-server answers).
    #[error("chat template failed: {0}")]
    TemplateRender(String),
    /// A JSON schema could not be turned into a GBNF grammar.
    #[error("{field}: cannot convert JSON schema to a grammar: {reason}")]
    Grammar { field: String, reason: String },
}

impl ChatError {
    /// A field of the wrong JSON type, in nlohmann::json's words (as llama-server says it).
    pub fn wrong_type(field: impl Into<String>, expected: &str, got: &serde_json::Value) -> Self {
        Self::field(field, crate::wording::type_mismatch(expected, got))
    }

    /// A request-validation error for `field`.
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ChatError::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
