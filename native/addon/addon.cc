// Module entry point: N-API glue only. Math lives in native/cpu and native/gpu; this file just
// registers the exported functions of each addon part.
#include "addon.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  splash::addon::RegisterJobs(env, exports);  // first: the other parts queue their async calls on it
  splash::addon::RegisterInfo(env, exports);
  splash::addon::RegisterSchedules(env, exports);
  splash::addon::RegisterCpu(env, exports);
  splash::addon::RegisterGpu(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(splash, Init)
