// forward / forwardSync / backward / backwardSync: the CPU attention kernels behind N-API.
//
// One call object carries everything (see lib/backends/cpu.ts, which builds it):
//   { batch, heads, kvHeads, qSeq, kvSeq, headDim, headDimV,
//     q, k, v, out, lse, dout?, dq?, dk?, dv?      tensors: { data, dtype (0 f32, 1 bf16, 2 f16),
//                                                   strides: [batch, head, seq, dim] in elements }
//     segmentIdsQ?, segmentIdsKv?                   Int32Array, batch-major
//     maskValue, softCap (0 = none), scale? (default 1), sinks? (Float32Array [heads], forward only), saveLse,
//     blockKvCompute, blockKvDkvCompute, fusedBwd,
//     fwdSchedule / dqSchedule / dkvSchedule        handles from prepareSchedule (host_schedule.h)
//     numThreads (0 = default), headShards, cancel? (a token from cancelToken(), async calls only) }
// Outputs are written into the caller's arrays; the call returns (resolves with) { isa, copiedBytes,
// headsPerTask? }: the name of the kernel table that ran, the input bytes copied, and for a forward the
// query heads each task ran together.
// JS validated the user's arguments already; this file re-checks every size, index and extent against
// the real buffers so that no call, however wrong, can make a kernel read or write out of bounds: a
// mismatch is a RangeError (TypeError for a wrong kind of value) naming the field. The async variants
// copy their inputs (those on a SharedArrayBuffer are read in place) and keep their output arrays alive
// until the job settles (see jobs.h); the result's copiedBytes says how much was copied.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "host_schedule.h"
#include "jobs.h"
#include "splash/cpu_kernels.h"
#include "splash/params.h"

namespace splash {
namespace addon {

namespace {

// Limits that keep every size product far from int64 overflow.
constexpr int64_t kMaxExtent = INT64_C(1) << 31;  // sequence lengths, heads, batch (col indices are int32)
constexpr int64_t kMaxDim = 1 << 16;              // head dims
constexpr int64_t kMaxStride = INT64_C(1) << 52;

// Σ (extent_i - 1)·stride_i + 1: the elements a tensor view spans; checked for overflow.
int64_t span_of(const int64_t* extent, const int64_t* stride, const std::string& path) {
  int64_t last = 0;
  for (int i = 0; i < 4; ++i) {
    if (extent[i] <= 1) continue;
    if (stride[i] > (INT64_MAX - last) / (extent[i] - 1)) range_error(path + ".strides", "the view's extent overflows");
    last += (extent[i] - 1) * stride[i];
  }
  return last + 1;
}

// Distinct indices map to distinct elements (so concurrent tasks never write the same element).
bool injective(const int64_t* extent, const int64_t* stride) {
  int order[4] = {0, 1, 2, 3};
  std::sort(order, order + 4, [&](int a, int b) { return stride[a] < stride[b]; });
  int64_t reach = 0;  // largest offset reachable with the axes so far
  for (int i : order) {
    if (extent[i] <= 1) continue;
    if (stride[i] <= reach) return false;
    reach += (extent[i] - 1) * stride[i];
  }
  return true;
}

void expect_length(const Span& span, int64_t n, const std::string& path) {
  if (span.length != n) range_error(path, "expected length " + num(n) + ", got " + num(span.length));
}

int64_t blocks_of(int64_t seq, int64_t block) { return (seq + block - 1) / block; }

// The checked parameters of one call, what keeps its memory valid, and what it needs besides.
struct Call {
  AttentionParams params{};
  cpu::RunOptions options{};
  std::vector<OwnedBytes> copies;                           // async: the inputs, copied
  std::vector<Napi::Value> kept;                            // outputs and in-place inputs (async jobs keep them)
  int64_t copied_bytes = 0;                                 // async: input bytes copied into `copies`
  std::vector<std::shared_ptr<const HostSchedule>> schedules;
  int64_t temporaries = 0;                                  // bytes the kernel allocates for itself
};

// Reads calls; with `copy_inputs` every input array is copied into the call (async calls).
class CallReader {
 public:
  CallReader(Call* call, bool copy_inputs) : call_(call), copy_(copy_inputs) {}

