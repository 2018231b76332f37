#!/usr/bin/env bash
# The planner's predicted decode speed against measured decode speed, quant by quant, on this
# machine's CPU: makes the demo model's ladder (cached in ~/.cache/gguf-serve/ladder/), and for
# each quant asks `plan --json` for its predicted tokens/s, then at once serves it with the same
# flags and times greedy generation of 128 tokens (the server's own
# timings.predicted_per_second from /completion, median of 3 after one warm-up), and prints both
# and their ratio. Each prediction is made just before its measurement, so that both meet the
# same machine: on a shared VM the memory bandwidth drifts by ±20% over minutes.
#
# Usage: scripts/predict-vs-measured.sh [extra flags for plan and serve, e.g. -t 1]
# Env: THREADS (default 2), N_PREDICT (default 128), RUNS (default 3), PORT (default 18089).
# Run it on a quiet machine (load under ~2.5: the script prints `uptime` before and after).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/gguf-serve
THREADS=${THREADS:-2}
N_PREDICT=${N_PREDICT:-128}
RUNS=${RUNS:-3}
PORT=${PORT:-18089}
CACHE=${GGUF_SERVE_CACHE:-$HOME/.cache/gguf-serve}
LADDER=$CACHE/ladder
FLAGS=(-c 2048 -np 1 -t "$THREADS" "$@")

[ -x "$BIN" ] || cargo build --release --locked
demo=$(scripts/fetch-demo-model.sh)
if ! ls "$LADDER"/*.gguf >/dev/null 2>&1; then
  "$BIN" quantize "$demo" --ladder "$LADDER" -t "$THREADS" >&2
fi
echo "load before: $(uptime)"

plan=$(mktemp)
trap 'rm -f "$plan" "$plan.rows"; [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true' EXIT
"$BIN" plan -m "$LADDER" --gpu-free none "${FLAGS[@]}" --json >"$plan"

measure() { # file -> median tokens/s
  local file=$1 log
  log=$(mktemp)
  "$BIN" -m "$file" "${FLAGS[@]}" --host 127.0.0.1 --port "$PORT" >"$log" 2>&1 &
  server=$!
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  local body
  body=$(printf '{"prompt":"Write a long story about a lighthouse keeper.","n_predict":%d,"temperature":0,"ignore_eos":true,"cache_prompt":false}' "$N_PREDICT")
  local speeds=()
  for i in $(seq 0 "$RUNS"); do
    s=$(curl -sf "http://127.0.0.1:$PORT/completion" -H 'Content-Type: application/json' -d "$body" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["timings"]["predicted_per_second"])')
    [ "$i" -gt 0 ] && speeds+=("$s") # the first run warms up
  done
  kill "$server"; wait "$server" 2>/dev/null || true; server=
  rm -f "$log"
  printf '%s\n' "${speeds[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

printf '| Quant | File | Predicted t/s | Measured t/s (median of %d) | Predicted / measured |\n' "$RUNS"
printf '|-------|------|---------------|-----------------------------|----------------------|\n'
python3 - "$plan" >"$plan.rows" <<'PY'
import json, sys
for p in sorted(json.load(open(sys.argv[1]))["plans"], key=lambda p: -p["quality_rank"]):
    print(p["quant"], p["file"], p["speed"]["tokens_per_second"])
PY
while read -r quant file _; do
  predicted=$("$BIN" plan -m "$file" --gpu-free none "${FLAGS[@]}" --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["plans"][0]["speed"]["tokens_per_second"])')
  measured=$(measure "$file")
  python3 -c "import sys; q,f,p,m=sys.argv[1:]; p,m=float(p),float(m); print(f'| {q} | {f.rsplit(\"/\",1)[-1]} | {p:.1f} | {m:.1f} | {p/m:.2f} |')" \
    "$quant" "$file" "$predicted" "$measured"
done <"$plan.rows"
pick=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["pick"]; print(d["quant"] if d else "none")' "$plan")
echo
echo "plan's pick (--prefer balanced unless given): $pick"
echo "load after: $(uptime)"
