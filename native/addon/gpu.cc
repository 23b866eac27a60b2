// The GPU backend behind N-API (lib/backends/gpu.ts and lib/backends/device.ts call these):
//
//   gpuBackendName()                          'cuda' | 'rocm' | 'none' (CPU-only build)
//   gpuToDevice(data, device) → handle        TypedArray copied into a new device buffer
//   gpuToHost(handle, out) → Promise<void>    device buffer copied into `out` (same byte length)
//   gpuToHostSync(handle, out)
//   gpuDispose(handle)                        frees now (or when the last call using it ends)
//   gpuBufferInfo(handle) → { device, bytes, disposed }
//   gpuUploadSchedule(device, maskInfo) → handle    a MaskInfo's schedule (fwd, dq or dkv) on a device
//   gpuForward(call) → Promise<result>, gpuForwardSync(call) → result
//   gpuBackward(call) → Promise<{ dq, dk, dv }>, gpuBackwardSync(call): split or fused (call.fused)
//   gpuPlanForward, gpuWorkOrder, gpuPackMaskBits, gpuCheckSchedule, gpuSegmentRanges:
//                                             the host-side planning, exported for tests
//
// Device buffers are External values with a type tag and a finalizer, holding a shared reference
// to the memory: dispose() or garbage collection drops the handle's share, and a forward still
// running on the buffer keeps its own share, so memory is never freed under a kernel. Every runtime
// failure becomes a JS Error carrying the runtime's message; bad arguments become TypeError or
// RangeError naming the field; nothing aborts. No CUDA or HIP header is included here.
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

std::string num(int64_t x) { return std::to_string(x); }

[[noreturn]] void type_error(Napi::Env env, const std::string& m) { throw Napi::TypeError::New(env, m); }
[[noreturn]] void range_error(Napi::Env env, const std::string& m) { throw Napi::RangeError::New(env, m); }

Napi::Error status_error(Napi::Env env, const Status& s) {
  if (s.kind == Status::kRangeError) return Napi::RangeError::New(env, s.message);
  return Napi::Error::New(env, s.message);
}

void check(Napi::Env env, const Status& s) {
  if (!s.ok()) throw status_error(env, s);
}

// ---- argument readers ------------------------------------------------------------------------------

double number_of(Napi::Env env, const Napi::Value& v, const std::string& path) {
  if (!v.IsNumber()) type_error(env, path + ": expected a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (std::isnan(d)) range_error(env, path + ": expected a number, got NaN");
  return d;
}

int64_t integer_of(Napi::Env env, const Napi::Value& v, const std::string& path, int64_t lo, int64_t hi) {
  const double d = number_of(env, v, path);
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != std::floor(d)) {
    range_error(env, path + ": expected an integer in [" + num(lo) + ", " + num(hi) + "], got " + std::to_string(d));
  }
  return static_cast<int64_t>(d);
}

int64_t field_int(const Napi::Object& o, const char* key, int64_t lo, int64_t hi) {
  return integer_of(o.Env(), o.Get(key), key, lo, hi);
}

bool field_bool(const Napi::Object& o, const char* key) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return false;
  if (!v.IsBoolean()) type_error(o.Env(), std::string(key) + ": expected a boolean");
  return v.As<Napi::Boolean>().Value();
}

struct Span {
  void* data = nullptr;
  int64_t length = 0;  // elements
  size_t bytes = 0;
};

const char* array_name(napi_typedarray_type t) {
  switch (t) {
    case napi_uint8_array: return "Uint8Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    default: return "another typed array";
  }
}

// A typed array of `type`, with a persistent reference kept in `refs` when given.
Span array_of(Napi::Env env, const Napi::Value& v, const std::string& path, napi_typedarray_type type,
              std::vector<Napi::ObjectReference>* refs = nullptr) {
  if (!v.IsTypedArray()) type_error(env, path + ": expected a " + array_name(type));
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != type) {
    type_error(env, path + ": expected a " + array_name(type) + ", got " + array_name(ta.TypedArrayType()));
  }
  Span s;
  s.length = static_cast<int64_t>(ta.ElementLength());
  s.bytes = ta.ByteLength();
  uint8_t* base = static_cast<uint8_t*>(ta.ArrayBuffer().Data());
  if (s.length > 0 && base == nullptr) range_error(env, path + ": the array's buffer is detached");
  s.data = s.length > 0 ? base + ta.ByteOffset() : nullptr;
  if (refs != nullptr) refs->push_back(Napi::Persistent(v.As<Napi::Object>()));
  return s;
}

