// The tile operations compiled for AVX-512 F, BW and VL (Skylake-X, Zen 4 and later). Only this file
// is built for those instructions; tile_ops() hands its table out only when the CPU reports them all.
// The table is made on first use (not at load time), so no AVX-512 code runs on a CPU without it.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "tile_ops.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

// Standard headers above stay compiled for the baseline; everything below is AVX-512 code.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))), apply_to = function)
#else
// GCC 12 reports its own _mm512_undefined_*() placeholders inside AVX-512 intrinsics as
// uninitialised (a known false positive); nothing of ours is affected.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")
#endif

#include "simd_avx512.h"
#include "tile_kernels.h"

namespace splash {
namespace cpu {

const TileOps* avx512_tile_ops() {
  static const TileOps ops = make_tile_ops<Avx512>("avx512");
  return &ops;
}

}  // namespace cpu
}  // namespace splash

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else  // not x86-64 with a GCC-compatible compiler

namespace splash {
namespace cpu {
const TileOps* avx512_tile_ops() { return nullptr; }
}  // namespace cpu
}  // namespace splash

#endif
