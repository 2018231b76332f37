"""The official `anthropic` Python package against the real server's Messages API.

Run by tests/anthropic_client.rs as `anthropic_client.py MODE BASE_URL`:
  demo      the demo model: messages whole and streamed, a stop sequence, token counting, an
            Anthropic-shaped 400 after which the server keeps serving;
  tools     the tiny gpt-oss steered to the commentary channel: a forced tool_use, whole and
            streamed, and the tool_result sent back;
  thinking  the tiny gpt-oss unsteered: a forced call's grammar lets it reason first, and the
            reasoning comes back as thinking blocks, whole and streamed.
"""

import sys

import anthropic

# This SDK has no sampling parameters of its own (temperature, top_k, …): they travel in the
# body as the Messages API defines them.
GREEDY = {"temperature": 0}

TOOLS = [
    {
        "name": "set_flag",
        "description": "Set the flag",
        "input_schema": {
            "type": "object",
            "properties": {"on": {"type": "boolean"}},
            "required": ["on"],
            "additionalProperties": False,
        },
    }
]


def text_of(message) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


def check_event_order(events) -> None:
    """message_start first, message_stop last, blocks started, filled and stopped in order."""
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start", kinds
    assert kinds[-2:] == ["message_delta", "message_stop"], kinds
    open_index, next_index = None, 0
    for e in events:
        if e.type == "content_block_start":
            assert open_index is None and e.index == next_index, kinds
            open_index, next_index = e.index, next_index + 1
        elif e.type == "content_block_delta":
            assert e.index == open_index, kinds
        elif e.type == "content_block_stop":
            assert e.index == open_index, kinds
            open_index = None
    assert open_index is None, kinds


def stream(client, **kwargs):
    with client.messages.stream(**kwargs) as s:
        events = list(s)
        final = s.get_final_message()
    check_event_order(events)
    return events, final


