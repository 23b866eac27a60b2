// The GPU backend's runtime layer (gpu_api.h) for CUDA and HIP: one stream per device, device memory,
// schedule upload, and the forward launch (plan, then the kernel the plan picked). Every runtime call
// is checked and its failure returned as a Status carrying the runtime's own message (which also
// clears the thread's last-error slot, so no later launch check reports it); nothing here throws
// across the API or aborts.
//
// Device memory is stream-ordered where the device supports memory pools (every CUDA GPU this build
// targets; ROCm's allocator reports it per device): allocations and frees are queued on the device's
// stream, so freeing (DeviceTensor.dispose(), a garbage-collected buffer, a call's temporaries)
// returns at once instead of waiting, as cudaFree / hipFree do, for every kernel queued on the device.
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "bwd_plan.h"
#include "compat.h"
#include "fwd_params.h"
#include "kernels.h"
#include "plan.h"
#include "splash/gpu_api.h"

namespace splash {
namespace gpu {

namespace {

Status runtime_error(const char* call, gpuError_t e) {
  (void)gpuGetLastError();  // clear the thread's last-error slot so the next check is not stale
  return Status::Error(error_message(call, e));
}

#define SPLASH_GPU_CHECK(call_name, expr)                         \
  do {                                                            \
    const gpuError_t splash_status_ = (expr);                     \
    if (splash_status_ != gpuSuccess) return runtime_error(call_name, splash_status_); \
  } while (0)

struct DeviceState {
  gpuStream_t stream = nullptr;
  DeviceCaps caps{};
  std::string description;
  bool stream_ordered_memory = false;  // gpuMallocAsync / gpuFreeAsync on `stream`
};

// Whether `device` has the stream-ordered allocator. A failed query counts as "no" (plain
// malloc / free still work); its status is cleared so that no later check sees it.
bool memory_pools_supported(int device) {
  int supported = 0;
  const gpuError_t e = gpuDeviceGetAttribute(&supported, gpuDevAttrMemoryPoolsSupported, device);
  if (e != gpuSuccess) {
    (void)gpuGetLastError();
    return false;
  }
  return supported != 0;
}

std::mutex g_devices_mutex;
std::map<int, std::unique_ptr<DeviceState>> g_devices;

// The state of `device` (its stream created on first use), with `device` made current on this thread.
Status use_device(int device, DeviceState** out) {
  int count = 0;
  {
    const gpuError_t e = gpuGetDeviceCount(&count);
    if (e != gpuSuccess) return runtime_error("GetDeviceCount", e);
  }
  if (device < 0 || device >= count) {
    return Status::Range("device: expected an index in [0, " + std::to_string(count) + ") (the " + kRuntimeName +
                         " devices here), got " + std::to_string(device));
  }
  SPLASH_GPU_CHECK("SetDevice", gpuSetDevice(device));
  std::lock_guard<std::mutex> lock(g_devices_mutex);
  std::unique_ptr<DeviceState>& slot = g_devices[device];
  if (!slot) {
    auto state = std::make_unique<DeviceState>();
    gpuDeviceProp prop{};
    SPLASH_GPU_CHECK("GetDeviceProperties", gpuGetDeviceProperties(&prop, device));
#ifdef SPLASH_GPU_HIP
    if (prop.warpSize != kWarpSize) {
      return Status::Error(std::string(prop.name) + " (" + prop.gcnArchName + ") runs " +
                           std::to_string(prop.warpSize) + "-wide wavefronts; this build's HIP kernels need " +
                           std::to_string(kWarpSize));
    }
    state->caps.hip = true;
    state->caps.cc_major = 0;
    state->caps.cc_minor = 0;
    state->caps.max_smem_per_block = static_cast<int64_t>(prop.sharedMemPerBlock);
    state->description = std::string(prop.name) + ", " + prop.gcnArchName + ", " +
                         std::to_string(prop.multiProcessorCount) + " CUs";
#else
    state->caps.hip = false;
    state->caps.cc_major = prop.major;
    state->caps.cc_minor = prop.minor;
    state->caps.max_smem_per_block = static_cast<int64_t>(prop.sharedMemPerBlockOptin);
    state->description = std::string(prop.name) + ", sm_" + std::to_string(prop.major) + std::to_string(prop.minor) +
                         ", " + std::to_string(prop.multiProcessorCount) + " SMs";
#endif
    state->caps.multiprocessors = prop.multiProcessorCount;
    state->caps.max_grid_y = prop.maxGridSize[1];
    state->stream_ordered_memory = memory_pools_supported(device);
    SPLASH_GPU_CHECK("StreamCreateWithFlags", gpuStreamCreateWithFlags(&state->stream, gpuStreamNonBlocking));
    slot = std::move(state);
  }
  *out = slot.get();
  return Status::Ok();
}

Status copy(int device, void* dst, const void* src, size_t bytes, decltype(gpuMemcpyHostToDevice) kind,
            const char* what) {
  if (bytes == 0) return Status::Ok();
  DeviceState* st = nullptr;
  Status s = use_device(device, &st);
  if (!s.ok()) return s;
  SPLASH_GPU_CHECK(what, gpuMemcpyAsync(dst, src, bytes, kind, st->stream));
  SPLASH_GPU_CHECK("StreamSynchronize", gpuStreamSynchronize(st->stream));
  return Status::Ok();
}

size_t align16(size_t x) { return (x + 15) & ~size_t{15}; }

// A schedule on one device: every array in one allocation, plus host copies of what launch
// planning reads (row_ptr), and the launch orders made so far.
class DeviceScheduleImpl final : public DeviceSchedule {
 public:
  DeviceScheduleImpl(int device, void* block, size_t bytes, const ScheduleView& view, std::vector<int32_t> row_ptr)
      : device_(device), block_(block), bytes_(bytes), view_(view), row_ptr_(std::move(row_ptr)) {}

