#!/usr/bin/env bash
# Chat traffic, side by side (issue 21): the reference llama-server and gguf-serve on the same
# model and flags, each sent the same `gguf-serve bench --conversations` workload (conversations
# arriving together or at RATE per second, each turn resending its history) in alternating
# rounds: one server up at a time, started fresh each round (so no round finds the last one's
# conversations in its cache), the order flipped every round so that drift on a shared machine
# hits both alike. Round r uses workload seed r on both sides. Prints, per server, the median over
# the rounds of TTFT p50 and p99, inter-token latency p50 and p99, aggregate output tokens/s and
# the share of prompt tokens on turns >= 2 served from the cache, with the ratio
# gguf-serve / llama-server (below 1 is better for latencies, above 1 for throughput).
#
# Usage: scripts/chat-vs-llama-server.sh LLAMA_SERVER [MODEL] [-- FLAGS...]
#   LLAMA_SERVER  the reference build, e.g. ~/.cache/gguf-serve/llama-ref/bin/llama-server
#   MODEL         a GGUF file [the demo model, scripts/fetch-demo-model.sh]
#   FLAGS         given to both servers as they are, e.g. -- -t 2 -c 4096 -np 4
# Environment (defaults in brackets):
#   ROUNDS [3]  CONVERSATIONS [32]  TURNS [6]  RATE [all at once]  THINK [0]
#   PROMPT_TOKENS [64: the first message; later ones a quarter]  MAX_TOKENS [64]
#   ENDPOINT [chat]  BENCH_ARGS  more `gguf-serve bench` flags, e.g. "--temperature 0.8" []
#   GGUF_SERVE      gguf-serve binary, for `bench` and the server [target/release/gguf-serve]
#   FIRST_ROUND     the first round to run [1]; the report covers rounds 1..ROUNDS, so a run
#                   cut short can go on into the same OUT (a device call that ran out of time)
#   OUT             folder for the JSON results and server logs [a fresh temporary folder]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
CONVERSATIONS=${CONVERSATIONS:-32}
TURNS=${TURNS:-6}
THINK=${THINK:-0}
PROMPT_TOKENS=${PROMPT_TOKENS:-64}
MAX_TOKENS=${MAX_TOKENS:-64}
ENDPOINT=${ENDPOINT:-chat}

log() { echo "chat-vs-llama-server: $*" >&2; }
die() { log "$*"; exit 1; }