  // One tensor view, checked against its array; inputs are copied when the call is async.
  TensorRef tensor(const Napi::Object& c, const std::string& key, const int64_t (&extent)[4], bool output,
                   bool f32_only = false) {
    const Napi::Object t = r.object(c, key, key);
    TensorRef ref{};
    const int64_t dtype = r.integer(t, "dtype", key + ".dtype", 0, 2);
    if (f32_only && dtype != 0) range_error(key + ".dtype", "expected 0 (float32), got " + num(dtype));
    ref.dtype = static_cast<DType>(dtype);
    const Napi::Value data = t.Get("data");
    const Span span = r.array_value(data, key + ".data", dtype == 0 ? napi_float32_array : napi_uint16_array);
    Napi::Value sv = t.Get("strides");
    if (!sv.IsArray()) type_error(key + ".strides", "expected an array of 4 integers");
    Napi::Array sa = sv.As<Napi::Array>();
    if (sa.Length() != 4) range_error(key + ".strides", "expected 4 entries, got " + num(sa.Length()));
    int64_t stride[4];
    for (uint32_t i = 0; i < 4; ++i) stride[i] = r.integer_value(sa.Get(i), at(key + ".strides", i), 0, kMaxStride);
    ref.batch_stride = stride[0];
    ref.head_stride = stride[1];
    ref.seq_stride = stride[2];
    ref.dim_stride = stride[3];
    const int64_t needed = span_of(extent, stride, key);
    if (needed > span.length) {
      range_error(key + ".data", "expected at least " + num(needed) + " elements for shape [" + num(extent[0]) + ", " +
                                     num(extent[1]) + ", " + num(extent[2]) + ", " + num(extent[3]) + "], got " +
                                     num(span.length));
    }
    if (output && !injective(extent, stride)) range_error(key + ".strides", "an output view must not overlap itself");
    ref.ptr = place(span, data, key, output);
    return ref;
  }

  // A plain input array (segment ids, sinks): in place, or copied for an async call.
  const void* input(const Span& span, const std::string& path) { return place(span, Napi::Value(), path, false); }

  const ScheduleView& schedule(const Napi::Object& c, const std::string& key, bool is_dkv, const AttentionParams& p) {
    std::shared_ptr<const HostSchedule> h = host_schedule_of(c.Get(key), key);
    const ScheduleView& s = h->view;
    const int64_t q_blocks = blocks_of(p.q_seq, s.block_q), kv_blocks = blocks_of(p.kv_seq, s.block_kv);
    if (s.heads != 1 && s.heads != p.heads) {
      range_error(key + ".heads", "expected 1 or " + num(p.heads) + ", got " + num(s.heads));
    }
    if (s.q_blocks != q_blocks || s.kv_blocks != kv_blocks) {
      range_error(key, "cut into " + num(s.q_blocks) + " x " + num(s.kv_blocks) + " blocks, the call's sequences need " +
                           num(q_blocks) + " x " + num(kv_blocks));
    }
    if (s.is_dkv != (is_dkv ? 1 : 0)) range_error(key + ".isDkv", std::string("expected ") + (is_dkv ? "true" : "false"));
    call_->schedules.push_back(std::move(h));
    return call_->schedules.back()->view;
  }

  Reader r;

 private:
  // Where the kernel finds an array: outputs in place (the job keeps them), inputs in place for a
  // sync call or copied for an async one. An async call reads a tensor on a SharedArrayBuffer in place
  // too, keeping it alive: such a buffer can be neither detached nor transferred, and copying a long
  // key/value cache on every call can cost more than the kernel.
  void* place(const Span& span, const Napi::Value& value, const std::string& path, bool output) {
    if (output) {
      call_->kept.push_back(value);
      check_overlap(span);
      outputs_.push_back(span);
      return span.data;
    }
    inputs_.push_back(span);
    for (const Span& o : outputs_) check_disjoint(o, span);
    if (!copy_ || span.data == nullptr) return span.data;
    if (on_shared_memory(value)) {
      call_->kept.push_back(value);
      return span.data;
    }
    call_->copies.push_back(OwnedBytes::copy_of(span, path));
    call_->copied_bytes += static_cast<int64_t>(span.bytes);
    return call_->copies.back().data();
  }

