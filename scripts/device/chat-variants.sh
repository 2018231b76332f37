#!/usr/bin/env bash
# gguf-serve alone on the chat workload of `bench.sh chat`, once per flag set, to find which of
# its settings moves time to first token (no reference build: a shorter call than setup.sh +
# bench.sh). Runs the `--features cuda` build (dist-cuda/gguf-serve.xz, scripts/build-cuda.sh)
# on the synthetic gpt-oss-20b, which it writes first unless /tmp/m has it.
#
# Carried: dist-cuda/gguf-serve.xz and .probe/ (synth_gpt_oss.py, the gguf wheel and llama.cpp's
# models/templates/openai-gpt-oss-120b.jinja).
#
# Environment: VARIANTS  flag sets separated by ';' ["" (the defaults)]
#              CG, MODEL  another gguf-serve binary or model (then nothing is unpacked or written)
#              CONVERSATIONS [32]  TURNS [6]  PROMPT_TOKENS [128]  MAX_TOKENS [128]
#              FLAGS  the flags every variant gets [-t 8 -c 131072 -np 32 --kv-unified -ngl 99]
# Prints one line per variant (TTFT, ITL, throughput, cached share), the engine's busy-period
# log lines (where its time went: decode, sampling, prompt cache, checkpoints), the prompt
# cache's saves and restores, and the CPU time of the server's threads by name during the run.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${WORK:-/tmp/gs}
P=$ROOT/.probe
MODEL=${MODEL:-/tmp/m/gpt-oss-20b-synth-F16.gguf}
CG=${CG:-$WORK/cuda/gguf-serve}
t0=$SECONDS
say() { echo "[$((SECONDS - t0))s] $*"; }
die() { echo "chat-variants: $*" >&2; exit 1; }

mkdir -p "$WORK/cuda/lib" /tmp/m /tmp/site
if [ ! -x "$CG" ]; then
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
    "$ROOT/dist-cuda/gguf-serve.xz" "$CG" || die "no dist-cuda/gguf-serve.xz"
  chmod +x "$CG"
  cu13=$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))')
  ln -sf "$cu13"/libcublas.so.13 "$cu13"/libcublasLt.so.13 "$WORK/cuda/lib/"
fi
if [ ! -f "$MODEL" ]; then
  python3 -m pip install -q --no-index --no-deps --upgrade --target /tmp/site "$P"/gguf-*.whl
  PYTHONPATH=/tmp/site python3 "$P/synth_gpt_oss.py" "$MODEL" --template "$P/openai-gpt-oss-120b.jinja" \
    >/tmp/synth.log 2>&1 || { tail -5 /tmp/synth.log; die "synth failed"; }
  say "model written"
fi

# CPU time (user + system, in ticks) of the server's threads, summed by thread name: the engine
# (and llama.cpp's threads, which inherit its name), HTTP workers, and as "~all" the whole
# process, threads that have exited included (the short-lived sampling helpers).
cpu_by_thread() {
  {
    for task in /proc/"$server_pid"/task/*; do
      echo "$(tr ' ' _ <"$task/comm") $(awk '{print $14 + $15}' "$task/stat")"
    done
    echo "~all $(awk '{print $14 + $15}' /proc/"$server_pid"/stat)"
  } | awk '{t[$1] += $2} END {for (k in t) print k, t[k]}' | sort
}

# shellcheck source=../lib/one-server.sh
. "$ROOT/scripts/lib/one-server.sh"
read -r -a flags <<<"${FLAGS:--t 8 -c 131072 -np 32 --kv-unified -ngl 99}"
workload=(--conversations "${CONVERSATIONS:-32}" --turns "${TURNS:-6}" --think 0
  --prompt-tokens "${PROMPT_TOKENS:-128}" --max-tokens "${MAX_TOKENS:-128}" --endpoint completion)
IFS=';' read -r -a variants <<<"${VARIANTS:-}"
[ ${#variants[@]} -gt 0 ] || variants=("")
n=0
for variant in "${variants[@]}"; do
  n=$((n + 1))
  read -r -a extra <<<"$variant"
  log=$WORK/variant-$n.log
  RUST_LOG=info,gguf_serve::engine::worker=debug launch "variant $n" "$log" "$CG" -m "$MODEL" \
    "${flags[@]}" "${extra[@]}"
  "$CG" bench --url "$url" --endpoint completion --synthetic 1 --prompt-tokens 16 --max-tokens 8 \
    --json >/dev/null
  cpu_by_thread >"$WORK/cpu0"
  "$CG" bench --url "$url" "${workload[@]}" --seed 2 --json >"$WORK/variant-$n.json"
  cpu_by_thread >"$WORK/cpu1"
  stop_server
  python3 - "$WORK/variant-$n.json" "${variant:-(defaults)}" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
s, c = run["summary"], run["conversations"]["summary"]
print(f"{sys.argv[2]:40} TTFT p50 {s['ttft_ms']['p50']:7.0f} p99 {s['ttft_ms']['p99']:7.0f} ms"
      f"  ITL p50 {s['itl_ms']['p50']:5.1f} p99 {s['itl_ms']['p99']:6.1f} ms"
      f"  {s['output_tokens_per_s']:6.1f} t/s  cached {100 * c['later_turns_cached_share']:.1f}%"
      f"  failed {s['failed']}")
PY
  grep -h "engine idle" "$log" | tail -3 | sed 's/.*engine idle /    busy: /'
  for what in "slot saved to the prompt cache" "slot restored from the prompt cache"; do
    grep -h "$what" "$log" | sed -n 's/.* ms=\([0-9.]*\).*/\1/p' |
      python3 -c "import sys; v=[float(x) for x in sys.stdin]; print(f'    {sys.argv[1]}: {len(v)}, total {sum(v):.0f} ms, max {max(v, default=0):.1f} ms')" "$what"
  done
  echo "    CPU seconds by thread name: $(join "$WORK/cpu0" "$WORK/cpu1" |
    awk '{printf "%s %.1f  ", $1, ($3 - $2) / 100}')"
  say "variant $n done"
done
