// forward / forwardSync / backward / backwardSync: the CPU attention kernels behind N-API.
//
// One call object carries everything (see lib/backends/cpu.ts, which builds it):
//   { batch, heads, kvHeads, qSeq, kvSeq, headDim, headDimV,
//     q, k, v, out, lse, dout?, dq?, dk?, dv?      tensors: { data, dtype (0 f32, 1 bf16, 2 f16),
//                                                   strides: [batch, head, seq, dim] in elements }
//     segmentIdsQ?, segmentIdsKv?                   Int32Array, batch-major
//     maskValue, softCap (0 = none), saveLse,
//     blockKvCompute, blockKvDkvCompute, fusedBwd,
//     fwdInfo / dqInfo / dkvInfo                    MaskInfo objects (lib/mask-info.ts)
//     numThreads (0 = default), headShards }
// Outputs are written into the caller's arrays. JS validated the user's arguments already; this file
// re-checks every size, index and extent against the real buffers so that no call, however wrong,
// can make a kernel read or write out of bounds: a mismatch is a RangeError (TypeError for a wrong
// kind of value) naming the field. The async variants keep a reference to every array they were
// given until the kernel has finished.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "../cpu/mask_eval.h"
#include "addon.h"
#include "splash/cpu_kernels.h"
#include "splash/params.h"

namespace splash {
namespace addon {

namespace {

// Limits that keep every size product far from int64 overflow.
constexpr int64_t kMaxExtent = INT64_C(1) << 31;  // sequence lengths, heads, batch (col indices are int32)
constexpr int64_t kMaxDim = 1 << 16;              // head dims
constexpr int64_t kMaxBlock = 1 << 16;            // block sizes
constexpr int64_t kMaxStride = INT64_C(1) << 52;

// A bad argument, turned into a JS TypeError or RangeError at the boundary.
struct ArgError {
  bool type_error;
  std::string message;
};

[[noreturn]] void range_error(const std::string& field, const std::string& what) {
  throw ArgError{false, field + ": " + what};
}

[[noreturn]] void type_error(const std::string& field, const std::string& what) {
  throw ArgError{true, field + ": " + what};
}

std::string num(int64_t x) { return std::to_string(x); }

std::string at(const std::string& path, int64_t i) { return path + "[" + num(i) + "]"; }

// A typed array's memory, checked for its element type.
struct Span {
  void* data = nullptr;
  int64_t length = 0;       // elements
  const uint8_t* begin = nullptr;  // byte range, for overlap checks
  const uint8_t* end = nullptr;
};

const char* typed_array_name(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "TypedArray";
  }
}

// Reads the fields of the call object and keeps every array it hands out alive (for async calls).
class CallReader {
 public:
  Napi::Object object(const Napi::Object& o, const std::string& key, const std::string& path) {
    Napi::Value v = o.Get(key);
    if (!v.IsObject()) type_error(path, "expected an object");
    return v.As<Napi::Object>();
  }

  double number(const Napi::Object& o, const std::string& key, const std::string& path) {
    return number_value(o.Get(key), path);
  }

  double number_value(const Napi::Value& v, const std::string& path) {
    if (!v.IsNumber()) type_error(path, "expected a number");
    const double d = v.As<Napi::Number>().DoubleValue();
    if (std::isnan(d)) range_error(path, "expected a number, got NaN");
    return d;
  }

  int64_t integer(const Napi::Object& o, const std::string& key, const std::string& path, int64_t lo, int64_t hi) {
    return integer_value(o.Get(key), path, lo, hi);
  }

  int64_t integer_value(const Napi::Value& v, const std::string& path, int64_t lo, int64_t hi) {
    const double d = number_value(v, path);
    if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != std::floor(d)) {
      range_error(path, "expected an integer in [" + num(lo) + ", " + num(hi) + "], got " + std::to_string(d));
    }
    return static_cast<int64_t>(d);
  }

  bool boolean(const Napi::Object& o, const std::string& key, const std::string& path) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return false;
    if (!v.IsBoolean()) type_error(path, "expected a boolean");
    return v.As<Napi::Boolean>().Value();
  }

