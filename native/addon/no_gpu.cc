// Stands in for native/gpu/device_query.cu and native/gpu/launch.cu (gpu_api.h) in a build without
// CUDA or HIP, so the addon links and reports the GPU runtime as simply not compiled in.
#include "splash/device_query.h"

namespace splash {

GpuQuery query_gpu_devices() {
  GpuQuery q{};
  q.platform = GpuPlatform::None;
  q.error = "not compiled: this addon was built without GPU support";
  return q;
}

}  // namespace splash

// ---- gpu_api.h without a GPU runtime: every entry point reports that GPU support is not compiled.
#include "splash/gpu_api.h"

namespace splash {
namespace gpu {

namespace {
Status not_compiled() { return Status::Error("not compiled: this addon was built without GPU support"); }
}  // namespace

const char* backend_name() { return "none"; }
Status device_alloc(int, size_t, void** ptr) {
  *ptr = nullptr;
  return not_compiled();
}
Status device_free(int, void* ptr) { return ptr == nullptr ? Status::Ok() : not_compiled(); }
Status copy_to_device(int, void*, const void*, size_t) { return not_compiled(); }
Status copy_to_host(int, void*, const void*, size_t) { return not_compiled(); }
Status copy_device_to_device(int, void*, const void*, size_t) { return not_compiled(); }
Status device_fill(int, void*, int, size_t) { return not_compiled(); }
Status upload_schedule(int, const ScheduleView&, std::shared_ptr<DeviceSchedule>*) { return not_compiled(); }
Status forward(const AttentionParams&, const DeviceSchedule&, ForcePath, ForwardInfo*, bool) { return not_compiled(); }
Status backward(const AttentionParams&, const DeviceSchedule*, const DeviceSchedule&, BackwardInfo*, bool) {
  return not_compiled();
}
Status describe_device(int, std::string*) { return not_compiled(); }

}  // namespace gpu
}  // namespace splash
