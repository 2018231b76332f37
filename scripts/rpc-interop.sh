#!/usr/bin/env bash
# llama.cpp's RPC protocol both ways, on loopback with the demo model, CPU only:
#   1. llama.cpp's own `rpc-server` as the worker of `gguf-serve --rpc`;
#   2. `gguf-serve rpc-worker` as the worker of the reference `llama-server --rpc`.
# Each must serve with the model's layers on the worker, and generate greedily what the same
# server generates alone (`-ub 1 --no-repack`: the worker's CPU device holds plain ggml
# buffers, so the process alone must use the same kernels). Then the bytes that cross the
# connection per generated token, from the kernel's counters of the worker's sockets (`ss`) over
# a 65-token generation less a 1-token one of the same prompt.
#
# Needs the release binary (cargo build --release) and the reference build with rpc-server
# (scripts/build-llama-server.sh, which builds it). Prints one result line per check; exits 1
# if one fails.
set -euo pipefail
cd "$(dirname "$0")/.."

GGUF=${GGUF_SERVE_BIN:-target/release/gguf-serve}
REF=$(scripts/build-llama-server.sh)
MODEL=$(scripts/fetch-demo-model.sh)
for bin in "$GGUF" "$REF/llama-server" "$REF/ggml-rpc-server"; do
  [ -x "$bin" ] || { echo "rpc-interop: $bin missing" >&2; exit 1; }
done

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port
  for _ in $(seq 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "rpc-interop: nothing listens on $1" >&2; return 1
}
wait_health() { # port
  for _ in $(seq 1200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/health")" = 200 ] && return 0
    sleep 0.1
  done
  echo "rpc-interop: the server on $1 never became ready" >&2; return 1
}
complete() { # port n_predict -> content
  curl -sf "http://127.0.0.1:$1/completion" -H 'content-type: application/json' \
    -d "{\"prompt\":\"The three most useful things to know about bread are\",\"n_predict\":$2,\"temperature\":0,\"cache_prompt\":false,\"ignore_eos\":true}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["content"])'
}
# Bytes sent and received on the worker's side of its connections (the kernel's TCP counters;
# ggml-rpc's send/recv calls do not show in /proc/PID/io).
io_bytes() {
  ss -tinH "sport = :$1" | grep -o 'bytes_sent:[0-9]*\|bytes_received:[0-9]*' |
    awk -F: '{s += $2} END {print s + 0}'
}
SERVE_FLAGS=(-m "$MODEL" -c 4096 -t 1 -ub 1 --no-repack)

# $1: server binary, $2: worker command (port appended) -> prints result, sets $bytes_per_token
check() {
  local server=$1 label=$2; shift 2
  local wport sport alone split pid_w pid_s before1 after1 before65 after65
  sport=$(free_port)
  "$server" "${SERVE_FLAGS[@]}" --host 127.0.0.1 --port "$sport" >/dev/null 2>&1 &
  pids+=($!); pid_s=$!
  wait_health "$sport"
  alone=$(complete "$sport" 32)
  kill "$pid_s"; wait "$pid_s" 2>/dev/null || true

  wport=$(free_port)
  "$@" --port "$wport" >/dev/null 2>&1 &
  pids+=($!); pid_w=$!
  wait_port "$wport"
  sport=$(free_port)
  "$server" "${SERVE_FLAGS[@]}" --rpc "127.0.0.1:$wport" --host 127.0.0.1 --port "$sport" \
    >"/tmp/rpc-interop-$sport.log" 2>&1 &
  pids+=($!); pid_s=$!
  wait_health "$sport"
  split=$(complete "$sport" 32)
  before1=$(io_bytes "$wport"); complete "$sport" 1 >/dev/null; after1=$(io_bytes "$wport")
  before65=$(io_bytes "$wport"); complete "$sport" 65 >/dev/null; after65=$(io_bytes "$wport")
  bytes_per_token=$(( ((after65 - before65) - (after1 - before1)) / 64 ))
  kill "$pid_s" "$pid_w"; wait "$pid_s" "$pid_w" 2>/dev/null || true
  if [ "$split" = "$alone" ] && [ -n "$split" ]; then
    echo "PASS $label: 32 greedy tokens equal to the server alone; $bytes_per_token bytes per generated token"
  else
    echo "FAIL $label: the split output differs from the server alone"
    echo "  alone: $alone"
    echo "  split: $split"
    failed=1
  fi
}

failed=0
check "$GGUF" "llama.cpp rpc-server as gguf-serve's worker" "$REF/ggml-rpc-server" -t 1
check "$REF/llama-server" "gguf-serve rpc-worker as llama-server's worker" "$GGUF" rpc-worker -t 1
exit "$failed"
