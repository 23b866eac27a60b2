// The GPU backend behind N-API (lib/backends/gpu.ts and lib/backends/device.ts call these):
//
//   gpuBackendName()                          'cuda' | 'rocm' | 'none' (CPU-only build)
//   gpuToDevice(data, device) → handle        TypedArray copied into a new device buffer
//   gpuToHost(handle, out) → Promise<void>    device buffer copied into `out` (same byte length)
//   gpuToHostSync(handle, out)
//   gpuDispose(handle)                        frees now (or when the last call using it ends)
//   gpuBufferInfo(handle) → { device, bytes, disposed }
//   gpuUploadSchedule(device, maskInfo) → handle    a MaskInfo's schedule (fwd, dq or dkv) on a device,
//                                             read and checked as every schedule is (host_schedule.h)
//   gpuForward(call) → Promise<result>, gpuForwardSync(call) → result
//   gpuBackward(call) → Promise<{ dq, dk, dv, dsinks }>, gpuBackwardSync(call): split or fused (call.fused);
//                                             dsinks ([heads] f32) when the call has sinks, else null
//   Both calls take scale? (default 1) and sinks? (Float32Array [heads], or null).
//   gpuPlanForward, gpuWorkOrder, gpuPackMaskBits, gpuCheckSchedule, gpuSegmentRanges:
//                                             the host-side planning, exported for tests
//
// Device buffers are External values with a type tag and a finalizer, holding a shared reference
// to the memory: dispose() or garbage collection drops the handle's share, and a forward still
// running on the buffer keeps its own share, so memory is never freed under a kernel. Async calls are
// jobs of the shared dispatcher (jobs.h): host inputs are copied when the call is made, and a call can
// be cancelled until its kernels launch. Every runtime failure becomes a JS Error carrying the
// runtime's message; bad arguments become TypeError or RangeError naming the field; nothing aborts.
// No CUDA or HIP header is included here.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../gpu/plan.h"
#include "addon.h"
#include "args.h"
#include "host_schedule.h"
#include "jobs.h"
#include "splash/gpu_api.h"
#include "splash/params.h"

