// bf16 matrix products with the avx512_bf16 dot-product instruction (vdpbf16ps: two bf16 products
// summed into each f32 lane, twice the f32 FMA rate), plus the packing into bf16 pairs it needs.
// Only this file is built for avx512_bf16; tile_ops() uses its table only when the CPU has it.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "tile_ops.h"

#if defined(__x86_64__) && \
    ((defined(__clang__) && __clang_major__ >= 9) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 10))
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c"))), \
                             apply_to = function)
#else
// GCC 12 reports its own _mm512_undefined_*() placeholders inside AVX-512 intrinsics as
// uninitialised (a known false positive); nothing of ours is affected.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")
#endif

#include "bf16_kernels.h"
#include "simd_avx512.h"

namespace splash {
namespace cpu {
namespace {

// 16 bf16 values zero-extended to 32-bit lanes.
inline __m512i widen(const uint16_t* p) {
  return _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

struct Avx512Dot {
  using Acc = __m512;
  using Pairs = __m512bh;
  static constexpr int kLanes = 16;
  static constexpr int kMR = 8;  // 8 x 3 accumulators, as in the f32 kernel
  static constexpr int kNV = 3;
  static Acc zero() { return _mm512_setzero_ps(); }
  static Acc load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, Acc x) { _mm512_storeu_ps(p, x); }
  static Pairs pairs(const uint32_t* p) { return (__m512bh)_mm512_loadu_si512(p); }
  static Pairs broadcast(const uint32_t* p) { return (__m512bh)_mm512_set1_epi32(static_cast<int>(*p)); }
  static Acc dot(Acc acc, Pairs a, Pairs b) { return _mm512_dpbf16_ps(acc, a, b); }
  static int64_t pack_f32(const float* lo, const float* hi, uint32_t* out, int64_t cols) {
    int64_t j = 0;
    for (; j + 16 <= cols; j += 16) {
      const __m512i a = Avx512::bf16_bits(_mm512_loadu_ps(lo + j));
      const __m512i b = hi ? _mm512_slli_epi32(Avx512::bf16_bits(_mm512_loadu_ps(hi + j)), 16) : _mm512_setzero_si512();
      _mm512_storeu_si512(out + j, _mm512_or_si512(a, b));
    }
    return j;
  }
  static int64_t pack_bf16(const uint16_t* lo, const uint16_t* hi, uint32_t* out, int64_t cols) {
    int64_t j = 0;
    for (; j + 16 <= cols; j += 16) {
      const __m512i a = widen(lo + j);
      const __m512i b = hi ? _mm512_slli_epi32(widen(hi + j), 16) : _mm512_setzero_si512();
      _mm512_storeu_si512(out + j, _mm512_or_si512(a, b));
    }
    return j;
  }
};

}  // namespace

const TileOps* avx512_bf16_tile_ops() {
  static const TileOps ops = bf16_kernels::with_bf16_dots<Avx512Dot>(*avx512_tile_ops(), "avx512_bf16");
  return &ops;
}

}  // namespace cpu
}  // namespace splash

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else  // no compiler support for avx512_bf16

namespace splash {
namespace cpu {
const TileOps* avx512_bf16_tile_ops() { return nullptr; }
}  // namespace cpu
}  // namespace splash

#endif