  ~DeviceScheduleImpl() override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& kv : work_) (void)device_free(device_, kv.second.first);
    (void)device_free(device_, block_);
  }

  int device() const override { return device_; }
  const ScheduleView& view() const override { return view_; }
  size_t device_bytes() const override { return bytes_; }

  // The device copy of work_order(...) for these tile parameters, made on first request. `seq` is the
  // length the schedule's rows cut: q_seq, or kv_seq for a dkv schedule (rows are kv-blocks).
  Status work(int64_t seq, int tile_m, int64_t tiles_per_block, const int32_t** ptr, int32_t* count) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto key = std::make_tuple(seq, tile_m, tiles_per_block);
    auto it = work_.find(key);
    if (it == work_.end()) {
      const std::vector<int32_t> order = work_order(row_ptr_.data(), view_.num_schedules, view_.rows_per_schedule,
                                                    view_.is_dkv ? view_.block_kv : view_.block_q, seq, tile_m,
                                                    tiles_per_block);
      void* d = nullptr;
      Status s = device_alloc(device_, order.size() * sizeof(int32_t), &d);
      if (!s.ok()) return s;
      s = copy_to_device(device_, d, order.data(), order.size() * sizeof(int32_t));
      if (!s.ok()) {
        (void)device_free(device_, d);
        return s;
      }
      it = work_.emplace(key, std::make_pair(d, static_cast<int32_t>(order.size()))).first;
    }
    *ptr = static_cast<const int32_t*>(it->second.first);
    *count = it->second.second;
    return Status::Ok();
  }

 private:
  int device_;
  void* block_;
  size_t bytes_;
  ScheduleView view_;
  std::vector<int32_t> row_ptr_;
  std::mutex mutex_;
  std::map<std::tuple<int64_t, int, int64_t>, std::pair<void*, int32_t>> work_;
};

// Device temporaries of one call, freed when it goes out of scope.
struct DeviceScratch {
  int device;
  void* ptr = nullptr;
  explicit DeviceScratch(int d) : device(d) {}
  ~DeviceScratch() { (void)device_free(device, ptr); }
};

// Events around a call's launches, when timing was asked for. Every event call is checked; events
// made are destroyed when the timer goes, and a failure there only clears the thread's last error
// (the call's results are complete by then).
class EventTimer {
 public:
  EventTimer() = default;
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  ~EventTimer() {
    for (gpuEvent_t e : {start_, stop_}) {
      if (e != nullptr && gpuEventDestroy(e) != gpuSuccess) (void)gpuGetLastError();
    }
  }