namespace splash {
namespace addon {

namespace {

using gpu::Status;

constexpr int64_t kMaxExtent = INT64_C(1) << 31;

// Random constants that mark our externals (napi_type_tag_object), so a foreign External passed from
// JS is rejected instead of being reinterpreted.
const napi_type_tag kBufferTag = {0x5f1c2b9de3a47c61ULL, 0x8d2e4f6a1b3c5e7fULL};
const napi_type_tag kScheduleTag = {0x2a7d9c4e6b1f3a85ULL, 0x4c6e8a0b2d4f6183ULL};

Outcome outcome_of(const Status& s) {
  if (s.ok()) return Outcome::ok();
  return s.kind == Status::kRangeError ? Outcome::range_error(s.message) : Outcome::error(s.message);
}

[[noreturn]] void fail_range(const std::string& m) { throw ArgError{false, m}; }
[[noreturn]] void fail_type(const std::string& m) { throw ArgError{true, m}; }

// A failed runtime status on the JS thread: RangeError for bad sizes, Error with the runtime's message.
void check(const Status& s) {
  if (s.ok()) return;
  if (s.kind == Status::kRangeError) fail_range(s.message);
  throw std::runtime_error(s.message);
}

// Readers whose argument names are the field names (the Reader itself keeps no state).
double number_of(const Napi::Value& v, const std::string& path) { return Reader().number_value(v, path); }
int64_t integer_of(const Napi::Value& v, const std::string& path, int64_t lo, int64_t hi) {
  return Reader().integer_value(v, path, lo, hi);
}
int64_t field_int(const Napi::Object& o, const char* key, int64_t lo, int64_t hi) {
  return Reader().integer(o, key, key, lo, hi);
}
bool field_bool(const Napi::Object& o, const char* key) { return Reader().boolean(o, key, key); }
Span array_of(const Napi::Value& v, const std::string& path, napi_typedarray_type type) {
  return Reader().array_value(v, path, type);
}
Span field_array(const Napi::Object& o, const char* key, napi_typedarray_type type, bool optional) {
  return Reader().array(o, key, key, type, optional);
}

// Adjusts V8's count of external memory; reports instead of throwing (finalizers call it too).
void account(napi_env env, int64_t bytes) {
  int64_t total = 0;
  napi_adjust_external_memory(env, bytes, &total);
}

// ---- device buffers ----------------------------------------------------------------------------------

struct DeviceBuffer {
  int device = 0;
  void* ptr = nullptr;
  size_t bytes = 0;
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { (void)gpu::device_free(device, ptr); }  // runs on whichever thread drops the last share
};
using BufferPtr = std::shared_ptr<DeviceBuffer>;

Status alloc_buffer(int device, size_t bytes, BufferPtr* out) {
  auto buf = std::make_shared<DeviceBuffer>();
  buf->device = device;
  buf->bytes = bytes;
  Status s = gpu::device_alloc(device, bytes, &buf->ptr);
  if (!s.ok()) return s;
  *out = std::move(buf);
  return Status::Ok();
}

// What a JS handle owns: one share of the buffer, and the bytes reported to V8 as external memory
// (so that garbage collection notices device memory held by unreachable DeviceTensors).
struct BufferHandle {
  BufferPtr buf;
  int64_t accounted = 0;
};

Napi::Value wrap_buffer(Napi::Env env, BufferPtr buf) {
  auto* h = new BufferHandle{std::move(buf), 0};
  h->accounted = static_cast<int64_t>(h->buf->bytes);
  account(env, h->accounted);
  Napi::External<BufferHandle> ext = Napi::External<BufferHandle>::New(env, h, [](Napi::Env e, BufferHandle* dead) {
    if (dead->accounted != 0) account(e, -dead->accounted);
    delete dead;
  });
  ext.TypeTag(&kBufferTag);
  return ext;
}

BufferHandle* handle_of(const Napi::Value& v, const std::string& path) {
  if (!v.IsExternal() || !v.As<Napi::External<BufferHandle>>().CheckTypeTag(&kBufferTag)) {
    fail_type(path + ": expected a device buffer handle (from toDevice)");
  }
  return v.As<Napi::External<BufferHandle>>().Data();
}

BufferPtr live_buffer(const Napi::Value& v, const std::string& path) {
  BufferHandle* h = handle_of(v, path);
  if (!h->buf) throw std::runtime_error(path + ": the DeviceTensor was disposed");
  return h->buf;
}

// ---- schedules ---------------------------------------------------------------------------------------

struct ScheduleHandle {
  std::shared_ptr<gpu::DeviceSchedule> schedule;
};

Napi::Value UploadSchedule(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int device = static_cast<int>(integer_of(info[0], "device", 0, 1 << 20));
  if (!info[1].IsObject()) fail_type("maskInfo: expected a MaskInfo object");
  Reader r;
  const std::shared_ptr<const HostSchedule> host = read_host_schedule(r, info[1].As<Napi::Object>(), "maskInfo");
  auto h = std::make_unique<ScheduleHandle>();
  check(gpu::upload_schedule(device, host->view, &h->schedule));
  const int64_t bytes = static_cast<int64_t>(h->schedule->device_bytes());
  account(env, bytes);
  Napi::External<ScheduleHandle> ext =
      Napi::External<ScheduleHandle>::New(env, h.release(), [bytes](Napi::Env e, ScheduleHandle* dead) {
        account(e, -bytes);
        delete dead;
      });
  ext.TypeTag(&kScheduleTag);
  return ext;
}

std::shared_ptr<gpu::DeviceSchedule> schedule_of(const Napi::Value& v) {
  if (!v.IsExternal() || !v.As<Napi::External<ScheduleHandle>>().CheckTypeTag(&kScheduleTag)) {
    fail_type("schedule: expected a schedule handle (from gpuUploadSchedule)");
  }
  return v.As<Napi::External<ScheduleHandle>>().Data()->schedule;
}

// ---- device memory entry points ----------------------------------------------------------------------

napi_typedarray_type array_type(const Napi::Value& v) {
  return v.IsTypedArray() ? v.As<Napi::TypedArray>().TypedArrayType() : napi_int8_array;
}

Span tensor_array(const Napi::Value& v, const std::string& path) {
  const napi_typedarray_type t = array_type(v);
  if (t != napi_float32_array && t != napi_uint16_array) {
    fail_type(path + ": expected a Float32Array or a Uint16Array");
  }
  return array_of(v, path, t);
}

Napi::Value ToDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Span data = tensor_array(info[0], "data");
  const int device = static_cast<int>(integer_of(info[1], "device", 0, 1 << 20));
  BufferPtr buf;
  check(alloc_buffer(device, data.bytes, &buf));
  check(gpu::copy_to_device(device, buf->ptr, data.data, data.bytes));
  return wrap_buffer(env, std::move(buf));
}

// Copies a device buffer into a host array the call's JS side made for it (device.ts: toHost).
class ToHostJob : public Job {
 public:
  ToHostJob(BufferPtr buf, void* dst) : buf_(std::move(buf)), dst_(dst) {}
  Outcome Run(const CancelFlag& cancel) override {
    if (cancel.load()) return Outcome::aborted();
    return outcome_of(gpu::copy_to_host(buf_->device, dst_, buf_->ptr, buf_->bytes));
  }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

 private:
  BufferPtr buf_;
  void* dst_;
};

std::unique_ptr<ToHostJob> to_host_job(const Napi::CallbackInfo& info) {
  BufferPtr buf = live_buffer(info[0], "handle");
  const Span out = tensor_array(info[1], "out");
  if (out.bytes != buf->bytes) {
    fail_range("out: expected " + num(static_cast<int64_t>(buf->bytes)) + " bytes (the device buffer's), got " +
               num(static_cast<int64_t>(out.bytes)));
  }
  return std::make_unique<ToHostJob>(std::move(buf), out.data);
}

Napi::Value ToHost(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::unique_ptr<ToHostJob> job = to_host_job(info);
  job->keep(env, info[1]);
  return submit(env, std::move(job), env.Undefined());
}

Napi::Value ToHostSync(const Napi::CallbackInfo& info) {
  std::unique_ptr<ToHostJob> job = to_host_job(info);
  return run_now(info.Env(), *job);
}

Napi::Value Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufferHandle* h = handle_of(info[0], "handle");
  h->buf.reset();
  if (h->accounted != 0) {
    account(env, -h->accounted);
    h->accounted = 0;
  }
  return env.Undefined();
}

Napi::Value BufferInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufferHandle* h = handle_of(info[0], "handle");
  Napi::Object o = Napi::Object::New(env);
  o.Set("disposed", !h->buf);
  o.Set("device", h->buf ? h->buf->device : -1);
  o.Set("bytes", h->buf ? static_cast<double>(h->buf->bytes) : 0.0);
  return o;
}