Span field_array(const Napi::Object& o, const char* key, napi_typedarray_type type, bool optional,
                 std::vector<Napi::ObjectReference>* refs = nullptr) {
  const Napi::Value v = o.Get(key);
  if (optional && (v.IsNull() || v.IsUndefined())) return Span{};
  return array_of(o.Env(), v, key, type, refs);
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
  Napi::MemoryManagement::AdjustExternalMemory(env, h->accounted);
  Napi::External<BufferHandle> ext = Napi::External<BufferHandle>::New(env, h, [](Napi::Env e, BufferHandle* dead) {
    if (dead->accounted != 0) Napi::MemoryManagement::AdjustExternalMemory(e, -dead->accounted);
    delete dead;
  });
  ext.TypeTag(&kBufferTag);
  return ext;
}

BufferHandle* handle_of(Napi::Env env, const Napi::Value& v, const std::string& path) {
  if (!v.IsExternal() || !v.As<Napi::External<BufferHandle>>().CheckTypeTag(&kBufferTag)) {
    type_error(env, path + ": expected a device buffer handle (from toDevice)");
  }
  return v.As<Napi::External<BufferHandle>>().Data();
}

BufferPtr live_buffer(Napi::Env env, const Napi::Value& v, const std::string& path) {
  BufferHandle* h = handle_of(env, v, path);
  if (!h->buf) throw Napi::Error::New(env, path + ": the DeviceTensor was disposed");
  return h->buf;
}

// ---- schedules ---------------------------------------------------------------------------------------

struct ScheduleHandle {
  std::shared_ptr<gpu::DeviceSchedule> schedule;
};

// A MaskInfo's forward schedule as a host ScheduleView, every array length checked against the sizes
// it declares (the values themselves are checked by plan.h's validate_schedule).
ScheduleView read_schedule(const Napi::Object& info) {
  Napi::Env env = info.Env();
  ScheduleView s{};
  s.heads = static_cast<int32_t>(field_int(info, "heads", 1, kMaxExtent - 1));
  s.q_blocks = static_cast<int32_t>(field_int(info, "qBlocks", 1, kMaxExtent - 1));
  s.kv_blocks = static_cast<int32_t>(field_int(info, "kvBlocks", 1, kMaxExtent - 1));
  s.block_q = static_cast<int32_t>(field_int(info, "blockQ", 1, kMaxExtent - 1));
  s.block_kv = static_cast<int32_t>(field_int(info, "blockKv", 1, kMaxExtent - 1));
  s.is_dkv = field_bool(info, "isDkv") ? 1 : 0;
  s.num_schedules = static_cast<int32_t>(field_int(info, "numSchedules", 1, kMaxExtent - 1));
  s.rows_per_schedule = static_cast<int32_t>(field_int(info, "rowsPerSchedule", 1, kMaxExtent - 1));
  const Span head_schedule = field_array(info, "headSchedule", napi_int32_array, false);
  const Span row_ptr = field_array(info, "rowPtr", napi_int32_array, false);
  const Span col_idx = field_array(info, "colIdx", napi_int32_array, false);
  const Span col_kind = field_array(info, "colKind", napi_uint8_array, false);
  const Span col_mask_ref = field_array(info, "colMaskRef", napi_int32_array, false);
  const Span programs = field_array(info, "programs", napi_int32_array, false);
  const Span program_ptr = field_array(info, "programPtr", napi_int32_array, false);
  const Span partial = field_array(info, "partialMaskBlocks", napi_uint8_array, true);
  const int64_t rows = static_cast<int64_t>(s.num_schedules) * s.rows_per_schedule;
  if (head_schedule.length != s.heads) range_error(env, "headSchedule: expected length " + num(s.heads) + ", got " + num(head_schedule.length));
  if (row_ptr.length != rows + 1) range_error(env, "rowPtr: expected length " + num(rows + 1) + ", got " + num(row_ptr.length));
  s.nnz = col_idx.length;
  if (col_kind.length != s.nnz || col_mask_ref.length != s.nnz) {
    range_error(env, "colKind, colMaskRef: expected length " + num(s.nnz) + " (colIdx's), got " + num(col_kind.length) +
                         " and " + num(col_mask_ref.length));
  }
  if (program_ptr.length != static_cast<int64_t>(s.num_schedules) + 1) {
    range_error(env, "programPtr: expected length " + num(s.num_schedules + 1) + ", got " + num(program_ptr.length));
  }
  const int64_t block_elems = static_cast<int64_t>(s.block_q) * s.block_kv;
  if (partial.length % block_elems != 0) {
    range_error(env, "partialMaskBlocks: expected a multiple of blockQ * blockKv = " + num(block_elems) + " entries, got " +
                         num(partial.length));
  }
  s.head_schedule = static_cast<const int32_t*>(head_schedule.data);
  s.row_ptr = static_cast<const int32_t*>(row_ptr.data);
  s.col_idx = static_cast<const int32_t*>(col_idx.data);
  s.col_kind = static_cast<const uint8_t*>(col_kind.data);
  s.col_mask_ref = static_cast<const int32_t*>(col_mask_ref.data);
  s.programs = static_cast<const int32_t*>(programs.data);
  s.program_len = programs.length;
  s.program_ptr = static_cast<const int32_t*>(program_ptr.data);
  s.partial_mask_blocks = static_cast<const uint8_t*>(partial.data);
  s.num_partial = partial.length / block_elems;
  return s;
}

