"""The official `openai` and `ollama` Python packages against a router (`--models-dir`).

Run by tests/router.rs as `router_clients.py BASE_URL MODEL`: the OpenAI listing names every
model of the folder; a streamed OpenAI chat and an Ollama chat reach MODEL and answer greedily
the same text; an unknown model is refused in each client's own error type; Ollama's
keep_alive unloads MODEL at once (0, nothing to generate) or once idle that long.
"""

import sys
import time

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
    # keep_alive: 0 with nothing to generate unloads the model; a later request loads it
    # again, and one with a short keep_alive leaves it to be unloaded once idle that long.
    assert [m.model for m in local.ps().models] == [model], local.ps()
    gone = local.generate(model=model, prompt="", keep_alive=0)
    assert gone.done and gone.done_reason == "unload" and gone.response == "", gone
    assert local.ps().models == [], local.ps()
    again = local.chat(model=model, messages=PROMPT, options={"temperature": 0, "num_predict": 12}, keep_alive="1s")
    # A fresh server computes the prompt afresh (no cached prefix): a near-tie may go the
    # other way, so only an answer is asked for.
    assert again.message.content and again.eval_count == 12, again
    assert [m.model for m in local.ps().models] == [model], local.ps()
    deadline = time.monotonic() + 30
    while local.ps().models:
        assert time.monotonic() < deadline, "still loaded 30 s after a keep_alive of 1 s"
        time.sleep(0.2)
    try:
        local.generate(model=model, prompt="hi", keep_alive="10")
        raise AssertionError("a keep_alive without a unit was taken")
    except ollama.ResponseError as e:
        assert e.status_code == 400 and "missing unit" in e.error, e
    # Loaded again, as the caller left it (a new server keeps the default: no keep_alive).
    local.generate(model=model, prompt="hi", options={"num_predict": 1})
    print("router: ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
