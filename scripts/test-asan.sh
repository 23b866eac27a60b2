#!/bin/sh
# `npm run test:asan`: builds the addon with AddressSanitizer + UndefinedBehaviorSanitizer (no
# recovery: the first finding aborts the run) into build-asan/, leaving build/Release alone, and runs
# the native-backend tests against it; then the GPU runtime layer's test (native/tests/gpu_runtime_test.cc,
# on the fake CUDA runtime) under the same sanitizers, and with SPLASH_ASAN_EMULATOR=1 also the
# emulated GPU kernels' quick grid (native/tests/gpu_emulate_test.cc; several minutes).
#
# Node itself is not instrumented, so the ASan runtime is preloaded; its leak check is off because
# Node does not free everything at exit. The tests run a smaller sample (SPLASH_TEST_SCALE=small).
set -eu
cd "$(dirname "$0")/.."

out=build-asan
# cmake-js sets CMAKE_CXX_FLAGS itself (last -D wins), so the sanitizer flags go into the Release
# configuration's flags, which it leaves alone.
flags="-O2 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"
SPLASH_CUDA=0 SPLASH_HIP=0 npx cmake-js rebuild --out "$out" \
  --CDCMAKE_BUILD_TYPE=Release \
  --CDCMAKE_CXX_FLAGS_RELEASE="$flags" \
  --CDCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined"

addon="$PWD/$out/Release/splash.node"
libasan="$(gcc -print-file-name=libasan.so)"
[ -f "$addon" ] || { echo "test-asan: $addon was not built" >&2; exit 1; }
[ -f "$libasan" ] || { echo "test-asan: libasan.so not found (gcc -print-file-name=libasan.so)" >&2; exit 1; }

SPLASH_ADDON_PATH="$addon" \
LD_PRELOAD="$libasan" \
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
SPLASH_TEST_SCALE=small \
  npx mocha --import=tsx test/cpu-backend.test.ts test/native.test.ts test/fuzz.test.ts test/reliability.test.ts "$@"

# The GPU runtime layer and (on request) the emulated kernels, as plain programs under the same flags.
gpu_test() {  # gpu_test <source> <extra g++ flags...> -- <program arguments...>
  src=$1
  shift
  flags=""
  while [ "$1" != -- ]; do flags="$flags $1"; shift; done
  shift
  exe="$out/$(basename "$src" .cc)"
  # shellcheck disable=SC2086  # $flags is a list of words
  g++ -std=c++17 $flags -Wall -Wextra -Werror -pthread -Inative/include "$src" -o "$exe" -O1 -g \
    -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
  ASAN_OPTIONS="abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" "$exe" "$@"
}
gpu_test native/tests/gpu_runtime_test.cc -Inative/tests/fake_cuda --
gpu_test native/tests/gpu_runtime_test.cc -Inative/tests/fake_cuda -- --no-pools
if [ "${SPLASH_ASAN_EMULATOR:-0}" = 1 ]; then
  gpu_test native/tests/gpu_emulate_test.cc -Wno-unknown-pragmas -- --quick
fi
