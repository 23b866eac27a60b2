// One-lane "vectors" in portable C++: the fallback for CPUs (or compilers) without AVX2. The compiler
// may still vectorise the loops built on it for the baseline instruction set.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "half.h"

namespace splash {
namespace cpu {
namespace {

struct Scalar {
  using V = float;
  using M = bool;
  static constexpr int W = 1;
  static constexpr int MR = 4;
  static constexpr int NV = 4;

  static V zero() { return 0.0f; }
  static V set1(float x) { return x; }
  static V load(const float* p) { return *p; }
  static void store(float* p, V v) { *p = v; }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V div(V a, V b) { return a / b; }
  static V fma(V a, V b, V c) { return a * b + c; }
  static V max(V a, V b) { return a > b ? a : b; }
  static V min(V a, V b) { return a < b ? a : b; }
  static V abs(V a) { return std::fabs(a); }
  static V copysign(V mag, V sign) { return std::copysign(mag, sign); }
  static V round(V a) { return std::nearbyint(a); }
  static V scale_pow2(V p, V n) {
    return bits_float(float_bits(p) + (static_cast<uint32_t>(static_cast<int32_t>(n)) << 23));
  }
  static M lt(V a, V b) { return a < b; }
  static M eq(V a, V b) { return a == b; }
  static V select(M m, V if_true, V if_false) { return m ? if_true : if_false; }
  static M mask_bytes(const uint8_t* p) { return *p != 0; }
  static V load_bf16(const uint16_t* p) { return bits_float(static_cast<uint32_t>(*p) << 16); }
  static void store_bf16(uint16_t* p, V v) { *p = f32_to_bf16_bits(v); }
  static V load_f16(const uint16_t* p) { return f16_bits_to_f32(*p); }
  static void store_f16(uint16_t* p, V v) { *p = f32_to_f16_bits(v); }
  static float reduce_add(V v) { return v; }
};

}  // namespace
}  // namespace cpu
}  // namespace splash
