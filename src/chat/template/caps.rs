//! What a template does with its inputs, found by rendering probe conversations.
//!
//! llama.cpp (common/jinja/caps.cpp) tracks which input values a template reads; we approximate
//! "read" by "its marker text shows up in the output". The answers decide the same input
//! rewrites llama-server makes: merging a system message the template ignores into the next
//! message, and passing tool-call arguments as objects to templates that index into them.

use minijinja::{Environment, Value};
use serde_json::json;

use super::env::TEMPLATE_NAME;

/// The capabilities that change how we build the template's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateCaps {
    /// The template renders a leading system message.
    pub supports_system_role: bool,
    /// The template renders assistant `tool_calls`.
    pub supports_tool_calls: bool,
    /// The template reads tool-call arguments as an object (`arguments | tojson`, `.items()`).
    pub supports_object_arguments: bool,
}

const SYSTEM_MARKER: &str = "SYSTEM_MARKER_7f3a";
const TOOL_MARKER: &str = "tool_marker_7f3a";
const ARG_MARKER: &str = "ARG_MARKER_7f3a";

fn try_render(env: &Environment<'static>, ctx: serde_json::Value) -> Option<String> {
    let template = env.get_template(TEMPLATE_NAME).ok()?;
    template.render(Value::from_serialize(&ctx)).ok()
}

fn tool_conversation(arguments: serde_json::Value) -> serde_json::Value {
    json!({
        "messages": [
            {"role": "user", "content": "User message"},
            {"role": "assistant", "content": "", "tool_calls": [{
                "id": "call00001", "type": "function",
                "function": {"name": TOOL_MARKER, "arguments": arguments}
            }]},
            {"role": "tool", "content": "Tool response", "tool_call_id": "call00001"},
            {"role": "assistant", "content": "The tool response was 'tool response'"},
            {"role": "user", "content": "User message"}
        ],
        "tools": [{"type": "function", "function": {
            "name": TOOL_MARKER, "description": "Tool description",
            "parameters": {"type": "object", "properties": {"arg": {"type": "string"}}, "required": ["arg"]}
        }}],
        "bos_token": "", "eos_token": "", "add_generation_prompt": true
    })
}

/// Probes `env`'s template.
pub fn detect(env: &Environment<'static>) -> TemplateCaps {
    let system = try_render(
        env,
        json!({
            "messages": [
                {"role": "system", "content": SYSTEM_MARKER},
                {"role": "user", "content": "User message"}
            ],
            "bos_token": "", "eos_token": "", "add_generation_prompt": true
        }),
    );
    let supports_system_role = system.is_some_and(|out| out.contains(SYSTEM_MARKER));

    // Tools are offered in both probes, so the marker in the output means the call was rendered
    // only if it appears more often than the tool list alone accounts for.
    let tools_only = try_render(
        env,
        json!({
            "messages": [{"role": "user", "content": "User message"}],
            "tools": tool_conversation(json!({}))["tools"].clone(),
            "bos_token": "", "eos_token": "", "add_generation_prompt": true
        }),
    )
    .map_or(0, |out| out.matches(TOOL_MARKER).count());
    let object_args = try_render(env, tool_conversation(json!({ "arg": ARG_MARKER })));
    let supports_object_arguments = object_args
        .as_ref()
        .is_some_and(|out| out.contains(ARG_MARKER));
    let supports_tool_calls = object_args
        .or_else(|| {
            try_render(
                env,
                tool_conversation(json!(format!("{{\"arg\": \"{ARG_MARKER}\"}}"))),
            )
        })
        .is_some_and(|out| out.matches(TOOL_MARKER).count() > tools_only);
    TemplateCaps {
        supports_system_role,
        supports_tool_calls,
        supports_object_arguments,
    }
}
