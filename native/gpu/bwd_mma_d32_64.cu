// Tensor-core backward kernel instantiations (dq, dk/dv, fused) for head dims 32 and 64, bf16 and
// f16 (CUDA sm_80+; the device code is empty for older targets); see bwd_mma_sm80.cuh.
#include "kernels.h"

// HIP builds take mma_hip_stubs.cu instead.
#ifndef SPLASH_GPU_HIP

#include "bwd_mma_sm80.cuh"

namespace splash {
namespace gpu {

gpuError_t launch_bwd_mma_small(DType dtype, int head_dim, BwdStep step, const BwdKernelParams& p, dim3 grid,
                                gpuStream_t stream) {
  const bool bf16 = dtype == DType::BF16;
  if (dtype != DType::BF16 && dtype != DType::F16) return gpuErrorInvalidValue;
  switch (head_dim) {
    case 32: return bf16 ? launch_bwd_mma_t<BF16, 32>(step, p, grid, stream) : launch_bwd_mma_t<F16, 32>(step, p, grid, stream);
    case 64: return bf16 ? launch_bwd_mma_t<BF16, 64>(step, p, grid, stream) : launch_bwd_mma_t<F16, 64>(step, p, grid, stream);
    default: return gpuErrorInvalidValue;
  }
}

}  // namespace gpu
}  // namespace splash

#endif  // !SPLASH_GPU_HIP
