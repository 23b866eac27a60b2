// A MaskInfo's schedule (lib/mask-info.ts) as the addon holds it: copies of its arrays, so that no
// JS array can be detached or freed under a kernel, and the ScheduleView over them, bounds-checked
// once by splash/schedule_check.h. JS makes one per MaskInfo (prepareSchedule) and passes the handle
// with every call; the CPU kernels read it in place and the GPU backend uploads it.
#pragma once

#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "args.h"
#include "splash/params.h"

namespace splash {
namespace addon {

struct HostSchedule {
  std::vector<int32_t> head_schedule, row_ptr, col_idx, col_mask_ref, programs, program_ptr, q_shard_bounds;
  std::vector<uint8_t> col_kind, partial_mask_blocks;
  std::vector<uint64_t> partial_mask_bits_kv;  // made from partial_mask_blocks once they are checked
  ScheduleView view{};  // points into the vectors above
};

// Reads and checks a MaskInfo object; a bad field throws ArgError naming `path` (e.g. "fwdInfo").
std::shared_ptr<const HostSchedule> read_host_schedule(Reader& r, const Napi::Object& info, const std::string& path);

// The schedule behind a handle made by prepareSchedule; TypeError naming `path` for anything else.
std::shared_ptr<const HostSchedule> host_schedule_of(const Napi::Value& v, const std::string& path);

// prepareSchedule(maskInfo) → handle (an External with a type tag).
void RegisterSchedules(Napi::Env env, Napi::Object exports);

}  // namespace addon
}  // namespace splash
