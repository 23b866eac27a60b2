#!/usr/bin/env bash
# The GPU check in one call, on a CUDA machine with no network (an H100 / H200 box):
#
#   1. build native/tests' harness (GPU kernels + the CPU kernels as oracle) with CMake + nvcc for the
#      local GPU's architecture into build-gpu/ and, beside it, a PTX-only build (compute_80, JIT-compiled
#      by the driver, so the sm_80 code path is what runs) into build-gpu-ptx/;
#   2. correctness: GPU forward vs the CPU forward on the splash grid (masks, GQA/MQA, segment ids, soft
#      cap, finite mask values down to -1e30, bf16/f16/f32, head dims 32..256, S up to 8192, both GPU
#      paths, outputs poisoned with NaN); then the backward, split and fused, vs the CPU backward on the
#      same grid (S <= 4096, f16 with a loss-scaled dout among it), and the split backward 20 times on
#      one problem, bitwise equal (determinism);
#   3. the quick grid under compute-sanitizer memcheck, racecheck and synccheck, and on the PTX-only
#      build, the four runs side by side (the GPU has room for all of them);
#   4. timing: our forward kernel and forward + backward (split and fused) (bf16, d=128, H=16, S=8192:
#      full, causal, local 1024, packed docs);
#   5. the peers on the same problems: PyTorch FlexAttention (compiled, same block mask) and SDPA flash,
#      forward and forward + backward (bench/gpu/flex_peer.py), and summary tables with the ratios;
#   6. optionally the Node-level GPU tests, when a node binary, node_modules and the addon were carried
#      (scripts/gpu-carry.sh prepares them in .gpu-carry/).
#
# Usage:   bash scripts/gpu-check.sh
# Results: logs and JSON in $OUT when set (the device tool's output folder), else build-gpu/out/.
# Knobs:   SPLASH_CUDA_ARCH=90 (default: the GPU's compute capability),
#          SPLASH_GPU_CHECK_SKIP=sanitize,ptx,bench,flex,node,backward (comma list of steps to leave out;
#          backward: forward checks and timings only),
#          SPLASH_GPU_CHECK_QUICK=1 (the quick grid only, no PTX build, timing or peers: under 3 minutes),
#          SPLASH_GPU_CHECK_BUDGET_S (wall-clock budget, default 360, QUICK 180: steps 3-6 are shortened
#          or left out, saying so, when the time left cannot hold them).
# Expected (an estimate until a GPU run reports its step times): build ~1.5-2 min (both builds at
#          once), correctness ~1.5, sanitizers + PTX ~1.5, timing ~1, peers ~2-3: the budget cuts the
#          peers first. QUICK: build ~1.5, quick correctness ~0.5, sanitizers ~1.
# Exit code: non-zero when a build, a correctness case or a sanitizer finding fails; a step cut short
#          by the budget is reported as such, not as a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RESULTS="${OUT:-$ROOT/build-gpu/out}"
mkdir -p "$RESULTS"
QUICK="${SPLASH_GPU_CHECK_QUICK:-0}"
SKIP=",${SPLASH_GPU_CHECK_SKIP:-},"
[ "$QUICK" = 1 ] && SKIP="$SKIP,ptx,bench,flex,"
BUDGET="${SPLASH_GPU_CHECK_BUDGET_S:-$([ "$QUICK" = 1 ] && echo 180 || echo 360)}"
START=$(date +%s)
status=0
cut_short=()