  // A typed array of the given type; null/undefined gives an empty span when `optional`.
  Span array(const Napi::Object& o, const std::string& key, const std::string& path, napi_typedarray_type type,
             bool optional = false) {
    Napi::Value v = o.Get(key);
    if (optional && (v.IsNull() || v.IsUndefined())) return Span{};
    return array_value(v, path, type);
  }

  Span array_value(const Napi::Value& v, const std::string& path, napi_typedarray_type type) {
    if (!v.IsTypedArray()) type_error(path, std::string("expected a ") + typed_array_name(type));
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    if (ta.TypedArrayType() != type) {
      const std::string got = typed_array_name(ta.TypedArrayType());
      type_error(path, std::string("expected a ") + typed_array_name(type) + ", got " + got);
    }
    Span s;
    s.length = static_cast<int64_t>(ta.ElementLength());
    Napi::ArrayBuffer buffer = ta.ArrayBuffer();
    uint8_t* base = static_cast<uint8_t*>(buffer.Data());
    if (s.length > 0 && base == nullptr) range_error(path, "the array's buffer is detached");
    s.data = s.length > 0 ? base + ta.ByteOffset() : nullptr;
    s.begin = static_cast<const uint8_t*>(s.data);
    s.end = s.begin == nullptr ? nullptr : s.begin + ta.ByteLength();
    refs_.push_back(Napi::Persistent(v.As<Napi::Object>()));
    return s;
  }

  std::vector<Napi::ObjectReference> take_refs() { return std::move(refs_); }

 private:
  std::vector<Napi::ObjectReference> refs_;
};

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

struct TensorArg {
  TensorRef ref{};
  Span span;
};

TensorArg read_tensor(CallReader& r, const Napi::Object& call, const std::string& key,
                      const int64_t (&extent)[4], bool output, bool f32_only = false) {
  const Napi::Object t = r.object(call, key, key);
  TensorArg a;
  const int64_t dtype = r.integer(t, "dtype", key + ".dtype", 0, 2);
  if (f32_only && dtype != 0) range_error(key + ".dtype", "expected 0 (float32), got " + num(dtype));
  a.ref.dtype = static_cast<DType>(dtype);
  a.span = r.array(t, "data", key + ".data", dtype == 0 ? napi_float32_array : napi_uint16_array);
  Napi::Value sv = t.Get("strides");
  if (!sv.IsArray()) type_error(key + ".strides", "expected an array of 4 integers");
  Napi::Array sa = sv.As<Napi::Array>();
  if (sa.Length() != 4) range_error(key + ".strides", "expected 4 entries, got " + num(sa.Length()));
  int64_t stride[4];
  for (uint32_t i = 0; i < 4; ++i) stride[i] = r.integer_value(sa.Get(i), at(key + ".strides", i), 0, kMaxStride);
  a.ref.batch_stride = stride[0];
  a.ref.head_stride = stride[1];
  a.ref.seq_stride = stride[2];
  a.ref.dim_stride = stride[3];
  const int64_t needed = span_of(extent, stride, key);
  if (needed > a.span.length) {
    range_error(key + ".data", "expected at least " + num(needed) + " elements for shape [" + num(extent[0]) + ", " +
                                   num(extent[1]) + ", " + num(extent[2]) + ", " + num(extent[3]) + "], got " +
                                   num(a.span.length));
  }
  if (output && !injective(extent, stride)) range_error(key + ".strides", "an output view must not overlap itself");
  a.ref.ptr = a.span.data;
  return a;
}

void expect_length(const Span& span, int64_t n, const std::string& path) {
  if (span.length != n) range_error(path, "expected length " + num(n) + ", got " + num(span.length));
}

// lo <= value < hi
void expect_index(int64_t value, int64_t lo, int64_t hi, const std::string& path) {
  if (value < lo || value >= hi) {
    range_error(path, "expected an index in [" + num(lo) + ", " + num(hi) + "), got " + num(value));
  }
}

