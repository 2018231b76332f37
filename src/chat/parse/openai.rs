//! The JSON llama-server answers with for a parsed message and for a streaming delta
//! (`common_chat_msg::to_json_oaicompat`, `server_chat_msg_diff_to_json_oaicompat`), field
//! order included, so the server can put them in its responses as they are.

use serde_json::{Map, Value, json};

use super::{ChatDelta, ParsedMessage};

impl ParsedMessage {
    /// `choices[0].message` of a non-streamed response.
    pub fn to_openai_json(&self) -> Value {
        let mut msg = Map::new();
        msg.insert("role".into(), json!("assistant"));
        msg.insert("content".into(), json!(self.content));
        if !self.reasoning_content.is_empty() {
            msg.insert("reasoning_content".into(), json!(self.reasoning_content));
        }
        if !self.tool_calls.is_empty() {
            let calls = self
                .tool_calls
                .iter()
                .map(|call| {
                    json!({
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                        "id": call.id,
                    })
                })
                .collect();
            msg.insert("tool_calls".into(), Value::Array(calls));
        }
        Value::Object(msg)
    }
}

impl ChatDelta {
    /// `choices[0].delta` of a streamed chunk (without `role`, which only the first chunk has).
    pub fn to_openai_json(&self) -> Value {
        let mut delta = Map::new();
        if let Some(reasoning) = self.reasoning_content.as_ref().filter(|s| !s.is_empty()) {
            delta.insert("reasoning_content".into(), json!(reasoning));
        }
        if let Some(content) = self.content.as_ref().filter(|s| !s.is_empty()) {
            delta.insert("content".into(), json!(content));
        }
        if !self.tool_calls.is_empty() {
            let calls = self
                .tool_calls
                .iter()
                .map(|call| {
                    let mut tc = Map::new();
                    tc.insert("index".into(), json!(call.index));
                    if let Some(id) = &call.id {
                        tc.insert("id".into(), json!(id));
                        tc.insert("type".into(), json!("function"));
                    }
                    let mut function = Map::new();
                    if let Some(name) = &call.name {
                        function.insert("name".into(), json!(name));
                    }
                    if !call.arguments.is_empty() {
                        function.insert("arguments".into(), json!(call.arguments));
                    }
                    if !function.is_empty() {
                        tc.insert("function".into(), Value::Object(function));
                    }
                    Value::Object(tc)
                })
                .collect();
            delta.insert("tool_calls".into(), Value::Array(calls));
        }
        Value::Object(delta)
    }
}

#[cfg(test)]
mod tests {
    use super::super::ToolCallDelta;
    use super::*;
    use crate::chat::ToolCall;

    #[test]
    fn message_and_delta_json() {
        let message = ParsedMessage {
            content: String::new(),
            reasoning_content: "why".into(),
            tool_calls: vec![ToolCall {
                id: "call_1".into(),
                name: "f".into(),
                arguments: "{}".into(),
            }],
        };
        assert_eq!(
            message.to_openai_json().to_string(),
            r#"{"role":"assistant","content":"","reasoning_content":"why","tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"},"id":"call_1"}]}"#
        );
        let first = ChatDelta {
            tool_calls: vec![ToolCallDelta {
                index: 0,
                id: Some("call_1".into()),
                name: Some("f".into()),
                arguments: String::new(),
            }],
            ..ChatDelta::default()
        };
        assert_eq!(
            first.to_openai_json().to_string(),
            r#"{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f"}}]}"#
        );
        let text = ChatDelta {
            content: Some("hi".into()),
            ..ChatDelta::default()
        };
        assert_eq!(text.to_openai_json().to_string(), r#"{"content":"hi"}"#);
    }
}
