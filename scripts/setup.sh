#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine for gguf-serve: the system packages llama.cpp's build
# needs (cmake, clang, libclang-dev for bindgen), the release build, and the demo model.
# Idempotent; prints the demo model's path last.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v clang >/dev/null || need+=(clang)
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v python3 >/dev/null || need+=(python3 python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >&2
fi

echo "setup: building gguf-serve (release; the first build compiles llama.cpp, ~10 min on 2 cores)" >&2
cargo build --release --locked >&2
scripts/fetch-demo-model.sh
