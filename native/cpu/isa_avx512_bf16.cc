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

#include "half.h"
#include "simd_avx512.h"

namespace splash {
namespace cpu {
namespace {

constexpr int kMR = 8;  // 8 x 3 accumulators, as in the f32 kernel
constexpr int kNV = 3;

inline __m512bh as_bf16_pairs(__m512i x) { return (__m512bh)x; }

template <int MR, int NV, bool ATrans>
__attribute__((noinline)) void micro_bf16(int64_t kp, const uint32_t* a, int64_t lda, const uint32_t* b, int64_t ldb,
                                          float* c, int64_t ldc, bool accumulate) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = accumulate ? _mm512_loadu_ps(c + i * ldc + v * 16) : _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; ++p) {
    const uint32_t* bp = b + p * ldb;
    __m512bh bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = as_bf16_pairs(_mm512_loadu_si512(bp + v * 16));
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const uint32_t word = ATrans ? a[p * lda + i] : a[i * lda + p];
      const __m512bh av = as_bf16_pairs(_mm512_set1_epi32(static_cast<int>(word)));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], av, bv[v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(c + i * ldc + v * 16, acc[i][v]);
}

template <bool ATrans, int MR, int NV = kNV>
inline void micro_bf16_cols(int nv, int64_t kp, const uint32_t* a, int64_t lda, const uint32_t* b, int64_t ldb,
                            float* c, int64_t ldc, bool accumulate) {
  if (nv == NV) return micro_bf16<MR, NV, ATrans>(kp, a, lda, b, ldb, c, ldc, accumulate);
  if constexpr (NV > 1) micro_bf16_cols<ATrans, MR, NV - 1>(nv, kp, a, lda, b, ldb, c, ldc, accumulate);
}

template <bool ATrans, int MR = kMR>
inline void micro_bf16_any(int mr, int nv, int64_t kp, const uint32_t* a, int64_t lda, const uint32_t* b, int64_t ldb,
                           float* c, int64_t ldc, bool accumulate) {
  if (mr == MR) return micro_bf16_cols<ATrans, MR>(nv, kp, a, lda, b, ldb, c, ldc, accumulate);
  if constexpr (MR > 1) micro_bf16_any<ATrans, MR - 1>(mr, nv, kp, a, lda, b, ldb, c, ldc, accumulate);
}

template <bool ATrans>
void gemm_bf16(int64_t m, int64_t n, int64_t kp, const uint32_t* a, int64_t lda, const uint32_t* b, int64_t ldb,
               float* c, int64_t ldc, bool accumulate) {
  for (int64_t j = 0; j < n; j += kNV * 16) {
    const int nv = static_cast<int>((n - j) / 16 < kNV ? (n - j) / 16 : kNV);
    for (int64_t i = 0; i < m; i += kMR) {
      const int mr = static_cast<int>(m - i < kMR ? m - i : kMR);
      const uint32_t* ai = ATrans ? a + i : a + i * lda;
      micro_bf16_any<ATrans>(mr, nv, kp, ai, lda, b + j, ldb, c + i * ldc + j, ldc, accumulate);
    }
  }
}

// Word j of pair row p: bf16(src[2p][j]) in the low half, bf16(src[2p+1][j]) (or 0) in the high half.
void pack_pairs_f32(const float* src, int64_t ld, int64_t rows, int64_t cols, uint32_t* dst, int64_t dst_ld) {
  for (int64_t r = 0; r < rows; r += 2) {
    const float* lo = src + r * ld;
    const float* hi = r + 1 < rows ? lo + ld : nullptr;
    uint32_t* out = dst + (r / 2) * dst_ld;
    int64_t j = 0;
    for (; j + 16 <= cols; j += 16) {
      const __m512i a = Avx512::bf16_bits(_mm512_loadu_ps(lo + j));
      const __m512i b = hi ? _mm512_slli_epi32(Avx512::bf16_bits(_mm512_loadu_ps(hi + j)), 16) : _mm512_setzero_si512();
      _mm512_storeu_si512(out + j, _mm512_or_si512(a, b));
    }
    for (; j < cols; ++j) {
      const uint32_t a = f32_to_bf16_bits(lo[j]);
      const uint32_t b = hi ? f32_to_bf16_bits(hi[j]) : 0u;
      out[j] = a | (b << 16);
    }
    for (; j < dst_ld; ++j) out[j] = 0;
  }
}

// 16 bf16 values zero-extended to 32-bit lanes.
inline __m512i widen(const uint16_t* p) {
  return _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

void pack_pairs_bf16(const uint16_t* src, int64_t ld, int64_t rows, int64_t cols, uint32_t* dst, int64_t dst_ld) {
  for (int64_t r = 0; r < rows; r += 2) {
    const uint16_t* lo = src + r * ld;
    const uint16_t* hi = r + 1 < rows ? lo + ld : nullptr;
    uint32_t* out = dst + (r / 2) * dst_ld;
    int64_t j = 0;
    for (; j + 16 <= cols; j += 16) {
      const __m512i a = widen(lo + j);
      const __m512i b = hi ? _mm512_slli_epi32(widen(hi + j), 16) : _mm512_setzero_si512();
      _mm512_storeu_si512(out + j, _mm512_or_si512(a, b));
    }
    for (; j < cols; ++j) out[j] = static_cast<uint32_t>(lo[j]) | (hi ? static_cast<uint32_t>(hi[j]) << 16 : 0u);
    for (; j < dst_ld; ++j) out[j] = 0;
  }
}

}  // namespace

const TileOps* avx512_bf16_tile_ops() {
  static const TileOps ops = [] {
    TileOps t = *avx512_tile_ops();
    t.name = "avx512_bf16";
    t.gemm_bf16_nn = gemm_bf16<false>;
    t.gemm_bf16_tn = gemm_bf16<true>;
    t.pack_pairs_f32 = pack_pairs_f32;
    t.pack_pairs_bf16 = pack_pairs_bf16;
    return t;
  }();
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