// ---- forward -------------------------------------------------------------------------------------------

// One input tensor: on the device already, or a host array copied up for the call (from the call's own
// copy of it when the call is async).
struct Operand {
  BufferPtr device;
  OwnedBytes copy;
  const void* host = nullptr;
  size_t bytes = 0;
};

// A host array copied into a new device buffer, or the given device buffer itself.
Status stage_operand(int device, const Operand& o, BufferPtr* out) {
  if (o.device) {
    *out = o.device;
    return Status::Ok();
  }
  Status s = alloc_buffer(device, o.bytes, out);
  if (s.ok()) s = gpu::copy_to_device(device, (*out)->ptr, o.host, o.bytes);
  return s;
}

// Host outputs: arrays made on the JS thread when the call is read, filled by the job, handed back by
// Result(). An async job keeps them alive (Job::keep); a sync one holds them on the JS stack.
struct HostOutput {
  void* data = nullptr;
  size_t kept = 0;  // index for Job::kept
};

// What forward and backward jobs share: the params, the operands, the segment ids and the kernel path.
class GpuCallJob : public Job {
 public:
  AttentionParams p{};
  Operand q, k, v;
  std::vector<int32_t> seg_q, seg_kv;
  std::vector<float> sinks;  // the call's own copy (p.sinks points here)
  bool out_on_device = false;
  bool time_kernel = false;
  gpu::ForcePath force = gpu::ForcePath::kAuto;

 protected:
  // Stages one operand on the device and points `ref` at it; `held` keeps the buffer for the call.
  Status stage(const Operand& o, TensorRef* ref, std::vector<BufferPtr>* held) {
    BufferPtr b;
    const Status s = stage_operand(p.device, o, &b);
    if (!s.ok()) return s;
    ref->ptr = b->ptr;
    held->push_back(std::move(b));
    return Status::Ok();
  }

  // q, k, v on the device, and the segment ids.
  Status stage_qkv(std::vector<BufferPtr>* held) {
    Status s = stage(q, &p.q, held);
    if (s.ok()) s = stage(k, &p.k, held);
    if (s.ok()) s = stage(v, &p.v, held);
    p.segment_ids_q = seg_q.empty() ? nullptr : seg_q.data();
    p.segment_ids_kv = seg_kv.empty() ? nullptr : seg_kv.data();
    return s;
  }
};

class ForwardJob : public GpuCallJob {
 public:
  std::shared_ptr<gpu::DeviceSchedule> schedule;
  size_t out_bytes = 0, lse_bytes = 0;
  HostOutput out_host, lse_host;
  BufferPtr out_dev, lse_dev;
  gpu::ForwardInfo info;

  Outcome Run(const CancelFlag& cancel) override {
    if (cancel.load()) return Outcome::aborted();
    const int dev = p.device;
    std::vector<BufferPtr> inputs;
    Status s = stage_qkv(&inputs);
    if (s.ok()) s = alloc_buffer(dev, out_bytes, &out_dev);
    if (s.ok() && p.save_lse) s = alloc_buffer(dev, lse_bytes, &lse_dev);
    if (!s.ok()) return outcome_of(s);
    p.out.ptr = out_dev->ptr;
    p.lse.ptr = p.save_lse ? lse_dev->ptr : nullptr;
    // The last point at which a cancelled call can still stop: a launched kernel runs to its end.
    if (cancel.load()) return Outcome::aborted();
    s = gpu::forward(p, *schedule, force, &info, time_kernel);
    if (!s.ok()) return outcome_of(s);
    if (!out_on_device) {
      s = gpu::copy_to_host(dev, out_host.data, out_dev->ptr, out_bytes);
      if (s.ok() && p.save_lse) s = gpu::copy_to_host(dev, lse_host.data, lse_dev->ptr, lse_bytes);
      out_dev.reset();
      lse_dev.reset();
    }
    return outcome_of(s);
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object r = Napi::Object::New(env);
    if (out_on_device) {
      r.Set("out", wrap_buffer(env, out_dev));
      r.Set("lse", p.save_lse ? wrap_buffer(env, lse_dev) : env.Null());
    } else {
      r.Set("out", kept(env, out_host.kept));
      r.Set("lse", p.save_lse ? kept(env, lse_host.kept) : env.Null());
    }
    r.Set("path", info.path);
    r.Set("tileM", info.tile_m);
    r.Set("tileN", info.tile_n);
    r.Set("ctas", static_cast<double>(info.ctas));
    r.Set("kernelMs", info.kernel_ms);
    return r;
  }
};

