#!/usr/bin/env python3
"""The Responses API side by side with the reference llama-server: the same requests to
`/v1/responses` (streamed and not, input items, tools, bad fields) and to the token-count
routes, comparing statuses, error messages, the JSON shape of every answer (keys and value
types, recursively), the sequence of named stream events (deltas collapsed) and the shape of
each event kind, and the text of greedy answers. Run by hand; prints a Markdown report.

usage: scripts/responses-vs-llama-server.py LLAMA_SERVER GGUF_SERVE MODEL [GPT_OSS_MODEL]
   e.g. scripts/responses-vs-llama-server.py "$(scripts/build-llama-server.sh)/llama-server" \\
          target/release/gguf-serve "$(scripts/fetch-demo-model.sh)" /tmp/tiny-gpt-oss.gguf

The servers run one after the other (one thread each). GPT_OSS_MODEL is a gpt-oss GGUF (the
tiny one the tests write will do) served with --jinja for the tool call requests.
"""
import importlib.util
import json
import os
import subprocess
import sys

_spec = importlib.util.spec_from_file_location(
    "diff", os.path.join(os.path.dirname(__file__), "diff-vs-llama-server.py"))
diff = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(diff)

TOOLS = [{"type": "function", "name": "set_flag", "description": "Turn the flag on or off",
          "parameters": {"type": "object", "properties": {"on": {"type": "boolean"}},
                         "required": ["on"]}}]
BASE = {"instructions": "Answer briefly.", "input": "Name three colors.",
        "max_output_tokens": 12, "temperature": 0}

# (name, path, body, greedy)
DEMO_REQUESTS = [
    ("text", "/v1/responses", BASE, True),
    ("text stream", "/v1/responses", {**BASE, "stream": True}, True),
    ("no /v1", "/responses", BASE, True),
    ("items", "/v1/responses", {**BASE, "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "Hi."}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello!"}]},
        {"role": "user", "content": "Name three colors."}]}, True),
    ("developer", "/v1/responses", {**BASE, "input": [
        {"role": "developer", "content": "Be terse."}, {"role": "user", "content": "Colors?"}]}, True),
    ("store, metadata", "/v1/responses", {**BASE, "store": False, "metadata": {"a": "b"},
                                          "truncation": "disabled", "top_p": 0.9}, True),
    ("count", "/v1/responses/input_tokens", BASE, False),
    ("count no /v1", "/responses/input_tokens", BASE, False),
    ("chat count", "/v1/chat/completions/input_tokens",
     {"messages": [{"role": "user", "content": "Name three colors."}]}, False),
    ("chat count no /v1", "/chat/completions/input_tokens",
     {"messages": [{"role": "user", "content": "Name three colors."}]}, False),
    ("no input", "/v1/responses", {"model": "x"}, False),
    ("array body", "/v1/responses", [1], False),
    ("input number", "/v1/responses", {"input": 3}, False),
    ("previous_response_id", "/v1/responses", {**BASE, "previous_response_id": "resp_1"}, False),
    ("unknown item", "/v1/responses", {"input": [{"type": "nope"}]}, False),
    ("input_file", "/v1/responses", {"input": [{"role": "user", "content": [{"type": "input_file"}]}]}, False),
    ("input_text without text", "/v1/responses", {"input": [{"role": "user", "content": [{"type": "input_text"}]}]}, False),
    ("reasoning without content", "/v1/responses", {"input": [{"type": "reasoning", "summary": []}]}, False),
    ("bad tool output", "/v1/responses", {"input": [{"type": "function_call_output", "call_id": "c",
                                                    "output": [{"type": "output_text"}]}]}, False),
    ("tools not array", "/v1/responses", {**BASE, "tools": {}}, False),
    ("bad temperature", "/v1/responses", {**BASE, "temperature": "hot"}, False),
    ("bad temperature stream", "/v1/responses", {**BASE, "temperature": "hot", "stream": True}, False),
    ("bad max_output_tokens", "/v1/responses", {**BASE, "max_output_tokens": "x"}, False),
    ("count no input", "/v1/responses/input_tokens", {}, False),
    ("chat count no messages", "/v1/chat/completions/input_tokens", {}, False),
]

CALL = {"input": [{"role": "user", "content": "Turn the flag on."}], "tools": TOOLS,
        "tool_choice": "required", "max_output_tokens": 256, "temperature": 0,
        "logit_bias": {"99": 30}}
ROUND_TRIP = [{"role": "user", "content": "Turn the flag on."},
              {"type": "function_call", "call_id": "call_1", "name": "set_flag", "arguments": "{\"on\": true}"},
              {"type": "function_call_output", "call_id": "call_1", "output": "{\"ok\": true}"}]
GPT_OSS_REQUESTS = [
    ("forced call", "/v1/responses", CALL, False),
    ("forced call stream", "/v1/responses", {**CALL, "stream": True}, False),
    ("reasoning", "/v1/responses", {**CALL, "logit_bias": {"97": 30}, "max_output_tokens": 24}, False),
    ("reasoning stream", "/v1/responses", {**CALL, "logit_bias": {"97": 30}, "max_output_tokens": 24,
                                           "stream": True}, False),
    ("round trip count", "/v1/responses/input_tokens", {"input": ROUND_TRIP, "tools": TOOLS}, False),
]