  // Creates both events and records the first on `stream`.
  Status start(gpuStream_t stream) {
    SPLASH_GPU_CHECK("EventCreate", gpuEventCreate(&start_));
    SPLASH_GPU_CHECK("EventCreate", gpuEventCreate(&stop_));
    SPLASH_GPU_CHECK("EventRecord", gpuEventRecord(start_, stream));
    return Status::Ok();
  }
  Status stop(gpuStream_t stream) {
    SPLASH_GPU_CHECK("EventRecord", gpuEventRecord(stop_, stream));
    return Status::Ok();
  }
  // Milliseconds between the two records; the stream must have passed the second.
  Status elapsed(float* ms) {
    SPLASH_GPU_CHECK("EventElapsedTime", gpuEventElapsedTime(ms, start_, stop_));
    return Status::Ok();
  }

 private:
  gpuEvent_t start_ = nullptr;
  gpuEvent_t stop_ = nullptr;
};

// The first failure of a call's launches, stream synchronisation and timing, in that order of
// precedence; the stream is always synchronised first, so nothing of the call is still running.
Status finish_call(gpuStream_t stream, gpuError_t launch_status, const char* failed_launch, const char* sync_what,
                   EventTimer* timer, float* ms) {
  Status timing = Status::Ok();
  if (timer != nullptr && launch_status == gpuSuccess) timing = timer->stop(stream);
  const gpuError_t sync_status = gpuStreamSynchronize(stream);
  if (launch_status != gpuSuccess) return runtime_error(failed_launch, launch_status);
  if (sync_status != gpuSuccess) return runtime_error(sync_what, sync_status);
  if (!timing.ok()) return timing;
  return timer != nullptr ? timer->elapsed(ms) : Status::Ok();
}

FwdPath env_force() {
  const char* v = std::getenv("SPLASH_GPU_PATH");
  if (v == nullptr) return FwdPath::None;
  if (std::strcmp(v, "simt") == 0) return FwdPath::Simt;
  if (std::strcmp(v, "mma") == 0) return FwdPath::Mma;
  return FwdPath::None;
}

gpuError_t launch(const FwdPlan& plan, DType dtype, int head_dim, const FwdKernelParams& kp, dim3 grid,
                  gpuStream_t stream) {
  if (plan.path == FwdPath::Simt) {
    switch (dtype) {
      case DType::F32: return launch_fwd_simt_f32(plan.bucket, kp, grid, stream);
      case DType::BF16: return launch_fwd_simt_bf16(plan.bucket, kp, grid, stream);
      case DType::F16: return launch_fwd_simt_f16(plan.bucket, kp, grid, stream);
    }
    return gpuErrorInvalidValue;
  }
  if (head_dim <= 64) return launch_fwd_mma_small(dtype, head_dim, kp, grid, stream);
  if (head_dim <= 128) return launch_fwd_mma_medium(dtype, head_dim, kp, grid, stream);
  return launch_fwd_mma_large(dtype, head_dim, kp, grid, stream);
}

gpuError_t launch_bwd(const BwdPlan& plan, DType dtype, int head_dim, BwdStep step, const BwdKernelParams& bp, dim3 grid,
                      gpuStream_t stream) {
  // di, the dq cast and dsinks are dtype-generic SIMT helpers on every path.
  const bool simt_step = step == BwdStep::kDi || step == BwdStep::kCast || step == BwdStep::kDsinks;
  if (plan.path == FwdPath::Mma && !simt_step) {
    if (head_dim <= 64) return launch_bwd_mma_small(dtype, head_dim, step, bp, grid, stream);
    if (head_dim <= 128) return launch_bwd_mma_medium(dtype, head_dim, step, bp, grid, stream);
    return launch_bwd_mma_large(dtype, head_dim, step, bp, grid, stream);
  }
  switch (dtype) {
    case DType::F32: return launch_bwd_simt_f32(step, plan.bucket, bp, grid, stream);
    case DType::BF16: return launch_bwd_simt_bf16(step, plan.bucket, bp, grid, stream);
    case DType::F16: return launch_bwd_simt_f16(step, plan.bucket, bp, grid, stream);
  }
  return gpuErrorInvalidValue;
}

}  // namespace

const char* backend_name() {
#ifdef SPLASH_GPU_HIP
  return "rocm";
#else
  return "cuda";
#endif
}

// ---- memory -------------------------------------------------------------------------------------------