  // A typed array's buffer is an ArrayBuffer or a SharedArrayBuffer; nothing else is read in place.
  static bool on_shared_memory(const Napi::Value& value) {
    if (value.IsEmpty() || !value.IsTypedArray()) return false;
    napi_value buffer = nullptr;
    bool is_array_buffer = true;
    return napi_get_typedarray_info(value.Env(), value, nullptr, nullptr, nullptr, &buffer, nullptr) == napi_ok &&
           buffer != nullptr && napi_is_arraybuffer(value.Env(), buffer, &is_array_buffer) == napi_ok &&
           !is_array_buffer;
  }

  // Outputs may not share memory with anything else the call reads or writes.
  void check_overlap(const Span& out) {
    for (const Span& o : outputs_) check_disjoint(out, o);
    for (const Span& i : inputs_) check_disjoint(out, i);
  }

  static void check_disjoint(const Span& a, const Span& b) {
    const uint8_t* a0 = static_cast<const uint8_t*>(a.data);
    const uint8_t* b0 = static_cast<const uint8_t*>(b.data);
    if (a0 != nullptr && b0 != nullptr && a0 < b0 + b.bytes && b0 < a0 + a.bytes) {
      range_error("outputs", "an output buffer overlaps another buffer of the call");
    }
  }

  Call* call_;
  bool copy_;
  std::vector<Span> inputs_, outputs_;
};

void read_call(const Napi::Value& arg, bool backward, bool copy_inputs, Call* out) {
  if (!arg.IsObject()) type_error("call", "expected an object");
  const Napi::Object call = arg.As<Napi::Object>();
  CallReader cr(out, copy_inputs);
  Reader& r = cr.r;
  AttentionParams& p = out->params;

  p.batch = r.integer(call, "batch", "batch", 1, kMaxExtent);
  p.heads = r.integer(call, "heads", "heads", 1, kMaxExtent);
  p.kv_heads = r.integer(call, "kvHeads", "kvHeads", 1, p.heads);
  if (p.heads % p.kv_heads != 0) {
    range_error("kvHeads", "expected a divisor of heads = " + num(p.heads) + ", got " + num(p.kv_heads));
  }
  p.q_seq = r.integer(call, "qSeq", "qSeq", 1, kMaxExtent - 1);
  p.kv_seq = r.integer(call, "kvSeq", "kvSeq", 1, kMaxExtent - 1);
  p.head_dim = r.integer(call, "headDim", "headDim", 1, kMaxDim);
  p.head_dim_v = r.integer(call, "headDimV", "headDimV", 1, kMaxDim);

  p.mask_value = static_cast<float>(r.number(call, "maskValue", "maskValue"));
  const double soft_cap = r.number(call, "softCap", "softCap");
  if (!(soft_cap >= 0.0) || !std::isfinite(soft_cap)) {
    range_error("softCap", "expected 0 (none) or a positive finite number, got " + std::to_string(soft_cap));
  }
  p.soft_cap = static_cast<float>(soft_cap);
  const Napi::Value scale = call.Get("scale");
  p.scale = 1.0f;
  if (!scale.IsUndefined()) {
    const double x = r.number_value(scale, "scale");
    if (!(x > 0.0) || !std::isfinite(x) || !(static_cast<float>(x) > 0.0f)) {
      range_error("scale", "expected a positive finite number, got " + std::to_string(x));
    }
    p.scale = static_cast<float>(x);
  }
  p.num_threads = static_cast<int32_t>(r.integer(call, "numThreads", "numThreads", 0, 1024));
  p.head_shards = static_cast<int32_t>(std::min(p.heads, r.integer(call, "headShards", "headShards", 1, kMaxExtent)));
  p.device = 0;

  const int64_t q_ext[4] = {p.batch, p.heads, p.q_seq, p.head_dim};
  const int64_t k_ext[4] = {p.batch, p.kv_heads, p.kv_seq, p.head_dim};
  const int64_t v_ext[4] = {p.batch, p.kv_heads, p.kv_seq, p.head_dim_v};
  const int64_t o_ext[4] = {p.batch, p.heads, p.q_seq, p.head_dim_v};
  const int64_t l_ext[4] = {p.batch, p.heads, p.q_seq, 1};

  // Outputs first, so that every input is checked against them for overlap.
  if (!backward) {
    p.save_lse = r.boolean(call, "saveLse", "saveLse") ? 1 : 0;
    p.out = cr.tensor(call, "out", o_ext, true);
    if (p.save_lse) p.lse = cr.tensor(call, "lse", l_ext, true, /*f32_only=*/true);
  } else {
    p.dq = cr.tensor(call, "dq", q_ext, true);
    p.dk = cr.tensor(call, "dk", k_ext, true);
    p.dv = cr.tensor(call, "dv", v_ext, true);
  }
  p.q = cr.tensor(call, "q", q_ext, false);
  p.k = cr.tensor(call, "k", k_ext, false);
  p.v = cr.tensor(call, "v", v_ext, false);
  if (backward) {
    p.out = cr.tensor(call, "out", o_ext, false);
    p.lse = cr.tensor(call, "lse", l_ext, false, /*f32_only=*/true);
    p.dout = cr.tensor(call, "dout", o_ext, false);
  }

  const Span seg_q = r.array(call, "segmentIdsQ", "segmentIdsQ", napi_int32_array, /*optional=*/true);
  const Span seg_kv = r.array(call, "segmentIdsKv", "segmentIdsKv", napi_int32_array, /*optional=*/true);
  if ((seg_q.data == nullptr) != (seg_kv.data == nullptr)) {
    range_error("segmentIdsQ", "segment ids must be given for both q and kv, or neither");
  }
  if (seg_q.data != nullptr) {
    expect_length(seg_q, p.batch * p.q_seq, "segmentIdsQ");
    expect_length(seg_kv, p.batch * p.kv_seq, "segmentIdsKv");
    p.segment_ids_q = static_cast<const int32_t*>(cr.input(seg_q, "segmentIdsQ"));
    p.segment_ids_kv = static_cast<const int32_t*>(cr.input(seg_kv, "segmentIdsKv"));
  }

  const Napi::Value sinks_value = call.Get("sinks");
  if (!sinks_value.IsUndefined() && !sinks_value.IsNull()) {
    if (backward) range_error("sinks", "expected none in a backward call (its lse holds them already)");
    const Span sinks = r.array_value(sinks_value, "sinks", napi_float32_array);
    expect_length(sinks, p.heads, "sinks");
    p.sinks = static_cast<const float*>(cr.input(sinks, "sinks"));
  }

  const int64_t rows = p.batch * p.heads * p.q_seq;
  if (!backward) {
    p.fwd = cr.schedule(call, "fwdSchedule", false, p);
    p.block_q = p.fwd.block_q;
    p.block_kv = p.fwd.block_kv;
    p.block_kv_compute = r.integer(call, "blockKvCompute", "blockKvCompute", 1, p.block_kv);
    if (p.block_kv % p.block_kv_compute != 0) {
      range_error("blockKvCompute",
                  "expected a divisor of fwdSchedule.blockKv = " + num(p.block_kv) + ", got " + num(p.block_kv_compute));
    }
  } else {
    p.fused_bwd = r.boolean(call, "fusedBwd", "fusedBwd") ? 1 : 0;
    p.dkv_sched = cr.schedule(call, "dkvSchedule", true, p);
    p.block_q_dkv = p.dkv_sched.block_q;
    p.block_kv_dkv = p.dkv_sched.block_kv;
    p.block_kv_dkv_compute = r.integer(call, "blockKvDkvCompute", "blockKvDkvCompute", 1, p.block_kv_dkv);
    if (p.block_kv_dkv % p.block_kv_dkv_compute != 0) {
      range_error("blockKvDkvCompute", "expected a divisor of dkvSchedule.blockKv = " + num(p.block_kv_dkv) +
                                           ", got " + num(p.block_kv_dkv_compute));
    }
    if (!p.fused_bwd) {
      p.dq_sched = cr.schedule(call, "dqSchedule", false, p);
      p.block_q_dq = p.dq_sched.block_q;
      p.block_kv_dq = p.dq_sched.block_kv;
    }
    // Row deltas, and the fused pass's f32 dq sums.
    out->temporaries = rows * 4 + (p.fused_bwd ? rows * p.head_dim * 4 : 0);
  }
  // Read here, on the JS thread: a kernel thread calling getenv could race process.env writes.
  out->options = cpu::options_from_environment();
}

// Runs the kernel; Cancelled (or a failure caused by it) becomes Outcome::aborted().
Outcome run_kernel(Call& call, bool backward, const CancelFlag& cancel) {
  call.options.cancel = &cancel;
  try {
    if (backward) {
      cpu::backward_with(call.params, call.options);
    } else {
      cpu::forward_with(call.params, call.options);
    }
  } catch (...) {
    if (cancel.load()) return Outcome::aborted();
    throw;
  }
  return Outcome::ok();
}

class CpuJob : public Job {
 public:
  explicit CpuJob(bool backward) : backward_(backward) {}
  Call call;

