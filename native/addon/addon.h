// Registration hooks of the addon's parts. Each native/addon/*.cc file owns one group of exports and
// adds them to `exports` here; addon.cc calls every hook once at module load.
#pragma once

#include <napi.h>

namespace splash {
namespace addon {

void RegisterInfo(Napi::Env env, Napi::Object exports);  // info.cc: info()
void RegisterAttention(Napi::Env env, Napi::Object exports);  // attention.cc: forward[Sync], backward[Sync]
void RegisterGpu(Napi::Env env, Napi::Object exports);        // gpu.cc: device buffers, gpuForward[Sync], planning

}  // namespace addon
}  // namespace splash
