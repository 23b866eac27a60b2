// One GPU source for CUDA and HIP. Every .cu file under native/gpu/ includes this header and uses the
// gpu* names below; nvcc compiles it as CUDA, `hipcc -x hip` (HIP_PLATFORM=amd) as HIP. With
// SPLASH_GPU_EMULATE (tests only) the device code compiles as host C++ against native/tests/emulate.h instead, with
// CUDA's warp semantics and no runtime API.
#pragma once

#if defined(SPLASH_GPU_EMULATE)
#define SPLASH_GPU_CUDA 1
#include "../tests/emulate.h"  // test-only; not part of the package
#elif defined(__HIP_PLATFORM_AMD__) || defined(__HIPCC__)
#define SPLASH_GPU_HIP 1
#include <hip/hip_runtime.h>
#else
#define SPLASH_GPU_CUDA 1
#include <cuda_runtime.h>
#endif

#include <cstdint>
#include <string>

namespace splash {
namespace gpu {

#ifdef SPLASH_GPU_HIP

using gpuError_t = hipError_t;
using gpuStream_t = hipStream_t;
using gpuEvent_t = hipEvent_t;
using gpuDeviceProp = hipDeviceProp_t;
constexpr gpuError_t gpuSuccess = hipSuccess;
constexpr gpuError_t gpuErrorInvalidValue = hipErrorInvalidValue;
constexpr const char* kRuntimeName = "HIP";
constexpr const char* kApiPrefix = "hip";  // for messages: hipGetDeviceCount, ...

// The kernels are written for the 64-wide wavefronts of the CDNA targets (gfx90a, gfx942, gfx950).
// launch.cu checks each device's warpSize when it is first used and refuses any other width (a wave32
// RDNA GPU built for through SPLASH_HIP_ARCHS); the compile-time wavefront-size macro is deprecated
// since ROCm 6.4.
constexpr int kWarpSize = 64;
using LaneMask = uint64_t;

#elif defined(SPLASH_GPU_EMULATE)

constexpr int kWarpSize = 32;
using LaneMask = uint32_t;

#else  // CUDA

using gpuError_t = cudaError_t;
using gpuStream_t = cudaStream_t;
using gpuEvent_t = cudaEvent_t;
using gpuDeviceProp = cudaDeviceProp;
constexpr gpuError_t gpuSuccess = cudaSuccess;
constexpr gpuError_t gpuErrorInvalidValue = cudaErrorInvalidValue;
constexpr const char* kRuntimeName = "CUDA";
constexpr const char* kApiPrefix = "cuda";

constexpr int kWarpSize = 32;
using LaneMask = uint32_t;

#endif

constexpr LaneMask kFullLaneMask = ~LaneMask{0};

}  // namespace gpu
}  // namespace splash

// Runtime API aliases. Macros rather than wrappers, because several runtime entry points are
// overloaded or templated (cudaMalloc<T>) or are themselves macros (cudaGetDeviceProperties).
#if defined(SPLASH_GPU_EMULATE)
// no runtime: the emulation only runs kernels (emulate.h)
#elif defined(SPLASH_GPU_HIP)
#define gpuGetDeviceCount hipGetDeviceCount
#define gpuGetDeviceProperties hipGetDeviceProperties
#define gpuGetErrorName hipGetErrorName
#define gpuGetErrorString hipGetErrorString
#define gpuGetLastError hipGetLastError
#define gpuRuntimeGetVersion hipRuntimeGetVersion
#define gpuDriverGetVersion hipDriverGetVersion
#define gpuSetDevice hipSetDevice
#define gpuGetDevice hipGetDevice
#define gpuMalloc hipMalloc
#define gpuFree hipFree
#define gpuMallocAsync hipMallocAsync
#define gpuFreeAsync hipFreeAsync
#define gpuMemcpy hipMemcpy
#define gpuMemcpyAsync hipMemcpyAsync
#define gpuMemset hipMemset
#define gpuMemsetAsync hipMemsetAsync
#define gpuMemcpyHostToDevice hipMemcpyHostToDevice
#define gpuMemcpyDeviceToHost hipMemcpyDeviceToHost
#define gpuMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define gpuStreamCreate hipStreamCreate
#define gpuStreamCreateWithFlags hipStreamCreateWithFlags
#define gpuStreamNonBlocking hipStreamNonBlocking
#define gpuDeviceGetAttribute hipDeviceGetAttribute
#define gpuDevAttrMemoryPoolsSupported hipDeviceAttributeMemoryPoolsSupported
#define gpuMemGetInfo hipMemGetInfo
#define gpuStreamDestroy hipStreamDestroy
#define gpuStreamSynchronize hipStreamSynchronize
#define gpuDeviceSynchronize hipDeviceSynchronize
#define gpuEventCreate hipEventCreate
#define gpuEventDestroy hipEventDestroy
#define gpuEventRecord hipEventRecord
#define gpuEventSynchronize hipEventSynchronize
#define gpuEventElapsedTime hipEventElapsedTime
#define gpuFuncSetAttribute hipFuncSetAttribute
#define gpuFuncAttributeMaxDynamicSharedMemorySize hipFuncAttributeMaxDynamicSharedMemorySize
#else
#define gpuGetDeviceCount cudaGetDeviceCount
#define gpuGetDeviceProperties cudaGetDeviceProperties
#define gpuGetErrorName cudaGetErrorName
#define gpuGetErrorString cudaGetErrorString
#define gpuGetLastError cudaGetLastError
#define gpuRuntimeGetVersion cudaRuntimeGetVersion
#define gpuDriverGetVersion cudaDriverGetVersion
#define gpuSetDevice cudaSetDevice
#define gpuGetDevice cudaGetDevice
#define gpuMalloc cudaMalloc
#define gpuFree cudaFree
#define gpuMallocAsync cudaMallocAsync
#define gpuFreeAsync cudaFreeAsync
#define gpuMemcpy cudaMemcpy
#define gpuMemcpyAsync cudaMemcpyAsync
#define gpuMemset cudaMemset
#define gpuMemsetAsync cudaMemsetAsync
#define gpuMemcpyHostToDevice cudaMemcpyHostToDevice
#define gpuMemcpyDeviceToHost cudaMemcpyDeviceToHost
#define gpuMemcpyDeviceToDevice cudaMemcpyDeviceToDevice
#define gpuStreamCreate cudaStreamCreate
#define gpuStreamCreateWithFlags cudaStreamCreateWithFlags
#define gpuStreamNonBlocking cudaStreamNonBlocking
#define gpuDeviceGetAttribute cudaDeviceGetAttribute
#define gpuDevAttrMemoryPoolsSupported cudaDevAttrMemoryPoolsSupported
#define gpuMemGetInfo cudaMemGetInfo
#define gpuStreamDestroy cudaStreamDestroy
#define gpuStreamSynchronize cudaStreamSynchronize
#define gpuDeviceSynchronize cudaDeviceSynchronize
#define gpuEventCreate cudaEventCreate
#define gpuEventDestroy cudaEventDestroy
#define gpuEventRecord cudaEventRecord
#define gpuEventSynchronize cudaEventSynchronize
#define gpuEventElapsedTime cudaEventElapsedTime
#define gpuFuncSetAttribute cudaFuncSetAttribute
#define gpuFuncAttributeMaxDynamicSharedMemorySize cudaFuncAttributeMaxDynamicSharedMemorySize
#endif

