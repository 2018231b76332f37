#!/usr/bin/env python3
"""Differential check against the reference llama-server: the same command lines and the same
requests to both, comparing HTTP statuses, the JSON shape of every answer (keys and value
types, recursively; for streams, the shape of each chunk kind and the chunk count), and the
text of greedy answers. Prints a Markdown report (the README carries it).

usage: scripts/diff-vs-llama-server.py [--only N] LLAMA_SERVER GGUF_SERVE MODEL > report.md
   e.g. scripts/diff-vs-llama-server.py "$(scripts/build-llama-server.sh)/llama-server" \\
          target/release/gguf-serve "$(scripts/fetch-demo-model.sh)"

Both servers run side by side on one thread each. Differences that are known and kept on
purpose are listed in KNOWN with the reason; everything else is reported as a difference.
"""
import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

# The command lines: llama-server flags as users write them (the harness adds -m, --host, --port).
COMMAND_LINES = [
    "-c 4096 -t 1",
    "-c 4096 -t 1 -np 2",
    "-c 4096 -t 1 -np 2 -kvu",
    "-c 2048 -t 1 -np 1 --temp 0.3 --top-k 5 --seed 7",
    "-c 4096 -t 1 --alias zeta,alpha --tags y,x",
    "-c 4096 -t 1 --no-slots",
    "-c 4096 -t 1 --metrics --props",
    "-c 4096 -t 1 --api-key secret",
    "-c 4096 -t 1 -n 8",
    "-c 4096 -t 1 --chat-template chatml",
    "-c 4096 -t 1 --no-jinja --chat-template gemma",
    "-c 4096 -t 1 -fa on -ctk q8_0 -ctv q8_0",
    "-c 4096 -t 1 --no-cache-prompt",
    "-c 4096 -t 1 -r ###",
    "-c 1024 -t 1 -np 1 --context-shift",
    "-c 4096 -t 1 --reasoning-format none",
    "-c 4096 -t 1 -b 512 -ub 128",
    "-c 4096 -t 1 --cors-origins localhost",
    "-c 4096 -t 1 --slot-prompt-similarity 0.5 --keep 16",
    "-c 4096 -t 1 --repeat-penalty 1.2 --presence-penalty 0.5 --samplers penalties;top_k;temperature",
    "-c 4096 -t 1 --mirostat 2 --seed 3",
    "-c 4096 -t 1 --dry-multiplier 0.8 --seed 3",
    "-c 4096 -t 1 --jinja --reasoning off",
    "-c 4096 -t 1 -ngl 99 -np 2 --jinja -fa on --metrics --cont-batching -ctk q8_0 -ctv q8_0 --temp 0.7 --seed 42",
]

USER = [{"role": "user", "content": "Name three colors."}]

