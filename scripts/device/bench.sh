#!/usr/bin/env bash
# Second half of a GPU run, on the machine scripts/device/setup.sh prepared (still warm).
#   speed  gguf-serve against the reference llama-server on the synthetic gpt-oss-20b F16, the
#          whole GPU, alternating rounds (scripts/bench-vs-llama-server.sh): prompt processing
#          of 2 048 tokens, one stream greedy and sampled (temperature 0.8, top_p 0.95), and 16
#          sampled streams of 128 tokens at -np 16 (twice: fresh, then again). Pass
#          LLAMA_SERVER_ARGS="--kv-unified" with GGUF_SERVE_ARGS="--kv-unified" (one cache, as the
#          earlier runs measured) or "--kv-unified -bs"
#          (llama-server's backend sampling), GGUF_SERVE_ARGS="--sampling backend" for ours.
#          Also prints gguf-serve's busy periods of the last round (where the time went).
#   ceiling llama-batched-bench on the F16 file: decode t/s of 1 and 16 sequences with no server
#          and no sampling, the most either server's decode can reach.
#   16gb   a 16 GiB card: a PyTorch allocation holds all but 16 GiB of the GPU; gguf-serve
#          --quant auto picks from the ladder at -c 32768 and 131072 and serves 128-token
#          requests at concurrency 1 and 4; llama-server's own fit on the F16 file and on the
#          file we picked are the anchors.
#   prompt prompt processing against the reference llama-server, both servers loaded at once and
#          each prompt sent to both in turn (scripts/ab-vs-llama-server.py, timed by the client):
#          PROMPT_WORDS at each -np of PROMPT_NPS (default 4 64), -c 131072, one KV cache, 22
#          rounds; the per-round trend shows whether either server slows as earlier prompts fill
#          its slots. The synthetic model's tokenizer makes about 5.4 tokens of a word, so the
#          default 380 1500 6000 words are about 2k, 8k and 32k tokens (the speed stage's 380
#          words are its 2 048-token prompt).
#   scale  aggregate sampled decode (temperature 0.8, top_p 0.95) at each -np of SCALE_NPS
#          (default 64 128 256): SCALE_WAVES × N requests of 64-token prompts and 128 tokens at
#          concurrency N (default 1 wave), llama-server, llama-server -bs and gguf-serve loaded at
#          once, ROUNDS rounds in rotating order; with more than one wave the later requests'
#          prompts are processed among the running streams. SCALE_ARGS: flags for all three
#          [--kv-unified; "" for one KV cache per sequence]. Stream its output (no `| tail`):
#          a call that runs out of time keeps what it printed.
#   wave   issue 21's 64-stream row in its own setup: -c 131072 -np 64, llama-server
#          --kv-unified, gguf-serve on its defaults (one KV cache per sequence), and, with
#          WAVE_OTHER=path/to/an/earlier/gguf-serve (scripts/device/prepare.sh's OTHER=REV
#          puts one at $WORK/bundle/gguf-serve-REV), that build on the same flags; all loaded at
#          once, ROUNDS rotating rounds of 64 sampled requests (64-word prompts, about 350
#          tokens, 128 tokens, temperature 0.8, top_p 0.95) at concurrency 64: first every round
#          the same prompts (later rounds may find them cached), then every round its own
#          (WAVE_KINDS="same fresh" by default; either alone runs only those rounds). The
#          ratios are the current build's to llama-server and to the earlier build: a regression
#          shows against the same machine.
#   chat   chat traffic (scripts/chat-vs-llama-server.sh, completion endpoint): 32 conversations
#          × 6 turns, each turn resending its history, first messages of CHAT_PROMPT_TOKENS
#          (default 128) words, about 700 of the synthetic model's tokens (512 overflowed both
#          servers' 131 072 cells by the fourth turn), 128-token answers, -np 32; TTFT and
#          inter-token latency p50/p99. CHAT_ARGS: flags for both servers [--kv-unified; "" for
#          one KV cache per sequence, where a sequence's cells are contiguous and cheap to move].
#   cuda   our `--features cuda` binary (scripts/build-cuda.sh; carried as dist-cuda/gguf-serve
#          or, stripped, dist-cuda/gguf-serve.xz; cuBLAS from the machine's PyTorch) against the bundle with the reference build's
#          libggml-cuda.so, both gguf-serve on the same flags: prompt processing of 2 048
#          tokens and one-stream decode (ab-vs-llama-server.py, 12 alternating rounds), and 16
#          sampled streams (both loaded, rotating rounds).
#   rpc    the cuda binary with the GPU plus an RPC worker on this machine's CPU (`rpc-worker
#          --device CPU`) holding RPC_LAYERS (default 4) of the 24 layers, against the GPU
#          alone: one stream and 16 sampled streams, rotating rounds; /props' devices, the
#          planner's choice without -ts, and the bytes the worker's sockets carry per token.
# Usage: scripts/device/bench.sh [ceiling] [speed] [16gb] [prompt] [scale] [wave] [chat] [cuda]
#        [rpc]
#        (default: the first three)
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${WORK:-/tmp/gs}
MODELS=$WORK/models
GS=$WORK/bundle/gguf-serve
LS=/tmp/b/bin/llama-server
ROUNDS=${ROUNDS:-3}
t0=$SECONDS
say() { echo "[$((SECONDS - t0))s] $*"; }
stages=${*:-ceiling speed 16gb}

