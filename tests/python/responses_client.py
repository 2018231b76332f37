"""OpenAI's Responses API through the official `openai` client, as an agent would use it.

Run by tests/responses_client.rs as `responses_client.py text URL` against the demo model
(text answers, streamed and not; token counts; a bad request), and as
`responses_client.py tools URL` against the tiny gpt-oss served with `--jinja` (a forced
function call, streamed and not, and its output fed back).
"""

import json
import sys
import urllib.request

import openai

TOOLS = [
    {
        "type": "function",
        "name": "set_flag",
        "description": "Turn the flag on or off",
        "parameters": {
            "type": "object",
            "properties": {"on": {"type": "boolean"}},
            "required": ["on"],
            "additionalProperties": False,
        },
    }
]


def output_text(response) -> str:
    return "".join(
        part.text
        for item in response.output
        if item.type == "message"
        for part in item.content
        if part.type == "output_text"
    )


def check_usage(response, max_output: int) -> None:
    usage = response.usage
    assert usage.input_tokens > 0, usage
    assert 0 < usage.output_tokens <= max_output, usage
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens, usage


def stream_events(client, **kwargs) -> list:
    events = list(client.responses.create(stream=True, **kwargs))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"], types
    assert types[-1] == "response.completed", types
    assert types.count("response.completed") == 1, types
    ids = {e.response.id for e in events if hasattr(e, "response")}
    assert len(ids) == 1, ids
    return events


def text(base_url: str) -> None:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-test")
    kwargs = dict(
        model="demo",
        instructions="Answer briefly.",
        input="Name a colour.",
        max_output_tokens=12,
        temperature=0,
    )
    response = client.responses.create(**kwargs)
    assert response.object == "response", response
    assert response.id.startswith("resp_"), response.id
    assert response.status == "completed", response
    assert [item.type for item in response.output] == ["message"], response.output
    assert response.output[0].role == "assistant"
    assert response.output_text and response.output_text == output_text(response), response
    check_usage(response, 12)

    events = stream_events(client, **kwargs)
    types = [e.type for e in events]
    first_delta = types.index("response.output_text.delta")
    assert types[first_delta - 2 : first_delta] == [
        "response.output_item.added",
        "response.content_part.added",
    ], types
    assert types[-4:-1] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ], types
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = next(e for e in events if e.type == "response.output_text.done")
    completed = events[-1].response
    assert streamed == done.text == output_text(completed), (streamed, done.text)
    # Greedy: the stream says what the whole answer said.
    assert streamed == response.output_text, (streamed, response.output_text)
    check_usage(completed, 12)

    # The client's stream helper rebuilds the response from the events' output indices.
    with client.responses.stream(**kwargs) as helper:
        for _ in helper:
            pass
        final = helper.get_final_response()
    assert final.output_text == response.output_text, (final.output_text, response.output_text)

    # Input items: a message with parts, an earlier assistant turn.
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "Hi."}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello!"}]},
        {"role": "user", "content": "Name a colour."},
    ]
    multi = client.responses.create(model="demo", input=items, max_output_tokens=4, temperature=0)
    assert multi.status == "completed", multi

    # Token counts: what the generation route tokenized.
    count = client.responses.input_tokens.count(model="demo", instructions="Answer briefly.", input="Name a colour.")
    assert count.object == "response.input_tokens", count
    assert count.input_tokens == response.usage.input_tokens, (count, response.usage)
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Name a colour."},
    ]
    chat = client.chat.completions.create(model="demo", messages=messages, max_tokens=1)
    request = urllib.request.Request(
        f"{base_url}/v1/chat/completions/input_tokens",
        data=json.dumps({"messages": messages}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as answer:
        chat_count = json.load(answer)
    assert chat_count == {"input_tokens": chat.usage.prompt_tokens, "object": "response.input_tokens"}, chat_count
    assert chat_count["input_tokens"] == count.input_tokens, (chat_count, count)

    # Bad requests: llama-server's error JSON, and the server keeps serving.
    for bad, wanted in [
        (dict(input="x", previous_response_id="resp_1"), "previous_response_id"),
        (dict(input=[{"type": "input_file"}]), "Cannot determine type of 'item'"),
        (dict(input="x", temperature="hot"), "temperature"),
    ]:
        try:
            client.responses.create(model="demo", **bad)
        except openai.BadRequestError as e:
            assert e.status_code == 400, e
            assert wanted in e.body["message"], e.body
        else:
            raise AssertionError(f"{bad} was accepted")
    again = client.responses.create(**kwargs)
    assert again.output_text == response.output_text, again
    print("responses text: ok")


def tools(base_url: str) -> None:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-test")
    question = [{"role": "user", "content": "Turn the flag on."}]
    # `c` (byte token 99) over `a` steers the random model to Harmony's commentary channel.
    kwargs = dict(
        model="tiny-gpt-oss",
        input=question,
        tools=TOOLS,
        tool_choice="required",
        max_output_tokens=512,
        temperature=0,
        extra_body={"logit_bias": {"99": 30}},
    )
    response = client.responses.create(**kwargs)
    assert response.status == "completed", response
    calls = [item for item in response.output if item.type == "function_call"]
    assert len(calls) == 1, response.output
    (call,) = calls
    assert call.name == "set_flag", call
    assert call.call_id.startswith("call_") and call.id.startswith("fc_"), call
    assert call.call_id[len("call_"):] == call.id[len("fc_"):], call
    arguments = json.loads(call.arguments)
    assert isinstance(arguments.get("on"), bool), arguments
    assert not output_text(response), response.output

    events = stream_events(client, **kwargs)
    added = [e.item for e in events if e.type == "response.output_item.added" and e.item.type == "function_call"]
    assert [item.name for item in added] == ["set_flag"], added
    streamed = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert streamed == call.arguments, (streamed, call.arguments)
    (done,) = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert done.arguments == call.arguments and done.item_id == added[0].id, done
    final = [item for item in events[-1].response.output if item.type == "function_call"]
    assert [(c.name, c.arguments, c.call_id) for c in final] == [
        ("set_flag", call.arguments, added[0].call_id)
    ], final

    with client.responses.stream(**kwargs) as helper:
        for _ in helper:
            pass
        final = helper.get_final_response()
    (helper_call,) = [item for item in final.output if item.type == "function_call"]
    assert (helper_call.name, helper_call.arguments) == ("set_flag", call.arguments), helper_call

    # The round trip: the answer's items go back with the function's output.
    followup = question + [item.model_dump(exclude_none=True) for item in response.output]
    followup.append({"type": "function_call_output", "call_id": call.call_id, "output": json.dumps({"ok": True})})
    answer = client.responses.create(
        model="tiny-gpt-oss", input=followup, tools=TOOLS, max_output_tokens=8, temperature=0
    )
    assert answer.status == "completed", answer
    assert answer.usage.input_tokens > response.usage.input_tokens, (answer.usage, response.usage)
    count = client.responses.input_tokens.count(model="tiny-gpt-oss", input=followup, tools=TOOLS)
    assert count.input_tokens == answer.usage.input_tokens, (count, answer.usage)
    print("responses tools: ok")


if __name__ == "__main__":
    {"text": text, "tools": tools}[sys.argv[1]](sys.argv[2])