// a[0] == first, a[n - 1] == last, and never decreasing in between.
void expect_bounds(const int32_t* a, int64_t n, int64_t first, int64_t last, const std::string& path) {
  if (a[0] != first) range_error(at(path, 0), "expected " + num(first) + ", got " + num(a[0]));
  for (int64_t i = 1; i < n; ++i) {
    if (a[i] < a[i - 1]) range_error(at(path, i), "expected a non-decreasing sequence");
  }
  if (a[n - 1] != last) range_error(at(path, n - 1), "expected " + num(last) + ", got " + num(a[n - 1]));
}

int64_t blocks_of(int64_t seq, int64_t block) { return (seq + block - 1) / block; }

// Reads one MaskInfo and checks it is a consistent schedule for q_seq x kv_seq with `heads` query
// heads: every array length, every index and every program.
ScheduleView read_schedule(CallReader& r, const Napi::Object& call, const std::string& key, bool is_dkv,
                           int64_t heads, int64_t q_seq, int64_t kv_seq) {
  const Napi::Object o = r.object(call, key, key);
  const std::string k = key + ".";
  ScheduleView s{};
  s.heads = static_cast<int32_t>(r.integer(o, "heads", k + "heads", 1, heads));
  if (s.heads != 1 && s.heads != heads) {
    range_error(k + "heads", "expected 1 or " + num(heads) + ", got " + num(s.heads));
  }
  s.block_q = static_cast<int32_t>(r.integer(o, "blockQ", k + "blockQ", 1, kMaxBlock));
  s.block_kv = static_cast<int32_t>(r.integer(o, "blockKv", k + "blockKv", 1, kMaxBlock));
  const int64_t q_blocks = blocks_of(q_seq, s.block_q), kv_blocks = blocks_of(kv_seq, s.block_kv);
  s.q_blocks = static_cast<int32_t>(r.integer(o, "qBlocks", k + "qBlocks", q_blocks, q_blocks));
  s.kv_blocks = static_cast<int32_t>(r.integer(o, "kvBlocks", k + "kvBlocks", kv_blocks, kv_blocks));
  if (r.boolean(o, "isDkv", k + "isDkv") != is_dkv) {
    range_error(k + "isDkv", std::string("expected ") + (is_dkv ? "true" : "false"));
  }
  s.is_dkv = is_dkv ? 1 : 0;
  s.num_schedules = static_cast<int32_t>(r.integer(o, "numSchedules", k + "numSchedules", 1, s.heads));
  const int64_t rows = is_dkv ? kv_blocks : q_blocks;
  const int64_t cols = is_dkv ? q_blocks : kv_blocks;
  s.rows_per_schedule = static_cast<int32_t>(r.integer(o, "rowsPerSchedule", k + "rowsPerSchedule", rows, rows));

  const Span head_schedule = r.array(o, "headSchedule", k + "headSchedule", napi_int32_array);
  expect_length(head_schedule, s.heads, k + "headSchedule");
  s.head_schedule = static_cast<const int32_t*>(head_schedule.data);
  for (int64_t i = 0; i < s.heads; ++i) expect_index(s.head_schedule[i], 0, s.num_schedules, at(k + "headSchedule", i));

  // CSR rows; rowPtr's last entry is the number of entries of the three column arrays.
  const Span row_ptr = r.array(o, "rowPtr", k + "rowPtr", napi_int32_array);
  const int64_t row_count = static_cast<int64_t>(s.num_schedules) * rows;
  expect_length(row_ptr, row_count + 1, k + "rowPtr");
  s.row_ptr = static_cast<const int32_t*>(row_ptr.data);
  const Span col_idx = r.array(o, "colIdx", k + "colIdx", napi_int32_array);
  const Span col_kind = r.array(o, "colKind", k + "colKind", napi_uint8_array);
  const Span col_ref = r.array(o, "colMaskRef", k + "colMaskRef", napi_int32_array);
  expect_bounds(s.row_ptr, row_count + 1, 0, col_idx.length, k + "rowPtr");
  s.nnz = col_idx.length;
  expect_length(col_kind, s.nnz, k + "colKind");
  expect_length(col_ref, s.nnz, k + "colMaskRef");
  s.col_idx = static_cast<const int32_t*>(col_idx.data);
  s.col_kind = static_cast<const uint8_t*>(col_kind.data);
  s.col_mask_ref = static_cast<const int32_t*>(col_ref.data);

  const Span partial = r.array(o, "partialMaskBlocks", k + "partialMaskBlocks", napi_uint8_array, /*optional=*/true);
  const int64_t block_area = static_cast<int64_t>(s.block_q) * s.block_kv;
  if (partial.length % block_area != 0) {
    range_error(k + "partialMaskBlocks",
                "expected a multiple of blockQ·blockKv = " + num(block_area) + " entries, got " + num(partial.length));
  }
  s.partial_mask_blocks = static_cast<const uint8_t*>(partial.data);
  s.num_partial = partial.length / block_area;

  const Span programs = r.array(o, "programs", k + "programs", napi_int32_array);
  const Span program_ptr = r.array(o, "programPtr", k + "programPtr", napi_int32_array);
  expect_length(program_ptr, s.num_schedules + 1, k + "programPtr");
  s.programs = static_cast<const int32_t*>(programs.data);
  s.program_ptr = static_cast<const int32_t*>(program_ptr.data);
  s.program_len = programs.length;
  expect_bounds(s.program_ptr, s.num_schedules + 1, 0, programs.length, k + "programPtr");
  for (int64_t sc = 0; sc < s.num_schedules; ++sc) {
    const int64_t begin = s.program_ptr[sc], end = s.program_ptr[sc + 1];
    if (end > begin && cpu::mask_program_depth(s.programs + begin, end - begin) < 1) {
      range_error(k + "programs", "schedule " + num(sc) + "'s mask program is malformed");
    }
  }

  for (int64_t sc = 0; sc < s.num_schedules; ++sc) {
    const bool has_program = s.program_ptr[sc + 1] > s.program_ptr[sc];
    for (int64_t e = s.row_ptr[sc * rows]; e < s.row_ptr[(sc + 1) * rows]; ++e) {
      expect_index(s.col_idx[e], 0, cols, at(k + "colIdx", e));
      const uint8_t kind = s.col_kind[e];
      if (kind != static_cast<uint8_t>(BlockKind::Partial) && kind != static_cast<uint8_t>(BlockKind::Full)) {
        range_error(at(k + "colKind", e), "expected 1 (partial) or 2 (full), got " + num(kind));
      }
      expect_index(s.col_mask_ref[e], -1, s.num_partial, at(k + "colMaskRef", e));
      if (kind == static_cast<uint8_t>(BlockKind::Partial) && s.col_mask_ref[e] < 0 && !has_program) {
        range_error(at(k + "colMaskRef", e), "a partial block needs a stored block or its schedule's mask program");
      }
    }
  }

  const Span bounds = r.array(o, "qShardBounds", k + "qShardBounds", napi_int32_array);
  if (bounds.length < 2) range_error(k + "qShardBounds", "expected at least 2 entries, got " + num(bounds.length));
  s.q_shard_bounds = static_cast<const int32_t*>(bounds.data);
  s.num_q_shards = static_cast<int32_t>(bounds.length - 1);
  expect_bounds(s.q_shard_bounds, bounds.length, 0, s.q_blocks, k + "qShardBounds");
  return s;
}