  Outcome Run(const CancelFlag& cancel) override { return run_kernel(call, backward_, cancel); }
  // Which kernel table ran, so that tests can tell a forced instruction set from a silent fallback, and
  // for a forward how many query heads shared a task.
  Napi::Value Result(Napi::Env env) override {
    Napi::Object r = Napi::Object::New(env);
    r.Set("isa", cpu::kernel_isa(call.options));
    r.Set("copiedBytes", static_cast<double>(call.copied_bytes));
    if (!backward_) r.Set("headsPerTask", static_cast<double>(cpu::forward_heads_per_task(call.params, call.options)));
    return r;
  }

 private:
  bool backward_;
};

Napi::Value RunSync(const Napi::CallbackInfo& info, bool backward) {
  CpuJob job(backward);
  read_call(info[0], backward, /*copy_inputs=*/false, &job.call);
  job.working_set_bytes = job.call.temporaries;
  return run_now(info.Env(), job);
}

Napi::Value RunAsync(const Napi::CallbackInfo& info, bool backward) {
  Napi::Env env = info.Env();
  auto job = std::make_unique<CpuJob>(backward);
  read_call(info[0], backward, /*copy_inputs=*/true, &job->call);
  job->working_set_bytes = job->call.temporaries;
  for (const Napi::Value& v : job->call.kept) job->keep(env, v);
  job->call.kept.clear();
  const Napi::Value token = info[0].As<Napi::Object>().Get("cancel");
  return submit(env, std::move(job), token);
}

Napi::Value ForwardSync(const Napi::CallbackInfo& info) { return RunSync(info, false); }
Napi::Value BackwardSync(const Napi::CallbackInfo& info) { return RunSync(info, true); }
Napi::Value Forward(const Napi::CallbackInfo& info) { return RunAsync(info, false); }
Napi::Value Backward(const Napi::CallbackInfo& info) { return RunAsync(info, true); }

}  // namespace

void RegisterCpu(Napi::Env env, Napi::Object exports) {
  exports.Set("forwardSync", guarded_function(env, "forwardSync", ForwardSync));
  exports.Set("backwardSync", guarded_function(env, "backwardSync", BackwardSync));
  exports.Set("forward", guarded_function(env, "forward", Forward));
  exports.Set("backward", guarded_function(env, "backward", Backward));
}

}  // namespace addon
}  // namespace splash
