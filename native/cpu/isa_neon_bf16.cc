// bf16 matrix products with the AArch64 BFDOT instruction (FEAT_BF16: two bf16 products summed into
// each f32 lane, twice the f32 FMA rate), plus the packing into bf16 pairs it needs. Only this file is
// built for FEAT_BF16; tile_ops() uses its table only when the kernel reports HWCAP2_BF16.
//
// BFDOT's arithmetic is the architecture's, not IEEE fma: bf16 subnormal inputs count as zero and the
// pair sum is rounded once before it is added (round to odd on CPUs without FEAT_EBF16). The errors
// stay within bf16's own, as the tests against the reference check.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "tile_ops.h"

// GCC 10 brought the bf16 intrinsics and lets one file enable them; clang gets them only when the
// whole build targets bf16 (e.g. -march=armv8.6-a), otherwise the table is null.
#if defined(__aarch64__) && \
    ((defined(__clang__) && defined(__ARM_FEATURE_BF16_VECTOR_ARITHMETIC)) || \
     (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 10))

#include "half.h"
#include "simd_neon.h"

// Everything below may use FEAT_BF16 (and the Armv8.2-A base its intrinsics are declared for).
#if !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+bf16")
#endif

namespace splash {
namespace cpu {
namespace {

constexpr int kMR = 6;  // 6 x 4 accumulators, as in the f32 kernel
constexpr int kNV = 4;

inline bfloat16x8_t as_bf16_pairs(uint32x4_t x) { return vreinterpretq_bf16_u32(x); }

template <int MR, int NV, bool ATrans>
__attribute__((noinline)) void micro_bf16(int64_t kp, const uint32_t* a, int64_t lda, const uint32_t* b, int64_t ldb,
                                          float* c, int64_t ldc, bool accumulate) {
  float32x4_t acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = accumulate ? vld1q_f32(c + i * ldc + v * 4) : vdupq_n_f32(0.0f);
  for (int64_t p = 0; p < kp; ++p) {
    const uint32_t* bp = b + p * ldb;
    bfloat16x8_t bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = as_bf16_pairs(vld1q_u32(bp + v * 4));
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      // One pair of A broadcast to every lane: each lane adds it dotted with its own column's pair.
      const bfloat16x8_t av = as_bf16_pairs(vld1q_dup_u32(ATrans ? a + p * lda + i : a + i * lda + p));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = vbfdotq_f32(acc[i][v], av, bv[v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) vst1q_f32(c + i * ldc + v * 4, acc[i][v]);
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
  for (int64_t j = 0; j < n; j += kNV * 4) {
    const int nv = static_cast<int>((n - j) / 4 < kNV ? (n - j) / 4 : kNV);
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
    for (; j + 4 <= cols; j += 4) {
      const uint32x4_t a = Neon::bf16_bits(vld1q_f32(lo + j));
      const uint32x4_t b = hi ? vshlq_n_u32(Neon::bf16_bits(vld1q_f32(hi + j)), 16) : vdupq_n_u32(0);
      vst1q_u32(out + j, vorrq_u32(a, b));
    }
    for (; j < cols; ++j) {
      const uint32_t a = f32_to_bf16_bits(lo[j]);
      const uint32_t b = hi ? f32_to_bf16_bits(hi[j]) : 0u;
      out[j] = a | (b << 16);
    }
    for (; j < dst_ld; ++j) out[j] = 0;
  }
}

void pack_pairs_bf16(const uint16_t* src, int64_t ld, int64_t rows, int64_t cols, uint32_t* dst, int64_t dst_ld) {
  for (int64_t r = 0; r < rows; r += 2) {
    const uint16_t* lo = src + r * ld;
    const uint16_t* hi = r + 1 < rows ? lo + ld : nullptr;
    uint32_t* out = dst + (r / 2) * dst_ld;
    int64_t j = 0;
    // Interleaving the two rows' halves gives the little-endian words lo | hi << 16 directly.
    for (; j + 8 <= cols; j += 8) {
      const uint16x8_t h = hi ? vld1q_u16(hi + j) : vdupq_n_u16(0);
      const uint16x8x2_t words = vzipq_u16(vld1q_u16(lo + j), h);
      vst1q_u32(out + j, vreinterpretq_u32_u16(words.val[0]));
      vst1q_u32(out + j + 4, vreinterpretq_u32_u16(words.val[1]));
    }
    for (; j < cols; ++j) out[j] = static_cast<uint32_t>(lo[j]) | (hi ? static_cast<uint32_t>(hi[j]) << 16 : 0u);
    for (; j < dst_ld; ++j) out[j] = 0;
  }
}

}  // namespace

const TileOps* neon_bf16_tile_ops() {
  static const TileOps ops = [] {
    TileOps t = *neon_tile_ops();
    t.name = "neon_bf16";
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

#if !defined(__clang__)
#pragma GCC pop_options
#endif

#else  // not AArch64, or no compiler support for FEAT_BF16

namespace splash {
namespace cpu {
const TileOps* neon_bf16_tile_ops() { return nullptr; }
}  // namespace cpu
}  // namespace splash

#endif
