// Element types of the GPU kernels: f32, bf16 and f16 storage with f32 arithmetic. bf16 is converted
// by bit operations (identical on CUDA and HIP: round to nearest even, NaN kept quiet); f16 through the
// runtime's conversion intrinsics.
#pragma once

#include "compat.h"

#if defined(SPLASH_GPU_EMULATE)
// native/tests/emulate.h provides the f16 conversions
#elif defined(SPLASH_GPU_HIP)
#include <hip/hip_fp16.h>
#else
#include <cuda_fp16.h>
#endif

#include <cstdint>

#include "splash/params.h"

namespace splash {
namespace gpu {

struct F32 {
  using Storage = float;
  static constexpr DType kDType = DType::F32;
};
struct BF16 {
  using Storage = uint16_t;
  static constexpr DType kDType = DType::BF16;
};
struct F16 {
  using Storage = uint16_t;
  static constexpr DType kDType = DType::F16;
};

__device__ __forceinline__ float bf16_bits_to_float(uint32_t bits) { return __uint_as_float(bits << 16); }

__device__ __forceinline__ uint32_t float_to_bf16_bits(float f) {
  const uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return ((u >> 16) | 0x40u) & 0xffffu;  // quiet NaN
  return ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16) & 0xffffu;
}

__device__ __forceinline__ float f16_bits_to_float(uint32_t bits) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
}

__device__ __forceinline__ uint32_t float_to_f16_bits(float f) {
  return static_cast<uint32_t>(__half_as_ushort(__float2half_rn(f)));
}

template <class T>
__device__ __forceinline__ float bits_to_float(uint32_t bits);
template <>
__device__ __forceinline__ float bits_to_float<BF16>(uint32_t bits) { return bf16_bits_to_float(bits); }
template <>
__device__ __forceinline__ float bits_to_float<F16>(uint32_t bits) { return f16_bits_to_float(bits); }

template <class T>
__device__ __forceinline__ uint32_t float_to_bits(float f);
template <>
__device__ __forceinline__ uint32_t float_to_bits<BF16>(float f) { return float_to_bf16_bits(f); }
template <>
__device__ __forceinline__ uint32_t float_to_bits<F16>(float f) { return float_to_f16_bits(f); }

// Two floats as one 32-bit word of two 16-bit values, `lo` in the low half (mma operand order).
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  return float_to_bits<T>(lo) | (float_to_bits<T>(hi) << 16);
}

// Four consecutive elements (16-byte aligned for f32, 8-byte aligned for 16-bit types) as floats.
template <class T>
__device__ __forceinline__ float4 load4(const void* base, int64_t index) {
  if constexpr (T::kDType == DType::F32) {
    return *reinterpret_cast<const float4*>(static_cast<const float*>(base) + index);
  } else {
    const uint2 u = *reinterpret_cast<const uint2*>(static_cast<const uint16_t*>(base) + index);
    return make_float4(bits_to_float<T>(u.x & 0xffffu), bits_to_float<T>(u.x >> 16), bits_to_float<T>(u.y & 0xffffu),
                       bits_to_float<T>(u.y >> 16));
  }
}

template <class T>
__device__ __forceinline__ void store4(void* base, int64_t index, float4 v) {
  if constexpr (T::kDType == DType::F32) {
    *reinterpret_cast<float4*>(static_cast<float*>(base) + index) = v;
  } else {
    uint2 u;
    u.x = pack2<T>(v.x, v.y);
    u.y = pack2<T>(v.z, v.w);
    *reinterpret_cast<uint2*>(static_cast<uint16_t*>(base) + index) = u;
  }
}

}  // namespace gpu
}  // namespace splash