Napi::Value UploadSchedule(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int device = static_cast<int>(integer_of(env, info[0], "device", 0, 1 << 20));
  if (!info[1].IsObject()) type_error(env, "maskInfo: expected a MaskInfo object");
  const ScheduleView host = read_schedule(info[1].As<Napi::Object>());
  auto* h = new ScheduleHandle{};
  const Status s = gpu::upload_schedule(device, host, &h->schedule);
  if (!s.ok()) {
    delete h;
    throw status_error(env, s);
  }
  const int64_t bytes = static_cast<int64_t>(h->schedule->device_bytes());
  Napi::MemoryManagement::AdjustExternalMemory(env, bytes);
  Napi::External<ScheduleHandle> ext =
      Napi::External<ScheduleHandle>::New(env, h, [bytes](Napi::Env e, ScheduleHandle* dead) {
        Napi::MemoryManagement::AdjustExternalMemory(e, -bytes);
        delete dead;
      });
  ext.TypeTag(&kScheduleTag);
  return ext;
}

std::shared_ptr<gpu::DeviceSchedule> schedule_of(Napi::Env env, const Napi::Value& v) {
  if (!v.IsExternal() || !v.As<Napi::External<ScheduleHandle>>().CheckTypeTag(&kScheduleTag)) {
    type_error(env, "schedule: expected a schedule handle (from gpuUploadSchedule)");
  }
  return v.As<Napi::External<ScheduleHandle>>().Data()->schedule;
}

// ---- device memory entry points ----------------------------------------------------------------------

napi_typedarray_type array_type(const Napi::Value& v) {
  return v.IsTypedArray() ? v.As<Napi::TypedArray>().TypedArrayType() : napi_int8_array;
}

Span tensor_array(Napi::Env env, const Napi::Value& v, const std::string& path,
                  std::vector<Napi::ObjectReference>* refs = nullptr) {
  const napi_typedarray_type t = array_type(v);
  if (t != napi_float32_array && t != napi_uint16_array) {
    type_error(env, path + ": expected a Float32Array or a Uint16Array");
  }
  return array_of(env, v, path, t, refs);
}

Napi::Value ToDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Span data = tensor_array(env, info[0], "data");
  const int device = static_cast<int>(integer_of(env, info[1], "device", 0, 1 << 20));
  BufferPtr buf;
  check(env, alloc_buffer(device, data.bytes, &buf));
  check(env, gpu::copy_to_device(device, buf->ptr, data.data, data.bytes));
  return wrap_buffer(env, std::move(buf));
}

// A job that runs off the event loop and settles a promise: Run() on a worker thread, Finish() on the
// main thread after a successful Run().
class Job {
 public:
  virtual ~Job() = default;
  virtual Status Run() = 0;
  virtual Napi::Value Finish(Napi::Env env) = 0;
};

