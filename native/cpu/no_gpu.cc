// Stands in for native/gpu/device_query.cu in a build without CUDA or HIP, so the addon links and
// reports the GPU runtime as simply not compiled in.
#include "splash/device_query.h"

namespace splash {

GpuQuery query_gpu_devices() {
  GpuQuery q{};
  q.platform = GpuPlatform::None;
  q.error = "not compiled: this addon was built without GPU support";
  return q;
}

}  // namespace splash