# Keys gguf-serve adds on purpose, not counted: OpenAI's item positions in stream events, which
# the `openai` client's stream helper needs.
EXTRA_KEYS = ("$.output_index", "$.content_index")


def named_events(text):
    """(event name, data) of each SSE event; data-only events get the name None."""
    events, name = [], None
    for line in text.splitlines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
            name = None
    return events


def sequence(events):
    out = []
    for name, _ in events:
        if out and out[-1] == name and name and name.endswith(".delta"):
            continue
        out.append(name)
    return out


def compare(name, greedy, ref, ours):
    diffs = []
    (rs, rct, rtext), (os_, oct_, otext) = ref, ours
    if rs != os_:
        diffs.append(f"status: llama-server {rs}, gguf-serve {os_}")
    if "event-stream" in rct and "event-stream" in oct_:
        rev, oev = named_events(rtext), named_events(otext)
        rseq, oseq = sequence(rev), sequence(oev)
        if rseq != oseq:
            diffs.append(f"events: llama-server {' '.join(map(str, rseq))}; gguf-serve {' '.join(map(str, oseq))}")
        first = lambda evs: {n: d for n, d in reversed(evs)}
        rfirst, ofirst = first(rev), first(oev)
        for kind in sorted(set(rfirst) & set(ofirst), key=str):
            rsh, osh = diff.shape(rfirst[kind]), diff.shape(ofirst[kind])
            for path in sorted(set(rsh) ^ set(osh)):
                if path in EXTRA_KEYS and path in osh:
                    continue
                side = "missing" if path in rsh else "extra"
                diffs.append(f"{kind}: {side} {path}")
        if greedy:
            text = lambda evs: "".join(d.get("delta", "") for n, d in evs if n == "response.output_text.delta")
            if text(rev) != text(oev):
                diffs.append(f"greedy text: llama-server {text(rev)!r}, gguf-serve {text(oev)!r}")
        return diffs
    try:
        rv, ov = json.loads(rtext), json.loads(otext)
    except ValueError:
        return diffs + [f"body: llama-server {rtext[:80]!r}, gguf-serve {otext[:80]!r}"]
    if isinstance(rv, dict) and "error" in rv and isinstance(ov, dict) and "error" in ov:
        if rv["error"].get("message") != ov["error"].get("message"):
            diffs.append(f"message: llama-server {rv['error'].get('message')!r}, gguf-serve {ov['error'].get('message')!r}")
        return diffs
    rsh, osh = diff.shape(rv), diff.shape(ov)
    for path in sorted(set(rsh) | set(osh)):
        if path not in osh:
            diffs.append(f"missing {path}")
        elif path not in rsh:
            diffs.append(f"extra {path}")
        elif rsh[path] != osh[path]:
            diffs.append(f"type {path}: llama-server {rsh[path]}, gguf-serve {osh[path]}")
    if "input_tokens" in rv and rv.get("input_tokens") != ov.get("input_tokens"):
        diffs.append(f"input_tokens: llama-server {rv.get('input_tokens')}, gguf-serve {ov.get('input_tokens')}")
    if greedy and rs == 200 and os_ == 200:
        text = lambda v: "".join(p.get("text", "") for o in v.get("output", []) if o.get("type") == "message"
                                 for p in o.get("content", []))
        if text(rv) != text(ov):
            diffs.append(f"greedy text: llama-server {text(rv)!r}, gguf-serve {text(ov)!r}")
    return diffs


def run(binary, model, flags, requests, log):
    port, proc = diff.start(binary, model, flags, log)
    try:
        if not diff.wait(port, proc, {}):
            sys.exit(f"{binary} did not start (see {log.name})")
        return [diff.call(port, "POST", path, body, {}) for _, path, body, _ in requests]
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    ref_bin, our_bin, model = sys.argv[1:4]
    runs = [("demo model", model, ["-c", "4096", "-t", "1"], DEMO_REQUESTS)]
    if len(sys.argv) == 5:
        runs.append(("gpt-oss, --jinja", sys.argv[4], ["-c", "4096", "-t", "1", "--jinja"], GPT_OSS_REQUESTS))
    total = same = 0
    rows = []
    for label, path, flags, requests in runs:
        with open("/tmp/responses-ref.log", "w") as lr, open("/tmp/responses-ours.log", "w") as lo:
            refs = run(ref_bin, path, flags, requests, lr)
            ours = run(our_bin, path, flags, requests, lo)
        for (name, _, _, greedy), r, o in zip(requests, refs, ours):
            d = compare(name, greedy, r, o)
            total += 1
            same += not d
            rows.append((label, name, d))
    print(f"{same} of {total} Responses API requests alike (status, error message, JSON keys and types, "
          f"event sequence, greedy text).\n")
    print("| model | request | differences |\n| --- | --- | --- |")
    for label, name, d in rows:
        text = "<br>".join(d).replace("|", "\\|") or "none"
        print(f"| {label} | {name} | {text} |")


if __name__ == "__main__":
    main()
