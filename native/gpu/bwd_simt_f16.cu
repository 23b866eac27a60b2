// SIMT backward kernel instantiations for f16 (di, dq, dk/dv, fused, dq cast; head-dim buckets 64,
// 128, 256); see bwd_simt.cuh.
#include "bwd_simt.cuh"
#include "kernels.h"

namespace splash {
namespace gpu {

gpuError_t launch_bwd_simt_f16(BwdStep step, int bucket, const BwdKernelParams& p, dim3 grid, gpuStream_t stream) {
  return launch_bwd_t<F16>(step, bucket, p, grid, stream);
}

}  // namespace gpu
}  // namespace splash
