#!/usr/bin/env bash
# Side-by-side benchmark: llama-server and gguf-serve on the same model, threads, context and
# slots, measured with `gguf-serve bench` in alternating rounds (one server up at a time, the
# order flipped every round so drift on a shared machine hits both alike). Prints the median of
# each metric over the rounds and the ratio gguf-serve / llama-server, as issue 4's acceptance asks:
#   prompt processing t/s   two ~PP_TOKENS-token prompts, n_predict 1, cache_prompt off (server timings)
#   decode t/s              one stream of DECODE_TOKENS tokens, ignore_eos (server timings; client too)
#   decode t/s, sampled     the same with SAMPLING's sampler, when SAMPLING is set
#   aggregate t/s @ NP      CONC_REQUESTS requests at concurrency NP (client: output tokens / wall),
#                           with SAMPLING's sampler when set, else greedy: the first such wave
#                           on a fresh server, then the same wave again (a server under steady
#                           load: llama-server -bs attaches sampler chains per request, gguf-serve
#                           keeps them, so the two waves differ for them)
#   idle RSS MB             each server's resident memory after its warm-up request
#
# Usage: scripts/bench-vs-llama-server.sh [MODEL]     (default: the demo model)
# Environment (defaults in brackets):
#   ROUNDS [3]  THREADS [2]  CTX [4096]  NP [4]  DECODE_TOKENS [128]
#   PP_TOKENS [500: with BOS and the index prefix, one 512-token ubatch]
#   CONC_REQUESTS [8]  CONC_TOKENS [64]  CONC_PROMPT_TOKENS [64]
#   SAMPLING        `gguf-serve bench` sampling flags, e.g. "--temperature 0.8 --top-p 0.95" []
#   GGUF_SERVE      gguf-serve binary, for `bench` and the server [target/release/gguf-serve]
#   GGUF_SERVE_CMD  command that starts "our" server, flags appended [$GGUF_SERVE]; point it at
#                   llama-server to check the harness (both sides should then tie)
#   LLAMA_SERVER    reference llama-server [built or reused by scripts/build-llama-server.sh]
#   LLAMA_SERVER_ARGS / GGUF_SERVE_ARGS   extra flags for one side
#   OUT             folder for the JSON results and server logs [a fresh temporary folder]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
CTX=${CTX:-4096}
NP=${NP:-4}
PP_TOKENS=${PP_TOKENS:-500}
DECODE_TOKENS=${DECODE_TOKENS:-128}
CONC_REQUESTS=${CONC_REQUESTS:-8}
CONC_TOKENS=${CONC_TOKENS:-64}
CONC_PROMPT_TOKENS=${CONC_PROMPT_TOKENS:-64}

log() { echo "bench-vs-llama-server: $*" >&2; }
die() { log "$*"; exit 1; }

MODEL=${1:-$("$ROOT/scripts/fetch-demo-model.sh")}
[ -f "$MODEL" ] || die "$MODEL: no such model file"
GGUF_SERVE=${GGUF_SERVE:-$ROOT/target/release/gguf-serve}
[ -x "$GGUF_SERVE" ] || die "$GGUF_SERVE: not built (cargo build --release)"
GGUF_SERVE_CMD=${GGUF_SERVE_CMD:-$GGUF_SERVE}
LLAMA_SERVER=${LLAMA_SERVER:-$("$ROOT/scripts/build-llama-server.sh")/llama-server}
[ -x "$LLAMA_SERVER" ] || die "$LLAMA_SERVER: not executable"
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/bench-vs-llama-server.XXXXXX")}
mkdir -p "$OUT"

# shellcheck source=lib/one-server.sh
. "$ROOT/scripts/lib/one-server.sh"

# start_server NAME LOG: starts one side (with its extra flags); sets server_pid and url.
start_server() {
  local name=$1 logfile=$2 cmd extra
  if [ "$name" = llama-server ]; then
    cmd=$LLAMA_SERVER extra=${LLAMA_SERVER_ARGS:-}
  else
    cmd=$GGUF_SERVE_CMD extra=${GGUF_SERVE_ARGS:-}
  fi
  # $cmd and $extra are word-split on purpose: a command prefix and a list of flags.
  # shellcheck disable=SC2086
  launch "$name" "$logfile" $cmd -m "$MODEL" -t "$THREADS" -c "$CTX" -np "$NP" $extra
}

bench() {
  "$GGUF_SERVE" bench --url "$url" --endpoint completion --cache-prompt false --json "$@"
}

