// 4-lane f32 vectors on AArch64 Advanced SIMD (NEON). Included only by isa_neon*.cc on AArch64, where
// NEON is part of the baseline; see tile_kernels.h for the operations built on it.
#pragma once

#include <arm_neon.h>

#include <cstdint>
#include <cstring>

namespace splash {
namespace cpu {
namespace {

struct Neon {
  using V = float32x4_t;
  using M = uint32x4_t;  // all-ones lanes where true
  static constexpr int W = 4;
  // 6 x 4 accumulators + 4 loaded vectors + 1 broadcast fit the 32 q registers, and a 16-float panel
  // divides the usual head dims (64, 128) with no edge panel.
  static constexpr int MR = 6;
  static constexpr int NV = 4;

  static V zero() { return vdupq_n_f32(0.0f); }
  static V set1(float x) { return vdupq_n_f32(x); }
  static V load(const float* p) { return vld1q_f32(p); }
  static void store(float* p, V v) { vst1q_f32(p, v); }
  static V add(V a, V b) { return vaddq_f32(a, b); }
  static V sub(V a, V b) { return vsubq_f32(a, b); }
  static V mul(V a, V b) { return vmulq_f32(a, b); }
  static V div(V a, V b) { return vdivq_f32(a, b); }
  static V fma(V a, V b, V c) { return vfmaq_f32(c, a, b); }  // c + a·b, one rounding
  static V max(V a, V b) { return vmaxq_f32(a, b); }
  static V min(V a, V b) { return vminq_f32(a, b); }
  static V abs(V a) { return vabsq_f32(a); }
  static V copysign(V mag, V sign) { return vbslq_f32(vdupq_n_u32(0x80000000u), sign, mag); }
  static V round(V a) { return vrndnq_f32(a); }  // to nearest, ties to even, as the x86 paths
  // p · 2^n for integral n in [-126, 127] and p in [0.5, 2): add n to the exponent field.
  static V scale_pow2(V p, V n) {
    const int32x4_t e = vshlq_n_s32(vcvtq_s32_f32(n), 23);
    return vreinterpretq_f32_s32(vaddq_s32(vreinterpretq_s32_f32(p), e));
  }
  static M lt(V a, V b) { return vcltq_f32(a, b); }
  static M eq(V a, V b) { return vceqq_f32(a, b); }
  static V select(M m, V if_true, V if_false) { return vbslq_f32(m, if_true, if_false); }
  // Lanes whose byte in p[0, 4) is non-zero; reads exactly those 4 bytes.
  static M mask_bytes(const uint8_t* p) {
    uint32_t word;
    std::memcpy(&word, p, sizeof word);
    const uint8x8_t bytes = vreinterpret_u8_u32(vdup_n_u32(word));
    const uint32x4_t x = vmovl_u16(vget_low_u16(vmovl_u8(bytes)));
    return vtstq_u32(x, x);
  }

  static V load_bf16(const uint16_t* p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
  // Round to nearest even in integer arithmetic, bit-exact with half.h (and independent of FPCR);
  // NaN keeps its sign and top payload bits and stays quiet. The result is in the low 16 bits of each lane.
  static uint32x4_t bf16_bits(V v) {
    const uint32x4_t u = vreinterpretq_u32_f32(v);
    const uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    const uint32x4_t rounded = vshrq_n_u32(vaddq_u32(u, vaddq_u32(lsb, vdupq_n_u32(0x7fff))), 16);
    const uint32x4_t quiet = vorrq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(0x40));
    const uint32x4_t is_nan = vmvnq_u32(vceqq_f32(v, v));
    return vbslq_u32(is_nan, quiet, rounded);
  }
  static void store_bf16(uint16_t* p, V v) { vst1_u16(p, vmovn_u32(bf16_bits(v))); }
  // FCVTL / FCVTN: exact widening; narrowing rounds to nearest even (Linux leaves FPCR at its default),
  // with subnormals and quiet NaNs as half.h produces them.
  static V load_f16(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
  static void store_f16(uint16_t* p, V v) { vst1_u16(p, vreinterpret_u16_f16(vcvt_f16_f32(v))); }
  static float reduce_add(V v) { return vaddvq_f32(v); }
};

}  // namespace
}  // namespace cpu
}  // namespace splash