if [[ " $stages " == *" ceiling "* ]]; then
  say "ceiling: llama-batched-bench, F16, whole GPU, 64-token prompts, 128 generated"
  /tmp/b/bin/llama-batched-bench -m "$MODELS/gpt-oss-20b-F16.gguf" -c 32768 -ngl 99 -t "${THREADS:-8}" \
    -npp 64 -ntg 128 -npl 1,16 --kv-unified 2>&1 | grep -E "^\|"
fi

if [[ " $stages " == *" speed "* ]]; then
  say "speed: F16, whole GPU, -np 16; llama-server ${LLAMA_SERVER_ARGS:-(defaults)}, gguf-serve ${GGUF_SERVE_ARGS:-(defaults)}"
  GGUF_SERVE=$GS LLAMA_SERVER=$LS ROUNDS=$ROUNDS THREADS=${THREADS:-8} CTX=32768 NP=16 \
    PP_TOKENS=380 DECODE_TOKENS=128 CONC_REQUESTS=16 CONC_TOKENS=128 CONC_PROMPT_TOKENS=64 \
    SAMPLING="--temperature 0.8 --top-p 0.95" OUT=$WORK/speed$(echo "${LLAMA_SERVER_ARGS:-}${GGUF_SERVE_ARGS:-}" | tr -d ' ') \
    RUST_LOG=info,gguf_serve::engine::worker=debug \
    "$ROOT/scripts/bench-vs-llama-server.sh" "$MODELS/gpt-oss-20b-F16.gguf" 2>&1 | grep -v "^bench-vs-llama-server: round"
  # Where gguf-serve's time went in the last round: one line per busy period (warm-up, the two
  # prompts, greedy decode, sampled decode, the two 16-stream waves).
  out=$WORK/speed$(echo "${LLAMA_SERVER_ARGS:-}${GGUF_SERVE_ARGS:-}" | tr -d ' ')
  grep -h "engine idle" "$out/r$ROUNDS-gguf-serve.log" | sed 's/.*engine idle //'
fi

if [[ " $stages " == *" prompt "* ]]; then
  for np in ${PROMPT_NPS:-4 64}; do
    for words in ${PROMPT_WORDS:-380 1500 6000}; do
      say "prompt: $words words, -np $np, 22 alternating rounds"
      python3 "$ROOT/scripts/ab-vs-llama-server.py" --rounds 22 --trend --prompt-words "$words" \
        --decode-tokens 32 "$LS" "$GS" "$MODELS/gpt-oss-20b-F16.gguf" \
        -- -t "${THREADS:-8}" -c 131072 -np "$np" --kv-unified -ngl 99 2>&1 | grep -v "^ *[0-9]* "
    done
  done
fi

# serve NAME LOG CMD…: starts a server on port PORT (default 18081) and waits for /health (model
# load included); its pid is in $pid.
serve() {
  local name=$1 log=$2 port=${PORT:-18081}; shift 2
  if curl -s "http://127.0.0.1:$port/health" >/dev/null; then
    echo "$name: port $port is taken by another server"; return 1
  fi
  "$@" --port "$port" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 900); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && return 0
    kill -0 $pid 2>/dev/null || { echo "$name exited:"; tail -5 "$log"; return 1; }
    sleep 0.2
  done
  echo "$name: no /health"; return 1
}
stop() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
# decode CONC: 128-token requests at concurrency CONC; prints aggregate and per-stream t/s.
decode() {
  "$GS" bench --url http://127.0.0.1:18081 --endpoint completion --synthetic $((2 * $1)) \
    --concurrency "$1" --prompt-tokens 64 --max-tokens 128 --json |
    python3 "$ROOT/scripts/device/decode_row.py"
}