# measure NAME ROUND: one server's round; results in $OUT/rROUND-NAME-*.json.
measure() {
  local name=$1 round=$2 prefix=$OUT/r$2-$1
  log "round $round: $name"
  start_server "$name" "$prefix.log"
  bench --synthetic 1 --prompt-tokens 16 --max-tokens 8 >/dev/null # warm-up
  awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status" >"$prefix-rss-kb.txt"
  bench --synthetic 2 --prompt-tokens "$PP_TOKENS" --max-tokens 1 >"$prefix-pp.json"
  bench --synthetic 1 --prompt-tokens 16 --max-tokens "$DECODE_TOKENS" >"$prefix-tg.json"
  # $SAMPLING is a list of flags, word-split on purpose.
  # shellcheck disable=SC2086
  if [ -n "${SAMPLING:-}" ]; then
    bench --synthetic 1 --prompt-tokens 16 --max-tokens "$DECODE_TOKENS" $SAMPLING >"$prefix-tgs.json"
  fi
  # The same wave twice: on the fresh server, then again.
  for wave in conc conc2; do
    # shellcheck disable=SC2086
    bench --synthetic "$CONC_REQUESTS" --concurrency "$NP" --prompt-tokens "$CONC_PROMPT_TOKENS" \
      --max-tokens "$CONC_TOKENS" ${SAMPLING:-} >"$prefix-$wave.json"
  done
  stop_server
}

load() { cut -d' ' -f1-3 /proc/loadavg; }
log "model $MODEL; -t $THREADS -c $CTX -np $NP; $ROUNDS rounds; results in $OUT"
log "$(nproc) cores, load average $(load) (other load on these cores skews both sides)"
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then
    measure llama-server "$round"
    measure gguf-serve "$round"
  else
    measure gguf-serve "$round"
    measure llama-server "$round"
  fi
done

log "done; load average $(load)"

python3 - "$OUT" "$ROUNDS" "$NP" "${SAMPLING:-}" <<'PY'
import json, os, statistics, sys
out, rounds, np_, sampling = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

def summary(round_, name, test):
    with open(f"{out}/r{round_}-{name}-{test}.json") as f:
        s = json.load(f)["summary"]
    if s["failed"]:
        sys.exit(f"round {round_} {name} {test}: {s['failed']} failed: {s['errors']}")
    return s

def rss_mb(round_, name):
    with open(f"{out}/r{round_}-{name}-rss-kb.txt") as f:
        return int(f.read()) / 1024

metrics = [
    ("prompt processing t/s (server)", ">= 0.98",
     lambda r, n: summary(r, n, "pp")["server"]["prompt_per_second_mean"]),
    ("decode t/s (server)", ">= 0.98",
     lambda r, n: summary(r, n, "tg")["server"]["predicted_per_second_mean"]),
    ("decode t/s (client)", "",
     lambda r, n: summary(r, n, "tg")["client_decode_per_second_mean"]),
]
if sampling:
    metrics.append(("decode t/s sampled (server)", "",
                    lambda r, n: summary(r, n, "tgs")["server"]["predicted_per_second_mean"]))
metrics += [
    (f"aggregate t/s @ {np_} (client)", ">= 1.00",
     lambda r, n: summary(r, n, "conc")["output_tokens_per_s"]),
    (f"aggregate t/s @ {np_}, again", ">= 1.00",
     lambda r, n: summary(r, n, "conc2")["output_tokens_per_s"]),
    (f"TTFT p50 ms @ {np_}", "",
     lambda r, n: summary(r, n, "conc")["ttft_ms"]["p50"]),
    ("idle RSS MB", "diff < 50", rss_mb),
]
names = ("llama-server", "gguf-serve")
# Both sides must have done the same work for their speeds to compare.
for test in ("pp", "tg", "conc", "conc2") + (("tgs",) if sampling else ()):
    for r in range(1, rounds + 1):
        work = {n: (summary(r, n, test)["output_tokens"], summary(r, n, test)["prompt_tokens"])
                for n in names}
        if work["llama-server"] != work["gguf-serve"]:
            print(f"warning: round {r} {test}: (output, prompt) tokens differ: {work}")
print(f"\nmedian of {rounds} alternating rounds; ratio = gguf-serve / llama-server"
      + (f"; sampled runs and the aggregate with {sampling}" if sampling else ""))
print(f"{'metric':<32} {'llama-server':>12} {'gguf-serve':>12} {'ratio':>7}  target   rounds (llama | gguf)")
for label, target, get in metrics:
    values = {n: [get(r, n) for r in range(1, rounds + 1)] for n in names}
    if any(v is None for vs in values.values() for v in vs):
        print(f"{label:<32} {'(not reported)':>12}")
        continue
    med = {n: statistics.median(values[n]) for n in names}
    if label == "idle RSS MB":
        ratio = f"{med['gguf-serve'] - med['llama-server']:+.0f}MB"
    else:
        ratio = f"{med['gguf-serve'] / med['llama-server']:.3f}" if med["llama-server"] else "-"
    fmt = lambda vs: " ".join(f"{v:.1f}" for v in vs)
    print(f"{label:<32} {med['llama-server']:>12.1f} {med['gguf-serve']:>12.1f} {ratio:>7}  "
          f"{target:<8} {fmt(values['llama-server'])} | {fmt(values['gguf-serve'])}")
PY
