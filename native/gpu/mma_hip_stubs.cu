// HIP builds have no tensor-core kernels (mma.sync is CUDA sm_80+ only): the launchers of the
// fwd_mma_* and bwd_mma_* files answer gpuErrorInvalidValue, and plan.h / bwd_plan.h never choose
// them on HIP. CUDA builds compile this file empty.
#include "kernels.h"

#ifdef SPLASH_GPU_HIP

namespace splash {
namespace gpu {

gpuError_t launch_fwd_mma_small(DType, int, const FwdKernelParams&, dim3, gpuStream_t) { return gpuErrorInvalidValue; }
gpuError_t launch_fwd_mma_medium(DType, int, const FwdKernelParams&, dim3, gpuStream_t) { return gpuErrorInvalidValue; }
gpuError_t launch_fwd_mma_large(DType, int, const FwdKernelParams&, dim3, gpuStream_t) { return gpuErrorInvalidValue; }
gpuError_t launch_bwd_mma_small(DType, int, BwdStep, const BwdKernelParams&, dim3, gpuStream_t) {
  return gpuErrorInvalidValue;
}
gpuError_t launch_bwd_mma_medium(DType, int, BwdStep, const BwdKernelParams&, dim3, gpuStream_t) {
  return gpuErrorInvalidValue;
}
gpuError_t launch_bwd_mma_large(DType, int, BwdStep, const BwdKernelParams&, dim3, gpuStream_t) {
  return gpuErrorInvalidValue;
}

}  // namespace gpu
}  // namespace splash

#endif  // SPLASH_GPU_HIP
