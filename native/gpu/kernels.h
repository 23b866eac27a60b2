// Launch entry points of the compiled forward kernels, one per instantiation file, so launch.cu can
// dispatch without seeing any kernel template. Each returns the launch's status (a launch error, not
// the kernel's completion) and gpuErrorInvalidValue for a head dim it was not compiled for.
#pragma once

#include "compat.h"
#include "bwd_params.h"
#include "fwd_params.h"
#include "splash/params.h"

namespace splash {
namespace gpu {

// fwd_simt_{f32,bf16,f16}.cu: `bucket` is plan.h's simt_bucket (64, 128 or 256).
gpuError_t launch_fwd_simt_f32(int bucket, const FwdKernelParams& p, dim3 grid, gpuStream_t stream);
gpuError_t launch_fwd_simt_bf16(int bucket, const FwdKernelParams& p, dim3 grid, gpuStream_t stream);
gpuError_t launch_fwd_simt_f16(int bucket, const FwdKernelParams& p, dim3 grid, gpuStream_t stream);

// fwd_mma_d{32_64,96_128,192_256}.cu (CUDA only; on HIP mma_hip_stubs.cu answers gpuErrorInvalidValue):
// bf16 or f16.
gpuError_t launch_fwd_mma_small(DType dtype, int head_dim, const FwdKernelParams& p, dim3 grid, gpuStream_t stream);
gpuError_t launch_fwd_mma_medium(DType dtype, int head_dim, const FwdKernelParams& p, dim3 grid, gpuStream_t stream);
gpuError_t launch_fwd_mma_large(DType dtype, int head_dim, const FwdKernelParams& p, dim3 grid, gpuStream_t stream);

// bwd_simt_{f32,bf16,f16}.cu: one backward step (bwd_params.h: BwdStep); `bucket` as for the forward.
gpuError_t launch_bwd_simt_f32(BwdStep step, int bucket, const BwdKernelParams& p, dim3 grid, gpuStream_t stream);
gpuError_t launch_bwd_simt_bf16(BwdStep step, int bucket, const BwdKernelParams& p, dim3 grid, gpuStream_t stream);
gpuError_t launch_bwd_simt_f16(BwdStep step, int bucket, const BwdKernelParams& p, dim3 grid, gpuStream_t stream);

// bwd_mma_d{32_64,96_128,192_256}.cu (CUDA only; on HIP mma_hip_stubs.cu answers gpuErrorInvalidValue): the
// dq, dk/dv or fused step of the tensor-core backward, bf16 or f16.
gpuError_t launch_bwd_mma_small(DType dtype, int head_dim, BwdStep step, const BwdKernelParams& p, dim3 grid,
                                gpuStream_t stream);
gpuError_t launch_bwd_mma_medium(DType dtype, int head_dim, BwdStep step, const BwdKernelParams& p, dim3 grid,
                                 gpuStream_t stream);
gpuError_t launch_bwd_mma_large(DType dtype, int head_dim, BwdStep step, const BwdKernelParams& p, dim3 grid,
                                gpuStream_t stream);

}  // namespace gpu
}  // namespace splash
