// Device count and properties through the CUDA or HIP runtime (one source, see compat.h). With the
// static CUDA runtime this runs on machines with no driver at all: the count query then fails with
// "driver insufficient" / "no device", which we report as an error string, never a crash.
#include <string>

#include "compat.h"
#include "splash/device_query.h"

namespace splash {

namespace {

// Records a failed runtime call and clears the thread's last-error slot it set, so that the first
// kernel launch checked later on this thread does not report this stale failure.
void append_error(std::string& errors, const std::string& call, gpu::gpuError_t status) {
  if (!errors.empty()) errors += "; ";
  errors += gpu::error_message(call, status);
  (void)gpuGetLastError();  // returns `status` again: already recorded
}

std::string compute_capability(const gpu::gpuDeviceProp& prop) {
#ifdef SPLASH_GPU_HIP
  return prop.gcnArchName;
#else
  return std::to_string(prop.major) + "." + std::to_string(prop.minor);
#endif
}

}  // namespace

GpuQuery query_gpu_devices() {
  GpuQuery q{};
#ifdef SPLASH_GPU_HIP
  q.platform = GpuPlatform::Hip;
#else
  q.platform = GpuPlatform::Cuda;
#endif

  gpu::gpuError_t status = gpuRuntimeGetVersion(&q.runtime_version);
  if (status != gpu::gpuSuccess) append_error(q.error, "RuntimeGetVersion", status);
  status = gpuDriverGetVersion(&q.driver_version);
  if (status != gpu::gpuSuccess) append_error(q.error, "DriverGetVersion", status);

  int count = 0;
  status = gpuGetDeviceCount(&count);
  if (status != gpu::gpuSuccess) {
    append_error(q.error, "GetDeviceCount", status);
    return q;
  }

  for (int i = 0; i < count; ++i) {
    gpu::gpuDeviceProp prop{};
    status = gpuGetDeviceProperties(&prop, i);
    if (status != gpu::gpuSuccess) {
      append_error(q.error, "GetDeviceProperties(" + std::to_string(i) + ")", status);
      continue;
    }
    GpuDeviceInfo d{};
    d.index = i;
    d.name = prop.name;
    d.compute_capability = compute_capability(prop);
    d.total_memory = static_cast<uint64_t>(prop.totalGlobalMem);
    d.multiprocessors = prop.multiProcessorCount;
    q.devices.push_back(d);
  }
  q.device_count = static_cast<int>(q.devices.size());
  return q;
}

}  // namespace splash
