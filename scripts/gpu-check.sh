#!/usr/bin/env bash
# The GPU check in one call, on a CUDA machine with no network (an H100 / H200 box):
#
#   1. build native/tests' harness (GPU kernels + the CPU kernels as oracle) with CMake + nvcc for the
#      local GPU's architecture only, into build-gpu/;
#   2. correctness: GPU forward vs the CPU forward on the splash grid (masks, GQA/MQA, segment ids, soft
#      cap, bf16/f16/f32, head dims 32..256, S up to 8192, both GPU paths, outputs poisoned with NaN);
#      then the backward, split and fused, vs the CPU backward on the same grid (S <= 4096), and the
#      split backward 20 times on one problem, bitwise equal (determinism);
#   3. timing: our forward kernel and forward + backward (split and fused) (bf16, d=128, H=16, S=8192:
#      full, causal, local 1024, packed docs);
#   4. the peers on the same problems: PyTorch FlexAttention (compiled, same block mask) and SDPA flash,
#      forward and forward + backward (bench/gpu/flex_peer.py), and summary tables with the ratios;
#   5. optionally the Node-level GPU tests, when a node binary, node_modules and the addon were carried
#      (scripts/gpu-carry.sh prepares them in .gpu-carry/).
#
# Usage:   bash scripts/gpu-check.sh
# Results: logs and JSON in $OUT when set (the device tool's output folder), else build-gpu/out/.
# Knobs:   SPLASH_CUDA_ARCH=90 (default: the GPU's compute capability), SPLASH_GPU_CHECK_SKIP=flex,node,bench,backward
#          (comma list of steps to leave out; backward: forward checks and timings only), SPLASH_GPU_CHECK_QUICK=1 (no S=4096/8192 correctness cases),
#          SPLASH_GPU_CHECK_SANITIZE=1 (also run the quick grid under compute-sanitizer memcheck).
# Expected (an estimate: the script has not run on a GPU yet): about 6-8 minutes on an H100 (build
#          ~1.5 min, correctness ~2 min, timing ~1 min, peers with fwd+bwd ~3 min); to stay under 6 minutes use
#          SPLASH_GPU_CHECK_QUICK=1, or SPLASH_GPU_CHECK_SKIP=flex for a second run.
# Exit code: non-zero when the build or any correctness case fails.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RESULTS="${OUT:-$ROOT/build-gpu/out}"
mkdir -p "$RESULTS"
SKIP=",${SPLASH_GPU_CHECK_SKIP:-},"
START=$(date +%s)
status=0

step() { printf '\n=== %s (+%ss)\n' "$1" "$(( $(date +%s) - START ))"; }
skipped() { [[ "$SKIP" == *",$1,"* ]]; }

step 'machine'
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap,clocks.max.sm --format=csv 2>&1 | tee "$RESULTS/gpu.txt"
nvcc --version | tail -2
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -1

ARCH="${SPLASH_CUDA_ARCH:-}"
if [ -z "$ARCH" ]; then
  ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
  [ -n "$ARCH" ] || ARCH=90
fi
JOBS=$(nproc 2>/dev/null || echo 8)

