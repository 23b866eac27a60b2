// The GPU runtime as seen from plain C++: the addon calls query_gpu_devices() and never includes a
// CUDA or HIP header. native/gpu/device_query.cu implements it for CUDA (nvcc) and HIP (hipcc -x hip);
// native/addon/no_gpu.cc implements it for a CPU-only build.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace splash {

enum class GpuPlatform { None, Cuda, Hip };

struct GpuDeviceInfo {
  int index;
  std::string name;
  std::string compute_capability;  // "9.0" on CUDA; the gfx architecture name on HIP
  uint64_t total_memory;           // bytes
  int multiprocessors;             // SMs on CUDA, compute units on HIP
};

struct GpuQuery {
  GpuPlatform platform;  // which runtime this addon was compiled against (None: CPU-only build)
  int runtime_version;   // as the runtime reports it (e.g. 13000), 0 when unknown
  int driver_version;    // 0 when no driver is installed
  int device_count;      // usable devices; 0 whenever error is set by the count query
  std::string error;     // empty when every call succeeded, else the runtime's own messages
  std::vector<GpuDeviceInfo> devices;
};

// Never throws and never aborts: every runtime failure ends up in GpuQuery::error.
GpuQuery query_gpu_devices();

}  // namespace splash
