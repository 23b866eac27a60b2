// The GPU backend (CUDA or HIP, whichever this binary was built with) as plain C++: device memory,
// uploaded schedules and the forward launch. native/addon/gpu.cc and the C++ harness (native/tests)
// call these and never include a CUDA or HIP header. native/gpu/launch.cu implements them;
// native/addon/no_gpu.cc implements them for CPU-only builds, where every call reports "not compiled".
//
// Every call returns a Status instead of throwing or aborting: the runtime's own message for a
// driver failure (out of memory, launch failure, no device), or a RangeError-class message for an
// argument the GPU kernels cannot take. All work for a device goes through one stream per device,
// created on first use; every call below returns only after its work on that stream has finished.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "splash/params.h"

namespace splash {
namespace gpu {

struct Status {
  enum Kind { kOk = 0, kError = 1, kRangeError = 2 };
  Kind kind = kOk;
  std::string message;

  bool ok() const { return kind == kOk; }
  static Status Ok() { return Status{}; }
  static Status Error(std::string m) { return Status{kError, std::move(m)}; }
  static Status Range(std::string m) { return Status{kRangeError, std::move(m)}; }
};

// "cuda", "rocm", or "none" for a CPU-only build.
const char* backend_name();

// ---- device memory ---------------------------------------------------------------------------------

// Allocates `bytes` (at least 1) on `device`; *ptr is 256-byte aligned.
Status device_alloc(int device, size_t bytes, void** ptr);
// Frees memory from device_alloc; a null ptr is a no-op.
Status device_free(int device, void* ptr);
Status copy_to_device(int device, void* dst, const void* src, size_t bytes);
Status copy_to_host(int device, void* dst, const void* src, size_t bytes);
Status copy_device_to_device(int device, void* dst, const void* src, size_t bytes);
// Fills bytes with `value` (the harness poisons outputs with 0xFF, a NaN in every dtype).
Status device_fill(int device, void* ptr, int value, size_t bytes);

// ---- schedules ---------------------------------------------------------------------------------------

// A schedule (ScheduleView of a MaskInfo: forward / dq with is_dkv = 0, or dkv) copied to one device, with its dense
// partial blocks packed to bits and its mask programs checked. Immutable once made, shared by every
// call that uses the same MaskInfo on that device; the launch orders of q tiles are added lazily and
// are safe to request from several threads.
class DeviceSchedule {
 public:
  virtual ~DeviceSchedule() = default;
  virtual int device() const = 0;
  // The view with every pointer on the device (partial_mask_blocks points at the packed bits).
  virtual const ScheduleView& view() const = 0;
  virtual size_t device_bytes() const = 0;
};

// Copies `host` (pointers into host memory) to `device`.
Status upload_schedule(int device, const ScheduleView& host, std::shared_ptr<DeviceSchedule>* out);

// ---- forward -----------------------------------------------------------------------------------------

// Which kernel runs a forward: automatic, or forced (for tests and benchmarks; an impossible force is
// an error). SPLASH_GPU_PATH=simt|mma in the environment forces it for automatic calls.
enum class ForcePath { kAuto = 0, kSimt = 1, kMma = 2 };

struct ForwardInfo {
  std::string path;   // "simt" or "mma"
  int tile_m = 0;     // query rows per CTA
  int tile_n = 0;     // keys per K/V tile
  int64_t ctas = 0;
  float kernel_ms = 0.f;  // kernel time measured with events when timing was asked for, else 0
};

// out (and lse when p.save_lse) from q, k, v on p.device. q, k, v, out and lse point to device memory;
// p.segment_ids_q / p.segment_ids_kv are HOST arrays (or null): they are copied to the device with
// their per-block ranges; so is p.sinks ([p.heads] f32, or null), and p.scale applies (0 reads as 1).
// p.fwd is ignored: `schedule` (uploaded for p.device) is used instead.
// With `time_kernel`, the kernel alone is timed with events and reported in info->kernel_ms.
Status forward(const AttentionParams& p, const DeviceSchedule& schedule, ForcePath force = ForcePath::kAuto,
               ForwardInfo* info = nullptr, bool time_kernel = false);

// ---- backward ----------------------------------------------------------------------------------------

struct BackwardInfo {
  std::string path;        // "simt" or "mma": the kernels of the dq, dk/dv and fused steps
  int bucket = 0;          // head-dim bucket of the SIMT kernels, or the head dim of the mma ones
  float kernel_ms = 0.f;   // every launch of the call, timed with events when asked for, else 0
};

// dq, dk, dv from q, k, v, out, lse, dout on p.device (all device memory; segment ids HOST arrays, as
// for forward), with p.scale. p.dsinks (device memory, [p.heads] f32, or null) asks for d loss / d sinks,
// which needs p.sinks (a HOST array, as for forward); sinks change nothing else (they are in lse).
// p.fused_bwd == 0: split (di, then a dq pass over `dq_schedule` and a dk/dv pass over `dkv_schedule`;
// no atomics, bitwise reproducible). p.fused_bwd == 1: one pass over `dkv_schedule`
// with dq summed through atomics in an f32 buffer, then cast; `dq_schedule` may be null. Schedules are
// uploaded with upload_schedule (a dq schedule is a forward-shaped one; the dkv one has is_dkv = 1);
// p.fwd, p.dq_sched and p.dkv_sched are ignored. `force` pins the kernels of the dq, dk/dv and fused
// steps as for forward (kAuto: tensor cores where they apply, or SPLASH_GPU_PATH).
Status backward(const AttentionParams& p, const DeviceSchedule* dq_schedule, const DeviceSchedule& dkv_schedule,
                BackwardInfo* info = nullptr, bool time_kernel = false, ForcePath force = ForcePath::kAuto);

// A short description of the device ("NVIDIA H100 80GB HBM3, sm_90, 132 SMs"), or the error.
Status describe_device(int device, std::string* text);

}  // namespace gpu
}  // namespace splash