// The checked parameters of one call and the references that keep its arrays alive.
struct Call {
  AttentionParams params{};
  cpu::RunOptions options{};
  std::vector<Napi::ObjectReference> refs;
};

Call read_call(const Napi::CallbackInfo& info, bool backward) {
  if (info.Length() < 1 || !info[0].IsObject()) type_error("call", "expected an object");
  const Napi::Object call = info[0].As<Napi::Object>();
  CallReader r;
  Call out;
  AttentionParams& p = out.params;

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

  const double mask_value = r.number(call, "maskValue", "maskValue");
  p.mask_value = static_cast<float>(mask_value);
  const double soft_cap = r.number(call, "softCap", "softCap");
  if (!(soft_cap >= 0.0) || !std::isfinite(soft_cap)) {
    range_error("softCap", "expected 0 (none) or a positive finite number, got " + std::to_string(soft_cap));
  }
  p.soft_cap = static_cast<float>(soft_cap);
  p.num_threads = static_cast<int32_t>(r.integer(call, "numThreads", "numThreads", 0, 1024));
  p.head_shards = static_cast<int32_t>(std::min(p.heads, r.integer(call, "headShards", "headShards", 1, kMaxExtent)));
  p.device = 0;

  const int64_t q_ext[4] = {p.batch, p.heads, p.q_seq, p.head_dim};
  const int64_t k_ext[4] = {p.batch, p.kv_heads, p.kv_seq, p.head_dim};
  const int64_t v_ext[4] = {p.batch, p.kv_heads, p.kv_seq, p.head_dim_v};
  const int64_t o_ext[4] = {p.batch, p.heads, p.q_seq, p.head_dim_v};
  const int64_t l_ext[4] = {p.batch, p.heads, p.q_seq, 1};
  std::vector<Span> inputs, outputs;
  auto input = [&](const TensorArg& t) { inputs.push_back(t.span); return t.ref; };
  auto output = [&](const TensorArg& t) { outputs.push_back(t.span); return t.ref; };

  p.q = input(read_tensor(r, call, "q", q_ext, false));
  p.k = input(read_tensor(r, call, "k", k_ext, false));
  p.v = input(read_tensor(r, call, "v", v_ext, false));
  if (!backward) {
    p.save_lse = r.boolean(call, "saveLse", "saveLse") ? 1 : 0;
    p.out = output(read_tensor(r, call, "out", o_ext, true));
    if (p.save_lse) p.lse = output(read_tensor(r, call, "lse", l_ext, true, /*f32_only=*/true));
  } else {
    p.out = input(read_tensor(r, call, "out", o_ext, false));
    p.lse = input(read_tensor(r, call, "lse", l_ext, false, /*f32_only=*/true));
    p.dout = input(read_tensor(r, call, "dout", o_ext, false));
    p.dq = output(read_tensor(r, call, "dq", q_ext, true));
    p.dk = output(read_tensor(r, call, "dk", k_ext, true));
    p.dv = output(read_tensor(r, call, "dv", v_ext, true));
  }

  const Span seg_q = r.array(call, "segmentIdsQ", "segmentIdsQ", napi_int32_array, /*optional=*/true);
  const Span seg_kv = r.array(call, "segmentIdsKv", "segmentIdsKv", napi_int32_array, /*optional=*/true);
  if ((seg_q.data == nullptr) != (seg_kv.data == nullptr)) {
    range_error("segmentIdsQ", "segment ids must be given for both q and kv, or neither");
  }
  if (seg_q.data != nullptr) {
    expect_length(seg_q, p.batch * p.q_seq, "segmentIdsQ");
    expect_length(seg_kv, p.batch * p.kv_seq, "segmentIdsKv");
    p.segment_ids_q = static_cast<const int32_t*>(seg_q.data);
    p.segment_ids_kv = static_cast<const int32_t*>(seg_kv.data);
    inputs.push_back(seg_q);
    inputs.push_back(seg_kv);
  }

  if (!backward) {
    p.fwd = read_schedule(r, call, "fwdInfo", false, p.heads, p.q_seq, p.kv_seq);
    p.block_q = p.fwd.block_q;
    p.block_kv = p.fwd.block_kv;
    p.block_kv_compute = r.integer(call, "blockKvCompute", "blockKvCompute", 1, p.block_kv);
    if (p.block_kv % p.block_kv_compute != 0) {
      range_error("blockKvCompute",
                  "expected a divisor of fwdInfo.blockKv = " + num(p.block_kv) + ", got " + num(p.block_kv_compute));
    }
  } else {
    p.fused_bwd = r.boolean(call, "fusedBwd", "fusedBwd") ? 1 : 0;
    p.dkv_sched = read_schedule(r, call, "dkvInfo", true, p.heads, p.q_seq, p.kv_seq);
    p.block_q_dkv = p.dkv_sched.block_q;
    p.block_kv_dkv = p.dkv_sched.block_kv;
    p.block_kv_dkv_compute = r.integer(call, "blockKvDkvCompute", "blockKvDkvCompute", 1, p.block_kv_dkv);
    if (p.block_kv_dkv % p.block_kv_dkv_compute != 0) {
      range_error("blockKvDkvCompute", "expected a divisor of dkvInfo.blockKv = " + num(p.block_kv_dkv) +
                                           ", got " + num(p.block_kv_dkv_compute));
    }
    if (!p.fused_bwd) {
      p.dq_sched = read_schedule(r, call, "dqInfo", false, p.heads, p.q_seq, p.kv_seq);
      p.block_q_dq = p.dq_sched.block_q;
      p.block_kv_dq = p.dq_sched.block_kv;
    }
  }

  // Outputs may not share memory with anything else the call reads or writes.
  for (size_t i = 0; i < outputs.size(); ++i) {
    for (size_t j = 0; j < outputs.size() + inputs.size(); ++j) {
      if (j == i) continue;
      const Span& other = j < outputs.size() ? outputs[j] : inputs[j - outputs.size()];
      const Span& mine = outputs[i];
      if (mine.begin != nullptr && other.begin != nullptr && mine.begin < other.end && other.begin < mine.end) {
        range_error("outputs", "an output buffer overlaps another buffer of the call");
      }
    }
  }
  // Read here, on the JS thread: a kernel thread calling getenv could race process.env writes.
  out.options = cpu::options_from_environment();
  out.refs = r.take_refs();
  return out;
}