class JobWorker : public Napi::AsyncWorker {
 public:
  JobWorker(Napi::Env env, std::unique_ptr<Job> job, std::vector<Napi::ObjectReference> refs)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), job_(std::move(job)),
        refs_(std::move(refs)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      status_ = job_->Run();
    } catch (const std::exception& e) {  // e.g. std::bad_alloc for a host staging buffer
      status_ = Status::Error(std::string("GPU call failed: ") + e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (!status_.ok()) {
      deferred_.Reject(status_error(env, status_).Value());
      return;
    }
    try {
      deferred_.Resolve(job_->Finish(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::unique_ptr<Job> job_;
  std::vector<Napi::ObjectReference> refs_;  // inputs and outputs stay alive until the job is done
  Status status_;
};

Napi::Value queue(Napi::Env env, std::unique_ptr<Job> job, std::vector<Napi::ObjectReference> refs) {
  auto* worker = new JobWorker(env, std::move(job), std::move(refs));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

class ToHostJob : public Job {
 public:
  ToHostJob(BufferPtr buf, void* dst) : buf_(std::move(buf)), dst_(dst) {}
  Status Run() override { return gpu::copy_to_host(buf_->device, dst_, buf_->ptr, buf_->bytes); }
  Napi::Value Finish(Napi::Env env) override { return env.Undefined(); }

 private:
  BufferPtr buf_;
  void* dst_;
};

std::unique_ptr<ToHostJob> to_host_job(const Napi::CallbackInfo& info, std::vector<Napi::ObjectReference>* refs) {
  Napi::Env env = info.Env();
  BufferPtr buf = live_buffer(env, info[0], "handle");
  const Span out = tensor_array(env, info[1], "out", refs);
  if (out.bytes != buf->bytes) {
    range_error(env, "out: expected " + num(static_cast<int64_t>(buf->bytes)) + " bytes (the device buffer's), got " +
                         num(static_cast<int64_t>(out.bytes)));
  }
  return std::make_unique<ToHostJob>(std::move(buf), out.data);
}

Napi::Value ToHost(const Napi::CallbackInfo& info) {
  std::vector<Napi::ObjectReference> refs;
  std::unique_ptr<ToHostJob> job = to_host_job(info, &refs);
  return queue(info.Env(), std::move(job), std::move(refs));
}

Napi::Value ToHostSync(const Napi::CallbackInfo& info) {
  std::unique_ptr<ToHostJob> job = to_host_job(info, nullptr);
  check(info.Env(), job->Run());
  return info.Env().Undefined();
}

Napi::Value Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufferHandle* h = handle_of(env, info[0], "handle");
  h->buf.reset();
  if (h->accounted != 0) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -h->accounted);
    h->accounted = 0;
  }
  return env.Undefined();
}

Napi::Value BufferInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufferHandle* h = handle_of(env, info[0], "handle");
  Napi::Object o = Napi::Object::New(env);
  o.Set("disposed", !h->buf);
  o.Set("device", h->buf ? h->buf->device : -1);
  o.Set("bytes", h->buf ? static_cast<double>(h->buf->bytes) : 0.0);
  return o;
}

// ---- forward -------------------------------------------------------------------------------------------

// One input tensor: on the device already, or a host array copied up for the call.
struct Operand {
  BufferPtr device;
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

class ForwardJob : public Job {
 public:
  AttentionParams p{};
  std::shared_ptr<gpu::DeviceSchedule> schedule;
  Operand q, k, v;
  std::vector<int32_t> seg_q, seg_kv;
  bool out_on_device = false;
  size_t out_bytes = 0, lse_bytes = 0;
  void* out_host = nullptr;   // host outputs: arrays made on the main thread
  void* lse_host = nullptr;
  Napi::ObjectReference out_array, lse_array;
  BufferPtr out_dev, lse_dev;
  gpu::ForcePath force = gpu::ForcePath::kAuto;
  bool time_kernel = false;
  gpu::ForwardInfo info;

  Status Run() override {
    const int dev = p.device;
    BufferPtr qd, kd, vd;
    Status s = stage_operand(dev, q, &qd);
    if (s.ok()) s = stage_operand(dev, k, &kd);
    if (s.ok()) s = stage_operand(dev, v, &vd);
    if (s.ok()) s = alloc_buffer(dev, out_bytes, &out_dev);
    if (s.ok() && p.save_lse) s = alloc_buffer(dev, lse_bytes, &lse_dev);
    if (!s.ok()) return s;
    p.q.ptr = qd->ptr;
    p.k.ptr = kd->ptr;
    p.v.ptr = vd->ptr;
    p.out.ptr = out_dev->ptr;
    p.lse.ptr = p.save_lse ? lse_dev->ptr : nullptr;
    p.segment_ids_q = seg_q.empty() ? nullptr : seg_q.data();
    p.segment_ids_kv = seg_kv.empty() ? nullptr : seg_kv.data();
    s = gpu::forward(p, *schedule, force, &info, time_kernel);
    if (!s.ok()) return s;
    if (!out_on_device) {
      s = gpu::copy_to_host(dev, out_host, out_dev->ptr, out_bytes);
      if (s.ok() && p.save_lse) s = gpu::copy_to_host(dev, lse_host, lse_dev->ptr, lse_bytes);
      out_dev.reset();
      lse_dev.reset();
    }
    return s;
  }

  Napi::Value Finish(Napi::Env env) override {
    Napi::Object r = Napi::Object::New(env);
    if (out_on_device) {
      r.Set("out", wrap_buffer(env, out_dev));
      r.Set("lse", p.save_lse ? wrap_buffer(env, lse_dev) : env.Null());
    } else {
      r.Set("out", out_array.Value());
      r.Set("lse", p.save_lse ? lse_array.Value() : env.Null());
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

Operand read_operand(Napi::Env env, const Napi::Value& v, const std::string& name, int device, DType dtype,
                     int64_t elements, std::vector<Napi::ObjectReference>* refs) {
  const size_t elem = dtype == DType::F32 ? 4 : 2;
  const size_t want = static_cast<size_t>(elements) * elem;
  Operand o;
  if (v.IsExternal()) {
    o.device = live_buffer(env, v, name);
    if (o.device->device != device) {
      range_error(env, name + ": expected a tensor on device " + num(device) + " (the call's), got device " +
                           num(o.device->device));
    }
    o.bytes = o.device->bytes;
  } else {
    const Span s = array_of(env, v, name, dtype == DType::F32 ? napi_float32_array : napi_uint16_array, refs);
    o.host = s.data;
    o.bytes = s.bytes;
  }
  if (o.bytes != want) {
    range_error(env, name + ": expected " + num(elements) + " elements (" + num(static_cast<int64_t>(want)) +
                         " bytes), got " + num(static_cast<int64_t>(o.bytes)) + " bytes");
  }
  return o;
}

// The fields forward and backward calls share, read into `job` (a ForwardJob or a BackwardJob): device,
// dtype, sizes, mask value, soft cap, the contiguous layouts of q, k, v, out and lse, the q / k / v
// operands and the segment ids. Returns the dtype; a bad field throws TypeError / RangeError.
template <class J>
DType read_common(Napi::Env env, const Napi::Object& c, J* job, std::vector<Napi::ObjectReference>* refs) {
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
    range_error(env, "kvHeads: expected a divisor of heads (" + num(p.heads) + "), got " + num(p.kv_heads));
  }
  const double q_elems = static_cast<double>(p.batch) * p.heads * p.q_seq * std::max(p.head_dim, p.head_dim_v);
  const double kv_elems = static_cast<double>(p.batch) * p.kv_heads * p.kv_seq * std::max(p.head_dim, p.head_dim_v);
  if (q_elems > 9e15 || kv_elems > 9e15) range_error(env, "sizes: the tensors are too large");
  p.mask_value = static_cast<float>(number_of(env, c.Get("maskValue"), "maskValue"));
  const double cap = number_of(env, c.Get("softCap"), "softCap");
  if (!(cap >= 0) || !std::isfinite(cap)) range_error(env, "softCap: expected 0 (none) or a positive finite number");
  p.soft_cap = static_cast<float>(cap);

  contiguous(&p.q, dtype, p.heads, p.q_seq, p.head_dim);
  contiguous(&p.k, dtype, p.kv_heads, p.kv_seq, p.head_dim);
  contiguous(&p.v, dtype, p.kv_heads, p.kv_seq, p.head_dim_v);
  contiguous(&p.out, dtype, p.heads, p.q_seq, p.head_dim_v);
  contiguous(&p.lse, DType::F32, p.heads, p.q_seq, 1);

  job->q = read_operand(env, c.Get("q"), "q", p.device, dtype, p.batch * p.heads * p.q_seq * p.head_dim, refs);
  job->k = read_operand(env, c.Get("k"), "k", p.device, dtype, p.batch * p.kv_heads * p.kv_seq * p.head_dim, refs);
  job->v = read_operand(env, c.Get("v"), "v", p.device, dtype, p.batch * p.kv_heads * p.kv_seq * p.head_dim_v, refs);

  const Span seg_q = field_array(c, "segmentIdsQ", napi_int32_array, true);
  const Span seg_kv = field_array(c, "segmentIdsKv", napi_int32_array, true);
  if ((seg_q.data == nullptr) != (seg_kv.data == nullptr)) {
    range_error(env, "segmentIdsQ, segmentIdsKv: expected both or neither");
  }
  if (seg_q.data != nullptr) {
    if (seg_q.length != p.batch * p.q_seq) {
      range_error(env, "segmentIdsQ: expected length " + num(p.batch * p.q_seq) + ", got " + num(seg_q.length));
    }
    if (seg_kv.length != p.batch * p.kv_seq) {
      range_error(env, "segmentIdsKv: expected length " + num(p.batch * p.kv_seq) + ", got " + num(seg_kv.length));
    }
    const int32_t* sq = static_cast<const int32_t*>(seg_q.data);
    const int32_t* skv = static_cast<const int32_t*>(seg_kv.data);
    job->seg_q.assign(sq, sq + seg_q.length);
    job->seg_kv.assign(skv, skv + seg_kv.length);
  }
  return dtype;
}

// The optional `force` field: 'auto' (default), 'simt' or 'mma'.
gpu::ForcePath read_force(Napi::Env env, const Napi::Object& c) {
  const std::string force = c.Get("force").IsString() ? c.Get("force").As<Napi::String>().Utf8Value() : "auto";
  if (force == "simt") return gpu::ForcePath::kSimt;
  if (force == "mma") return gpu::ForcePath::kMma;
  if (force != "auto") type_error(env, "force: expected 'auto', 'simt' or 'mma', got '" + force + "'");
  return gpu::ForcePath::kAuto;
}

// A new Float32Array (f32) or Uint16Array of `elements` for a host output, kept alive by `keep`; returns
// its data for the worker to fill.
void* new_host_output(Napi::Env env, DType dtype, int64_t elements, Napi::ObjectReference* keep) {
  const size_t n = static_cast<size_t>(elements);
  Napi::TypedArray a = dtype == DType::F32 ? static_cast<Napi::TypedArray>(Napi::Float32Array::New(env, n))
                                           : static_cast<Napi::TypedArray>(Napi::Uint16Array::New(env, n));
  *keep = Napi::Persistent(static_cast<Napi::Object>(a));
  return static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
}

std::unique_ptr<ForwardJob> forward_job(const Napi::CallbackInfo& info, std::vector<Napi::ObjectReference>* refs) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) type_error(env, "call: expected an object");
  const Napi::Object c = info[0].As<Napi::Object>();
  auto job = std::make_unique<ForwardJob>();
  AttentionParams& p = job->p;
  const DType dtype = read_common(env, c, job.get(), refs);
  p.save_lse = field_bool(c, "saveLse") ? 1 : 0;
  job->force = read_force(env, c);

  job->schedule = schedule_of(env, c.Get("schedule"));
  if (job->schedule->device() != p.device) {
    range_error(env, "schedule: uploaded to device " + num(job->schedule->device()) + ", the call runs on device " +
                         num(p.device));
  }

  job->time_kernel = field_bool(c, "timeKernel");
  job->out_on_device = field_bool(c, "outputOnDevice");
  const int64_t out_elems = p.batch * p.heads * p.q_seq * p.head_dim_v;
  job->out_bytes = static_cast<size_t>(out_elems) * (dtype == DType::F32 ? 4 : 2);
  job->lse_bytes = static_cast<size_t>(p.batch * p.heads * p.q_seq) * 4;
  if (!job->out_on_device) {
    job->out_host = new_host_output(env, dtype, out_elems, &job->out_array);
    if (p.save_lse) job->lse_host = new_host_output(env, DType::F32, p.batch * p.heads * p.q_seq, &job->lse_array);
  }
  return job;
}

Napi::Value Forward(const Napi::CallbackInfo& info) {
  std::vector<Napi::ObjectReference> refs;
  std::unique_ptr<ForwardJob> job = forward_job(info, &refs);
  return queue(info.Env(), std::move(job), std::move(refs));
}

Napi::Value ForwardSync(const Napi::CallbackInfo& info) {
  std::unique_ptr<ForwardJob> job = forward_job(info, nullptr);
  check(info.Env(), job->Run());
  return job->Finish(info.Env());
}

// ---- backward ------------------------------------------------------------------------------------------


class BackwardJob : public Job {
 public:
  AttentionParams p{};
  std::shared_ptr<gpu::DeviceSchedule> dq_schedule, dkv_schedule;
  Operand q, k, v, out, lse, dout;
  std::vector<int32_t> seg_q, seg_kv;
  bool out_on_device = false;
  size_t bytes[3] = {0, 0, 0};             // dq, dk, dv
  void* host[3] = {nullptr, nullptr, nullptr};
  Napi::ObjectReference arrays[3];
  BufferPtr grads[3];
  gpu::ForcePath force = gpu::ForcePath::kAuto;
  bool time_kernel = false;
  gpu::BackwardInfo info;

  Status Run() override {
    const int dev = p.device;
    BufferPtr qd, kd, vd, od, ld, gd;
    Status s = stage_operand(dev, q, &qd);
    if (s.ok()) s = stage_operand(dev, k, &kd);
    if (s.ok()) s = stage_operand(dev, v, &vd);
    if (s.ok()) s = stage_operand(dev, out, &od);
    if (s.ok()) s = stage_operand(dev, lse, &ld);
    if (s.ok()) s = stage_operand(dev, dout, &gd);
    for (int i = 0; i < 3 && s.ok(); ++i) s = alloc_buffer(dev, bytes[i], &grads[i]);
    if (!s.ok()) return s;
    p.q.ptr = qd->ptr;
    p.k.ptr = kd->ptr;
    p.v.ptr = vd->ptr;
    p.out.ptr = od->ptr;
    p.lse.ptr = ld->ptr;
    p.dout.ptr = gd->ptr;
    p.dq.ptr = grads[0]->ptr;
    p.dk.ptr = grads[1]->ptr;
    p.dv.ptr = grads[2]->ptr;
    p.segment_ids_q = seg_q.empty() ? nullptr : seg_q.data();
    p.segment_ids_kv = seg_kv.empty() ? nullptr : seg_kv.data();
    s = gpu::backward(p, dq_schedule.get(), *dkv_schedule, &info, time_kernel, force);
    if (!s.ok()) return s;
    if (!out_on_device) {
      for (int i = 0; i < 3 && s.ok(); ++i) s = gpu::copy_to_host(dev, host[i], grads[i]->ptr, bytes[i]);
      for (BufferPtr& g : grads) g.reset();
    }
    return s;
  }

  Napi::Value Finish(Napi::Env env) override {
    Napi::Object r = Napi::Object::New(env);
    const char* names[3] = {"dq", "dk", "dv"};
    for (int i = 0; i < 3; ++i) r.Set(names[i], out_on_device ? wrap_buffer(env, grads[i]) : arrays[i].Value());
    r.Set("kernelMs", info.kernel_ms);
    r.Set("path", info.path);
    return r;
  }
};

std::unique_ptr<BackwardJob> backward_job(const Napi::CallbackInfo& info, std::vector<Napi::ObjectReference>* refs) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) type_error(env, "call: expected an object");
  const Napi::Object c = info[0].As<Napi::Object>();
  auto job = std::make_unique<BackwardJob>();
  AttentionParams& p = job->p;
  const DType dtype = read_common(env, c, job.get(), refs);
  p.fused_bwd = field_bool(c, "fused") ? 1 : 0;
  contiguous(&p.dout, dtype, p.heads, p.q_seq, p.head_dim_v);
  contiguous(&p.dq, dtype, p.heads, p.q_seq, p.head_dim);
  contiguous(&p.dk, dtype, p.kv_heads, p.kv_seq, p.head_dim);
  contiguous(&p.dv, dtype, p.kv_heads, p.kv_seq, p.head_dim_v);
  const int64_t nq = p.batch * p.heads * p.q_seq, nkv = p.batch * p.kv_heads * p.kv_seq;
  job->out = read_operand(env, c.Get("out"), "out", p.device, dtype, nq * p.head_dim_v, refs);
  job->lse = read_operand(env, c.Get("logsumexp"), "logsumexp", p.device, DType::F32, nq, refs);
  job->dout = read_operand(env, c.Get("dout"), "dout", p.device, dtype, nq * p.head_dim_v, refs);
  job->force = read_force(env, c);

  job->dkv_schedule = schedule_of(env, c.Get("dkvSchedule"));
  if (!p.fused_bwd) job->dq_schedule = schedule_of(env, c.Get("dqSchedule"));
  for (const auto* sch : {job->dkv_schedule.get(), job->dq_schedule.get()}) {
    if (sch != nullptr && sch->device() != p.device) {
      range_error(env, "schedule: uploaded to device " + num(sch->device()) + ", the call runs on device " +
                           num(p.device));
    }
  }
  if (job->dkv_schedule->view().is_dkv != 1) range_error(env, "dkvSchedule: expected a dkv schedule (isDkv)");
  if (job->dq_schedule && job->dq_schedule->view().is_dkv != 0) {
    range_error(env, "dqSchedule: expected a q-major schedule (isDkv false)");
  }

  job->time_kernel = field_bool(c, "timeKernel");
  job->out_on_device = field_bool(c, "outputOnDevice");
  const int64_t elems[3] = {nq * p.head_dim, nkv * p.head_dim, nkv * p.head_dim_v};
  for (int i = 0; i < 3; ++i) {
    job->bytes[i] = static_cast<size_t>(elems[i]) * (dtype == DType::F32 ? 4 : 2);
    if (!job->out_on_device) job->host[i] = new_host_output(env, dtype, elems[i], &job->arrays[i]);
  }
  return job;
}

