// Entry points of the CPU kernels (native/cpu). The addon calls them off the event loop; the GPU test
// harness (native/tests) links them as its oracle. They trust the params: every size and pointer was
// checked by the caller against the real buffers.
#pragma once

#include <atomic>
#include <exception>

#include "splash/params.h"

namespace splash {
namespace cpu {

// out (and lse when p.save_lse) from q, k, v over the forward schedule p.fwd.
void forward(const AttentionParams& p);

// dq, dk, dv from q, k, v, out, lse, dout: split (p.dq_sched then p.dkv_sched) or fused (p.fused_bwd).
void backward(const AttentionParams& p);

// How (never what) the kernels compute. forward / backward take these from the environment; results
// are bitwise the same for every thread count and with or without segment skipping and tile trimming.
struct RunOptions {
  int32_t threads;       // worker threads, 0 = every CPU this process may use (p.num_threads > 0 wins)
  int32_t max_isa;       // highest instruction set: 0 portable C++, 1 AVX2 or NEON, 2 AVX-512 (capped by the CPU)
  int32_t bf16_dots;     // 1: all-bf16 forwards use bf16 dot products (avx512_bf16, BFDOT) where the CPU has them
  int32_t segment_skip;  // 1: skip block pairs whose segment ids cannot meet
  int32_t trim_tiles;    // 1: partial tiles skip their sub-blocks without an allowed pair (cpu/tile_spans.h)
  int32_t pack_heads;    // 1: forwards with short q-blocks run the query heads of a kv head in one task
  // When set and it turns true, the call stops at its next block row (task) by throwing Cancelled;
  // the outputs are then partly written and must be discarded.
  const std::atomic<bool>* cancel;
};

struct Cancelled : std::exception {
  const char* what() const noexcept override { return "the call was cancelled"; }
};

// Throws Cancelled when options.cancel has turned true. Kernels call it at the start of every task.
inline void stop_if_cancelled(const RunOptions& options) {
  if (options.cancel != nullptr && options.cancel->load(std::memory_order_relaxed)) throw Cancelled();
}

// From SPLASH_NUM_THREADS, SPLASH_CPU_ISA (generic | avx2 | avx512 on x86-64, generic | neon on AArch64),
// SPLASH_CPU_BF16=0, SPLASH_SEGMENT_SKIP=0, SPLASH_TRIM_TILES=0 and SPLASH_PACK_HEADS=0. getenv races with a concurrent
// setenv, so a host that changes its environment at run time (Node) reads this on the thread that owns
// the environment and passes it along.
RunOptions options_from_environment();

void forward_with(const AttentionParams& p, const RunOptions& options);

// How many query heads of one kv head each task of that forward runs side by side (1: one head per
// task). Heads share a task when q-blocks are short, so that K and V are read once for all of them.
int64_t forward_heads_per_task(const AttentionParams& p, const RunOptions& options);

// The name of the kernel table ("avx512_bf16", "avx512", "avx2", "neon_bf16", "neon" or "generic") that
// calls with these options run on this CPU.
const char* kernel_isa(const RunOptions& options);
void backward_with(const AttentionParams& p, const RunOptions& options);

}  // namespace cpu
}  // namespace splash