Napi::Error to_js_error(Napi::Env env, const ArgError& e) {
  if (e.type_error) return Napi::TypeError::New(env, e.message);
  return Napi::RangeError::New(env, e.message);
}

void run_kernel(const Call& call, bool backward) {
  if (backward) {
    cpu::backward_with(call.params, call.options);
  } else {
    cpu::forward_with(call.params, call.options);
  }
}

// Runs the kernel on a libuv thread; the references keep the inputs and outputs alive meanwhile.
class AttentionWorker : public Napi::AsyncWorker {
 public:
  AttentionWorker(Napi::Env env, Call call, bool backward)
      : Napi::AsyncWorker(env, "splash.attention"), call_(std::move(call)), backward_(backward),
        deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      run_kernel(call_, backward_);
    } catch (const std::exception& e) {
      SetError(std::string("cpu kernel failed: ") + e.what());
    } catch (...) {
      SetError("cpu kernel failed");
    }
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Call call_;
  bool backward_;
  Napi::Promise::Deferred deferred_;
};

Napi::Value RunSync(const Napi::CallbackInfo& info, bool backward) {
  Napi::Env env = info.Env();
  Call call;
  try {
    call = read_call(info, backward);
  } catch (const ArgError& e) {
    throw to_js_error(env, e);
  }
  try {
    run_kernel(call, backward);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("cpu kernel failed: ") + e.what());
  } catch (...) {
    throw Napi::Error::New(env, "cpu kernel failed");
  }
  return env.Undefined();
}

