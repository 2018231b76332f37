#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh) and serves the demo model, Gemma 3 270M Q4_K_M, on
# http://127.0.0.1:8080 with llama-server's API. The file carries no chat template, so chats use
# llama.cpp's built-in gemma template. Extra arguments go to gguf-serve.
set -euo pipefail
cd "$(dirname "$0")/.."
model=$(scripts/setup.sh)
exec target/release/gguf-serve --model "$model" --chat-template gemma \
  --host 127.0.0.1 --port "${PORT:-8080}" "$@"
