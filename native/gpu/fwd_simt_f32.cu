// SIMT forward kernel instantiations for f32 (head-dim buckets 64, 128, 256); see fwd_simt.cuh.
#include "fwd_simt.cuh"
#include "kernels.h"

namespace splash {
namespace gpu {

gpuError_t launch_fwd_simt_f32(int bucket, const FwdKernelParams& p, dim3 grid, gpuStream_t stream) {
  switch (bucket) {
    case 64: return launch_fwd_simt_t<F32, 64>(p, grid, stream);
    case 128: return launch_fwd_simt_t<F32, 128>(p, grid, stream);
    case 256: return launch_fwd_simt_t<F32, 256>(p, grid, stream);
    default: return gpuErrorInvalidValue;
  }
}

}  // namespace gpu
}  // namespace splash
