// See host_schedule.h.
#include "host_schedule.h"

#include <algorithm>
#include <cstdint>

#include "../cpu/mask_eval.h"
#include "splash/schedule_check.h"

namespace splash {
namespace addon {

namespace {

constexpr int64_t kMaxCount = (INT64_C(1) << 31) - 1;  // block counts and block sizes are int32 in ScheduleView

// A random constant that marks our schedule handles (napi_type_tag_object): a foreign External passed
// from JS is rejected instead of being reinterpreted.
const napi_type_tag kHostScheduleTag = {0x7b3e1f5a9c2d4e68ULL, 0x1a2b3c4d5e6f7081ULL};

struct ScheduleHandle {
  std::shared_ptr<const HostSchedule> schedule;
};

template <class T>
std::vector<T> copy_array(Reader& r, const Napi::Object& o, const char* key, const std::string& path,
                          napi_typedarray_type type, bool optional = false) {
  const Span s = r.array(o, key, path + "." + key, type, optional);
  const T* data = static_cast<const T*>(s.data);
  return data == nullptr ? std::vector<T>() : std::vector<T>(data, data + s.length);
}

Napi::Value PrepareSchedule(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) type_error("maskInfo", "expected a MaskInfo object");
  Reader r;
  auto* handle = new ScheduleHandle{read_host_schedule(r, info[0].As<Napi::Object>(), "maskInfo")};
  Napi::External<ScheduleHandle> ext = Napi::External<ScheduleHandle>::New(
      env, handle, [](Napi::Env, ScheduleHandle* dead) { delete dead; });
  ext.TypeTag(&kHostScheduleTag);
  return ext;
}

}  // namespace

std::shared_ptr<const HostSchedule> read_host_schedule(Reader& r, const Napi::Object& o, const std::string& path) {
  auto h = std::make_shared<HostSchedule>();
  ScheduleView& s = h->view;
  const std::string p = path + ".";
  s.heads = static_cast<int32_t>(r.integer(o, "heads", p + "heads", 1, kMaxCount));
  s.q_blocks = static_cast<int32_t>(r.integer(o, "qBlocks", p + "qBlocks", 1, kMaxCount));
  s.kv_blocks = static_cast<int32_t>(r.integer(o, "kvBlocks", p + "kvBlocks", 1, kMaxCount));
  s.block_q = static_cast<int32_t>(r.integer(o, "blockQ", p + "blockQ", 1, kMaxCount));
  s.block_kv = static_cast<int32_t>(r.integer(o, "blockKv", p + "blockKv", 1, kMaxCount));
  s.is_dkv = r.boolean(o, "isDkv", p + "isDkv") ? 1 : 0;
  s.num_schedules = static_cast<int32_t>(r.integer(o, "numSchedules", p + "numSchedules", 1, kMaxCount));
  s.rows_per_schedule = static_cast<int32_t>(r.integer(o, "rowsPerSchedule", p + "rowsPerSchedule", 1, kMaxCount));

  h->head_schedule = copy_array<int32_t>(r, o, "headSchedule", path, napi_int32_array);
  h->row_ptr = copy_array<int32_t>(r, o, "rowPtr", path, napi_int32_array);
  h->col_idx = copy_array<int32_t>(r, o, "colIdx", path, napi_int32_array);
  h->col_kind = copy_array<uint8_t>(r, o, "colKind", path, napi_uint8_array);
  h->col_mask_ref = copy_array<int32_t>(r, o, "colMaskRef", path, napi_int32_array);
  h->programs = copy_array<int32_t>(r, o, "programs", path, napi_int32_array);
  h->program_ptr = copy_array<int32_t>(r, o, "programPtr", path, napi_int32_array);
  h->partial_mask_blocks = copy_array<uint8_t>(r, o, "partialMaskBlocks", path, napi_uint8_array, /*optional=*/true);
  h->q_shard_bounds = copy_array<int32_t>(r, o, "qShardBounds", path, napi_int32_array);

  const int64_t block_area = static_cast<int64_t>(s.block_q) * s.block_kv;
  s.nnz = static_cast<int64_t>(h->col_idx.size());
  s.head_schedule = h->head_schedule.data();
  s.row_ptr = h->row_ptr.data();
  s.col_idx = h->col_idx.data();
  s.col_kind = h->col_kind.data();
  s.col_mask_ref = h->col_mask_ref.data();
  s.programs = h->programs.data();
  s.program_len = static_cast<int64_t>(h->programs.size());
  s.program_ptr = h->program_ptr.data();
  s.partial_mask_blocks = h->partial_mask_blocks.empty() ? nullptr : h->partial_mask_blocks.data();
  s.num_partial = static_cast<int64_t>(h->partial_mask_blocks.size()) / block_area;
  s.q_shard_bounds = h->q_shard_bounds.data();
  s.num_q_shards = static_cast<int32_t>(std::max<int64_t>(static_cast<int64_t>(h->q_shard_bounds.size()) - 1, 0));

  const ScheduleLengths lengths{static_cast<int64_t>(h->head_schedule.size()),
                                static_cast<int64_t>(h->row_ptr.size()),
                                static_cast<int64_t>(h->col_idx.size()),
                                static_cast<int64_t>(h->col_kind.size()),
                                static_cast<int64_t>(h->col_mask_ref.size()),
                                static_cast<int64_t>(h->programs.size()),
                                static_cast<int64_t>(h->program_ptr.size()),
                                static_cast<int64_t>(h->partial_mask_blocks.size()),
                                static_cast<int64_t>(h->q_shard_bounds.size())};
  const std::string error = check_schedule(s, &lengths, path);
  if (!error.empty()) throw ArgError{false, error};
  // The forward and dq passes read their tiles kv-major; the dk/dv pass reads the q-major bytes.
  if (!s.is_dkv) h->partial_mask_bits_kv = cpu::kv_major_mask_bits(s);
  s.partial_mask_bits_kv = h->partial_mask_bits_kv.empty() ? nullptr : h->partial_mask_bits_kv.data();
  return h;
}

std::shared_ptr<const HostSchedule> host_schedule_of(const Napi::Value& v, const std::string& path) {
  if (!v.IsExternal() || !v.As<Napi::External<ScheduleHandle>>().CheckTypeTag(&kHostScheduleTag)) {
    type_error(path, "expected a schedule handle (from prepareSchedule)");
  }
  return v.As<Napi::External<ScheduleHandle>>().Data()->schedule;
}

void RegisterSchedules(Napi::Env env, Napi::Object exports) {
  exports.Set("prepareSchedule", guarded_function(env, "prepareSchedule", PrepareSchedule));
}

}  // namespace addon
}  // namespace splash
