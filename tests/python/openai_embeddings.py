"""Drives gguf-serve's /v1/embeddings with the official `openai` Python client, as retrieval
code does: floats and base64, one input and several, usage, and an error.

Run by tests/embeddings_minilm.rs with the server's base URL; exits non-zero on any mismatch.
"""

import base64
import math
import struct
import sys

import openai


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def main(base_url: str) -> None:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-test")
    texts = ["A man is playing a guitar.", "Someone plays an instrument.", "Stocks fell sharply."]

    floats = client.embeddings.create(model="minilm", input=texts, encoding_format="float")
    assert floats.object == "list", floats
    assert floats.model == "minilm", floats.model
    assert [d.index for d in floats.data] == [0, 1, 2], floats.data
    assert all(len(d.embedding) == 384 for d in floats.data)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0, floats.usage

    # Asked for explicitly, base64 comes back as the string: little-endian f32s.
    b64 = client.embeddings.create(model="minilm", input=texts, encoding_format="base64")
    for f, b in zip(floats.data, b64.data):
        raw = base64.b64decode(b.embedding)
        decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
        assert len(decoded) == 384, len(decoded)
        assert max(abs(x - y) for x, y in zip(f.embedding, decoded)) < 1e-6

    # The client's default (it asks for base64 and decodes it).
    default = client.embeddings.create(model="minilm", input=texts[0])
    assert max(abs(x - y) for x, y in zip(default.data[0].embedding, floats.data[0].embedding)) < 1e-6

    v = [d.embedding for d in floats.data]
    assert cosine(v[0], v[1]) > cosine(v[0], v[2]), "guitar is nearer instrument than stocks"

    try:
        client.embeddings.create(model="minilm", input=[])
    except openai.BadRequestError as e:
        assert e.status_code == 400
        assert "must not be empty" in str(e), e
    else:
        raise AssertionError("an empty input was accepted")
    print("openai embeddings: ok")


if __name__ == "__main__":
    main(sys.argv[1])
