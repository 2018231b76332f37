#!/usr/bin/env python3
"""Side by side: the Messages API of gguf-serve and of the reference llama-server, on the same
requests, one server at a time. Prints, per request, what each answered (status, error shape,
stop_reason, usage, text, stream event sequence, count_tokens) and whether they agree.

Usage: scripts/ab-anthropic-vs-llama-server.py LLAMA_SERVER MODEL [EXTRA_FLAG ...]
(gguf-serve is target/release/gguf-serve; both get `-c 4096 -t 1` and the extra flags.)
"""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

TOOLS = [{
    "name": "set_flag",
    "description": "Set the flag",
    "input_schema": {"type": "object", "properties": {"on": {"type": "boolean"}}, "required": ["on"]},
}]
USER = [{"role": "user", "content": "Count to five."}]
ROUND_TRIP = USER + [
    {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "easy", "signature": ""},
        {"type": "text", "text": "Sure."},
        {"type": "tool_use", "id": "toolu_1", "name": "set_flag", "input": {"on": True}},
    ]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "done"}]}]},
]
REQUESTS = {
    "plain": {"max_tokens": 12, "temperature": 0, "messages": USER},
    "system blocks": {"max_tokens": 12, "temperature": 0, "system": [{"type": "text", "text": "Be terse."}], "messages": USER},
    "stream": {"max_tokens": 12, "temperature": 0, "messages": USER, "stream": True},
    "round trip": {"max_tokens": 8, "temperature": 0, "messages": ROUND_TRIP, "tools": TOOLS},
    "forced call": {"max_tokens": 256, "temperature": 0, "messages": USER, "tools": TOOLS, "tool_choice": {"type": "any"}},
    "forced call stream": {"max_tokens": 256, "temperature": 0, "messages": USER, "tools": TOOLS, "tool_choice": {"type": "any"}, "stream": True},
    "prefill": {"max_tokens": 8, "temperature": 0, "messages": USER + [{"role": "assistant", "content": "One,"}]},
    "stop sequence": {"max_tokens": 12, "temperature": 0, "messages": USER, "stop_sequences": ["im_"]},
    "no messages": {"max_tokens": 4},
    "bad max_tokens": {"max_tokens": "x", "messages": USER},
    "image": {"max_tokens": 4, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}]}]},
}
COUNT = ["plain", "system blocks", "round trip", "forced call", "prefill"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def summary(status, text, stream):
    if stream and status == 200:
        events = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
        datas = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
        squeezed = []
        for e in events:
            if not squeezed or squeezed[-1][0] != e:
                squeezed.append([e, 1])
            else:
                squeezed[-1][1] += 1
        last = [d for d in datas if d.get("type") == "message_delta"]
        return {"status": status, "events": " ".join(f"{e}x{n}" if n > 1 else e for e, n in squeezed),
                "message_delta": last[-1] if last else None}
    try:
        body = json.loads(text)
    except ValueError:
        return {"status": status, "raw": text[:200]}
    if status != 200:
        return {"status": status, "error": body}
    return {"status": status, "stop_reason": body.get("stop_reason"), "usage": body.get("usage"),
            "content": body.get("content"), "keys": sorted(body)}


def run(program, model, extra):
    port = free_port()
    args = [program, "-m", model, "-c", "4096", "-t", "1", "--port", str(port), *extra]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(url + "/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        out = {}
        for name, body in REQUESTS.items():
            status, text = post(url + "/v1/messages", body)
            out[name] = summary(status, text, body.get("stream", False))
        out["bad json"] = summary(*post(url + "/v1/messages", b"{bad"), False)
        for name in COUNT:
            status, text = post(url + "/v1/messages/count_tokens", REQUESTS[name])
            out[f"count_tokens {name}"] = {"status": status, "body": text}
        return out
    finally:
        server.kill()
        server.wait()


def main():
    reference, model, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
    theirs = run(reference, model, extra)
    ours = run("target/release/gguf-serve", model, extra)
    for name in theirs:
        same = "same" if theirs[name] == ours[name] else "DIFFERS"
        print(f"== {name}: {same}")
        if same != "same":
            print(f"  llama-server: {json.dumps(theirs[name])[:700]}")
            print(f"  gguf-serve:   {json.dumps(ours[name])[:700]}")


if __name__ == "__main__":
    main()
