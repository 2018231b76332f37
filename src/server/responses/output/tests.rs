//! The Responses adapter on a Hermes-style answer (reasoning, text, a tool call) fed in every
//! chunking: the events come in llama-server's order, and the stream adds up to the whole
//! answer's items.

use llama_cpp_2::token::LlamaToken;
use serde_json::{Value, json};

use super::Responses;
use crate::chat::{ChatFormat, ParserConfig, ReasoningFormat, Tool};
use crate::engine::{Completion, StopType, Timings};
use crate::server::chat::AnswerReader;
use crate::server::pipeline::{Adapter, Finished, Update};

const ANSWER: &str = "<think>Flags are easy.</think>Setting it.\
<tool_call>{\"name\": \"set_flag\", \"arguments\": {\"on\": true}}</tool_call>";

fn adapter() -> Responses {
    let reader = AnswerReader {
        prefix: String::new(),
        parser_config: ParserConfig {
            format: ChatFormat::Hermes,
            reasoning_format: ReasoningFormat::Auto,
            parse_tool_calls: true,
            thinking_forced_open: false,
        },
        tools: vec![Tool {
            name: "set_flag".into(),
            description: String::new(),
            parameters: json!({ "type": "object" }),
        }],
    };
    Responses::new("abc", "model".into(), reader)
}

fn finished(text: &str) -> Finished {
    Finished {
        index: 0,
        prompt: vec![LlamaToken(1); 5],
        done: Completion {
            stop_type: StopType::Eos,
            text: text.into(),
            tail: String::new(),
            tokens: Vec::new(),
            tokens_predicted: 7,
            tokens_evaluated: 5,
            tokens_cached: 11,
            id_slot: 0,
            truncated: false,
            timings: Timings::default(),
        },
        probs: Vec::new(),
    }
}

/// The stream's events when the answer arrives in pieces of `size` bytes.
fn stream(size: usize) -> Vec<Value> {
    let mut adapter = adapter();
    let mut events = Vec::new();
    let bytes = ANSWER.as_bytes();
    for (i, piece) in bytes.chunks(size).enumerate() {
        events.extend(adapter.stream(Update::Token {
            index: 0,
            token: LlamaToken(2),
            text: String::from_utf8(piece.to_vec()).unwrap(),
            n_decoded: i + 1,
            n_prompt: 5,
            probs: None,
            timings: None,
        }));
    }
    events.extend(adapter.stream(Update::Done(finished(ANSWER))));
    events
}

fn joined(events: &[Value], kind: &str) -> String {
    events
        .iter()
        .filter(|e| e["type"] == kind)
        .map(|e| e["delta"].as_str().unwrap())
        .collect()
}

#[test]
fn whole_answer_has_reasoning_text_and_call_items() {
    let response = adapter().answer(vec![finished(ANSWER)]);
    assert_eq!(response["id"], "resp_abc");
    assert_eq!(response["completed_at"], response["created_at"]);
    let output = response["output"].as_array().unwrap();
    let kinds: Vec<&str> = output.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["reasoning", "message", "function_call"]);
    assert_eq!(output[0]["id"], "rs_abc");
    assert_eq!(output[0]["content"][0]["text"], "Flags are easy.");
    assert_eq!(output[1]["content"][0]["text"], "Setting it.");
    let call = &output[2];
    assert_eq!(call["name"], "set_flag");
    let bare = call["id"].as_str().unwrap().strip_prefix("fc_").unwrap();
    assert_eq!(call["call_id"], format!("call_{bare}"));
    let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({ "on": true }));
    assert_eq!(
        response["usage"],
        json!({ "input_tokens": 5, "output_tokens": 7, "total_tokens": 12,
                "input_tokens_details": { "cached_tokens": 0 } })
    );
}

#[test]
fn streams_add_up_to_the_whole_answer_in_any_chunking() {
    let whole = adapter().answer(vec![finished(ANSWER)]);
    for size in [1, 2, 3, 7, ANSWER.len()] {
        let events = stream(size);
        let mut order: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        order.dedup();
        assert_eq!(
            order,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_text.delta",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.output_item.done",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ],
            "chunks of {size}"
        );
        let output = &events.last().unwrap()["response"]["output"];
        assert_eq!(
            joined(&events, "response.reasoning_text.delta"),
            "Flags are easy."
        );
        assert_eq!(joined(&events, "response.output_text.delta"), "Setting it.");
        let call = &output[2];
        assert_eq!(
            joined(&events, "response.function_call_arguments.delta"),
            call["arguments"].as_str().unwrap()
        );
        assert_eq!(call["arguments"], whole["output"][2]["arguments"]);
        let added = events
            .iter()
            .find(|e| {
                e["type"] == "response.output_item.added" && e["item"]["type"] == "function_call"
            })
            .unwrap();
        assert_eq!(added["item"]["id"], call["id"]);
        for delta in events
            .iter()
            .filter(|e| e["type"] == "response.function_call_arguments.delta")
        {
            assert_eq!(delta["item_id"], call["id"]);
        }
        // Every item event names the item's place in the output.
        for e in &events {
            let Some(index) = e.get("output_index") else {
                continue;
            };
            let item = &output[index.as_u64().unwrap() as usize];
            let id = e.get("item_id").unwrap_or_else(|| &e["item"]["id"]);
            assert_eq!(*id, item["id"], "{e}");
        }
        let indexed = events
            .iter()
            .filter(|e| e.get("output_index").is_some())
            .count();
        assert_eq!(
            indexed,
            events.len() - 3,
            "all but created, in_progress, completed"
        );
    }
}