Napi::Value RunAsync(const Napi::CallbackInfo& info, bool backward) {
  Napi::Env env = info.Env();
  Call call;
  try {
    call = read_call(info, backward);
  } catch (const ArgError& e) {
    Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
    d.Reject(to_js_error(env, e).Value());
    return d.Promise();
  }
  // Queued workers delete themselves after OnOK / OnError.
  AttentionWorker* worker = new AttentionWorker(env, std::move(call), backward);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value ForwardSync(const Napi::CallbackInfo& info) { return RunSync(info, false); }
Napi::Value BackwardSync(const Napi::CallbackInfo& info) { return RunSync(info, true); }
Napi::Value Forward(const Napi::CallbackInfo& info) { return RunAsync(info, false); }
Napi::Value Backward(const Napi::CallbackInfo& info) { return RunAsync(info, true); }

}  // namespace

void RegisterAttention(Napi::Env env, Napi::Object exports) {
  exports.Set("forwardSync", Napi::Function::New(env, ForwardSync, "forwardSync"));
  exports.Set("backwardSync", Napi::Function::New(env, BackwardSync, "backwardSync"));
  exports.Set("forward", Napi::Function::New(env, Forward, "forward"));
  exports.Set("backward", Napi::Function::New(env, Backward, "backward"));
}

}  // namespace addon
}  // namespace splash