namespace splash {
namespace gpu {

#ifndef SPLASH_GPU_EMULATE
// "<api><call> failed: <errorName>: <errorString>" — the runtime's own words, for a JS Error
// message; `call` is the runtime function without its cuda/hip prefix, e.g. "GetDeviceCount".
inline std::string error_message(const std::string& call, gpuError_t status) {
  std::string msg(kApiPrefix);
  msg += call;
  msg += " failed: ";
  const std::string name = gpuGetErrorName(status);
  const std::string text = gpuGetErrorString(status);
  msg += name;
  if (text != name) msg += ": " + text;  // HIP 5 often gives the name twice
  return msg;
}
#endif

#if defined(__CUDACC__) || defined(__HIPCC__) || defined(SPLASH_GPU_EMULATE)

// Butterfly exchange across the whole warp / wavefront (all lanes must take part).
template <typename T>
__device__ __forceinline__ T shfl_xor(T value, int lane_mask, int width = kWarpSize) {
#if defined(SPLASH_GPU_EMULATE)
  return emu::exchange(value, lane_mask, width);
#elif defined(SPLASH_GPU_HIP)
  return __shfl_xor(value, lane_mask, width);
#else
  return __shfl_xor_sync(kFullLaneMask, value, lane_mask, width);
#endif
}

#ifndef SPLASH_GPU_EMULATE
template <typename T>
__device__ __forceinline__ T shfl(T value, int src_lane, int width = kWarpSize) {
#ifdef SPLASH_GPU_HIP
  return __shfl(value, src_lane, width);
#else
  return __shfl_sync(kFullLaneMask, value, src_lane, width);
#endif
}
#endif

// Whether `pred` holds in any lane of the warp (all lanes must take part).
__device__ __forceinline__ bool warp_any(bool pred) {
#if defined(SPLASH_GPU_EMULATE)
  return emu::any_in_warp(pred);
#elif defined(SPLASH_GPU_HIP)
  return __any(pred) != 0;
#else
  return __any_sync(kFullLaneMask, pred) != 0;
#endif
}

// Reductions over `width` consecutive lanes (a power of two up to kWarpSize).
template <typename T>
__device__ __forceinline__ T warp_sum(T value, int width = kWarpSize) {
  for (int offset = width / 2; offset > 0; offset /= 2) value += shfl_xor(value, offset, width);
  return value;
}

template <typename T>
__device__ __forceinline__ T warp_max(T value, int width = kWarpSize) {
  for (int offset = width / 2; offset > 0; offset /= 2) {
    const T other = shfl_xor(value, offset, width);
    value = other > value ? other : value;
  }
  return value;
}

#endif  // device compilation

}  // namespace gpu
}  // namespace splash

// A kernel's dynamic shared memory as `type name[]`.
#if defined(SPLASH_GPU_EMULATE)
#define SPLASH_DYNAMIC_SMEM(type, name) type* name = reinterpret_cast<type*>(splash::gpu::emu::smem_base())
#else
#define SPLASH_DYNAMIC_SMEM(type, name) extern __shared__ type name[]
#endif
