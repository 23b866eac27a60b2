// info(): what this addon binary is and what it found on this machine (CPU features, GPU runtime and
// devices). Cheap enough to call at load time; the JS loader uses it to pick the addon variant.
#include <string>
#include <thread>

#include "addon.h"
#include "args.h"
#include "splash/cpu_features.h"
#include "splash/device_query.h"
#include "splash/version.h"

namespace splash {
namespace addon {

namespace {

Napi::Object CpuFeaturesObject(Napi::Env env) {
  const CpuFeatures f = detect_cpu_features();
  Napi::Object o = Napi::Object::New(env);
  o.Set("sse42", f.sse42);
  o.Set("avx", f.avx);
  o.Set("avx2", f.avx2);
  o.Set("fma", f.fma);
  o.Set("f16c", f.f16c);
  o.Set("avx512f", f.avx512f);
  o.Set("avx512bw", f.avx512bw);
  o.Set("avx512vl", f.avx512vl);
  o.Set("avx512vnni", f.avx512vnni);
  o.Set("avx512bf16", f.avx512bf16);
  o.Set("avx512fp16", f.avx512fp16);
  o.Set("amxBf16", f.amx_bf16);
  o.Set("neon", f.neon);
  o.Set("armBf16", f.arm_bf16);
  return o;
}

const char* VariantName(GpuPlatform p) {
  switch (p) {
    case GpuPlatform::Cuda: return "cuda";
    case GpuPlatform::Hip: return "hip";
    case GpuPlatform::None: break;
  }
  return "cpu";
}

// { compiled, deviceCount, error, runtimeVersion, driverVersion, devices[] } for one GPU runtime.
// `q` is only used when it was compiled for `platform`; otherwise the runtime is "not compiled".
Napi::Object GpuObject(Napi::Env env, const GpuQuery& q, GpuPlatform platform) {
  Napi::Object o = Napi::Object::New(env);
  const bool compiled = q.platform == platform;
  o.Set("compiled", compiled);
  o.Set("deviceCount", compiled ? q.device_count : 0);
  if (!compiled) {
    o.Set("error", q.platform == GpuPlatform::None
                       ? q.error
                       : std::string("not compiled: this is the ") + VariantName(q.platform) + " build of the addon");
  } else if (q.error.empty()) {
    o.Set("error", env.Null());
  } else {
    o.Set("error", q.error);
  }
  o.Set("runtimeVersion", compiled ? q.runtime_version : 0);
  o.Set("driverVersion", compiled ? q.driver_version : 0);
  Napi::Array devices = Napi::Array::New(env);
  if (compiled) {
    uint32_t i = 0;
    for (const GpuDeviceInfo& d : q.devices) {
      Napi::Object dev = Napi::Object::New(env);
      dev.Set("index", d.index);
      dev.Set("name", d.name);
      dev.Set("computeCapability", d.compute_capability);
      dev.Set("totalMemory", static_cast<double>(d.total_memory));  // exact below 2^53 bytes
      dev.Set("multiprocessors", d.multiprocessors);
      devices.Set(i++, dev);
    }
  }
  o.Set("devices", devices);
  return o;
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const GpuQuery gpu = query_gpu_devices();

  Napi::Object o = Napi::Object::New(env);
  o.Set("version", kVersion);

  // Backends compiled in, by their public names ('rocm' is the HIP runtime).
  Napi::Array backends = Napi::Array::New(env);
  backends.Set(0u, "cpu");
  if (gpu.platform == GpuPlatform::Cuda) backends.Set(1u, "cuda");
  if (gpu.platform == GpuPlatform::Hip) backends.Set(1u, "rocm");
  o.Set("backends", backends);

  o.Set("variant", VariantName(gpu.platform));
  o.Set("cpuFeatures", CpuFeaturesObject(env));
  o.Set("threads", std::thread::hardware_concurrency());
  o.Set("cuda", GpuObject(env, gpu, GpuPlatform::Cuda));
  o.Set("hip", GpuObject(env, gpu, GpuPlatform::Hip));
  return o;
}

}  // namespace

void RegisterInfo(Napi::Env env, Napi::Object exports) {
  exports.Set("info", guarded_function(env, "info", Info));
}

}  // namespace addon
}  // namespace splash
