#!/usr/bin/env bash
# Makes a release bundle the way llama.cpp's and Ollama's releases ship: the binary, llama.cpp's
# shared libraries beside it in lib/ (found through the binary's rpath $ORIGIN/lib), and the
# backends in backends/, loaded at run time (the best CPU variant this machine supports, and any
# GPU backend whose driver is present). Build with the `dynamic-backends` feature.
#
# Usage: scripts/package.sh [OUT_DIR]          (default: dist/)
# Environment:
#   FEATURES     extra cargo features, comma-separated (e.g. cuda, vulkan) [none]
#   TARGET_DIR   cargo target dir for this build [target/dynamic; target/dynamic-cuda with
#                cuda], kept apart from the default build so the llama.cpp builds don't
#                replace each other
#   CUDA_ARCHS   with cuda: CMAKE_CUDA_ARCHITECTURES [90]; the toolkit is nvcc on PATH, else
#                scripts/setup-cuda.sh's (CUDA 13.0 from PyPI)
#   EXTRA_BACKENDS  backend libraries built elsewhere to add to backends/ (e.g. the
#                   libggml-cuda.so of a llama.cpp build of the same source) [none]
#   BASELINE_CPU    the oldest CPU the bundle runs on [x86-64-v2 on x86-64, the target's
#                   default elsewhere]: the binary and llama.cpp's core are built for it, in
#                   place of .cargo/config.toml's target-cpu=native (which is for like-for-like
#                   benchmarks on this machine); ggml's CPU backend is built in every variant
#                   and the sampler's scans per SIMD level, both picked at run time.
#                   scripts/check-baseline.sh runs a bundle on such a CPU under qemu.
# Prints the bundle's folder. `gguf-serve devices --backends-dir BUNDLE/backends` lists what loads.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/dist}
TARGET_DIR=${TARGET_DIR:-$ROOT/target/dynamic}
FEATURES=dynamic-backends${FEATURES:+,$FEATURES}
log() { echo "package: $*" >&2; }

# CUDA: the toolkit from PyPI's wheels (scripts/setup-cuda.sh) unless one is on PATH already,
# for the archs in CUDA_ARCHS [90], into a target dir of its own.
case ",$FEATURES," in
  *,cuda,*)
    [ -n "${CUDACXX:-}" ] || command -v nvcc >/dev/null || eval "$("$ROOT/scripts/setup-cuda.sh")"
    export CMAKE_CUDA_ARCHITECTURES=${CMAKE_CUDA_ARCHITECTURES:-${CUDA_ARCHS:-90}}
    [ "$TARGET_DIR" != "$ROOT/target/dynamic" ] || TARGET_DIR=$ROOT/target/dynamic-cuda
    ;;
esac

case $(uname -m) in
  x86_64) BASELINE_CPU=${BASELINE_CPU:-x86-64-v2} ;;
esac
# RUSTFLAGS replaces build.rustflags; llama-cpp-sys-2 turns GGML_NATIVE off for any target-cpu
# but native and passes -march=$BASELINE_CPU to llama.cpp.
export RUSTFLAGS="${BASELINE_CPU:+-C target-cpu=$BASELINE_CPU}"
log "building for target-cpu ${BASELINE_CPU:-default} with features $FEATURES (a cold build compiles llama.cpp: about 20 minutes on 2 cores)"
cargo build --release --locked --features "$FEATURES" --target-dir "$TARGET_DIR" --bin gguf-serve \
  --manifest-path "$ROOT/Cargo.toml" >&2

# llama-cpp-sys-2 installs the shared libraries to OUT_DIR/lib and the backends to
# OUT_DIR/backends; take the most recent build's.
out_dir=$(ls -dt "$TARGET_DIR"/release/build/llama-cpp-sys-2-*/out 2>/dev/null | while read -r d; do
  [ -d "$d/backends" ] && { echo "$d"; break; }; done)
[ -n "$out_dir" ] || { log "no llama-cpp-sys-2 build with backends under $TARGET_DIR"; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
bundle=$OUT/gguf-serve-$version-$(uname -s | tr '[:upper:]' '[:lower:]')-$(uname -m)
rm -rf "$bundle"
mkdir -p "$bundle/lib" "$bundle/backends"
cp "$TARGET_DIR/release/gguf-serve" "$bundle/"
cp -P "$out_dir"/lib/lib*.so* "$bundle/lib/"
cp "$out_dir"/backends/*.so "$bundle/backends/"
for extra in ${EXTRA_BACKENDS:-}; do cp "$extra" "$bundle/backends/"; done
strip --strip-unneeded "$bundle/gguf-serve" "$bundle"/lib/*.so* "$bundle"/backends/*.so 2>/dev/null || true

"$bundle/gguf-serve" devices --backends-dir "$bundle/backends" >&2
tar -C "$OUT" -czf "$bundle.tar.gz" "$(basename "$bundle")"
log "$(du -sh "$bundle" | cut -f1) in $bundle, archive $bundle.tar.gz"
echo "$bundle"