void contiguous(TensorRef* t, DType dtype, int64_t heads, int64_t seq, int64_t dim) {
  t->dtype = dtype;
  t->dim_stride = 1;
  t->seq_stride = dim;
  t->head_stride = seq * dim;
  t->batch_stride = heads * seq * dim;
}

Operand read_operand(const Napi::Value& v, const std::string& name, int device, DType dtype, int64_t elements,
                     bool copy) {
  const size_t elem = dtype == DType::F32 ? 4 : 2;
  const size_t want = static_cast<size_t>(elements) * elem;
  Operand o;
  if (v.IsExternal()) {
    o.device = live_buffer(v, name);
    if (o.device->device != device) {
      fail_range(name + ": expected a tensor on device " + num(device) + " (the call's), got device " +
                 num(o.device->device));
    }
    o.bytes = o.device->bytes;
  } else {
    const Span s = array_of(v, name, dtype == DType::F32 ? napi_float32_array : napi_uint16_array);
    o.host = s.data;
    o.bytes = s.bytes;
  }
  if (o.bytes != want) {
    fail_range(name + ": expected " + num(elements) + " elements (" + num(static_cast<int64_t>(want)) + " bytes), got " +
               num(static_cast<int64_t>(o.bytes)) + " bytes");
  }
  if (copy && o.host != nullptr) {
    Span s;
    s.data = const_cast<void*>(o.host);
    s.bytes = o.bytes;
    o.copy = OwnedBytes::copy_of(s, name);
    o.host = o.copy.data();
  }
  return o;
}

// The optional `force` field: 'auto' (default), 'simt' or 'mma'.
gpu::ForcePath read_force(const Napi::Object& c) {
  const std::string force = c.Get("force").IsString() ? c.Get("force").As<Napi::String>().Utf8Value() : "auto";
  if (force == "simt") return gpu::ForcePath::kSimt;
  if (force == "mma") return gpu::ForcePath::kMma;
  if (force != "auto") fail_type("force: expected 'auto', 'simt' or 'mma', got '" + force + "'");
  return gpu::ForcePath::kAuto;
}

// The fields forward and backward calls share, read into `job`: device, dtype, sizes, mask value, soft
// cap, scale, the contiguous layouts of q, k, v, out and lse, the q / k / v operands (copied when
// `copy`), the segment ids, the sinks, the kernel path and the timing flag. Returns the dtype; a bad
// field throws ArgError.
DType read_common(const Napi::Object& c, GpuCallJob* job, bool copy) {
  AttentionParams& p = job->p;
  p.device = static_cast<int32_t>(field_int(c, "device", 0, 1 << 20));
  const DType dtype = static_cast<DType>(field_int(c, "dtype", 0, 2));
  p.batch = field_int(c, "batch", 1, kMaxExtent - 1);
  p.heads = field_int(c, "heads", 1, kMaxExtent - 1);
  p.kv_heads = field_int(c, "kvHeads", 1, kMaxExtent - 1);
  p.q_seq = field_int(c, "qSeq", 1, kMaxExtent - 1);
  p.kv_seq = field_int(c, "kvSeq", 1, kMaxExtent - 1);
  p.head_dim = field_int(c, "headDim", 1, 1 << 16);
  p.head_dim_v = field_int(c, "headDimV", 1, 1 << 16);
  if (p.heads % p.kv_heads != 0) {
    fail_range("kvHeads: expected a divisor of heads (" + num(p.heads) + "), got " + num(p.kv_heads));
  }
  const double q_elems = static_cast<double>(p.batch) * p.heads * p.q_seq * std::max(p.head_dim, p.head_dim_v);
  const double kv_elems = static_cast<double>(p.batch) * p.kv_heads * p.kv_seq * std::max(p.head_dim, p.head_dim_v);
  if (q_elems > 9e15 || kv_elems > 9e15) fail_range("sizes: the tensors are too large");
  p.mask_value = static_cast<float>(number_of(c.Get("maskValue"), "maskValue"));
  const double cap = number_of(c.Get("softCap"), "softCap");
  if (!(cap >= 0) || !std::isfinite(cap)) fail_range("softCap: expected 0 (none) or a positive finite number");
  p.soft_cap = static_cast<float>(cap);
  p.scale = 1.0f;
  const Napi::Value scale = c.Get("scale");
  if (!scale.IsUndefined()) {
    const double x = number_of(scale, "scale");
    // Also positive as a float: the kernels scale row maxima, which only a positive scale keeps in order.
    if (!(x > 0) || !std::isfinite(x) || !(static_cast<float>(x) > 0.0f)) {
      fail_range("scale: expected a positive finite number, got " + std::to_string(x));
    }
    p.scale = static_cast<float>(x);
  }

  contiguous(&p.q, dtype, p.heads, p.q_seq, p.head_dim);
  contiguous(&p.k, dtype, p.kv_heads, p.kv_seq, p.head_dim);
  contiguous(&p.v, dtype, p.kv_heads, p.kv_seq, p.head_dim_v);
  contiguous(&p.out, dtype, p.heads, p.q_seq, p.head_dim_v);
  contiguous(&p.lse, DType::F32, p.heads, p.q_seq, 1);

  job->q = read_operand(c.Get("q"), "q", p.device, dtype, p.batch * p.heads * p.q_seq * p.head_dim, copy);
  job->k = read_operand(c.Get("k"), "k", p.device, dtype, p.batch * p.kv_heads * p.kv_seq * p.head_dim, copy);
  job->v = read_operand(c.Get("v"), "v", p.device, dtype, p.batch * p.kv_heads * p.kv_seq * p.head_dim_v, copy);

  const Span seg_q = field_array(c, "segmentIdsQ", napi_int32_array, true);
  const Span seg_kv = field_array(c, "segmentIdsKv", napi_int32_array, true);
  if ((seg_q.data == nullptr) != (seg_kv.data == nullptr)) {
    fail_range("segmentIdsQ, segmentIdsKv: expected both or neither");
  }
  if (seg_q.data != nullptr) {
    if (seg_q.length != p.batch * p.q_seq) {
      fail_range("segmentIdsQ: expected length " + num(p.batch * p.q_seq) + ", got " + num(seg_q.length));
    }
    if (seg_kv.length != p.batch * p.kv_seq) {
      fail_range("segmentIdsKv: expected length " + num(p.batch * p.kv_seq) + ", got " + num(seg_kv.length));
    }
    const int32_t* sq = static_cast<const int32_t*>(seg_q.data);
    const int32_t* skv = static_cast<const int32_t*>(seg_kv.data);
    job->seg_q.assign(sq, sq + seg_q.length);
    job->seg_kv.assign(skv, skv + seg_kv.length);
  }
  const Napi::Value sinks = c.Get("sinks");
  if (!sinks.IsUndefined() && !sinks.IsNull()) {
    const Span sk = array_of(sinks, "sinks", napi_float32_array);
    if (sk.length != p.heads) {
      fail_range("sinks: expected length " + num(p.heads) + " (one per query head), got " + num(sk.length));
    }
    const float* data = static_cast<const float*>(sk.data);
    job->sinks.assign(data, data + sk.length);
    p.sinks = job->sinks.data();
  }
  job->force = read_force(c);
  job->time_kernel = field_bool(c, "timeKernel");
  job->out_on_device = field_bool(c, "outputOnDevice");
  return dtype;
}