Napi::Value Backward(const Napi::CallbackInfo& info) {
  std::vector<Napi::ObjectReference> refs;
  std::unique_ptr<BackwardJob> job = backward_job(info, &refs);
  return queue(info.Env(), std::move(job), std::move(refs));
}

Napi::Value BackwardSync(const Napi::CallbackInfo& info) {
  std::unique_ptr<BackwardJob> job = backward_job(info, nullptr);
  check(info.Env(), job->Run());
  return job->Finish(info.Env());
}

// ---- host-side planning, exported for tests --------------------------------------------------------------

// gpuPlanForward({ dtype, headDim, headDimV, batch, heads, kvHeads, qSeq, kvSeq, blockQ, blockKv,
//                  segments, maskValue, force, device: { hip, ccMajor, ccMinor, maxSmem, multiprocessors } })
Napi::Value PlanForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) type_error(env, "args: expected an object");
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
  p.mask_value = static_cast<float>(number_of(env, a.Get("maskValue"), "maskValue"));
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
  if (!dv.IsObject()) type_error(env, "device: expected an object");
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
  const Span row_ptr = array_of(env, info[0], "rowPtr", napi_int32_array);
  const int64_t schedules = integer_of(env, info[1], "numSchedules", 1, kMaxExtent);
  const int64_t rows = integer_of(env, info[2], "rowsPerSchedule", 1, kMaxExtent);
  const int64_t block_q = integer_of(env, info[3], "blockQ", 1, kMaxExtent);
  const int64_t q_seq = integer_of(env, info[4], "qSeq", 1, kMaxExtent);
  const int64_t tile_m = integer_of(env, info[5], "tileM", 1, 1 << 16);
  const int64_t tiles = integer_of(env, info[6], "tilesPerQblock", 1, kMaxExtent);
  if (row_ptr.length != schedules * rows + 1) {
    range_error(env, "rowPtr: expected length " + num(schedules * rows + 1) + ", got " + num(row_ptr.length));
  }
  return Int32Result(env, gpu::work_order(static_cast<const int32_t*>(row_ptr.data), static_cast<int32_t>(schedules),
                                          static_cast<int32_t>(rows), block_q, q_seq, tile_m, tiles));
}