Status device_alloc(int device, size_t bytes, void** ptr) {
  *ptr = nullptr;
  DeviceState* st = nullptr;
  Status s = use_device(device, &st);
  if (!s.ok()) return s;
  if (st->stream_ordered_memory) {
    SPLASH_GPU_CHECK("MallocAsync", gpuMallocAsync(ptr, bytes == 0 ? 1 : bytes, st->stream));
  } else {
    SPLASH_GPU_CHECK("Malloc", gpuMalloc(ptr, bytes == 0 ? 1 : bytes));
  }
  return Status::Ok();
}

// Queued behind everything already on the device's stream, so it returns at once and the memory is
// released only after the work that may still use it. (Without memory pools: a plain free, which
// waits for the device.)
Status device_free(int device, void* ptr) {
  if (ptr == nullptr) return Status::Ok();
  DeviceState* st = nullptr;
  Status s = use_device(device, &st);
  if (!s.ok()) return s;
  if (st->stream_ordered_memory) {
    SPLASH_GPU_CHECK("FreeAsync", gpuFreeAsync(ptr, st->stream));
  } else {
    SPLASH_GPU_CHECK("Free", gpuFree(ptr));
  }
  return Status::Ok();
}

Status copy_to_device(int device, void* dst, const void* src, size_t bytes) {
  return copy(device, dst, src, bytes, gpuMemcpyHostToDevice, "MemcpyAsync(host to device)");
}

Status copy_to_host(int device, void* dst, const void* src, size_t bytes) {
  return copy(device, dst, src, bytes, gpuMemcpyDeviceToHost, "MemcpyAsync(device to host)");
}

Status copy_device_to_device(int device, void* dst, const void* src, size_t bytes) {
  return copy(device, dst, src, bytes, gpuMemcpyDeviceToDevice, "MemcpyAsync(device to device)");
}

Status device_fill(int device, void* ptr, int value, size_t bytes) {
  if (bytes == 0) return Status::Ok();
  DeviceState* st = nullptr;
  Status s = use_device(device, &st);
  if (!s.ok()) return s;
  SPLASH_GPU_CHECK("MemsetAsync", gpuMemsetAsync(ptr, value, bytes, st->stream));
  SPLASH_GPU_CHECK("StreamSynchronize", gpuStreamSynchronize(st->stream));
  return Status::Ok();
}

Status describe_device(int device, std::string* text) {
  DeviceState* st = nullptr;
  Status s = use_device(device, &st);
  if (!s.ok()) return s;
  *text = st->description;
  return Status::Ok();
}

// ---- schedules ------------------------------------------------------------------------------------------