def demo(client) -> None:
    messages = [{"role": "user", "content": "Say hello"}]
    kwargs = dict(model="demo", max_tokens=16, extra_body=GREEDY, messages=messages, system="You are terse.")
    reply = client.messages.create(**kwargs)
    assert reply.type == "message" and reply.role == "assistant", reply
    assert reply.id.startswith("msg_"), reply.id
    assert reply.stop_reason in ("end_turn", "max_tokens"), reply
    assert reply.stop_sequence is None, reply
    text = text_of(reply)
    assert text, reply
    assert reply.usage.output_tokens > 0, reply.usage
    prompt_tokens = reply.usage.input_tokens + (reply.usage.cache_read_input_tokens or 0)

    counted = client.messages.count_tokens(model="demo", messages=messages, system="You are terse.")
    assert counted.input_tokens == prompt_tokens, (counted, reply.usage)

    # The stream below reads the prompt from the cache the first request left and evaluates
    # only its last token; on CPUs whose one-row kernels round differently from the batched
    # ones (AMX here), a near-tie in the demo model's continuation can then flip. Compare
    # against a reply made from the same cache state.
    text = text_of(client.messages.create(**kwargs))
    events, final = stream(client, **kwargs)
    assert text_of(final) == text, (text_of(final), text)
    assert final.stop_reason == reply.stop_reason, final
    assert final.usage.output_tokens == reply.usage.output_tokens, final.usage
    deltas = [e.delta.text for e in events if e.type == "content_block_delta"]
    assert "".join(deltas) == text, deltas

    # A stop sequence from the middle of the greedy answer ends it there.
    stop = text[len(text) // 2 :][:3]
    assert stop.strip(), text
    cut = client.messages.create(stop_sequences=[stop], **kwargs)
    assert cut.stop_reason == "stop_sequence", cut
    assert cut.stop_sequence == stop, cut
    assert text_of(cut) == text[: text.find(stop)], (text_of(cut), text, stop)

    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    try:
        client.messages.create(model="demo", max_tokens=4, messages=[{"role": "user", "content": [image]}])
        raise AssertionError("an image block was accepted")
    except anthropic.BadRequestError as e:
        assert e.status_code == 400, e
        assert e.body["type"] == "error", e.body
        assert e.body["error"]["type"] == "invalid_request_error", e.body
        assert "image" in e.body["error"]["message"], e.body
    again = client.messages.create(**kwargs)
    assert text_of(again) == text, "the server keeps serving after a bad request"
    print("demo: ok")


def tools(client) -> None:
    messages = [{"role": "user", "content": "Turn the flag on."}]
    kwargs = dict(model="demo", max_tokens=256, extra_body=GREEDY, messages=messages, tools=TOOLS)
    reply = client.messages.create(tool_choice={"type": "any"}, **kwargs)
    assert reply.stop_reason == "tool_use", reply
    calls = [b for b in reply.content if b.type == "tool_use"]
    assert len(calls) == 1 and calls[0].name == "set_flag", reply
    assert isinstance(calls[0].input.get("on"), bool), calls[0]
    assert calls[0].id, calls[0]

    events, final = stream(client, tool_choice={"type": "tool", "name": "set_flag"}, **kwargs)
    (streamed,) = [b for b in final.content if b.type == "tool_use"]
    assert streamed.name == "set_flag" and streamed.input == calls[0].input, (streamed, calls[0])
    assert final.stop_reason == "tool_use", final
    assert any(e.type == "content_block_delta" and e.delta.type == "input_json_delta" for e in events)

    # A named tool is the one called, whichever others are offered.
    get_time = {"name": "get_time", "description": "The time", "input_schema": {"type": "object", "properties": {}}}
    for name in ("get_time", "set_flag"):
        both = dict(kwargs, tools=TOOLS + [get_time])
        named = client.messages.create(tool_choice={"type": "tool", "name": name}, **both)
        assert [b.name for b in named.content if b.type == "tool_use"] == [name], named
    try:
        client.messages.create(tool_choice={"type": "tool", "name": "nope"}, **kwargs)
        raise AssertionError("a tool that was not offered was forced")
    except anthropic.BadRequestError as e:
        assert e.body["error"]["type"] == "invalid_request_error", e.body

    result = {"type": "tool_result", "tool_use_id": calls[0].id, "content": [{"type": "text", "text": "flag set"}]}
    followup = messages + [
        {"role": "assistant", "content": reply.content},
        {"role": "user", "content": [result]},
    ]
    answer = client.messages.create(model="demo", max_tokens=8, extra_body=GREEDY, messages=followup, tools=TOOLS)
    assert answer.role == "assistant" and answer.stop_reason in ("end_turn", "max_tokens"), answer
    failed = dict(result, is_error=True, content="no such flag")
    followup[-1] = {"role": "user", "content": [failed]}
    answer = client.messages.create(model="demo", max_tokens=8, extra_body=GREEDY, messages=followup, tools=TOOLS)
    assert answer.role == "assistant", answer
    print("tools: ok")


def thinking(client) -> None:
    messages = [{"role": "user", "content": "Should the flag be on?"}]
    kwargs = dict(
        model="demo",
        max_tokens=48,
        extra_body=GREEDY,
        messages=messages,
        tools=TOOLS,
        tool_choice={"type": "any"},
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    reply = client.messages.create(**kwargs)
    assert reply.content and reply.content[0].type == "thinking", reply
    assert reply.content[0].thinking, reply
    assert reply.content[0].signature == "", reply
    assert reply.stop_reason == "max_tokens", reply

    events, final = stream(client, **kwargs)
    assert final.content[0].type == "thinking", final
    assert final.content[0].thinking == reply.content[0].thinking, (final, reply)
    kinds = [e.delta.type for e in events if e.type == "content_block_delta"]
    assert "thinking_delta" in kinds and kinds[-1] == "signature_delta", kinds

    # Earlier turns' thinking (and redacted thinking) go back in as they came.
    followup = messages + [
        {"role": "assistant", "content": [reply.content[0], {"type": "redacted_thinking", "data": "x"}, {"type": "text", "text": "Yes."}]},
        {"role": "user", "content": "Why?"},
    ]
    answer = client.messages.create(model="demo", max_tokens=8, extra_body=GREEDY, messages=followup)
    assert answer.role == "assistant", answer
    print("thinking: ok")


if __name__ == "__main__":
    mode, base_url = sys.argv[1], sys.argv[2]
    client = anthropic.Anthropic(base_url=base_url, api_key="sk-test", max_retries=0)
    {"demo": demo, "tools": tools, "thinking": thinking}[mode](client)
