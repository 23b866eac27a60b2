// Registration hooks of the addon's parts. Each native/addon/*.cc file owns one group of exports and
// adds them to `exports` here; addon.cc calls every hook once at module load.
#pragma once

#include <napi.h>

namespace splash {
namespace addon {

void RegisterInfo(Napi::Env env, Napi::Object exports);  // info.cc: info()

}  // namespace addon
}  // namespace splash