// A new Float32Array (f32) or Uint16Array of `elements` for a host output, kept by `job`.
HostOutput new_host_output(Napi::Env env, Job* job, DType dtype, int64_t elements) {
  const size_t n = static_cast<size_t>(elements);
  Napi::TypedArray a = dtype == DType::F32 ? static_cast<Napi::TypedArray>(Napi::Float32Array::New(env, n))
                                           : static_cast<Napi::TypedArray>(Napi::Uint16Array::New(env, n));
  HostOutput o;
  o.kept = job->keep(env, a);
  o.data = static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
  return o;
}

std::shared_ptr<gpu::DeviceSchedule> schedule_on(const Napi::Value& v, const char* name, int device) {
  std::shared_ptr<gpu::DeviceSchedule> s = schedule_of(v);
  if (s->device() != device) {
    fail_range(std::string(name) + ": uploaded to device " + num(s->device()) + ", the call runs on device " +
               num(device));
  }
  return s;
}

std::unique_ptr<ForwardJob> forward_job(const Napi::CallbackInfo& info, bool copy) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) fail_type("call: expected an object");
  const Napi::Object c = info[0].As<Napi::Object>();
  auto job = std::make_unique<ForwardJob>();
  AttentionParams& p = job->p;
  const DType dtype = read_common(c, job.get(), copy);
  p.save_lse = field_bool(c, "saveLse") ? 1 : 0;
  job->schedule = schedule_on(c.Get("schedule"), "schedule", p.device);
  const int64_t out_elems = p.batch * p.heads * p.q_seq * p.head_dim_v;
  job->out_bytes = static_cast<size_t>(out_elems) * (dtype == DType::F32 ? 4 : 2);
  job->lse_bytes = static_cast<size_t>(p.batch * p.heads * p.q_seq) * 4;
  if (!job->out_on_device) {
    job->out_host = new_host_output(env, job.get(), dtype, out_elems);
    if (p.save_lse) job->lse_host = new_host_output(env, job.get(), DType::F32, p.batch * p.heads * p.q_seq);
  }
  return job;
}

Napi::Value Forward(const Napi::CallbackInfo& info) {
  return submit(info.Env(), forward_job(info, /*copy=*/true), info[0].As<Napi::Object>().Get("cancel"));
}

Napi::Value ForwardSync(const Napi::CallbackInfo& info) {
  std::unique_ptr<ForwardJob> job = forward_job(info, /*copy=*/false);
  return run_now(info.Env(), *job);
}

// ---- backward ------------------------------------------------------------------------------------------

class BackwardJob : public GpuCallJob {
 public:
  std::shared_ptr<gpu::DeviceSchedule> dq_schedule, dkv_schedule;
  Operand out, lse, dout;
  size_t bytes[3] = {0, 0, 0};  // dq, dk, dv
  HostOutput host[3];
  BufferPtr grads[3];
  HostOutput dsinks_host;        // with sinks: d loss / d sinks, [heads] f32
  BufferPtr dsinks_dev;
  gpu::BackwardInfo info;

