#!/usr/bin/env python3
"""Request-level A/B of prompt processing and single-stream decode: llama-server and gguf-serve
run side by side on the same model and flags, and each round sends the same fresh prompt to
both, in alternating order, one request at a time (only one server computes at any moment).
Interleaving request by request cancels the drift that a shared machine puts between the
whole-server rounds of bench-vs-llama-server.sh. Prompt processing is timed by the client
(the wall time of a 1-token completion, as a user waits for it) and by each server's own
timings. Prints the medians and ratios (the first two rounds are warm-up) and, with --trend,
each round's client-timed prompt speed: a server that slows as its slots fill shows it there.

usage: ab-vs-llama-server.py [--rounds N] [--trend] [--llama-flags F] [--ours-flags F]
                             [--names A,B] LLAMA_SERVER GGUF_SERVE MODEL [-- FLAGS...]
   e.g. scripts/ab-vs-llama-server.py ~/.cache/gguf-serve/llama-ref/bin/llama-server \\
          target/release/gguf-serve ~/.cache/gguf-serve/models/gemma-3-270m-q4_k_m.gguf \\
          -- -t 2 -c 4096 -np 4 --kv-unified
   (both servers get exactly the same FLAGS; --llama-flags and --ours-flags, one string each,
   add flags to one side, e.g. --ours-flags=--no-cache-idle-slots; --names labels the two
   servers when they are not llama-server and gguf-serve, e.g. two builds of gguf-serve)"""
import argparse, json, random, socket, statistics, subprocess, time, urllib.request

p = argparse.ArgumentParser()
p.add_argument("llama_server")
p.add_argument("gguf_serve")
p.add_argument("model")
p.add_argument("--rounds", type=int, default=12)
p.add_argument("--prompt-words", type=int, default=480)
p.add_argument("--decode-tokens", type=int, default=64)
p.add_argument("--trend", action="store_true")
p.add_argument("--llama-flags", default="")
p.add_argument("--ours-flags", default="")
p.add_argument("--names", default="llama-server,gguf-serve")
p.add_argument("flags", nargs="*")
a = p.parse_args()

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def post(port, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/completion", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))["timings"]

first, second = a.names.split(",")
servers = {}
for name, binary, extra in ((first, a.llama_server, a.llama_flags.split()),
                            (second, a.gguf_serve, a.ours_flags.split())):
    port = free_port()
    proc = subprocess.Popen([binary, "-m", a.model, "--port", str(port), *a.flags, *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    servers[name] = (port, proc)
try:
    for name, (port, proc) in servers.items():
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health")
                break
            except Exception:
                if proc.poll() is not None:
                    raise SystemExit(f"{name} exited")
                time.sleep(0.2)
    words = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly".split()
    pp = {n: [] for n in servers}
    wall = {n: [] for n in servers}
    tg = {n: [] for n in servers}
    for i in range(a.rounds):
        prompt = f"{i} " + " ".join(random.choice(words) for _ in range(a.prompt_words))
        order = list(servers) if i % 2 else list(servers)[::-1]
        for name in order:
            port = servers[name][0]
            t0 = time.perf_counter()
            t = post(port, {"prompt": prompt, "n_predict": 1, "temperature": 0, "cache_prompt": False})
            wall[name].append(t["prompt_n"] / (time.perf_counter() - t0))
            pp[name].append(t["prompt_per_second"])
            t = post(port, {"prompt": "Once upon a time", "n_predict": a.decode_tokens, "temperature": 0,
                            "cache_prompt": False, "ignore_eos": True})
            tg[name].append(t["predicted_per_second"])
    med = lambda xs: statistics.median(xs[2:])
    if a.trend:
        print("round  " + "  ".join(f"{n:>12}" for n in servers) + "   (prompt t/s, client-timed)")
        for i in range(a.rounds):
            print(f"{i:5d}  " + "  ".join(f"{wall[n][i]:12.1f}" for n in servers))
        if a.rounds >= 8:
            # The last three rounds against the first three after warm-up: 1.0 holds steady.
            for n in servers:
                early, late = statistics.median(wall[n][2:5]), statistics.median(wall[n][-3:])
                print(f"{n:<12} last 3 rounds / rounds 2-4: {late / early:.3f}")
    for label, data in (("prompt t/s (client)", wall), ("prompt t/s (server)", pp),
                        ("decode t/s", tg)):
        l, g = med(data[first]), med(data[second])
        print(f"{label:<24} {first} {l:8.1f}  {second} {g:8.1f}  ratio {g / l:.3f}  "
              f"(median of {a.rounds - 2} interleaved requests)")
finally:
    for _, proc in servers.values():
        proc.terminate()
