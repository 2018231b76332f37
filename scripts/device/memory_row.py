#!/usr/bin/env python3
"""Reads gguf-serve's /props on stdin; prints one markdown row: the planner's predicted GPU
memory against what llama.cpp allocated on the GPUs, and the allocation by device and kind.
usage: memory_row.py NAME N_CTX < props.json"""
import json
import sys

GIB = 1 << 30
name, n_ctx = sys.argv[1], sys.argv[2]
memory = json.load(sys.stdin)["memory"]
predicted = memory["predicted"]
predicted_gpu = predicted["gpu_weights"] + predicted["gpu_kv"] + predicted["gpu_compute"]
gpus = [d for d in memory["allocated"] if d["device"] != "host"]
allocated_gpu = sum(d["weights"] + d["kv"] + d["output"] + d["compute"] for d in gpus)
error = (predicted_gpu - allocated_gpu) / allocated_gpu * 100 if allocated_gpu else float("nan")
detail = "; ".join(
    "{}: weights {:.2f}, KV {:.2f}, output {:.2f}, compute {:.2f}".format(
        d["device"], d["weights"] / GIB, d["kv"] / GIB, d["output"] / GIB, d["compute"] / GIB)
    for d in memory["allocated"])
print(f"| {name} | {n_ctx} | {predicted_gpu / GIB:.2f} | {allocated_gpu / GIB:.2f} | {error:+.1f}% | {detail} |")
