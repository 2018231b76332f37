"""The official `openai` and `ollama` Python packages against a router (`--models-dir`).

Run by tests/router.rs as `router_clients.py BASE_URL MODEL`: the OpenAI listing names every
model of the folder; a streamed OpenAI chat and an Ollama chat reach MODEL and answer greedily
the same text; an unknown model is refused in each client's own error type.
"""

import sys

import ollama
import openai

PROMPT = [{"role": "user", "content": "Name three colors."}]


def main(base_url: str, model: str) -> None:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused")
    ids = [m.id for m in client.models.list().data]
    assert model in ids and len(ids) >= 2, ids

    # The prompt was seen before (by the caller), so both answers reuse its prefix alike.
    stream = client.chat.completions.create(
        model=model, messages=PROMPT, max_tokens=12, temperature=0, stream=True
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed, "an empty streamed answer"

    local = ollama.Client(host=base_url)
    answer = local.chat(
        model=model, messages=PROMPT, options={"temperature": 0, "num_predict": 12}
    )
    assert answer.message.content == streamed, (answer.message.content, streamed)

    try:
        client.chat.completions.create(model="no-such-model", messages=PROMPT)
        raise AssertionError("an unknown model was served")
    except openai.BadRequestError as e:
        assert "no-such-model" in str(e), e
    try:
        local.chat(model="no-such-model", messages=PROMPT)
        raise AssertionError("an unknown model was served")
    except ollama.ResponseError as e:
        assert e.status_code == 400 and e.error == "model 'no-such-model' not found", e
    print("router: ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
