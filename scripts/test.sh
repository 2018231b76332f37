#!/usr/bin/env bash
# The project's checks, as CI runs them: formatting, clippy, and the whole test suite on the
# release profile (llama.cpp is compiled once; a debug build would compile it a second time).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh >/dev/null
python3 -c "import openai, prometheus_client" 2>/dev/null ||
  python3 -m pip install --quiet openai prometheus_client
python3 -c "import anthropic" 2>/dev/null ||
  python3 -m pip install --quiet anthropic
python3 -c "import ollama" 2>/dev/null || python3 -m pip install --quiet ollama
# The chat page's test drives Debian's chromium.
if ! command -v chromium >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >&2
fi
# The fake Hub of the hub tests is checked against the Hub's own client.
python3 -c "import huggingface_hub" 2>/dev/null || python3 -m pip install --quiet huggingface_hub
# The embedding tests convert their model with gguf (and numpy) from PyPI.
python3 -c "import gguf, numpy" 2>/dev/null || python3 -m pip install --quiet gguf==0.19.0

cargo fmt --check
cargo clippy --release --locked --all-targets -- -D warnings
# Every test binary runs even after one fails, so one CI run reports every failure.
cargo test --release --locked --no-fail-fast
