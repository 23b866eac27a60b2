#!/bin/sh
# prebuildify only knows how to drive node-gyp; `npm run prebuildify` passes this script as its
# --node-gyp so the prebuilt binary comes from the CMake build (CPU + CUDA when nvcc is present).
# prebuildify calls it like node-gyp (`rebuild --target=… --devdir=… --arch=… --release`); cmake-js
# needs none of that but the arch. prebuildify then takes the one .node left in build/Release, strips
# it and renames it to prebuilds/<platform>-<arch>/splash-attention.napi.node.
#
# The optional HIP variant (build/Release/splash_hip.node, needs libamdhip64.so.5 at load time) is
# moved here, before prebuildify looks, to prebuilds/<platform>-<arch>/hip/splash_hip.node. A
# subdirectory keeps node-gyp-build (which only reads *.node files directly inside
# prebuilds/<platform>-<arch>/) from ever choosing it; lib/backends/native.ts looks for it there.
#
# SPLASH_PREBUILD_REUSE=1 builds incrementally on top of build/ instead of from scratch: for CI, right
# after `npm run build` with the same environment, where a rebuild would only compile everything again.
set -eu

if [ "${SPLASH_PREBUILD_REUSE:-0}" = 1 ]; then
  cmake-js build --arch="${PREBUILD_ARCH:-x64}"
else
  cmake-js rebuild --arch="${PREBUILD_ARCH:-x64}"
fi

hip_build=build/Release/splash_hip.node
hip_dir="prebuilds/${PREBUILD_PLATFORM:-linux}-${PREBUILD_ARCH:-x64}/hip"
rm -rf "$hip_dir"  # never ship a stale HIP binary next to a fresh main one
if [ -f "$hip_build" ]; then
  if [ "${PREBUILD_STRIP:-0}" = 1 ]; then
    "${PREBUILD_STRIP_BIN:-strip}" --strip-all "$hip_build"
  fi
  mkdir -p "$hip_dir"
  mv "$hip_build" "$hip_dir/splash_hip.node"
fi