if [[ " $stages " == *" 16gb "* ]]; then
  free=$(nvidia-smi --query-gpu=memory.free --format=csv,noheader,nounits | head -1)
  hold=$((free - 16 * 1024))
  say "16gb: holding $hold MiB of $free MiB free"
  python3 -c "import torch,time; x=torch.empty($hold*2**20, dtype=torch.uint8, device='cuda'); print('held', flush=True); time.sleep(3600)" &
  blocker=$!
  until nvidia-smi --query-gpu=memory.free --format=csv,noheader,nounits | awk '{exit !($1 < 17000)}'; do sleep 0.5; done
  nvidia-smi --query-gpu=memory.used,memory.free --format=csv,noheader
  for ctx in 32768 131072; do
    say "gguf-serve --quant auto -c $ctx"
    serve gguf-serve "$WORK/auto-$ctx.log" "$GS" -m "$MODELS" --quant auto -c "$ctx" -np 4 || continue
    grep -E "model chosen|plan:|memory:" "$WORK/auto-$ctx.log" | sed 's/.*INFO[^:]*: /    /'
    picked=$(curl -s http://127.0.0.1:18081/props | python3 -c 'import json,sys; print(json.load(sys.stdin)["model_path"])')
    for c in 1 4; do echo "    gguf-serve conc $c: $(decode $c)"; done
    stop
    say "llama-server (its own fit) on F16 -c $ctx"
    serve llama-server "$WORK/ls-f16-$ctx.log" "$LS" -m "$MODELS/gpt-oss-20b-F16.gguf" -c "$ctx" -np 4 || continue
    for c in 1 4; do echo "    llama-server F16 conc $c: $(decode $c)"; done
    stop
    if [ -n "$picked" ] && [ "$(basename "$picked")" != gpt-oss-20b-F16.gguf ]; then
      say "llama-server on our pick $(basename "$picked") -c $ctx"
      serve llama-server "$WORK/ls-pick-$ctx.log" "$LS" -m "$picked" -c "$ctx" -np 4 || continue
      for c in 1 4; do echo "    llama-server pick conc $c: $(decode $c)"; done
      stop
    fi
  done
  kill $blocker
fi
# race TSV REQUESTS CONC PORT…: ROUNDS rounds; each sends REQUESTS sampled completions (64-word
# prompts, 128 tokens, temperature 0.8, top_p 0.95) at concurrency CONC to every port in turn,
# the order rotating by round. Every round sends the same prompts (a server may have kept them),
# or with RACE_FRESH=1 prompts of its own (the same for every server in the round). Prints each
# aggregate t/s with the server's name (from $names, by position) and appends
# "position<TAB>t/s" to TSV.
race() {
  local tsv=$1 requests=$2 conc=$3 round k i agg
  shift 3
  local ports=("$@")
  rm -f "$tsv"
  for round in $(seq 1 "$ROUNDS"); do
    for k in $(seq 0 $((${#ports[@]} - 1))); do
      i=$(((round + k) % ${#ports[@]}))
      agg=$("$GS" bench --url "http://127.0.0.1:${ports[$i]}" --endpoint completion \
        --synthetic "$requests" --synthetic-from $((${RACE_FRESH:-0} * round * requests)) \
        --concurrency "$conc" --prompt-tokens 64 --max-tokens 128 \
        --temperature 0.8 --top-p 0.95 --seed "$round" --json |
        python3 -c 'import json,sys; s=json.load(sys.stdin)["summary"]; print(s["output_tokens_per_s"] if not s["failed"] else "failed")')
      echo "    round $round ${names[$i]}: $agg t/s"
      printf '%s\t%s\n' "$i" "$agg" >>"$tsv"
    done
  done
}
# row TSV LABEL: a table row: LABEL, each server's median t/s, then the last server's ratio to
# each of the others.
row() {
  python3 - "$1" "$2" <<'PY'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().split("\n") if line]
n = 1 + max(int(i) for i, _ in rows)
med = [statistics.median(float(v) for i, v in rows if int(i) == k and v != "failed") for k in range(n)]
cells = [f"{m:.0f}" for m in med] + [f"{med[-1] / m:.2f}" for m in med[:-1]]
print(f"| {sys.argv[2]} | " + " | ".join(cells) + " |")
PY
}

if [[ " $stages " == *" scale "* ]]; then
  names=(llama-server "llama-server -bs" gguf-serve)
  for np in ${SCALE_NPS:-64 128 256}; do
    requests=$((np * ${SCALE_WAVES:-1}))
    say "scale: $requests requests at concurrency $np, sampled, -np $np; the three servers loaded at once"
    # SCALE_ARGS is a list of flags, word-split on purpose.
    # shellcheck disable=SC2206
    common=(-m "$MODELS/gpt-oss-20b-F16.gguf" -t "${THREADS:-8}" -c $((np * 512)) -np "$np" -ngl 99
      ${SCALE_ARGS---kv-unified})
    pids=()
    PORT=18091 serve llama-server "$WORK/scale-$np-ls.log" "$LS" "${common[@]}" && pids+=("$pid")
    PORT=18092 serve "llama-server -bs" "$WORK/scale-$np-bs.log" "$LS" "${common[@]}" -bs && pids+=("$pid")
    PORT=18093 serve gguf-serve "$WORK/scale-$np-gs.log" "$GS" "${common[@]}" && pids+=("$pid")
    [ ${#pids[@]} = 3 ] || { kill "${pids[@]}" 2>/dev/null; continue; }
    race "$WORK/scale-$np.tsv" "$requests" "$np" 18091 18092 18093
    kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null
    row "$WORK/scale-$np.tsv" "$np"
  done
fi

if [[ " $stages " == *" wave "* ]]; then
  say "wave: 64 sampled requests at concurrency 64, -c 131072 -np 64, all loaded at once"
  common=(-m "$MODELS/gpt-oss-20b-F16.gguf" -t "${THREADS:-8}" -c 131072 -np 64 -ngl 99)
  names=(llama-server) ports=(18091) pids=()
  PORT=18091 serve llama-server "$WORK/wave-ls.log" "$LS" "${common[@]}" --kv-unified && pids+=("$pid")
  if [ -n "${WAVE_OTHER:-}" ]; then
    names+=("$(basename "$WAVE_OTHER")") ports+=(18092)
    PORT=18092 serve "${names[-1]}" "$WORK/wave-other.log" "$WAVE_OTHER" "${common[@]}" && pids+=("$pid")
  fi
  names+=(gguf-serve) ports+=(18093)
  PORT=18093 serve gguf-serve "$WORK/wave-gs.log" "$GS" "${common[@]}" && pids+=("$pid")
  if [ ${#pids[@]} = ${#ports[@]} ]; then
    kinds=${WAVE_KINDS:-same fresh}
    if [[ " $kinds " == *" same "* ]]; then
      say "wave: every round the same 64 prompts (from the second round on, a server may have them)"
      race "$WORK/wave.tsv" 64 64 "${ports[@]}"
    fi
    if [[ " $kinds " == *" fresh "* ]]; then
      say "wave: every round 64 prompts of its own"
      RACE_FRESH=1 race "$WORK/wave-fresh.tsv" 64 64 "${ports[@]}"
    fi
    printf '| prompts |'; printf ' %s |' "${names[@]}"; echo " gguf-serve to each |"
    [[ " $kinds " == *" same "* ]] && row "$WORK/wave.tsv" "the same"
    [[ " $kinds " == *" fresh "* ]] && row "$WORK/wave-fresh.tsv" "fresh"
  fi
  kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null
fi

# The cuda build, runnable: its rpath finds cuBLAS in lib/ beside it, linked from PyTorch's
# nvidia-cublas wheel (CUDA 13); the driver's libcuda.so.1 is the system's.
CG=$WORK/cuda/gguf-serve
if [[ " $stages " == *" cuda "* || " $stages " == *" rpc "* ]] && [ ! -x "$CG" ]; then
  mkdir -p "$WORK/cuda/lib"
  # Carried stripped and xz-compressed (156 MB as built, 81 MB stripped: over a call's carry).
  if [ -f "$ROOT/dist-cuda/gguf-serve.xz" ]; then
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
      "$ROOT/dist-cuda/gguf-serve.xz" "$CG"
  elif [ -f "$ROOT/dist-cuda/gguf-serve" ]; then
    cp "$ROOT/dist-cuda/gguf-serve" "$CG"
  else
    echo "no dist-cuda/gguf-serve[.xz] (scripts/build-cuda.sh)"; exit 1
  fi
  chmod +x "$CG"
  cu13=$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))')
  ln -sf "$cu13"/libcublas.so.13 "$cu13"/libcublasLt.so.13 "$WORK/cuda/lib/"
  "$CG" devices | grep -E "^\| (CUDA|CPU)" || { echo "the cuda build sees no device"; exit 1; }
fi

if [[ " $stages " == *" cuda "* ]]; then
  flags=(-t "${THREADS:-8}" -c 32768 -ngl 99 --kv-unified)
  say "cuda: prompt of 2 048 tokens and one stream, bundle (reference libggml-cuda.so) vs cuda build, 12 alternating rounds"
  python3 "$ROOT/scripts/ab-vs-llama-server.py" --names bundle,cuda-build --rounds 12 \
    --prompt-words 380 --decode-tokens 128 "$GS" "$CG" "$MODELS/gpt-oss-20b-F16.gguf" \
    -- "${flags[@]}" -np 4 2>&1
  say "cuda: 16 sampled streams, -np 16, both loaded"
  names=(bundle "cuda build")
  pids=()
  PORT=18091 serve bundle "$WORK/cuda-bundle.log" "$GS" -m "$MODELS/gpt-oss-20b-F16.gguf" "${flags[@]}" -np 16 && pids+=("$pid")
  PORT=18092 serve "cuda build" "$WORK/cuda-build.log" "$CG" -m "$MODELS/gpt-oss-20b-F16.gguf" "${flags[@]}" -np 16 && pids+=("$pid")
  if [ ${#pids[@]} = 2 ]; then
    race "$WORK/cuda-16.tsv" 32 16 18091 18092
    echo "| streams | bundle | cuda build | ratio |"
    row "$WORK/cuda-16.tsv" 16
  fi
  kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null
fi

if [[ " $stages " == *" rpc "* ]]; then
  model=$MODELS/gpt-oss-20b-F16.gguf
  flags=(-t "${THREADS:-8}" -c 32768 -ngl 99 -np 16)
  "$CG" rpc-worker --port 50052 --device CPU -t "${THREADS:-8}" >"$WORK/rpc-worker.log" 2>&1 &
  worker=$!
  sleep 2
  say "rpc: what the planner does with a GPU and a worker (no -ts)"
  "$CG" plan -m "$model" -c 32768 -np 16 --rpc 127.0.0.1:50052 2>&1 | grep -E "RPC0|CUDA0|-ts|alone|local" | head -8
  n=${RPC_LAYERS:-4}
  say "rpc: the GPU alone against the GPU with layers 0-$((n - 1)) on the worker's CPU (-ts $n,$((25 - n)))"
  names=("GPU" "GPU + RPC worker")
  pids=()
  PORT=18091 serve GPU "$WORK/rpc-gpu.log" "$CG" -m "$model" "${flags[@]}" && pids+=("$pid")
  PORT=18092 serve "GPU + RPC" "$WORK/rpc-split.log" "$CG" -m "$model" "${flags[@]}" \
    --rpc 127.0.0.1:50052 -ts "$n,$((25 - n))" && pids+=("$pid")
  if [ ${#pids[@]} = 2 ]; then
    curl -s http://127.0.0.1:18092/props | python3 -c 'import json,sys; [print("    ", d) for d in json.load(sys.stdin).get("devices", [])]'
    # Loopback's received bytes (no `ss` on the device machine): the worker's traffic both ways
    # plus one small HTTP exchange, the GPU-only server idle meanwhile.
    io() { awk '$1 == "lo:" {print $2}' /proc/net/dev; }
    before=$(io)
    curl -s http://127.0.0.1:18092/completion -d '{"prompt": "Once upon a time", "n_predict": 128, "ignore_eos": true, "temperature": 0}' >/dev/null
    bytes=$(($(io) - before))
    echo "    loopback carried $bytes bytes for a 4-token prompt and 128 tokens ($((bytes / 128)) per token)"
    echo "| streams | GPU | GPU + RPC worker | ratio |"
    race "$WORK/rpc-1.tsv" 4 1 18091 18092 >/dev/null
    row "$WORK/rpc-1.tsv" 1
    race "$WORK/rpc-16.tsv" 32 16 18091 18092 >/dev/null
    row "$WORK/rpc-16.tsv" 16
  fi
  kill "${pids[@]}" "$worker" 2>/dev/null; wait "${pids[@]}" "$worker" 2>/dev/null
fi

if [[ " $stages " == *" chat "* ]]; then
  say "chat: 32 conversations x 6 turns, -np 32, first messages of ${CHAT_PROMPT_TOKENS:-128} words, 128-token answers"
  GGUF_SERVE=$GS ROUNDS=$ROUNDS CONVERSATIONS=32 TURNS=6 PROMPT_TOKENS=${CHAT_PROMPT_TOKENS:-128} \
    MAX_TOKENS=128 ENDPOINT=completion OUT=$WORK/chat \
    "$ROOT/scripts/chat-vs-llama-server.sh" "$LS" "$MODELS/gpt-oss-20b-F16.gguf" \
    -- -t "${THREADS:-8}" -c 131072 -np 32 ${CHAT_ARGS---kv-unified} -ngl 99 2>&1
fi
say "bench done"
