"""A forced tool call through the official `openai` client: `tool_calls` arrive parsed, with
finish_reason "tool_calls", in stream and non-stream mode; the tool result is fed back.

Run by tests/structured_output.rs with the server's base URL (a Hermes-style template).
"""

import json
import sys

import openai

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 20}},
                "required": ["city"],
            },
        },
    }
]


def main(base_url: str) -> None:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-test")
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    kwargs = dict(model="demo", messages=messages, tools=TOOLS, tool_choice="required", max_tokens=64, temperature=0)

    reply = client.chat.completions.create(**kwargs)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather", call
    args = json.loads(call.function.arguments)
    assert isinstance(args.get("city"), str), args
    assert call.id, call

    name, arguments, finish = "", "", None
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        for c in chunk.choices:
            for tc in c.delta.tool_calls or []:
                name += tc.function.name or ""
                arguments += tc.function.arguments or ""
            finish = c.finish_reason or finish
    assert finish == "tool_calls", finish
    assert name == "get_weather", name
    assert json.loads(arguments) == args, (arguments, args)

    followup = messages + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature_c": 18})},
    ]
    answer = client.chat.completions.create(model="demo", messages=followup, tools=TOOLS, max_tokens=8, temperature=0)
    assert answer.choices[0].message.role == "assistant"
    print("tool calls: ok")


if __name__ == "__main__":
    main(sys.argv[1])