  size_t dsinks_bytes() const { return sinks.size() * sizeof(float); }

  Outcome Run(const CancelFlag& cancel) override {
    if (cancel.load()) return Outcome::aborted();
    const int dev = p.device;
    std::vector<BufferPtr> inputs;
    Status s = stage_qkv(&inputs);
    if (s.ok()) s = stage(out, &p.out, &inputs);
    if (s.ok()) s = stage(lse, &p.lse, &inputs);
    if (s.ok()) s = stage(dout, &p.dout, &inputs);
    for (int i = 0; i < 3 && s.ok(); ++i) s = alloc_buffer(dev, bytes[i], &grads[i]);
    if (s.ok() && !sinks.empty()) s = alloc_buffer(dev, dsinks_bytes(), &dsinks_dev);
    if (!s.ok()) return outcome_of(s);
    p.dq.ptr = grads[0]->ptr;
    p.dk.ptr = grads[1]->ptr;
    p.dv.ptr = grads[2]->ptr;
    p.dsinks = dsinks_dev ? static_cast<float*>(dsinks_dev->ptr) : nullptr;
    if (cancel.load()) return Outcome::aborted();
    s = gpu::backward(p, dq_schedule.get(), *dkv_schedule, &info, time_kernel, force);
    if (!s.ok()) return outcome_of(s);
    if (!out_on_device) {
      for (int i = 0; i < 3 && s.ok(); ++i) s = gpu::copy_to_host(dev, host[i].data, grads[i]->ptr, bytes[i]);
      if (s.ok() && dsinks_dev) s = gpu::copy_to_host(dev, dsinks_host.data, dsinks_dev->ptr, dsinks_bytes());
      for (BufferPtr& g : grads) g.reset();
      dsinks_dev.reset();
    }
    return outcome_of(s);
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object r = Napi::Object::New(env);
    const char* names[3] = {"dq", "dk", "dv"};
    for (int i = 0; i < 3; ++i) r.Set(names[i], out_on_device ? wrap_buffer(env, grads[i]) : kept(env, host[i].kept));
    if (sinks.empty()) {
      r.Set("dsinks", env.Null());
    } else {
      r.Set("dsinks", out_on_device ? wrap_buffer(env, dsinks_dev) : kept(env, dsinks_host.kept));
    }
    r.Set("kernelMs", info.kernel_ms);
    r.Set("path", info.path);
    return r;
  }
};

std::unique_ptr<BackwardJob> backward_job(const Napi::CallbackInfo& info, bool copy) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) fail_type("call: expected an object");
  const Napi::Object c = info[0].As<Napi::Object>();
  auto job = std::make_unique<BackwardJob>();
  AttentionParams& p = job->p;
  const DType dtype = read_common(c, job.get(), copy);
  p.fused_bwd = field_bool(c, "fused") ? 1 : 0;
  contiguous(&p.dout, dtype, p.heads, p.q_seq, p.head_dim_v);
  contiguous(&p.dq, dtype, p.heads, p.q_seq, p.head_dim);
  contiguous(&p.dk, dtype, p.kv_heads, p.kv_seq, p.head_dim);
  contiguous(&p.dv, dtype, p.kv_heads, p.kv_seq, p.head_dim_v);
  const int64_t nq = p.batch * p.heads * p.q_seq, nkv = p.batch * p.kv_heads * p.kv_seq;
  job->out = read_operand(c.Get("out"), "out", p.device, dtype, nq * p.head_dim_v, copy);
  job->lse = read_operand(c.Get("logsumexp"), "logsumexp", p.device, DType::F32, nq, copy);
  job->dout = read_operand(c.Get("dout"), "dout", p.device, dtype, nq * p.head_dim_v, copy);

  job->dkv_schedule = schedule_on(c.Get("dkvSchedule"), "dkvSchedule", p.device);
  if (!p.fused_bwd) job->dq_schedule = schedule_on(c.Get("dqSchedule"), "dqSchedule", p.device);
  if (job->dkv_schedule->view().is_dkv != 1) fail_range("dkvSchedule: expected a dkv schedule (isDkv)");
  if (job->dq_schedule && job->dq_schedule->view().is_dkv != 0) {
    fail_range("dqSchedule: expected a q-major schedule (isDkv false)");
  }

  const int64_t elems[3] = {nq * p.head_dim, nkv * p.head_dim, nkv * p.head_dim_v};
  for (int i = 0; i < 3; ++i) {
    job->bytes[i] = static_cast<size_t>(elems[i]) * (dtype == DType::F32 ? 4 : 2);
    if (!job->out_on_device) job->host[i] = new_host_output(env, job.get(), dtype, elems[i]);
  }
  if (!job->sinks.empty() && !job->out_on_device) {
    job->dsinks_host = new_host_output(env, job.get(), DType::F32, p.heads);
  }
  return job;
}

Napi::Value Backward(const Napi::CallbackInfo& info) {
  return submit(info.Env(), backward_job(info, /*copy=*/true), info[0].As<Napi::Object>().Get("cancel"));
}