// gpuPackMaskBits(blocks: Uint8Array, blockQ, blockKv) → Uint32Array [n, blockQ, ceil(blockKv / 32)]
Napi::Value PackMaskBits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Span blocks = array_of(env, info[0], "blocks", napi_uint8_array);
  const int64_t bq = integer_of(env, info[1], "blockQ", 1, 1 << 20);
  const int64_t bkv = integer_of(env, info[2], "blockKv", 1, 1 << 20);
  if (blocks.length % (bq * bkv) != 0) range_error(env, "blocks: expected a multiple of blockQ * blockKv entries");
  const std::vector<uint32_t> bits =
      gpu::pack_mask_bits(static_cast<const uint8_t*>(blocks.data), blocks.length / (bq * bkv), bq, bkv);
  Napi::Uint32Array a = Napi::Uint32Array::New(env, bits.size());
  if (!bits.empty()) std::memcpy(a.Data(), bits.data(), bits.size() * sizeof(uint32_t));
  return a;
}

// gpuCheckSchedule(maskInfo) → '' or what the GPU kernels would reject
Napi::Value CheckSchedule(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) type_error(env, "maskInfo: expected a MaskInfo object");
  const ScheduleView s = read_schedule(info[0].As<Napi::Object>());
  return Napi::String::New(env, gpu::validate_schedule(s));
}