step() { printf '\n=== %s (+%ss)\n' "$1" "$(( $(date +%s) - START ))"; }
skipped() { [[ "$SKIP" == *",$1,"* ]]; }
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
# Whether `need` more seconds fit the budget; otherwise notes the step as cut short.
fits() {
  if [ "$(left)" -lt "$2" ]; then
    echo "gpu-check: $1 left out: $(left)s of the ${BUDGET}s budget left, it needs about $2s"
    cut_short+=("$1 (left out)")
    return 1
  fi
}

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
#   build_without_cmake <dir> <nvcc arch flags...>
build_without_cmake() {
  local dir=$1
  shift
  local obj="$dir/obj"
  mkdir -p "$obj"
  local cxx=(g++ -std=c++17 -O3 -pthread -fexceptions -Inative/include)
  local objs=() src o
  for src in native/cpu/*.cc native/tests/gpu_forward_test.cc; do
    o="$obj/$(basename "$src").o"; objs+=("$o")
    "${cxx[@]}" -c "$src" -o "$o" &
  done
  for src in native/gpu/*.cu; do
    o="$obj/$(basename "$src").o"; objs+=("$o")
    nvcc -std=c++17 -O3 -lineinfo "$@" -Inative/include -c "$src" -o "$o" &
  done
  local failed=0
  for job in $(jobs -p); do wait "$job" || failed=1; done
  [ "$failed" = 0 ] && nvcc "$@" -o "$dir/splash_gpu_tests" "${objs[@]}" -lpthread
}

# build <dir> <CMake CUDA architectures> <nvcc arch flags for the no-CMake build...>
build() {
  local dir=$1 archs=$2
  shift 2
  if ! command -v cmake >/dev/null 2>&1; then
    build_without_cmake "$dir" "$@"
    return
  fi
  local gen=()
  command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
  cmake -S . -B "$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DSPLASH_CUDA=1 -DSPLASH_HIP=0 \
    -DCMAKE_CUDA_ARCHITECTURES="$archs" &&
    cmake --build "$dir" --target splash_gpu_tests -j "$JOBS"
}

step "build: sm_$ARCH into build-gpu/$(skipped ptx || echo ', and compute_80 PTX only into build-gpu-ptx/, at the same time')"
build build-gpu "$ARCH" -arch="sm_$ARCH" > "$RESULTS/build.log" 2>&1 &
main_build=$!
if ! skipped ptx; then
  build build-gpu-ptx 80-virtual -gencode=arch=compute_80,code=compute_80 > "$RESULTS/build-ptx.log" 2>&1 &
  ptx_build=$!
fi
if ! wait "$main_build"; then
  grep -E 'error|warning' "$RESULTS/build.log" | head -40
  tail -20 "$RESULTS/build.log"
  echo "gpu-check: build failed"
  exit 2
fi
echo "built build-gpu/splash_gpu_tests"
if ! skipped ptx; then
  if wait "$ptx_build"; then
    echo "built build-gpu-ptx/splash_gpu_tests (PTX only)"
  else
    grep -E 'error' "$RESULTS/build-ptx.log" | head -20
    echo "gpu-check: the PTX-only build failed"
    status=1
    SKIP="$SKIP,ptx,"
  fi
fi

NO_BWD=()
skipped backward && NO_BWD=(--no-backward)

step 'correctness: GPU forward and backward vs the CPU kernels, backward determinism'
CHECK_ARGS=(--check "${NO_BWD[@]}")
[ "$QUICK" = 1 ] && CHECK_ARGS+=(--quick)
build-gpu/splash_gpu_tests "${CHECK_ARGS[@]}" --json "$RESULTS/check.json" 2>&1 | tee "$RESULTS/check.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

# ---- the quick grid under the sanitizers and on the PTX build, side by side ----------------------------
# Each run gets the time the budget leaves for this step (minus a reserve for the later steps), and
# one that runs out of it is reported as cut short.
if ! skipped sanitize || ! skipped ptx; then
  step 'quick grid: compute-sanitizer memcheck, racecheck, synccheck; PTX-only (compute_80 JIT) build'
  reserve=$([ "$QUICK" = 1 ] && echo 0 || echo 60)
  limit=$(( $(left) - reserve ))
  if [ "$limit" -lt 30 ]; then
    echo "gpu-check: sanitizers and PTX run left out: $(left)s of the ${BUDGET}s budget left"
    cut_short+=("sanitizers and PTX run (left out)")
  else
    names=()
    pids=()
    run_bg() {  # run_bg <name> <command...>: in the background, output to $RESULTS/<name>.log
      local name=$1
      shift
      timeout "$limit" "$@" > "$RESULTS/$name.log" 2>&1 &
      names+=("$name")
      pids+=($!)
    }
    QUICK_ARGS=(--check --quick "${NO_BWD[@]}")
    if ! skipped sanitize; then
      if command -v compute-sanitizer >/dev/null 2>&1; then
        for tool in memcheck racecheck synccheck; do
          run_bg "sanitizer-$tool" compute-sanitizer --tool "$tool" --error-exitcode 86 --print-limit 20 \
            build-gpu/splash_gpu_tests "${QUICK_ARGS[@]}"
        done
      else
        echo "gpu-check: no compute-sanitizer on PATH: sanitizer runs left out"
        cut_short+=("sanitizers (no compute-sanitizer)")
      fi
    fi
    if ! skipped ptx; then
      # Lazy loading JIT-compiles each kernel at its first launch; the cache keeps a rerun fast.
      run_bg ptx-quick env CUDA_CACHE_PATH="$ROOT/build-gpu-ptx/jit-cache" CUDA_CACHE_MAXSIZE=4294967296 \
        CUDA_FORCE_PTX_JIT=1 build-gpu-ptx/splash_gpu_tests "${QUICK_ARGS[@]}"
    fi
    for i in "${!pids[@]}"; do
      wait "${pids[$i]}"
      rc=$?
      name=${names[$i]}
      if [ "$rc" -eq 124 ]; then
        echo "$name: cut short by the budget (${limit}s); $(grep -cE ' PASS' "$RESULTS/$name.log") cases had passed"
        cut_short+=("$name (timed out)")
      elif [ "$rc" -ne 0 ]; then
        echo "$name: FAILED (exit $rc)"
        grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|Invalid|out of bounds|[Hh]azard|Barrier error|FAIL' "$RESULTS/$name.log" | head -20
        status=1
      else
        summary=$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$RESULTS/$name.log" | tail -1)
        echo "$name: ok${summary:+ ($summary)}; $(grep -E 'backward correctness|^[0-9]+ passed' "$RESULTS/$name.log" | tr '\n' ' ')"
      fi
    done
  fi
fi

if ! skipped bench && fits timing 60; then
  step 'timing: splash forward, and forward + backward (split, fused)'
  build-gpu/splash_gpu_tests --bench "${NO_BWD[@]}" --json "$RESULTS/splash-bench.json" 2>&1 | tee "$RESULTS/bench.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi

if ! skipped flex && fits peers 120; then
  step 'peers: FlexAttention (compiled) and SDPA flash'
  PEER_ARGS=(--json "$RESULTS/peers.json")
  skipped backward && PEER_ARGS+=(--no-backward)
  [ -f "$RESULTS/splash-bench.json" ] && PEER_ARGS+=(--ours "$RESULTS/splash-bench.json")
  PYTHONUNBUFFERED=1 timeout "$(left)" python3 bench/gpu/flex_peer.py "${PEER_ARGS[@]}" 2>&1 | tee "$RESULTS/peers.log"
  [ "${PIPESTATUS[0]}" -eq 124 ] && cut_short+=("peers (timed out)")
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
[ "${#cut_short[@]}" -gt 0 ] && printf 'cut short by the %ss budget or missing tools: %s\n' "$BUDGET" "$(IFS=';'; echo "${cut_short[*]}")"
exit $status