Status upload_schedule(int device, const ScheduleView& host, std::shared_ptr<DeviceSchedule>* out) {
  const std::string problem = validate_schedule(host);
  if (!problem.empty()) return Status::Error(problem);

  const int64_t rows = static_cast<int64_t>(host.num_schedules) * host.rows_per_schedule;
  std::vector<uint32_t> bits =
      host.num_partial > 0 ? pack_mask_bits(host.partial_mask_blocks, host.num_partial, host.block_q, host.block_kv)
                           : std::vector<uint32_t>();
  // Programs too deep for the kernels' register stack: their partial blocks go as packed bits too.
  std::vector<int32_t> mask_ref(host.col_mask_ref, host.col_mask_ref + host.nnz);
  const int64_t materialized = materialize_deep_programs(host, &mask_ref, &bits);

  // Layout of the single device block, each array 16-byte aligned.
  struct Part {
    const void* src;
    size_t bytes;
    size_t offset;
  };
  Part parts[] = {
      {host.head_schedule, sizeof(int32_t) * static_cast<size_t>(host.heads), 0},
      {host.row_ptr, sizeof(int32_t) * static_cast<size_t>(rows + 1), 0},
      {host.col_idx, sizeof(int32_t) * static_cast<size_t>(host.nnz), 0},
      {host.col_kind, sizeof(uint8_t) * static_cast<size_t>(host.nnz), 0},
      {mask_ref.data(), sizeof(int32_t) * static_cast<size_t>(host.nnz), 0},
      {host.programs, sizeof(int32_t) * static_cast<size_t>(host.program_len), 0},
      {host.program_ptr, sizeof(int32_t) * static_cast<size_t>(host.num_schedules + 1), 0},
      {bits.data(), sizeof(uint32_t) * bits.size(), 0},
  };
  size_t total = 0;
  for (Part& part : parts) {
    part.offset = total;
    total += align16(part.bytes);
  }
  std::vector<uint8_t> staging(total, 0);
  for (const Part& part : parts) {
    if (part.bytes > 0) std::memcpy(staging.data() + part.offset, part.src, part.bytes);
  }
  void* block = nullptr;
  Status s = device_alloc(device, total, &block);
  if (!s.ok()) return s;
  s = copy_to_device(device, block, staging.data(), total);
  if (!s.ok()) {
    (void)device_free(device, block);
    return s;
  }
  uint8_t* base = static_cast<uint8_t*>(block);
  ScheduleView dv = host;
  dv.head_schedule = reinterpret_cast<const int32_t*>(base + parts[0].offset);
  dv.row_ptr = reinterpret_cast<const int32_t*>(base + parts[1].offset);
  dv.col_idx = reinterpret_cast<const int32_t*>(base + parts[2].offset);
  dv.col_kind = base + parts[3].offset;
  dv.col_mask_ref = reinterpret_cast<const int32_t*>(base + parts[4].offset);
  dv.programs = reinterpret_cast<const int32_t*>(base + parts[5].offset);
  dv.program_ptr = reinterpret_cast<const int32_t*>(base + parts[6].offset);
  dv.partial_mask_blocks = base + parts[7].offset;  // packed bits (plan.h: pack_mask_bits)
  dv.partial_mask_bits_kv = nullptr;                // the CPU kernels' copy stays on the host
  dv.num_partial = host.num_partial + materialized;
  dv.q_shard_bounds = nullptr;                      // results never depend on the q sharding
  dv.num_q_shards = 0;
  std::vector<int32_t> row_ptr(host.row_ptr, host.row_ptr + rows + 1);
  *out = std::make_shared<DeviceScheduleImpl>(device, block, total, dv, std::move(row_ptr));
  return Status::Ok();
}

// ---- forward --------------------------------------------------------------------------------------------

