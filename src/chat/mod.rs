//! Chat: rendering messages through the model's Jinja template and reading structure (reasoning,
//! tool calls) back out of generated text.