[ $# -ge 1 ] || die "usage: $0 LLAMA_SERVER [MODEL] [-- FLAGS...]"
LLAMA_SERVER=$1
shift
MODEL=
if [ $# -ge 1 ] && [ "$1" != -- ]; then
  MODEL=$1
  shift
fi
if [ $# -ge 1 ]; then
  [ "$1" = -- ] || die "expected -- before the server flags, got $1"
  shift
fi
FLAGS=("$@")
[ -x "$LLAMA_SERVER" ] || die "$LLAMA_SERVER: not executable (scripts/build-llama-server.sh builds it)"
MODEL=${MODEL:-$("$ROOT/scripts/fetch-demo-model.sh")}
[ -f "$MODEL" ] || die "$MODEL: no such model file"
GGUF_SERVE=${GGUF_SERVE:-$ROOT/target/release/gguf-serve}
[ -x "$GGUF_SERVE" ] || die "$GGUF_SERVE: not built (cargo build --release)"
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/chat-vs-llama-server.XXXXXX")}
mkdir -p "$OUT"

WORKLOAD=(--conversations "$CONVERSATIONS" --turns "$TURNS" --think "$THINK"
  --prompt-tokens "$PROMPT_TOKENS" --max-tokens "$MAX_TOKENS" --endpoint "$ENDPOINT")
[ -z "${RATE:-}" ] || WORKLOAD+=(--rate "$RATE")
# BENCH_ARGS is a list of flags, word-split on purpose.
# shellcheck disable=SC2206
WORKLOAD+=(${BENCH_ARGS:-})

# shellcheck source=lib/one-server.sh
. "$ROOT/scripts/lib/one-server.sh"

# start_server NAME LOG: starts one side; sets server_pid and url.
start_server() {
  local binary=$GGUF_SERVE
  [ "$1" != llama-server ] || binary=$LLAMA_SERVER
  launch "$1" "$2" "$binary" -m "$MODEL" "${FLAGS[@]}"
}

# measure NAME ROUND: one server's round, into $OUT/rROUND-NAME.json.
measure() {
  local name=$1 round=$2 prefix=$OUT/r$2-$1
  log "round $round: $name"
  start_server "$name" "$prefix.log"
  # Warm-up: one short request, whose prompt shares no first token with the conversations'.
  "$GGUF_SERVE" bench --url "$url" --endpoint "$ENDPOINT" --synthetic 1 --prompt-tokens 16 \
    --max-tokens 8 --json >/dev/null
  "$GGUF_SERVE" bench --url "$url" "${WORKLOAD[@]}" --seed "$round" --json >"$prefix.json"
  stop_server
  round_line "$prefix.json" "round $round: $name"
}

load() { cut -d' ' -f1-3 /proc/loadavg; }
log "model $MODEL; flags: ${FLAGS[*]}; $ROUNDS rounds; results in $OUT"
log "workload: ${WORKLOAD[*]}"
log "$(nproc) cores, load average $(load) (other load on these cores skews both sides)"
# One round's line as it ends, so that a run cut short still shows its rounds.
round_line() {
  python3 - "$1" "$2" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
print(f"{sys.argv[2]:<28} TTFT p50 {s['ttft_ms']['p50']:7.0f} p99 {s['ttft_ms']['p99']:7.0f} ms  "
      f"{s['output_tokens_per_s']:6.1f} t/s  failed {s['failed']}", file=sys.stderr)
PY
}
for round in $(seq "${FIRST_ROUND:-1}" "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then
    measure llama-server "$round"
    measure gguf-serve "$round"
  else
    measure gguf-serve "$round"
    measure llama-server "$round"
  fi
done
log "done; load average $(load)"

python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
names = ("llama-server", "gguf-serve")

def report(round_, name):
    with open(f"{out}/r{round_}-{name}.json") as f:
        r = json.load(f)
    s = r["summary"]
    if s["failed"]:
        sys.exit(f"round {round_} {name}: {s['failed']} of {s['requests']} failed: {s['errors']}")
    return r

def get(*path):
    def read(r):
        for key in path:
            r = None if r is None else r.get(key)
        return r
    return read

metrics = [
    ("TTFT p50 ms", get("summary", "ttft_ms", "p50")),
    ("TTFT p99 ms", get("summary", "ttft_ms", "p99")),
    ("ITL p50 ms", get("summary", "itl_ms", "p50")),
    ("ITL p99 ms", get("summary", "itl_ms", "p99")),
    ("output t/s (aggregate)", get("summary", "output_tokens_per_s")),
    ("cached share, turns >= 2 %",
     lambda r: None if (x := get("conversations", "summary", "later_turns_cached_share")(r)) is None
     else 100 * x),
]
reports = {n: [report(r, n) for r in range(1, rounds + 1)] for n in names}
# Both sides must have done the same work for their times to compare.
for i in range(rounds):
    work = {n: reports[n][i]["summary"]["output_tokens"] for n in names}
    if work["llama-server"] != work["gguf-serve"]:
        print(f"warning: round {i + 1}: output tokens differ: {work}")
first = reports["gguf-serve"][0]
c = first["conversations"]
print(f"\n{c['conversations']} conversations x {c['turns']} turns ({first['endpoint']}, "
      f"max_tokens {first['max_tokens']}, rate {c['rate'] or 'all at once'}, think {c['think_s']} s); "
      f"median of {rounds} alternating rounds; ratio = gguf-serve / llama-server")
print(f"{'metric':<28} {'llama-server':>12} {'gguf-serve':>12} {'ratio':>7}   rounds (llama | gguf)")
for label, read in metrics:
    values = {n: [read(r) for r in reports[n]] for n in names}
    if any(v is None for vs in values.values() for v in vs):
        print(f"{label:<28} {'(not reported)':>12}")
        continue
    med = {n: statistics.median(values[n]) for n in names}
    ratio = f"{med['gguf-serve'] / med['llama-server']:.3f}" if med["llama-server"] else "-"
    fmt = lambda vs: " ".join(f"{v:.1f}" for v in vs)
    print(f"{label:<28} {med['llama-server']:>12.1f} {med['gguf-serve']:>12.1f} {ratio:>7}   "
          f"{fmt(values['llama-server'])} | {fmt(values['gguf-serve'])}")
PY