Status forward(const AttentionParams& p_in, const DeviceSchedule& schedule_in, ForcePath force, ForwardInfo* info,
               bool time_kernel) {
  DeviceState* st = nullptr;
  Status s = use_device(p_in.device, &st);
  if (!s.ok()) return s;
  if (schedule_in.device() != p_in.device) {
    return Status::Error("the schedule was uploaded to device " + std::to_string(schedule_in.device()) +
                         ", the call runs on device " + std::to_string(p_in.device));
  }
  // Every DeviceSchedule is made by upload_schedule above.
  auto& schedule = const_cast<DeviceScheduleImpl&>(static_cast<const DeviceScheduleImpl&>(schedule_in));

  AttentionParams p = p_in;
  p.fwd = schedule.view();
  FwdPath want = force == ForcePath::kSimt ? FwdPath::Simt : force == ForcePath::kMma ? FwdPath::Mma : env_force();
  const FwdPlan plan = plan_forward(p, st->caps, want);
  if (!plan.error.empty()) return plan.range_error ? Status::Range(plan.error) : Status::Error(plan.error);

  const int32_t* work = nullptr;
  int32_t num_work = 0;
  s = schedule.work(p.q_seq, plan.tile_m, plan.tiles_per_qblock, &work, &num_work);
  if (!s.ok()) return s;
  const int64_t grid_x = static_cast<int64_t>(num_work) * p.heads;
  const int64_t grid_limit = max_grid_x(st->caps, plan.threads);
  if (grid_x > grid_limit) {
    return Status::Range("q tiles x heads = " + std::to_string(grid_x) + " exceeds the grid limit " +
                         std::to_string(grid_limit));
  }

  FwdKernelParams kp = make_fwd_kernel_params(p, plan, work, num_work);
  const ScheduleView& sv = p.fwd;

  // Host arrays of the call in one temporary allocation: segment ids with their per-kv-block ranges,
  // and the sinks ([heads] f32).
  DeviceScratch scratch(p.device);
  const bool seg = p.segment_ids_q != nullptr && p.segment_ids_kv != nullptr;
  const std::vector<int32_t> ranges =
      seg ? segment_block_ranges(p.segment_ids_kv, p.batch, p.kv_seq, sv.block_kv) : std::vector<int32_t>();
  const size_t nq = seg ? static_cast<size_t>(p.batch * p.q_seq) : 0;
  const size_t nkv = seg ? static_cast<size_t>(p.batch * p.kv_seq) : 0;
  const size_t n_sinks = p.sinks != nullptr ? static_cast<size_t>(p.heads) : 0;
  const size_t off_kv = align16(nq * sizeof(int32_t));
  const size_t off_rg = off_kv + align16(nkv * sizeof(int32_t));
  const size_t off_sk = off_rg + align16(ranges.size() * sizeof(int32_t));
  const size_t total = off_sk + n_sinks * sizeof(float);
  if (total > 0) {
    std::vector<uint8_t> staging(total, 0);
    if (seg) {
      std::memcpy(staging.data(), p.segment_ids_q, nq * sizeof(int32_t));
      std::memcpy(staging.data() + off_kv, p.segment_ids_kv, nkv * sizeof(int32_t));
      std::memcpy(staging.data() + off_rg, ranges.data(), ranges.size() * sizeof(int32_t));
    }
    if (n_sinks > 0) std::memcpy(staging.data() + off_sk, p.sinks, n_sinks * sizeof(float));
    s = device_alloc(p.device, total, &scratch.ptr);
    if (!s.ok()) return s;
    s = copy_to_device(p.device, scratch.ptr, staging.data(), total);
    if (!s.ok()) return s;
    const uint8_t* base = static_cast<const uint8_t*>(scratch.ptr);
    if (seg) {
      kp.seg_q = reinterpret_cast<const int32_t*>(base);
      kp.seg_kv = reinterpret_cast<const int32_t*>(base + off_kv);
      kp.kv_block_seg = reinterpret_cast<const int32_t*>(base + off_rg);
    }
    if (n_sinks > 0) kp.sinks = reinterpret_cast<const float*>(base + off_sk);
  }

  EventTimer timer;
  if (time_kernel) {
    s = timer.start(st->stream);
    if (!s.ok()) return s;
  }
  // Batches go in chunks of the grid's y limit.
  const int64_t chunk = st->caps.max_grid_y > 0 ? st->caps.max_grid_y : 65535;
  gpuError_t launch_status = gpuSuccess;
  for (int64_t b0 = 0; b0 < p.batch && launch_status == gpuSuccess; b0 += chunk) {
    kp.batch_offset = static_cast<int32_t>(b0);
    const dim3 grid(static_cast<unsigned>(grid_x), static_cast<unsigned>(std::min<int64_t>(chunk, p.batch - b0)), 1);
    launch_status = launch(plan, p.q.dtype, static_cast<int>(p.head_dim), kp, grid, st->stream);
  }
  float ms = 0.f;
  s = finish_call(st->stream, launch_status, "LaunchKernel(splash forward)", "StreamSynchronize(splash forward)",
                  time_kernel ? &timer : nullptr, &ms);
  if (!s.ok()) return s;

  if (info != nullptr) {
    info->path = path_name(plan.path);
    info->tile_m = plan.tile_m;
    info->tile_n = plan.tile_n;
    info->ctas = grid_x * p.batch;
    info->kernel_ms = ms;
  }
  return Status::Ok();
}

// ---- backward -------------------------------------------------------------------------------------------

