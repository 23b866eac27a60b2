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

#include "bf16_kernels.h"

namespace splash {
namespace cpu {
namespace {

struct NeonDot {
  using Acc = float32x4_t;
  using Pairs = bfloat16x8_t;
  static constexpr int kLanes = 4;
  static constexpr int kMR = 6;  // 6 x 4 accumulators, as in the f32 kernel
  static constexpr int kNV = 4;
  static Acc zero() { return vdupq_n_f32(0.0f); }
  static Acc load(const float* p) { return vld1q_f32(p); }
  static void store(float* p, Acc x) { vst1q_f32(p, x); }
  static Pairs pairs(const uint32_t* p) { return vreinterpretq_bf16_u32(vld1q_u32(p)); }
  static Pairs broadcast(const uint32_t* p) { return vreinterpretq_bf16_u32(vld1q_dup_u32(p)); }
  static Acc dot(Acc acc, Pairs a, Pairs b) { return vbfdotq_f32(acc, a, b); }
  static int64_t pack_f32(const float* lo, const float* hi, uint32_t* out, int64_t cols) {
    int64_t j = 0;
    for (; j + 4 <= cols; j += 4) {
      const uint32x4_t a = Neon::bf16_bits(vld1q_f32(lo + j));
      const uint32x4_t b = hi ? vshlq_n_u32(Neon::bf16_bits(vld1q_f32(hi + j)), 16) : vdupq_n_u32(0);
      vst1q_u32(out + j, vorrq_u32(a, b));
    }
    return j;
  }
  static int64_t pack_bf16(const uint16_t* lo, const uint16_t* hi, uint32_t* out, int64_t cols) {
    int64_t j = 0;
    // Interleaving the two rows' halves gives the little-endian words lo | hi << 16 directly.
    for (; j + 8 <= cols; j += 8) {
      const uint16x8_t h = hi ? vld1q_u16(hi + j) : vdupq_n_u16(0);
      const uint16x8x2_t words = vzipq_u16(vld1q_u16(lo + j), h);
      vst1q_u32(out + j, vreinterpretq_u32_u16(words.val[0]));
      vst1q_u32(out + j + 4, vreinterpretq_u32_u16(words.val[1]));
    }
    return j;
  }
};

}  // namespace

const TileOps* neon_bf16_tile_ops() {
  static const TileOps ops = bf16_kernels::with_bf16_dots<NeonDot>(*neon_tile_ops(), "neon_bf16");
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