// gpuSegmentRanges(seg: Int32Array, batch, seq, block) → Int32Array [batch, blocks, 2]
Napi::Value SegmentRanges(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Span seg = array_of(env, info[0], "segmentIds", napi_int32_array);
  const int64_t batch = integer_of(env, info[1], "batch", 1, kMaxExtent);
  const int64_t seq = integer_of(env, info[2], "seq", 1, kMaxExtent);
  const int64_t block = integer_of(env, info[3], "block", 1, kMaxExtent);
  if (seg.length != batch * seq) range_error(env, "segmentIds: expected length " + num(batch * seq));
  return Int32Result(env, gpu::segment_block_ranges(static_cast<const int32_t*>(seg.data), batch, seq, block));
}

Napi::Value BackendName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), gpu::backend_name()); }

}  // namespace

void RegisterGpu(Napi::Env env, Napi::Object exports) {
  exports.Set("gpuBackendName", Napi::Function::New(env, BackendName, "gpuBackendName"));
  exports.Set("gpuToDevice", Napi::Function::New(env, ToDevice, "gpuToDevice"));
  exports.Set("gpuToHost", Napi::Function::New(env, ToHost, "gpuToHost"));
  exports.Set("gpuToHostSync", Napi::Function::New(env, ToHostSync, "gpuToHostSync"));
  exports.Set("gpuDispose", Napi::Function::New(env, Dispose, "gpuDispose"));
  exports.Set("gpuBufferInfo", Napi::Function::New(env, BufferInfo, "gpuBufferInfo"));
  exports.Set("gpuUploadSchedule", Napi::Function::New(env, UploadSchedule, "gpuUploadSchedule"));
  exports.Set("gpuForward", Napi::Function::New(env, Forward, "gpuForward"));
  exports.Set("gpuForwardSync", Napi::Function::New(env, ForwardSync, "gpuForwardSync"));
  exports.Set("gpuBackward", Napi::Function::New(env, Backward, "gpuBackward"));
  exports.Set("gpuBackwardSync", Napi::Function::New(env, BackwardSync, "gpuBackwardSync"));
  exports.Set("gpuPlanForward", Napi::Function::New(env, PlanForward, "gpuPlanForward"));
  exports.Set("gpuWorkOrder", Napi::Function::New(env, WorkOrder, "gpuWorkOrder"));
  exports.Set("gpuPackMaskBits", Napi::Function::New(env, PackMaskBits, "gpuPackMaskBits"));
  exports.Set("gpuCheckSchedule", Napi::Function::New(env, CheckSchedule, "gpuCheckSchedule"));
  exports.Set("gpuSegmentRanges", Napi::Function::New(env, SegmentRanges, "gpuSegmentRanges"));
}

}  // namespace addon
}  // namespace splash
