#!/usr/bin/env bash
# Runs a release bundle on older CPUs than this one, under qemu's user-mode emulation (Debian's
# `qemu-user`), to show that it needs nothing above its baseline: for each CPU model it lists
# the backends that load (ggml picks the best CPU variant the emulated CPU has), serves the demo
# model and asks for a few greedy tokens, which must equal the native run's.
#
# Usage: scripts/check-baseline.sh [BUNDLE_DIR]   (default: build one with scripts/package.sh)
# Env: CPUS (qemu CPU models, default "Nehalem Haswell": x86-64-v2 without AVX, then AVX2),
#      PORT (default 18095).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v qemu-x86_64 >/dev/null || { echo "check-baseline: needs qemu-x86_64 (apt install qemu-user)" >&2; exit 1; }
bundle=${1:-$(scripts/package.sh)}
bin=$bundle/gguf-serve
[ -x "$bin" ] || { echo "check-baseline: no $bin" >&2; exit 1; }
model=$(scripts/fetch-demo-model.sh)
PORT=${PORT:-18095}
BODY='{"prompt":"The capital of France is","n_predict":4,"temperature":0,"cache_prompt":false}'

# The content of a greedy completion from the bundle run through `$@` (a launcher, or nothing).
complete() {
  local log
  log=$(mktemp)
  "$@" "$bin" -m "$model" -c 256 -np 1 -t 2 --host 127.0.0.1 --port "$PORT" >"$log" 2>&1 &
  local server=$!
  for _ in $(seq 1200); do # up to 10 minutes under emulation
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.5
  done
  curl -sf --max-time 600 "http://127.0.0.1:$PORT/completion" -H 'Content-Type: application/json' \
    -d "$BODY" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["content"]))'
  kill "$server"
  wait "$server" 2>/dev/null || true
  rm -f "$log"
}

native=$(complete)
echo "native ($(grep -m1 -o 'model name.*' /proc/cpuinfo | cut -d: -f2 | xargs)): $native"
status=0
for cpu in ${CPUS:-Nehalem Haswell}; do
  echo "== qemu-x86_64 -cpu $cpu"
  qemu-x86_64 -cpu "$cpu" "$bin" devices --backends-dir "$bundle/backends" 2>&1 |
    grep -iE 'load|cpu|variant' | head -5 || true
  start=$(date +%s)
  got=$(complete qemu-x86_64 -cpu "$cpu") || { echo "FAIL: the bundle did not serve on $cpu"; status=1; continue; }
  if [ "$got" = "$native" ]; then
    echo "ok: $got ($(($(date +%s) - start)) s under emulation)"
  else
    echo "FAIL: $cpu answered $got, native $native"
    status=1
  fi
done
exit $status
