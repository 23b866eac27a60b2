// Registration hooks of the addon's parts. Each native/addon/*.cc file owns one group of exports and
// adds them to `exports` here; addon.cc calls every hook once at module load.
#pragma once

#include <napi.h>

namespace splash {
namespace addon {

void RegisterJobs(Napi::Env env, Napi::Object exports);       // jobs.cc: the async layer; cancelToken(), cancel()
void RegisterInfo(Napi::Env env, Napi::Object exports);       // info.cc: info()
void RegisterSchedules(Napi::Env env, Napi::Object exports);  // host_schedule.cc: prepareSchedule()
void RegisterCpu(Napi::Env env, Napi::Object exports);        // cpu_binding.cc: forward[Sync], backward[Sync]
void RegisterGpu(Napi::Env env, Napi::Object exports);        // gpu.cc: device buffers, gpuForward[Sync], planning

}  // namespace addon
}  // namespace splash