Napi::Value BackwardSync(const Napi::CallbackInfo& info) {
  std::unique_ptr<BackwardJob> job = backward_job(info, /*copy=*/false);
  return run_now(info.Env(), *job);
}

// ---- host-side planning, exported for tests --------------------------------------------------------------

// gpuPlanForward({ dtype, headDim, headDimV, batch, heads, kvHeads, qSeq, kvSeq, blockQ, blockKv,
//                  segments, maskValue, force, device: { hip, ccMajor, ccMinor, maxSmem, multiprocessors } })
Napi::Value PlanForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) fail_type("args: expected an object");
  const Napi::Object a = info[0].As<Napi::Object>();
  AttentionParams p{};
  const DType dtype = static_cast<DType>(field_int(a, "dtype", 0, 2));
  p.batch = field_int(a, "batch", 1, kMaxExtent);
  p.heads = field_int(a, "heads", 1, kMaxExtent);
  p.kv_heads = field_int(a, "kvHeads", 1, kMaxExtent);
  p.q_seq = field_int(a, "qSeq", 1, kMaxExtent);
  p.kv_seq = field_int(a, "kvSeq", 1, kMaxExtent);
  p.head_dim = field_int(a, "headDim", 1, 1 << 16);
  p.head_dim_v = field_int(a, "headDimV", 1, 1 << 16);
  p.mask_value = static_cast<float>(number_of(a.Get("maskValue"), "maskValue"));
  void* aligned = reinterpret_cast<void*>(uintptr_t{256});  // stands in for device pointers
  for (TensorRef* t : {&p.q, &p.k, &p.v, &p.out}) t->ptr = aligned;
  contiguous(&p.q, dtype, p.heads, p.q_seq, p.head_dim);
  contiguous(&p.k, dtype, p.kv_heads, p.kv_seq, p.head_dim);
  contiguous(&p.v, dtype, p.kv_heads, p.kv_seq, p.head_dim_v);
  contiguous(&p.out, dtype, p.heads, p.q_seq, p.head_dim_v);
  static const int32_t kSeg = 0;
  if (field_bool(a, "segments")) p.segment_ids_q = p.segment_ids_kv = &kSeg;
  ScheduleView& s = p.fwd;
  s.heads = 1;
  s.block_q = static_cast<int32_t>(field_int(a, "blockQ", 1, kMaxExtent));
  s.block_kv = static_cast<int32_t>(field_int(a, "blockKv", 1, kMaxExtent));
  s.q_blocks = static_cast<int32_t>((p.q_seq + s.block_q - 1) / s.block_q);
  s.kv_blocks = static_cast<int32_t>((p.kv_seq + s.block_kv - 1) / s.block_kv);
  s.rows_per_schedule = s.q_blocks;
  s.num_schedules = 1;
  const Napi::Value dv = a.Get("device");
  if (!dv.IsObject()) fail_type("device: expected an object");
  const Napi::Object d = dv.As<Napi::Object>();
  gpu::DeviceCaps caps{};
  caps.hip = field_bool(d, "hip");
  caps.cc_major = static_cast<int>(field_int(d, "ccMajor", 0, 100));
  caps.cc_minor = static_cast<int>(field_int(d, "ccMinor", 0, 100));
  caps.max_smem_per_block = field_int(d, "maxSmem", 0, INT64_C(1) << 40);
  caps.multiprocessors = static_cast<int>(field_int(d, "multiprocessors", 1, 1 << 20));
  caps.max_grid_y = 65535;
  const std::string force = a.Get("force").IsString() ? a.Get("force").As<Napi::String>().Utf8Value() : "auto";
  const gpu::FwdPath want = force == "simt" ? gpu::FwdPath::Simt : force == "mma" ? gpu::FwdPath::Mma : gpu::FwdPath::None;
  const gpu::FwdPlan plan = gpu::plan_forward(p, caps, want);
  Napi::Object r = Napi::Object::New(env);
  r.Set("error", plan.error.empty() ? env.Null() : Napi::String::New(env, plan.error));
  r.Set("rangeError", plan.range_error);
  r.Set("path", gpu::path_name(plan.path));
  r.Set("bucket", plan.bucket);
  r.Set("tileM", plan.tile_m);
  r.Set("tileN", plan.tile_n);
  r.Set("threads", plan.threads);
  r.Set("smemBytes", static_cast<double>(plan.smem_bytes));
  r.Set("tilesPerQblock", static_cast<double>(plan.tiles_per_qblock));
  r.Set("segmentSkip", plan.segment_skip);
  return r;
}

Napi::Value Int32Result(Napi::Env env, const std::vector<int32_t>& v) {
  Napi::Int32Array a = Napi::Int32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(int32_t));
  return a;
}

