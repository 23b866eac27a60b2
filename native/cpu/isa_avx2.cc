// The tile operations compiled for AVX2 + FMA + F16C (Haswell, Zen and later). Only this file is built
// for those instructions; tile_ops() hands its table out only when the CPU reports all three. The
// table is made on first use (not at load time), so no AVX2 code runs on a CPU without it.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "tile_ops.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

// Standard headers above stay compiled for the baseline; everything below is AVX2 code.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

#include "simd_avx2.h"
#include "tile_kernels.h"

namespace splash {
namespace cpu {

const TileOps* avx2_tile_ops() {
  static const TileOps ops = make_tile_ops<Avx2>("avx2");
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
const TileOps* avx2_tile_ops() { return nullptr; }
}  // namespace cpu
}  // namespace splash

#endif
