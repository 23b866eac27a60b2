// SIMT forward kernel instantiations for f16 (head-dim buckets 64, 128, 256); see fwd_simt.cuh.
#include "fwd_simt.cuh"
#include "kernels.h"

namespace splash {
namespace gpu {

gpuError_t launch_fwd_simt_f16(int bucket, const FwdKernelParams& p, dim3 grid, gpuStream_t stream) {
  switch (bucket) {
    case 64: return launch_fwd_simt_t<F16, 64>(p, grid, stream);
    case 128: return launch_fwd_simt_t<F16, 128>(p, grid, stream);
    case 256: return launch_fwd_simt_t<F16, 256>(p, grid, stream);
    default: return gpuErrorInvalidValue;
  }
}

}  // namespace gpu
}  // namespace splash