Status backward(const AttentionParams& p_in, const DeviceSchedule* dq_schedule, const DeviceSchedule& dkv_schedule,
                BackwardInfo* info, bool time_kernel, ForcePath force) {
  DeviceState* st = nullptr;
  Status s = use_device(p_in.device, &st);
  if (!s.ok()) return s;
  const bool fused = p_in.fused_bwd != 0;
  if (!fused && dq_schedule == nullptr) return Status::Error("the split backward needs a dq schedule");
  if (p_in.dsinks != nullptr && p_in.sinks == nullptr) return Status::Error("dsinks asked for without sinks");
  if (dkv_schedule.device() != p_in.device || (!fused && dq_schedule->device() != p_in.device)) {
    return Status::Error("a backward schedule was uploaded to another device than the call's (" +
                         std::to_string(p_in.device) + ")");
  }
  AttentionParams p = p_in;
  p.dkv_sched = dkv_schedule.view();
  p.dq_sched = fused ? ScheduleView{} : dq_schedule->view();
  p.fwd = fused ? p.dkv_sched : p.dq_sched;
  const FwdPath want = force == ForcePath::kSimt ? FwdPath::Simt : force == ForcePath::kMma ? FwdPath::Mma : env_force();
  const BwdPlan plan = plan_backward(p, st->caps, want);
  if (!plan.error.empty()) return plan.range_error ? Status::Range(plan.error) : Status::Error(plan.error);

  // Launch orders (heaviest schedule rows first) of the dq and the dk/dv (or fused) pass.
  const int32_t* dq_work = nullptr;
  const int32_t* dkv_work = nullptr;
  int32_t n_dq_work = 0, n_dkv_work = 0;
  // Every DeviceSchedule is made by upload_schedule above.
  s = const_cast<DeviceScheduleImpl&>(static_cast<const DeviceScheduleImpl&>(dkv_schedule))
          .work(p.kv_seq, plan.dkv_keys, plan.dkv_tiles_per_block, &dkv_work, &n_dkv_work);
  if (s.ok() && !fused) {
    s = const_cast<DeviceScheduleImpl*>(static_cast<const DeviceScheduleImpl*>(dq_schedule))
            ->work(p.q_seq, plan.dq_rows, plan.dq_tiles_per_block, &dq_work, &n_dq_work);
  }
  if (!s.ok()) return s;

  // Temporaries in one allocation: di, the fused dq buffer, segment ids and their block ranges, and
  // the sinks when dsinks is asked for (the sinks change nothing else here: they are in lse).
  const bool seg = p.segment_ids_q != nullptr && p.segment_ids_kv != nullptr;
  const bool want_dsinks = p.dsinks != nullptr;
  const size_t n_sinks = want_dsinks ? static_cast<size_t>(p.heads) : 0;
  const size_t n_di = static_cast<size_t>(p.batch * p.heads * p.q_seq);
  const size_t n_acc = fused ? static_cast<size_t>(p.batch * p.heads * p.q_seq * p.head_dim) : 0;
  std::vector<int32_t> kv_ranges, q_ranges;
  const size_t nq = seg ? static_cast<size_t>(p.batch * p.q_seq) : 0, nkv = seg ? static_cast<size_t>(p.batch * p.kv_seq) : 0;
  if (seg) {
    if (!fused) kv_ranges = segment_block_ranges(p.segment_ids_kv, p.batch, p.kv_seq, p.dq_sched.block_kv);
    q_ranges = segment_block_ranges(p.segment_ids_q, p.batch, p.q_seq, p.dkv_sched.block_q);
  }
  const size_t off_acc = align16(n_di * sizeof(float));
  const size_t off_sq = off_acc + align16(n_acc * sizeof(float));
  const size_t off_skv = off_sq + align16(nq * sizeof(int32_t));
  const size_t off_kvr = off_skv + align16(nkv * sizeof(int32_t));
  const size_t off_qr = off_kvr + align16(kv_ranges.size() * sizeof(int32_t));
  const size_t off_sk = off_qr + align16(q_ranges.size() * sizeof(int32_t));
  const size_t total = off_sk + n_sinks * sizeof(float);
  DeviceScratch scratch(p.device);
  s = device_alloc(p.device, total, &scratch.ptr);
  if (!s.ok()) return s;
  uint8_t* base = static_cast<uint8_t*>(scratch.ptr);
  if (seg || want_dsinks) {
    std::vector<uint8_t> staging(total - off_sq, 0);
    if (seg) {
      std::memcpy(staging.data(), p.segment_ids_q, nq * sizeof(int32_t));
      std::memcpy(staging.data() + (off_skv - off_sq), p.segment_ids_kv, nkv * sizeof(int32_t));
      if (!kv_ranges.empty()) {
        std::memcpy(staging.data() + (off_kvr - off_sq), kv_ranges.data(), kv_ranges.size() * sizeof(int32_t));
      }
      std::memcpy(staging.data() + (off_qr - off_sq), q_ranges.data(), q_ranges.size() * sizeof(int32_t));
    }
    if (want_dsinks) std::memcpy(staging.data() + (off_sk - off_sq), p.sinks, n_sinks * sizeof(float));
    s = copy_to_device(p.device, base + off_sq, staging.data(), staging.size());
    if (!s.ok()) return s;
  }
  auto fill = [&](BwdKernelParams* bp) {
    bp->di = reinterpret_cast<float*>(base);
    bp->dq_acc = fused ? reinterpret_cast<float*>(base + off_acc) : nullptr;
    if (want_dsinks) {
      bp->s.sinks = reinterpret_cast<const float*>(base + off_sk);
      bp->dsinks = p.dsinks;
    }
    if (seg) {
      bp->s.seg_q = reinterpret_cast<const int32_t*>(base + off_sq);
      bp->s.seg_kv = reinterpret_cast<const int32_t*>(base + off_skv);
      bp->s.kv_block_seg = kv_ranges.empty() ? nullptr : reinterpret_cast<const int32_t*>(base + off_kvr);
      bp->q_block_seg = reinterpret_cast<const int32_t*>(base + off_qr);
    }
  };
  BwdKernelParams dkv_bp = make_bwd_kernel_params(p, plan, p.dkv_sched, true);
  fill(&dkv_bp);
  dkv_bp.s.work = dkv_work;
  dkv_bp.s.num_work = n_dkv_work;
  BwdKernelParams dq_bp{};
  if (!fused) {
    dq_bp = make_bwd_kernel_params(p, plan, p.dq_sched, false);
    fill(&dq_bp);
    dq_bp.s.work = dq_work;
    dq_bp.s.num_work = n_dq_work;
  }

  EventTimer timer;
  if (time_kernel) {
    s = timer.start(st->stream);
    if (!s.ok()) return s;
  }
  gpuError_t launch_status = gpuSuccess;
  const char* failed_step = "";
  if (fused) {
    launch_status = gpuMemsetAsync(base + off_acc, 0, n_acc * sizeof(float), st->stream);
    if (launch_status != gpuSuccess) failed_step = "MemsetAsync(splash backward dq buffer)";
  }
  const int64_t chunk = st->caps.max_grid_y > 0 ? st->caps.max_grid_y : 65535;
  const DType dtype = p.q.dtype;
  auto run = [&](BwdStep step, BwdKernelParams bp, int64_t grid_x, int64_t b0, const char* what) {
    if (launch_status != gpuSuccess || grid_x == 0) return;
    bp.s.batch_offset = static_cast<int32_t>(b0);
    const dim3 grid(static_cast<unsigned>(grid_x), static_cast<unsigned>(std::min<int64_t>(chunk, p.batch - b0)), 1);
    launch_status = launch_bwd(plan, dtype, static_cast<int>(p.head_dim), step, bp, grid, st->stream);
    if (launch_status != gpuSuccess) failed_step = what;
  };
  for (int64_t b0 = 0; b0 < p.batch; b0 += chunk) {
    run(BwdStep::kDi, dkv_bp, plan.di_grid_x, b0, "LaunchKernel(splash backward di)");
    if (fused) {
      run(BwdStep::kFused, dkv_bp, n_dkv_work * p.kv_heads, b0, "LaunchKernel(splash backward fused)");
      run(BwdStep::kCast, dkv_bp, plan.cast_grid_x, b0, "LaunchKernel(splash backward dq cast)");
    } else {
      run(BwdStep::kDq, dq_bp, n_dq_work * p.heads, b0, "LaunchKernel(splash backward dq)");
      run(BwdStep::kDkv, dkv_bp, n_dkv_work * p.kv_heads, b0, "LaunchKernel(splash backward dk/dv)");
    }
  }
  // dsinks once every batch chunk's di is in: one CTA per head sums all of them.
  if (want_dsinks && launch_status == gpuSuccess) {
    BwdKernelParams bp = dkv_bp;
    bp.s.batch_offset = 0;
    launch_status = launch_bwd(plan, dtype, static_cast<int>(p.head_dim), BwdStep::kDsinks, bp,
                               dim3(static_cast<unsigned>(p.heads), 1, 1), st->stream);
    if (launch_status != gpuSuccess) failed_step = "LaunchKernel(splash backward dsinks)";
  }
  float ms = 0.f;
  s = finish_call(st->stream, launch_status, failed_step, "StreamSynchronize(splash backward)",
                  time_kernel ? &timer : nullptr, &ms);
  if (!s.ok()) return s;
  if (info != nullptr) {
    info->path = path_name(plan.path);
    info->bucket = plan.bucket;
    info->kernel_ms = ms;
  }
  return Status::Ok();
}

}  // namespace gpu
}  // namespace splash