# (name, method, path, body, greedy): greedy answers must have equal text.
REQUESTS = [
    ("health", "GET", "/health", None, False),
    ("props", "GET", "/props", None, False),
    ("models", "GET", "/v1/models", None, False),
    ("models (ollama path)", "GET", "/models", None, False),
    ("tokenize", "POST", "/tokenize", {"content": "Hello world", "with_pieces": True}, False),
    ("detokenize", "POST", "/detokenize", {"tokens": [9259, 1902]}, False),
    ("completion greedy", "POST", "/completion", {"prompt": "The capital of France is", "n_predict": 16, "temperature": 0}, True),
    ("completion stream", "POST", "/completion", {"prompt": "The capital of France is", "n_predict": 8, "temperature": 0, "stream": True}, True),
    ("completion n_probs", "POST", "/completion", {"prompt": "1, 2, 3,", "n_predict": 4, "temperature": 0, "n_probs": 3}, True),
    ("completion post-sampling probs", "POST", "/completion", {"prompt": "1, 2, 3,", "n_predict": 4, "temperature": 0, "n_probs": 3, "post_sampling_probs": True}, True),
    ("completion two prompts", "POST", "/completion", {"prompt": ["Hello", "The sky is"], "n_predict": 4, "temperature": 0}, True),
    ("completion mixed prompt", "POST", "/completion", {"prompt": [9259, " world, the", 506], "n_predict": 4, "temperature": 0}, True),
    ("completion logit_bias forms", "POST", "/completion", {"prompt": "Hello", "n_predict": 4, "temperature": 0, "logit_bias": [["Hello", -5], [15, False], ["x", "bad"]]}, True),
    ("completion logit_bias object", "POST", "/completion", {"prompt": "Hello", "n_predict": 4, "temperature": 0, "logit_bias": {"15": -1, "the": -2}}, True),
    ("completion n=2", "POST", "/completion", {"prompt": "Hello", "n_predict": 4, "temperature": 0, "n": 2}, True),
    ("completion return_tokens", "POST", "/completion", {"prompt": "Hello", "n_predict": 4, "temperature": 0, "return_tokens": True}, True),
    ("completion response_fields", "POST", "/completion", {"prompt": "Hello", "n_predict": 4, "temperature": 0, "response_fields": ["content", "generation_settings/n_predict"]}, True),
    ("completion n_predict 0", "POST", "/completion", {"prompt": "Hello", "n_predict": 0, "temperature": 0}, True),
    ("v1 completions", "POST", "/v1/completions", {"prompt": "1, 2, 3,", "max_tokens": 6, "temperature": 0}, True),
    ("v1 completions stream", "POST", "/v1/completions", {"prompt": "1, 2, 3,", "max_tokens": 6, "temperature": 0, "stream": True}, True),
    ("chat", "POST", "/v1/chat/completions", {"messages": USER, "max_tokens": 12, "temperature": 0}, True),
    ("chat stream with usage", "POST", "/v1/chat/completions", {"messages": USER, "max_tokens": 8, "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}, True),
    ("chat logprobs", "POST", "/v1/chat/completions", {"messages": USER, "max_tokens": 4, "temperature": 0, "logprobs": True, "top_logprobs": 2}, True),
    ("chat n=2", "POST", "/v1/chat/completions", {"messages": USER, "max_tokens": 4, "temperature": 0, "n": 2}, True),
    ("chat assistant prefill", "POST", "/v1/chat/completions", {"messages": USER + [{"role": "assistant", "content": "Red,"}], "max_tokens": 6, "temperature": 0}, True),
    ("apply-template", "POST", "/apply-template", {"messages": USER}, True),
    ("slots", "GET", "/slots", None, False),
    ("metrics", "GET", "/metrics", None, False),
    ("post props", "POST", "/props", {}, False),
    ("error: bad json", "POST", "/completion", "{not json", False),
    ("error: no prompt", "POST", "/completion", {"n_predict": 1}, False),
    ("error: wrong type", "POST", "/completion", {"prompt": "x", "temperature": "hot"}, False),
    ("error: n out of range", "POST", "/completion", {"prompt": "x", "n": 99}, False),
    ("error: prompt too long", "POST", "/completion", {"prompt": "word " * 5000}, False),
    ("error: chat too long", "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "word " * 5000}]}, False),
    ("error: continue conflict", "POST", "/v1/chat/completions", {"messages": USER, "continue_final_message": True}, False),
    ("error: top_logprobs alone", "POST", "/v1/chat/completions", {"messages": USER, "top_logprobs": 2}, False),
    ("error: wrong method", "GET", "/completion", None, False),
    ("error: unknown route", "GET", "/no/such/route", None, False),
]

# Differences kept on purpose: (request name or *, JSON path prefix, reason).
KNOWN = [
    ("props", "$.memory", "ours: predicted against allocated memory per device"),
    ("props", "$.backend_sampling", "ours: whether backend sampling is on"),
    ("props", "$.media_marker", "no multimodal support, so no media marker"),
    ("props", "$.chat_template_tool_use", "no separate tool-use template is kept"),
    ("props", "$.chat_template_caps", "ours reports the three capabilities it detects"),
    ("props", "$.ui_settings", "no web UI: an empty object"),
    ("props", "$.default_generation_settings.params.chat_format", "llama-server names its parser here"),
    ("*", "$.generation_settings.chat_format", "llama-server names its parser here"),
    ("*", "$.__verbose", "debug output"),
    ("completion stream", "chunks", "ours sends the held-back tail and the EOS step like llama-server, but a chunk count can differ by one"),
]

ERROR_STATUS_TYPES = ("error",)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, model, flags, log):
    port = free_port()
    proc = subprocess.Popen([binary, "-m", model, *flags, "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=log)
    return port, proc


def wait(port, proc, headers, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/health", headers=headers)
            if urllib.request.urlopen(req, timeout=5).status == 200:
                return True
        except Exception:
            pass
        time.sleep(0.2)
    return False


def call(port, method, path, body, headers):
    data = None
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode("utf-8", "replace")


def shape(v, path="$"):
    """Every (path, type) of a JSON value; arrays as one element type."""
    out = {}
    if isinstance(v, dict):
        out[path] = "object"
        for k, x in v.items():
            out.update(shape(x, f"{path}.{k}"))
    elif isinstance(v, list):
        out[path] = "array"
        for x in v:
            out.update(shape(x, f"{path}[]"))
    elif isinstance(v, bool):
        out[path] = "boolean"
    elif isinstance(v, (int, float)):
        out[path] = "number"
    elif isinstance(v, str):
        out[path] = "string"
    else:
        out[path] = "null"
    return out


def parse(ctype, text):
    """JSON, SSE (a list of chunk payloads) or plain text."""
    if "event-stream" in ctype or text.startswith("data: "):
        chunks = []
        for line in text.splitlines():
            if line.startswith("data: "):
                payload = line[6:]
                chunks.append(payload if payload == "[DONE]" else json.loads(payload))
        return "sse", chunks
    try:
        return "json", json.loads(text)
    except ValueError:
        return "text", text


def chunk_kinds(chunks):
    """Stream chunks grouped by kind: first, a middle one, the last with data, [DONE]."""
    data = [c for c in chunks if c != "[DONE]"]
    kinds = {}
    if data:
        kinds["first"] = data[0]
        kinds["last"] = data[-1]
        if len(data) > 2:
            kinds["middle"] = data[len(data) // 2]
    return kinds, "[DONE]" in chunks, len(data)


def text_of(kind, value):
    """The generated text of a greedy answer, to compare."""
    def one(v):
        if not isinstance(v, dict):
            return None
        if "content" in v and isinstance(v.get("content"), str) and "choices" not in v:
            return v["content"]
        if "prompt" in v and isinstance(v["prompt"], str) and len(v) == 1:
            return v["prompt"]
        texts = []
        for c in v.get("choices", []):
            msg = c.get("message") or c.get("delta") or {}
            texts.append(c.get("text") or msg.get("content") or "")
        return "|".join(texts) if texts else None
    if kind == "json":
        if isinstance(value, list):
            return "||".join(str(one(x)) for x in value)
        return one(value)
    if kind == "sse":
        parts = {}
        for c in value:
            if not isinstance(c, dict):
                continue
            idx = c.get("index", 0)
            if "choices" in c:
                for ch in c["choices"]:
                    d = ch.get("delta") or {}
                    parts[ch.get("index", 0)] = parts.get(ch.get("index", 0), "") + (ch.get("text") or d.get("content") or "")
            elif isinstance(c.get("content"), str):
                parts[idx] = parts.get(idx, "") + c["content"]
        return "||".join(parts[k] for k in sorted(parts))
    return value


def known(name, path):
    for req, prefix, reason in KNOWN:
        if req in ("*", name) and (path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")):
            return reason
    return None


def compare(name, greedy, ref, ours):
    """Differences between the two answers, as (what, detail) pairs; known ones marked."""
    diffs = []
    (rs, rct, rtext), (os_, oct_, otext) = ref, ours
    if rs != os_:
        diffs.append(("status", f"llama-server {rs}, gguf-serve {os_}"))
    rk, rv = parse(rct, rtext)
    ok, ov = parse(oct_, otext)
    if rk != ok:
        diffs.append(("body kind", f"llama-server {rk}, gguf-serve {ok}"))
        return diffs
    if rk == "json":
        pairs = [("", rv, ov)]
    elif rk == "sse":
        (rkinds, rdone, rn), (okinds, odone, on) = chunk_kinds(rv), chunk_kinds(ov)
        if rdone != odone:
            diffs.append(("[DONE]", f"llama-server {rdone}, gguf-serve {odone}"))
        if rn != on and not known(name, "chunks"):
            diffs.append(("chunk count", f"llama-server {rn}, gguf-serve {on}"))
        pairs = [(f"{k} chunk ", rkinds.get(k), okinds.get(k)) for k in ("first", "middle", "last")]
    else:
        pairs = []
    for label, r, o in pairs:
        if r is None or o is None:
            continue
        rsh, osh = shape(r), shape(o)
        for path in sorted(set(rsh) | set(osh)):
            reason = known(name, path)
            if reason:
                continue
            if path not in osh:
                diffs.append((f"{label}missing", path))
            elif path not in rsh:
                diffs.append((f"{label}extra", path))
            elif rsh[path] != osh[path]:
                diffs.append((f"{label}type", f"{path}: llama-server {rsh[path]}, gguf-serve {osh[path]}"))
    if greedy and rs == 200 and os_ == 200:
        rt, ot = text_of(rk, rv), text_of(ok, ov)
        if rt != ot:
            diffs.append(("greedy text", f"llama-server {rt!r}, gguf-serve {ot!r}"))
    return diffs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("llama_server")
    p.add_argument("gguf_serve")
    p.add_argument("model")
    p.add_argument("--only", type=int, help="run only command line N (1-based)")
    a = p.parse_args()
    lines = list(enumerate(COMMAND_LINES, 1))
    if a.only:
        lines = [lines[a.only - 1]]
    totals = {"requests": 0, "same": 0}
    report = []
    for n, line in lines:
        flags = line.split(" ")
        headers = {"Authorization": "Bearer secret"} if "--api-key" in flags else {}
        with open(f"/tmp/diff-ref-{n}.log", "w") as lr, open(f"/tmp/diff-ours-{n}.log", "w") as lo:
            (rport, rproc), (oport, oproc) = start(a.llama_server, a.model, flags, lr), start(a.gguf_serve, a.model, flags, lo)
            try:
                if not (wait(rport, rproc, headers) and wait(oport, oproc, headers)):
                    report.append((n, line, [("*", "start", "a server did not start")]))
                    continue
                results = []
                for name, method, path, body, greedy in REQUESTS:
                    ref = call(rport, method, path, body, headers)
                    ours = call(oport, method, path, body, headers)
                    results.append((name, compare(name, greedy, ref, ours)))
                totals["requests"] += len(results)
                totals["same"] += sum(1 for _, d in results if not d)
                report.append((n, line, [(name, what, detail) for name, d in results for what, detail in d]))
            finally:
                for proc in (rproc, oproc):
                    proc.terminate()
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
        print(f"{n}/{len(COMMAND_LINES)} {line}: {len(report[-1][2])} differences", file=sys.stderr)
    print(f"{len(lines)} command lines × {len(REQUESTS)} requests: {totals['same']} of "
          f"{totals['requests']} answers alike in status, JSON keys and types (and text, for greedy ones).\n")
    print("| # | command line | differences |\n| --- | --- | --- |")
    for n, line, diffs in report:
        text = "<br>".join(f"{name}: {what} {detail}".replace("|", "\\|") for name, what, detail in diffs) or "none"
        print(f"| {n} | `{line}` | {text} |")
    print("\nKnown differences, not counted:\n")
    for req, prefix, reason in KNOWN:
        print(f"- {req} `{prefix}`: {reason}")


if __name__ == "__main__":
    main()
