#!/bin/sh
# Cross-compiles the CPU addon for linux-arm64 on an x86-64 Linux machine and puts it where the packed
# tarball ships it and node-gyp-build finds it on arm64: prebuilds/linux-arm64/splash-attention.node
# (the name prebuildify gives the x64 one: the package name, no ABI tag under Node-API).
#
#   sh scripts/build-arm64.sh        (npm run prebuild:arm64)
#
# Needs an aarch64 GNU cross compiler (Debian / Ubuntu: g++-aarch64-linux-gnu; SPLASH_CROSS_PREFIX
# names another one). Nothing of the host's Node goes into it: in Node-API mode cmake-js compiles
# against the node-api-headers and node-addon-api packages, and a Linux addon links no Node library.
# CPU kernels only (NEON, and BFDOT where the CPU has FEAT_BF16): a CUDA addon for arm64 (Grace
# Hopper, Jetson) is built from source on the machine itself. Builds incrementally in build-arm64/.
set -eu
cd "$(dirname "$0")/.."

prefix=${SPLASH_CROSS_PREFIX:-aarch64-linux-gnu-}
if ! command -v "${prefix}g++" >/dev/null 2>&1; then
  echo "build-arm64: ${prefix}g++ not found (Debian / Ubuntu: apt-get install g++-aarch64-linux-gnu)" >&2
  exit 1
fi

out=build-arm64
npx --no-install cmake-js build -O "$out" --arch=arm64 \
  --CDCMAKE_TOOLCHAIN_FILE="$PWD/scripts/toolchain-linux-arm64.cmake" --CDSPLASH_CUDA=0 --CDSPLASH_HIP=0

mkdir -p prebuilds/linux-arm64
"${prefix}strip" --strip-all -o prebuilds/linux-arm64/splash-attention.node "$out/Release/splash.node"
echo "build-arm64: prebuilds/linux-arm64/splash-attention.node ($(wc -c < prebuilds/linux-arm64/splash-attention.node) bytes)"