// gpuWorkOrder(rowPtr, numSchedules, rowsPerSchedule, blockQ, qSeq, tileM, tilesPerQblock) → Int32Array
Napi::Value WorkOrder(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Span row_ptr = array_of(info[0], "rowPtr", napi_int32_array);
  const int64_t schedules = integer_of(info[1], "numSchedules", 1, kMaxExtent);
  const int64_t rows = integer_of(info[2], "rowsPerSchedule", 1, kMaxExtent);
  const int64_t block_q = integer_of(info[3], "blockQ", 1, kMaxExtent);
  const int64_t q_seq = integer_of(info[4], "qSeq", 1, kMaxExtent);
  const int64_t tile_m = integer_of(info[5], "tileM", 1, 1 << 16);
  const int64_t tiles = integer_of(info[6], "tilesPerQblock", 1, kMaxExtent);
  if (row_ptr.length != schedules * rows + 1) {
    fail_range("rowPtr: expected length " + num(schedules * rows + 1) + ", got " + num(row_ptr.length));
  }
  // A launch order lists up to one entry per tile: this test export bounds it before allocating.
  if (static_cast<double>(rows) * static_cast<double>(tiles) > static_cast<double>(1 << 24)) {
    fail_range("tilesPerQblock: rowsPerSchedule · tilesPerQblock must stay within 2^24, got " + num(rows) + " · " + num(tiles));
  }
  return Int32Result(env, gpu::work_order(static_cast<const int32_t*>(row_ptr.data), static_cast<int32_t>(schedules),
                                          static_cast<int32_t>(rows), block_q, q_seq, tile_m, tiles));
}

// gpuPackMaskBits(blocks: Uint8Array, blockQ, blockKv) → Uint32Array [n, blockQ, ceil(blockKv / 32)]
Napi::Value PackMaskBits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Span blocks = array_of(info[0], "blocks", napi_uint8_array);
  const int64_t bq = integer_of(info[1], "blockQ", 1, 1 << 20);
  const int64_t bkv = integer_of(info[2], "blockKv", 1, 1 << 20);
  if (blocks.length % (bq * bkv) != 0) fail_range("blocks: expected a multiple of blockQ * blockKv entries");
  const std::vector<uint32_t> bits =
      gpu::pack_mask_bits(static_cast<const uint8_t*>(blocks.data), blocks.length / (bq * bkv), bq, bkv);
  Napi::Uint32Array a = Napi::Uint32Array::New(env, bits.size());
  if (!bits.empty()) std::memcpy(a.Data(), bits.data(), bits.size() * sizeof(uint32_t));
  return a;
}

// gpuCheckSchedule(maskInfo) → '' or what the GPU kernels would reject (the shared schedule check)
Napi::Value CheckSchedule(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) fail_type("maskInfo: expected a MaskInfo object");
  Reader r;
  try {
    read_host_schedule(r, info[0].As<Napi::Object>(), "maskInfo");
  } catch (const ArgError& e) {
    if (e.type_error) throw;
    return Napi::String::New(env, e.message);
  }
  return Napi::String::New(env, "");
}

// gpuSegmentRanges(seg: Int32Array, batch, seq, block) → Int32Array [batch, blocks, 2]
Napi::Value SegmentRanges(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Span seg = array_of(info[0], "segmentIds", napi_int32_array);
  const int64_t batch = integer_of(info[1], "batch", 1, kMaxExtent);
  const int64_t seq = integer_of(info[2], "seq", 1, kMaxExtent);
  const int64_t block = integer_of(info[3], "block", 1, kMaxExtent);
  if (seg.length != batch * seq) fail_range("segmentIds: expected length " + num(batch * seq));
  return Int32Result(env, gpu::segment_block_ranges(static_cast<const int32_t*>(seg.data), batch, seq, block));
}

Napi::Value BackendName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), gpu::backend_name()); }

}  // namespace

void RegisterGpu(Napi::Env env, Napi::Object exports) {
  exports.Set("gpuBackendName", guarded_function(env, "gpuBackendName", BackendName));
  exports.Set("gpuToDevice", guarded_function(env, "gpuToDevice", ToDevice));
  exports.Set("gpuToHost", guarded_function(env, "gpuToHost", ToHost));
  exports.Set("gpuToHostSync", guarded_function(env, "gpuToHostSync", ToHostSync));
  exports.Set("gpuDispose", guarded_function(env, "gpuDispose", Dispose));
  exports.Set("gpuBufferInfo", guarded_function(env, "gpuBufferInfo", BufferInfo));
  exports.Set("gpuUploadSchedule", guarded_function(env, "gpuUploadSchedule", UploadSchedule));
  exports.Set("gpuForward", guarded_function(env, "gpuForward", Forward));
  exports.Set("gpuForwardSync", guarded_function(env, "gpuForwardSync", ForwardSync));
  exports.Set("gpuBackward", guarded_function(env, "gpuBackward", Backward));
  exports.Set("gpuBackwardSync", guarded_function(env, "gpuBackwardSync", BackwardSync));
  exports.Set("gpuPlanForward", guarded_function(env, "gpuPlanForward", PlanForward));
  exports.Set("gpuWorkOrder", guarded_function(env, "gpuWorkOrder", WorkOrder));
  exports.Set("gpuPackMaskBits", guarded_function(env, "gpuPackMaskBits", PackMaskBits));
  exports.Set("gpuCheckSchedule", guarded_function(env, "gpuCheckSchedule", CheckSchedule));
  exports.Set("gpuSegmentRanges", guarded_function(env, "gpuSegmentRanges", SegmentRanges));
}

}  // namespace addon
}  // namespace splash
