#!/usr/bin/env bash
# Installs a CUDA 13.0 toolkit from NVIDIA's PyPI wheels into a cache folder, with no root and no
# NVIDIA installer, so `cargo build --features cuda` (scripts/build-cuda.sh) and the CUDA bundle
# (FEATURES=cuda scripts/package.sh) build on a machine without a GPU or a system CUDA.
# Idempotent: a complete install is reused. Prints the environment to build with, as `export`
# lines (eval "$(scripts/setup-cuda.sh)").
#
# Environment:
#   GGUF_SERVE_CACHE  cache root (default ~/.cache/gguf-serve); the toolkit goes to
#                     $CACHE/cuda-$CUDA_VERSION
#
# Why 13.0: the GPU machines we run on have a CUDA 13.0 driver (580) and PyTorch 2.11+cu130,
# whose nvidia-cublas and nvidia-cuda-runtime wheels the binary can borrow at run time. Code built
# against the oldest 13.x headers runs with any newer 13.x library, not the other way round, and
# nvcc 13.0 emits nothing a 13.0 driver cannot load.
#
# The wheels unpack to nvidia/cu13/{bin,include,lib,nvvm}; on top of them this lays out what
# CMake's FindCUDAToolkit and llama-cpp-sys-2 look for:
#   lib64 -> lib, and the unversioned libcudart.so/libcublas.so/libcublasLt.so links;
#   lib64/stubs/libcuda.so: the driver API (cu*) as stubs with the soname libcuda.so.1, which
#     the NVIDIA installer ships and the wheels do not; ggml-cuda links the driver for its
#     virtual-memory pool, and the real libcuda.so.1 comes with the driver at run time. Its
#     symbols are every CUresult function that cuda.h declares (after the preprocessor, so the
#     _v2 names the header maps to). Generated here: no package on a registry ships it.
#   rust-shim/lib64/: empty lib{cublas,cublasLt}_static.a and libculibos.a. llama-cpp-sys-2's
#     static build asks for those by name (its build.rs: cudart_static, cublas_static,
#     cublasLt_static, culibos); the wheels ship only the shared cuBLAS (the static one would
#     add ~700 MB to every binary), so scripts/build-cuda.sh links libcublas.so.13 instead and
#     these empty archives satisfy the names. libcudart_static.a is real.
set -euo pipefail

CUDA_VERSION=13.0
# Pinned: the CUDA 13.0 update 2 set (nvcc, its C runtime headers, NVVM, CCCL, cudart, cuBLAS).
WHEELS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-cccl==13.0.85
  nvidia-cuda-runtime==13.0.96
  nvidia-cublas==13.0.2.14
)
CACHE=${GGUF_SERVE_CACHE:-$HOME/.cache/gguf-serve}
DIR=$CACHE/cuda-$CUDA_VERSION
ROOT=$DIR/site/nvidia/cu13
SHIM=$DIR/rust-shim
STAMP=$DIR/installed.txt

log() { echo "setup-cuda: $*" >&2; }

if [ "$(cat "$STAMP" 2>/dev/null)" != "${WHEELS[*]}" ]; then
  log "installing ${WHEELS[*]} into $DIR (about 700 MB, most of it libcublasLt)"
  rm -rf "$DIR/site" "$SHIM" "$STAMP"
  mkdir -p "$DIR"
  python3 -m pip install --quiet --no-deps --only-binary=:all: --no-compile \
    --target "$DIR/site" "${WHEELS[@]}" >&2
  [ -x "$ROOT/bin/nvcc" ] || { log "no nvcc under $ROOT/bin after the install"; exit 1; }

  ln -sfn lib "$ROOT/lib64"
  for lib in cudart cublas cublasLt; do
    [ -f "$ROOT/lib/lib$lib.so.13" ] || { log "missing $ROOT/lib/lib$lib.so.13"; exit 1; }
    ln -sfn "lib$lib.so.13" "$ROOT/lib/lib$lib.so"
  done

  mkdir -p "$ROOT/lib/stubs"
  gcc -E -P -I"$ROOT/include" -x c "$ROOT/include/cuda.h" |
    grep -oE '\bCUresult[[:space:]]+cu[A-Za-z0-9_]+[[:space:]]*\(' |
    sed -E 's/CUresult[[:space:]]+(cu[A-Za-z0-9_]+).*/\1/' | sort -u |
    awk '{ printf "int %s(void) { return 999; }\n", $1 }' >"$ROOT/lib/stubs/libcuda-stub.c"
  n=$(wc -l <"$ROOT/lib/stubs/libcuda-stub.c")
  [ "$n" -gt 300 ] || { log "only $n driver functions found in cuda.h"; exit 1; }
  gcc -shared -fPIC -O0 -Wl,-soname,libcuda.so.1 -o "$ROOT/lib/stubs/libcuda.so" \
    "$ROOT/lib/stubs/libcuda-stub.c"
  ln -sfn libcuda.so "$ROOT/lib/stubs/libcuda.so.1"

  mkdir -p "$SHIM/lib64"
  for lib in cublas_static cublasLt_static culibos; do
    rm -f "$SHIM/lib64/lib$lib.a"
    ar rc "$SHIM/lib64/lib$lib.a"
  done

  # The toolkit compiles Hopper code: one kernel, sm_90 machine code.
  probe=$(mktemp -d)
  trap 'rm -rf "$probe"' EXIT
  printf '__global__ void k(float *x) { x[threadIdx.x] *= 2.0f; }\n' >"$probe/k.cu"
  "$ROOT/bin/nvcc" -arch=sm_90 -cubin -o "$probe/k.cubin" "$probe/k.cu" >&2 ||
    { log "nvcc could not compile a kernel for sm_90"; exit 1; }
  echo "${WHEELS[*]}" >"$STAMP"
  log "$("$ROOT/bin/nvcc" --version | tail -2 | head -1)"
fi

# What the build reads: CMake's FindCUDAToolkit (CUDAToolkit_ROOT, CUDACXX), nvcc on PATH,
# find_cuda_helper in llama-cpp-sys-2 (CUDA_PATH, CUDA_LIBRARY_PATH: each base's lib64 and
# lib64/stubs go on the link search path), and the linker (LIBRARY_PATH).
cat <<EOF
export CUDAToolkit_ROOT=$ROOT
export CUDA_PATH=$ROOT
export CUDACXX=$ROOT/bin/nvcc
export PATH=$ROOT/bin:\$PATH
export CUDA_LIBRARY_PATH=$ROOT:$SHIM
export LIBRARY_PATH=$ROOT/lib:$ROOT/lib/stubs\${LIBRARY_PATH:+:\$LIBRARY_PATH}
EOF
