"""The official `ollama` Python package against the real server's Ollama API.

Run by tests/ollama_client.rs as `ollama_client.py MODE BASE_URL`:
  demo   the demo model: the listings (tags, ps, show, version), a chat whole and streamed,
         options (num_predict, stop), a JSON schema format, generate through the template and
         raw, continued from its `context`, logprobs (whole and streamed, with alternatives),
         the load-only generate, and errors as Ollama writes them, after which the server
         keeps serving;
  embed  all-MiniLM-L6-v2 with --embedding: /api/embed's normalized vectors, one input and
         several, truncation, and the first route, /api/embeddings.
"""

import json
import math
import sys
import urllib.request

import ollama

GREEDY = {"temperature": 0}


def demo(client: ollama.Client, base_url: str) -> None:
    version = json.load(urllib.request.urlopen(f"{base_url}/api/version"))
    assert version["version"], version

    (listed,) = client.list().models
    assert listed.details.format == "gguf", listed
    assert listed.details.family == "gemma3", listed
    assert listed.details.quantization_level == "Q4_K_M", listed
    assert listed.details.parameter_size == "268.10M", listed
    assert listed.size > 200_000_000 and len(listed.digest) == 64, listed
    assert listed.modified_at is not None, listed
    (loaded,) = client.ps().models
    assert loaded.model == listed.model and loaded.digest == listed.digest, (loaded, listed)
    assert loaded.size > 0 and loaded.size_vram == 0, loaded
    assert loaded.context_length > 0, loaded

    shown = client.show("anything")
    assert shown.details.family == "gemma3", shown.details
    assert shown.modelinfo["general.architecture"] == "gemma3", shown.modelinfo
    assert shown.modelinfo["gemma3.block_count"] == 18, shown.modelinfo
    # The template applied: here llama.cpp's built-in one, by its name (--chat-template gemma).
    assert shown.template == "gemma", shown.template
    assert shown.capabilities == ["completion"], shown.capabilities

    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello"}]
    options = dict(GREEDY, num_predict=16)
    first = client.chat(model="demo", messages=messages, options=options)
    assert first.model == "demo" and first.done and first.done_reason == "length", first
    assert first.message.role == "assistant" and first.message.content, first
    assert first.eval_count == 16 and first.prompt_eval_count > 0, first
    assert first.eval_duration > 0 and first.total_duration >= first.eval_duration, first
    # The stream reads the prompt from the cache the first request left; compare it with an
    # answer made from the same cache state (a near-tie can flip between batched and one-row
    # kernels).
    whole = client.chat(model="demo", messages=messages, options=options)
    chunks = list(client.chat(model="demo", messages=messages, options=options, stream=True))
    *parts, last = chunks
    assert all(not c.done for c in parts) and last.done, [c.done for c in chunks]
    assert "".join(c.message.content for c in parts) == whole.message.content, (parts, whole)
    assert last.message.content == "" and last.done_reason == "length", last
    assert last.eval_count == whole.eval_count, (last, whole)

    text = whole.message.content
    stop = text[len(text) // 2 :][:3]
    assert stop.strip(), text
    cut = client.chat(model="demo", messages=messages, options=dict(options, stop=[stop]))
    assert cut.done_reason == "stop", cut
    assert cut.message.content == text[: text.find(stop)], (cut.message.content, text, stop)

    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    question = [{"role": "user", "content": "Which city is the capital of France?"}]
    formed = client.chat(model="demo", messages=question, format=schema, options=dict(GREEDY, num_predict=48))
    assert isinstance(json.loads(formed.message.content)["city"], str), formed.message.content

    templated = client.generate(model="demo", prompt="Say hello", system="You are terse.", options=options)
    assert templated.response and templated.done, templated
    # The same conversation as the chat above, so the same greedy answer.
    assert templated.response == whole.message.content, (templated.response, whole.message.content)
    assert len(templated.context) == templated.prompt_eval_count + templated.eval_count, templated

    raw = client.generate(model="demo", prompt="The capital of France is", raw=True, options=dict(GREEDY, num_predict=8))
    assert raw.response and len(raw.context) == raw.prompt_eval_count + 8, raw
    more = client.generate(model="demo", prompt=" Germany's", raw=True, context=raw.context, options=dict(GREEDY, num_predict=8))
    new_tokens = more.prompt_eval_count - len(raw.context)
    assert 0 < new_tokens <= 4, (more.prompt_eval_count, len(raw.context))
    assert more.context[: len(raw.context)] == raw.context, "the conversation goes on from its context"
    streamed = list(client.generate(model="demo", prompt="The capital of France is", raw=True, options=dict(GREEDY, num_predict=8), stream=True))
    assert "".join(c.response for c in streamed) == raw.response, streamed
    assert streamed[-1].context == raw.context, streamed[-1]

    # logprobs: an entry per generated token, spelling the answer, with its alternatives
    # (most likely first, the greedy choice among them); streamed, the same entries.
    probed = client.chat(model="demo", messages=messages, options=options, logprobs=True, top_logprobs=3)
    assert probed.message.content == whole.message.content, (probed.message.content, whole.message.content)
    entries = probed.logprobs
    assert len(entries) == probed.eval_count == 16, entries
    assert "".join(e.token for e in entries) == probed.message.content, entries
    for e in entries:
        assert e.logprob <= 0 and len(e.top_logprobs) == 3, e
        alternatives = [t.logprob for t in e.top_logprobs]
        assert alternatives == sorted(alternatives, reverse=True), e
        assert e.top_logprobs[0].token == e.token and e.top_logprobs[0].logprob == e.logprob, e
    streamed = list(client.chat(model="demo", messages=messages, options=options, stream=True, logprobs=True, top_logprobs=3))
    assert [e for c in streamed for e in (c.logprobs or [])] == list(entries), streamed
    alone = client.generate(model="demo", prompt="The capital of France is", raw=True, options=dict(GREEDY, num_predict=8), logprobs=True)
    assert [e.token for e in alone.logprobs] and all(not e.top_logprobs for e in alone.logprobs), alone.logprobs
    assert "".join(e.token for e in alone.logprobs) == raw.response, (alone.logprobs, raw.response)

    loaded = client.generate(model="demo", prompt="")
    assert loaded.done and loaded.done_reason == "load" and loaded.response == "", loaded
    loaded = client.chat(model="demo", messages=[])
    assert loaded.done and loaded.done_reason == "load" and loaded.message.content == "", loaded

    def refused(call, status: int, words: str) -> None:
        try:
            call()
            raise AssertionError(f"accepted: {words}")
        except ollama.ResponseError as e:
            assert e.status_code == status, (e.status_code, e.error)
            assert words in e.error, e.error

    image = [{"role": "user", "content": "What is this?", "images": ["iVBORw0KGgo="]}]
    refused(lambda: client.chat(model="demo", messages=image), 400, "images")
    refused(lambda: client.chat(model="demo", messages=messages, options={"tfs_z": 1.0}), 400, "options.tfs_z")
    refused(lambda: client.generate(model="demo", prompt="a", suffix="b"), 400, "suffix")
    refused(lambda: client.embed(model="demo", input="hi"), 501, "--embeddings")
    refused(lambda: client.chat(model="demo", messages=messages, logprobs=True, top_logprobs=21), 400, "top_logprobs must be between 0 and 20")
    again = client.chat(model="demo", messages=messages, options=options)
    assert again.message.content == whole.message.content, "the server keeps serving after errors"
    print("demo: ok")


def norm(v) -> float:
    return math.sqrt(sum(x * x for x in v))


def cosine(a, b) -> float:
    return sum(x * y for x, y in zip(a, b)) / (norm(a) * norm(b))


def embed(client: ollama.Client, base_url: str) -> None:
    texts = ["A man is playing a guitar.", "Someone plays an instrument.", "Stocks fell sharply."]
    many = client.embed(model="minilm", input=texts)
    assert many.model == "minilm", many.model
    assert len(many.embeddings) == 3 and all(len(v) == 384 for v in many.embeddings), many
    assert all(abs(norm(v) - 1) < 1e-4 for v in many.embeddings), [norm(v) for v in many.embeddings]
    assert many.prompt_eval_count > 0, many
    v = many.embeddings
    assert cosine(v[0], v[1]) > cosine(v[0], v[2]), "guitar is nearer instrument than stocks"

    (one,) = client.embed(model="minilm", input=texts[0]).embeddings
    assert max(abs(x - y) for x, y in zip(one, v[0])) < 1e-5, "one input is read as in a batch"

    legacy = client.embeddings(model="minilm", prompt=texts[0]).embedding
    assert len(legacy) == 384, len(legacy)
    assert abs(cosine(legacy, one) - 1) < 1e-5, "the same direction, not normalized"

    long = "word " * 5000
    (cut,) = client.embed(model="minilm", input=long).embeddings
    assert len(cut) == 384, "a long input is truncated by default"
    try:
        client.embed(model="minilm", input=long, truncate=False)
        raise AssertionError("an input over the context was read whole")
    except ollama.ResponseError as e:
        assert e.status_code in (400, 500) and "tokens" in e.error, (e.status_code, e.error)
    print("embed: ok")


if __name__ == "__main__":
    mode, base_url = sys.argv[1], sys.argv[2]
    client = ollama.Client(host=base_url)
    {"demo": demo, "embed": embed}[mode](client, base_url)
