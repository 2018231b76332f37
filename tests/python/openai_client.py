"""Drives gguf-serve with the official `openai` Python client, as users do.

Run by tests/openai_client.rs with the server's base URL; exits non-zero on any mismatch.
"""

import sys

import openai


def main(base_url: str) -> None:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-test")
    messages = [
        {"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": "What is the capital of France?"},
    ]

    models = client.models.list()
    assert len(models.data) == 1, models

    reply = client.chat.completions.create(
        model=models.data[0].id, messages=messages, max_tokens=16, temperature=0
    )
    content = reply.choices[0].message.content
    assert reply.object == "chat.completion", reply
    assert reply.choices[0].message.role == "assistant"
    assert content, reply
    assert reply.usage.completion_tokens == 16, reply.usage
    assert reply.choices[0].finish_reason == "length"

    stream = client.chat.completions.create(
        model=models.data[0].id,
        messages=messages,
        max_tokens=16,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish = choice.finish_reason or finish
    streamed = "".join(pieces)
    assert streamed == content, (streamed, content)
    assert finish == "length", finish
    assert usage is not None and usage.completion_tokens == 16, usage

    completion = client.completions.create(
        model=models.data[0].id, prompt="1, 2, 3, 4,", max_tokens=8, temperature=0
    )
    assert completion.choices[0].text, completion

    try:
        client.chat.completions.create(model="x", messages=[{"content": "no role"}])
    except openai.BadRequestError as e:
        assert e.status_code == 400
    else:
        raise AssertionError("a message without a role must be rejected")

    print("openai client: ok")


if __name__ == "__main__":
    main(sys.argv[1])
