// Tensor-core forward kernel instantiations for head dims 192 and 256, bf16 and f16 (CUDA sm_80+; the
// device code is empty for older targets); see fwd_mma_sm80.cuh.
#include "kernels.h"

// HIP builds take mma_hip_stubs.cu instead.
#ifndef SPLASH_GPU_HIP

#include "fwd_mma_sm80.cuh"

namespace splash {
namespace gpu {

gpuError_t launch_fwd_mma_large(DType dtype, int head_dim, const FwdKernelParams& p, dim3 grid, gpuStream_t stream) {
  const bool bf16 = dtype == DType::BF16;
  if (dtype != DType::BF16 && dtype != DType::F16) return gpuErrorInvalidValue;
  switch (head_dim) {
    case 192: return bf16 ? launch_fwd_mma_t<BF16, 192>(p, grid, stream) : launch_fwd_mma_t<F16, 192>(p, grid, stream);
    case 256: return bf16 ? launch_fwd_mma_t<BF16, 256>(p, grid, stream) : launch_fwd_mma_t<F16, 256>(p, grid, stream);
    default: return gpuErrorInvalidValue;
  }
}

}  // namespace gpu
}  // namespace splash

#endif  // !SPLASH_GPU_HIP