# Without CMake (a bare GPU box may lack it) the harness is built by g++ and nvcc directly: the CPU
# sources need no per-file flags (their ISA pragmas select the instruction sets).
build_without_cmake() {
  local obj=build-gpu/obj
  mkdir -p "$obj"
  local cxx=(g++ -std=c++17 -O3 -pthread -fexceptions -Inative/include)
  local objs=() src o
  for src in native/cpu/*.cc native/tests/gpu_forward_test.cc; do
    [ "$(basename "$src")" = no_gpu.cc ] && continue
    o="$obj/$(basename "$src").o"; objs+=("$o")
    "${cxx[@]}" -c "$src" -o "$o" &
  done
  for src in native/gpu/*.cu; do
    o="$obj/$(basename "$src").o"; objs+=("$o")
    nvcc -std=c++17 -O3 -lineinfo -arch="sm_$ARCH" -Inative/include -c "$src" -o "$o" &
  done
  local failed=0
  for job in $(jobs -p); do wait "$job" || failed=1; done
  [ "$failed" = 0 ] && nvcc -arch="sm_$ARCH" -o build-gpu/splash_gpu_tests "${objs[@]}" -lpthread
}

if ! command -v cmake >/dev/null 2>&1; then
  step "build: no cmake here, g++ + nvcc directly, sm_$ARCH"
  if ! build_without_cmake > "$RESULTS/build.log" 2>&1; then
    grep -E 'error' "$RESULTS/build.log" | head -40
    echo "gpu-check: build failed"
    exit 2
  fi
else
step "build: cmake + nvcc, sm_$ARCH, target splash_gpu_tests"
GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)
if ! cmake -S . -B build-gpu "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DSPLASH_CUDA=1 -DSPLASH_HIP=0 \
      -DCMAKE_CUDA_ARCHITECTURES="$ARCH" > "$RESULTS/configure.log" 2>&1; then
  tail -30 "$RESULTS/configure.log"
  echo "gpu-check: CMake configure failed"
  exit 2
fi
if ! cmake --build build-gpu --target splash_gpu_tests -j "$JOBS" > "$RESULTS/build.log" 2>&1; then
  grep -E 'error|warning' "$RESULTS/build.log" | head -40
  tail -20 "$RESULTS/build.log"
  echo "gpu-check: build failed"
  exit 2
fi
fi
echo "built build-gpu/splash_gpu_tests"

NO_BWD=()
skipped backward && NO_BWD=(--no-backward)

step 'correctness: GPU forward and backward vs the CPU kernels, backward determinism'
CHECK_ARGS=(--check "${NO_BWD[@]}")
[ "${SPLASH_GPU_CHECK_QUICK:-0}" = 1 ] && CHECK_ARGS+=(--quick)
build-gpu/splash_gpu_tests "${CHECK_ARGS[@]}" --json "$RESULTS/check.json" 2>&1 | tee "$RESULTS/check.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

if [ "${SPLASH_GPU_CHECK_SANITIZE:-0}" = 1 ] && command -v compute-sanitizer >/dev/null 2>&1; then
  step 'compute-sanitizer memcheck on the quick grid'
  compute-sanitizer --tool memcheck --print-limit 20 build-gpu/splash_gpu_tests --check --quick "${NO_BWD[@]}" \
    > "$RESULTS/sanitizer.log" 2>&1 || status=1
  grep -E 'ERROR SUMMARY|Invalid|out of bounds' "$RESULTS/sanitizer.log" | head -20
fi

if ! skipped bench; then
  step 'timing: splash forward, and forward + backward (split, fused)'
  build-gpu/splash_gpu_tests --bench "${NO_BWD[@]}" --json "$RESULTS/splash-bench.json" 2>&1 | tee "$RESULTS/bench.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi

if ! skipped flex; then
  step 'peers: FlexAttention (compiled) and SDPA flash'
  PEER_ARGS=(--json "$RESULTS/peers.json")
  skipped backward && PEER_ARGS+=(--no-backward)
  [ -f "$RESULTS/splash-bench.json" ] && PEER_ARGS+=(--ours "$RESULTS/splash-bench.json")
  PYTHONUNBUFFERED=1 python3 bench/gpu/flex_peer.py "${PEER_ARGS[@]}" 2>&1 | tee "$RESULTS/peers.log"
fi

if ! skipped node && [ -f .gpu-carry/node.xz ] && [ -f .gpu-carry/node_modules.tar.xz ] && [ -f .gpu-carry/splash.node ]; then
  step 'node: the GPU tests of the package (test/gpu.test.ts, device part)'
  NODE_DIR=$(mktemp -d)
  xz -dc .gpu-carry/node.xz > "$NODE_DIR/node" && chmod +x "$NODE_DIR/node"
  [ -d node_modules ] || tar -xJf .gpu-carry/node_modules.tar.xz
  SPLASH_ADDON_PATH="$ROOT/.gpu-carry/splash.node" "$NODE_DIR/node" node_modules/mocha/bin/mocha.js \
    --import=tsx --grep 'on a device' test/gpu.test.ts 2>&1 | tee "$RESULTS/node-tests.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
elif ! skipped node; then
  step 'node: skipped (no .gpu-carry/ with node.xz, node_modules.tar.xz and splash.node; see scripts/gpu-carry.sh)'
fi

step "done: $([ $status -eq 0 ] && echo 'all checks passed' || echo 'FAILURES above')"
exit $status
