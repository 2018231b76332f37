#!/usr/bin/env python3
"""Reads `gguf-serve bench --json` on stdin; prints aggregate and per-stream decode speed."""
import json
import sys

s = json.load(sys.stdin)["summary"]
print("{:.1f} t/s aggregate, server decode {:.1f} t/s per stream, {} failed".format(
    s["output_tokens_per_s"], s["server"]["predicted_per_second_mean"], s["failed"]))
