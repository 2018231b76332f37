#!/usr/bin/env bash
# Builds `gguf-serve --features cuda` (llama.cpp and ggml-cuda linked in) with the CUDA 13.0
# toolkit that scripts/setup-cuda.sh installs from PyPI, into its own target dir so it never
# replaces target/release. Prints the binary's path.
#
# Environment:
#   CUDA_ARCHS   CMAKE_CUDA_ARCHITECTURES [90]: 90 = H100/H200; "90;86;89;120a" adds RTX 30xx,
#                RTX 40xx and RTX 50xx (each arch adds about as much compile time as the first)
#   TARGET_CPU   the oldest CPU the binary runs on [x86-64-v3]; not `native`, since the binary
#                is meant for another (GPU) machine
#   TARGET_DIR   cargo target dir [target/cuda]
#
# How it links. llama-cpp-sys-2's build.rs, for `cuda` without `dynamic-link`, asks for
# cudart_static, cublas_static, cublasLt_static, culibos (static) and cuda (the driver). The
# wheels have libcudart_static.a but only the shared cuBLAS, so the cuBLAS names resolve to the
# empty archives setup-cuda.sh lays out, and this links libcublas.so.13 and libcublasLt.so.13
# by hand (link-arg, after the objects that need them). The binary then needs at run time:
# libcublas.so.13, libcublasLt.so.13 (CUDA 13.x, e.g. PyTorch cu130's nvidia-cublas wheel) and
# the driver's libcuda.so.1; cudart is inside. Its rpath is $ORIGIN/lib, so the libraries can
# also sit in lib/ beside it.
#
# --target is explicit so that RUSTFLAGS (the link-args, target-cpu) reach gguf-serve and its
# dependencies but not build scripts or proc macros, which must not link cuBLAS.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
eval "$("$ROOT/scripts/setup-cuda.sh")"

TARGET_DIR=${TARGET_DIR:-$ROOT/target/cuda}
TARGET_CPU=${TARGET_CPU:-x86-64-v3}
HOST=$(rustc -vV | sed -n 's/^host: //p')
export CMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHS:-90}
export RUSTFLAGS="-C target-cpu=$TARGET_CPU -C link-arg=-L$CUDA_PATH/lib -C link-arg=-lcublas \
-C link-arg=-lcublasLt -C link-arg=-Wl,-rpath,\$ORIGIN/lib"
log() { echo "build-cuda: $*" >&2; }

log "CUDA archs $CMAKE_CUDA_ARCHITECTURES, target-cpu $TARGET_CPU, into $TARGET_DIR (a cold build compiles llama.cpp and ggml-cuda)"
start=$SECONDS
cargo build --release --locked --features cuda --target "$HOST" --target-dir "$TARGET_DIR" \
  --bin gguf-serve --manifest-path "$ROOT/Cargo.toml" >&2
log "built in $((SECONDS - start)) s"
echo "$TARGET_DIR/$HOST/release/gguf-serve"
