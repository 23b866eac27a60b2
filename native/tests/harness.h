// Shared by the GPU harness (gpu_forward_test.cc) and the CPU emulation test (gpu_emulate_test.cc):
// masks and MaskInfo-equivalent schedules built in C++, seeded inputs, the oracles (the CPU forward
// kernel, or a double-precision reference of splash's semantics), and the comparison.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "splash/cpu_kernels.h"
#include "splash/gpu_api.h"
#include "splash/params.h"

// The CPU kernels are linked from native/cpu; declared weak so that a tree without them still builds
// and falls back to the reference below.
namespace splash {
namespace cpu {
__attribute__((weak)) void forward(const AttentionParams& p);
}  // namespace cpu
}  // namespace splash

namespace harness {

using splash::AttentionParams;
using splash::BlockKind;
using splash::DType;
using splash::MaskOp;
using splash::ScheduleView;
namespace gpu = splash::gpu;

// ---- numbers ----------------------------------------------------------------------------------------

uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
float bf16_to_f32(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const int exp = static_cast<int>((u >> 23) & 0xffu);
  uint32_t mant = u & 0x7fffffu;
  if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));
  const int e = exp - 127 + 15;
  if (e >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const int shift = 14 - e;
    const uint32_t half = 1u << (shift - 1), rest = mant & ((1u << shift) - 1);
    uint32_t h = mant >> shift;
    if (rest > half || (rest == half && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}
float f16_to_f32(uint16_t h) {
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  const float sign = (h & 0x8000) ? -1.f : 1.f;
  if (exp == 0) return sign * std::ldexp(static_cast<float>(mant), -24);
  if (exp == 0x1f) return mant ? std::numeric_limits<float>::quiet_NaN() : sign * std::numeric_limits<float>::infinity();
  return sign * std::ldexp(1.f + mant / 1024.f, exp - 15);
}

size_t elem_size(DType t) { return t == DType::F32 ? 4 : 2; }
const char* dtype_name(DType t) { return t == DType::F32 ? "f32" : t == DType::BF16 ? "bf16" : "f16"; }

// Host tensor in a dtype, with f32 views for comparison.
struct HostTensor {
  DType dtype = DType::F32;
  std::vector<uint8_t> bytes;
  size_t count = 0;

  void init(DType t, size_t n) {
    dtype = t;
    count = n;
    bytes.assign(n * elem_size(t), 0);
  }
  void set(size_t i, float x) {
    if (dtype == DType::F32) {
      std::memcpy(bytes.data() + 4 * i, &x, 4);
    } else {
      const uint16_t h = dtype == DType::BF16 ? f32_to_bf16(x) : f32_to_f16(x);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
  }
  float get(size_t i) const {
    if (dtype == DType::F32) {
      float x;
      std::memcpy(&x, bytes.data() + 4 * i, 4);
      return x;
    }
    uint16_t h;
    std::memcpy(&h, bytes.data() + 2 * i, 2);
    return dtype == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
  }
};

// ---- masks and schedules ----------------------------------------------------------------------------

struct MaskSpec {
  std::string name;
  std::vector<int32_t> program;  // empty: dense
  std::vector<uint8_t> dense;    // [q_seq * kv_seq] when program is empty
};

bool eval_program(const std::vector<int32_t>& prog, int64_t q, int64_t kv) {
  bool st[32];
  int sp = 0;
  for (size_t pc = 0; pc < prog.size();) {
    switch (static_cast<MaskOp>(prog[pc])) {
      case MaskOp::Full: st[sp++] = true; pc += 1; break;
      case MaskOp::Causal: st[sp++] = q + prog[pc + 1] >= kv; pc += 2; break;
      case MaskOp::Local: {
        const int64_t s = q + prog[pc + 5];
        st[sp++] = (prog[pc + 1] == 0 || s - prog[pc + 2] <= kv) && (prog[pc + 3] == 0 || s + prog[pc + 4] >= kv);
        pc += 6;
        break;
      }
      case MaskOp::Chunked: {
        const int64_t c = prog[pc + 1];
        st[sp++] = q / c == kv / c && q >= kv;
        pc += 2;
        break;
      }
      case MaskOp::And: --sp; st[sp - 1] = st[sp - 1] && st[sp]; pc += 1; break;
      case MaskOp::Or: --sp; st[sp - 1] = st[sp - 1] || st[sp]; pc += 1; break;
    }
  }
  return st[0];
}

bool mask_at(const MaskSpec& m, int64_t kv_seq, int64_t q, int64_t kv) {
  return m.program.empty() ? m.dense[q * kv_seq + kv] != 0 : eval_program(m.program, q, kv);
}

MaskSpec full_mask() { return {"full", {static_cast<int32_t>(MaskOp::Full)}, {}}; }
MaskSpec causal_mask(int32_t offset = 0) { return {"causal", {static_cast<int32_t>(MaskOp::Causal), offset}, {}}; }
MaskSpec local_mask(int32_t left, int32_t right) {
  return {"local(" + std::to_string(left) + "," + std::to_string(right) + ")",
          {static_cast<int32_t>(MaskOp::Local), 1, left, 1, right, 0}, {}};
}
MaskSpec chunked_mask(int32_t chunk) {
  return {"chunked(" + std::to_string(chunk) + ")", {static_cast<int32_t>(MaskOp::Chunked), chunk}, {}};
}
MaskSpec causal_or_local() {  // (causal and local(64, 0)) or local(0, 8): exercises the stack
  return {"causal&local|local",
          {static_cast<int32_t>(MaskOp::Causal), 0, static_cast<int32_t>(MaskOp::Local), 1, 64, 1, 0, 0,
           static_cast<int32_t>(MaskOp::And), static_cast<int32_t>(MaskOp::Local), 1, 0, 1, 8, 0,
           static_cast<int32_t>(MaskOp::Or)},
          {}};
}
MaskSpec deep_mask(int n) {  // causal(n-1) | (causal(n-2) | ... (causal(0) | local(0, 3))): stack depth n + 1
  MaskSpec m{"deep program(" + std::to_string(n) + ")", {}, {}};
  for (int i = n - 1; i >= 0; --i) {
    m.program.push_back(static_cast<int32_t>(MaskOp::Causal));
    m.program.push_back(i - 20);
  }
  for (int32_t x : {static_cast<int32_t>(MaskOp::Local), 1, 0, 1, 3, 0}) m.program.push_back(x);
  for (int i = 0; i < n; ++i) m.program.push_back(static_cast<int32_t>(MaskOp::Or));
  return m;
}
MaskSpec random_mask(int64_t q_seq, int64_t kv_seq, double sparsity, uint32_t seed) {
  MaskSpec m{"random(" + std::to_string(sparsity).substr(0, 4) + ")", {}, {}};
  m.dense.resize(static_cast<size_t>(q_seq * kv_seq));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (auto& x : m.dense) x = u(rng) >= sparsity ? 1 : 0;
  return m;
}

// A MaskInfo-equivalent forward schedule over one or more head masks (one schedule per mask).
struct HostSchedule {
  int32_t block_q = 0, block_kv = 0, q_blocks = 0, kv_blocks = 0;
  std::vector<int32_t> head_schedule, row_ptr, col_idx, col_mask_ref, programs, program_ptr, shard_bounds;
  std::vector<uint8_t> col_kind, partial;
  int64_t num_partial = 0;
  int64_t visited = 0, total = 0;  // blocks

  ScheduleView view() const {
    ScheduleView s{};
    s.heads = static_cast<int32_t>(head_schedule.size());
    s.q_blocks = q_blocks;
    s.kv_blocks = kv_blocks;
    s.block_q = block_q;
    s.block_kv = block_kv;
    s.is_dkv = 0;
    s.num_schedules = static_cast<int32_t>(program_ptr.size() - 1);
    s.rows_per_schedule = q_blocks;
    s.nnz = static_cast<int64_t>(col_idx.size());
    s.head_schedule = head_schedule.data();
    s.row_ptr = row_ptr.data();
    s.col_idx = col_idx.data();
    s.col_kind = col_kind.data();
    s.col_mask_ref = col_mask_ref.data();
    s.programs = programs.data();
    s.program_ptr = program_ptr.data();
    s.program_len = static_cast<int64_t>(programs.size());
    s.partial_mask_blocks = partial.empty() ? nullptr : partial.data();
    s.num_partial = num_partial;
    s.q_shard_bounds = shard_bounds.data();
    s.num_q_shards = 1;
    return s;
  }
};

HostSchedule build_schedule(const std::vector<MaskSpec>& masks, int64_t q_seq, int64_t kv_seq, int32_t bq, int32_t bkv) {
  HostSchedule s;
  s.block_q = bq;
  s.block_kv = bkv;
  s.q_blocks = static_cast<int32_t>((q_seq + bq - 1) / bq);
  s.kv_blocks = static_cast<int32_t>((kv_seq + bkv - 1) / bkv);
  s.row_ptr.push_back(0);
  s.program_ptr.push_back(0);
  s.shard_bounds = {0, s.q_blocks};
  for (size_t h = 0; h < masks.size(); ++h) {
    const MaskSpec& m = masks[h];
    s.head_schedule.push_back(static_cast<int32_t>(h));
    for (int32_t qb = 0; qb < s.q_blocks; ++qb) {
      const int64_t q0 = static_cast<int64_t>(qb) * bq, q1 = std::min<int64_t>(q0 + bq, q_seq);
      for (int32_t kb = 0; kb < s.kv_blocks; ++kb) {
        const int64_t k0 = static_cast<int64_t>(kb) * bkv, k1 = std::min<int64_t>(k0 + bkv, kv_seq);
        bool any = false, all = true;
        for (int64_t q = q0; q < q1 && (all || !any); ++q) {
          for (int64_t k = k0; k < k1; ++k) {
            const bool a = mask_at(m, kv_seq, q, k);
            any = any || a;
            all = all && a;
            if (any && !all) break;
          }
        }
        ++s.total;
        if (!any) continue;
        ++s.visited;
        s.col_idx.push_back(kb);
        s.col_kind.push_back(static_cast<uint8_t>(all ? BlockKind::Full : BlockKind::Partial));
        int32_t ref = -1;
        if (!all && m.program.empty()) {
          ref = static_cast<int32_t>(s.num_partial++);
          const size_t base = s.partial.size();
          s.partial.resize(base + static_cast<size_t>(bq) * bkv, 0);
          for (int64_t q = q0; q < q1; ++q)
            for (int64_t k = k0; k < k1; ++k) s.partial[base + (q - q0) * bkv + (k - k0)] = m.dense[q * kv_seq + k];
        }
        s.col_mask_ref.push_back(ref);
      }
      s.row_ptr.push_back(static_cast<int32_t>(s.col_idx.size()));
    }
    s.programs.insert(s.programs.end(), m.program.begin(), m.program.end());
    s.program_ptr.push_back(static_cast<int32_t>(s.programs.size()));
  }
  if (masks.size() == 1) s.head_schedule = {0};
  return s;
}

// ---- problems ------------------------------------------------------------------------------------------

struct Case {
  std::string name;
  DType dtype = DType::BF16;
  int64_t batch = 1, heads = 2, kv_heads = 2, q_seq = 512, kv_seq = 512, d = 128, dv = 128;
  std::vector<MaskSpec> masks;       // one (applies to every head) or one per head
  int32_t block_q = 128, block_kv = 128;
  float soft_cap = 0.f;
  float mask_value = -0.7f * std::numeric_limits<float>::max();
  int docs = 0;                      // > 0: packed documents as segment ids
  bool orphan_rows = false;          // some query rows in a segment no key has (fully masked rows)
  float q_scale = 1.f, k_scale = 1.f;  // factors on the seeded q and k
  float dout_scale = 1.f;            // factor on the seeded dout (loss scaling)
  float scale = 1.f;                 // logits = scale * q.k (the kernels' own scale, before the soft cap)
  bool sinks = false;                // one sink logit per query head (kSinkLogits, cycled)
  gpu::ForcePath path = gpu::ForcePath::kAuto;
};

// Finite mask values besides -3: small enough that exp(maskValue - m) underflows for every realistic
// logit, and large enough (-1e9, -1e30) that maskValue * log2(e) is not exact in f32.
struct FiniteMaskValue {
  const char* label;
  float value;
};
constexpr FiniteMaskValue kFiniteMaskValues[] = {{"-1e4", -1e4f}, {"-1e9", -1e9f}, {"-1e30", -1e30f}};
// Finite mask values with packed documents: -3 keeps other documents' keys in the softmax with a weight
// that shows (a block skipped for its segments, or a tile taken for one segment when it is not, changes
// the result); -50 and -1e4 weigh them to nothing and go through the large-negative paths.
constexpr FiniteMaskValue kSegmentMaskValues[] = {{"-3", -3.f}, {"-50", -50.f}, {"-1e4", -1e4f}};

// Sink logits of heads 0, 1, 2, ... (cycled): around the logits' own size, so a sink weighs from little
// to most of a row.
constexpr float kSinkLogits[] = {0.5f, -1.f, 2.f, -3.f};

Case make_case(const std::string& name, DType t, int64_t d, int64_t s, MaskSpec m) {
  Case c;
  c.name = name;
  c.dtype = t;
  c.d = c.dv = d;
  c.q_seq = c.kv_seq = s;
  c.masks = {std::move(m)};
  return c;
}

struct Inputs {
  HostTensor q, k, v;
  std::vector<int32_t> seg_q, seg_kv;
  std::vector<float> sinks;  // [heads] when the case has sinks
};

// Segment ids: `docs` documents of pseudo-random lengths per batch entry, identical for q and kv when
// the sequences match (kv ids scaled to kv's length otherwise).
void make_segments(const Case& c, Inputs* in, uint32_t seed) {
  if (c.docs <= 0) return;
  std::mt19937 rng(seed);
  in->seg_q.resize(static_cast<size_t>(c.batch * c.q_seq));
  in->seg_kv.resize(static_cast<size_t>(c.batch * c.kv_seq));
  for (int64_t b = 0; b < c.batch; ++b) {
    std::vector<int64_t> cuts;
    for (int i = 1; i < c.docs; ++i) cuts.push_back(static_cast<int64_t>(rng() % static_cast<uint32_t>(c.q_seq)));
    std::sort(cuts.begin(), cuts.end());
    for (int64_t i = 0; i < c.q_seq; ++i) {
      const int32_t doc = static_cast<int32_t>(std::upper_bound(cuts.begin(), cuts.end(), i) - cuts.begin());
      in->seg_q[b * c.q_seq + i] = doc;
    }
    for (int64_t j = 0; j < c.kv_seq; ++j) {
      const int64_t i = j * c.q_seq / c.kv_seq;
      in->seg_kv[b * c.kv_seq + j] = static_cast<int32_t>(std::upper_bound(cuts.begin(), cuts.end(), i) - cuts.begin());
    }
    if (c.orphan_rows) {
      for (int64_t i = 0; i < c.q_seq; i += 7) in->seg_q[b * c.q_seq + i] = 1000;  // no key has segment 1000
    }
  }
}

Inputs make_inputs(const Case& c, uint32_t seed) {
  Inputs in;
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.f, 1.f);
  const float qscale = 1.f / std::sqrt(static_cast<float>(c.d));  // callers scale q (no 1/sqrt(d) inside)
  in.q.init(c.dtype, static_cast<size_t>(c.batch * c.heads * c.q_seq * c.d));
  in.k.init(c.dtype, static_cast<size_t>(c.batch * c.kv_heads * c.kv_seq * c.d));
  in.v.init(c.dtype, static_cast<size_t>(c.batch * c.kv_heads * c.kv_seq * c.dv));
  for (size_t i = 0; i < in.q.count; ++i) in.q.set(i, n(rng) * qscale * 2.f * c.q_scale);
  for (size_t i = 0; i < in.k.count; ++i) in.k.set(i, n(rng) * c.k_scale);
  for (size_t i = 0; i < in.v.count; ++i) in.v.set(i, n(rng));
  make_segments(c, &in, seed + 17);
  if (c.sinks) {
    for (int64_t h = 0; h < c.heads; ++h) in.sinks.push_back(kSinkLogits[h % 4]);
  }
  return in;
}

void contiguous(splash::TensorRef* t, DType dtype, int64_t heads, int64_t seq, int64_t dim) {
  t->dtype = dtype;
  t->dim_stride = 1;
  t->seq_stride = dim;
  t->head_stride = seq * dim;
  t->batch_stride = heads * seq * dim;
}

AttentionParams make_params(const Case& c, const Inputs& in) {
  AttentionParams p{};
  p.batch = c.batch;
  p.heads = c.heads;
  p.kv_heads = c.kv_heads;
  p.q_seq = c.q_seq;
  p.kv_seq = c.kv_seq;
  p.head_dim = c.d;
  p.head_dim_v = c.dv;
  p.mask_value = c.mask_value;
  p.soft_cap = c.soft_cap;
  p.scale = c.scale;
  p.sinks = in.sinks.empty() ? nullptr : in.sinks.data();
  p.save_lse = 1;
  contiguous(&p.q, c.dtype, c.heads, c.q_seq, c.d);
  contiguous(&p.k, c.dtype, c.kv_heads, c.kv_seq, c.d);
  contiguous(&p.v, c.dtype, c.kv_heads, c.kv_seq, c.dv);
  contiguous(&p.out, c.dtype, c.heads, c.q_seq, c.dv);
  contiguous(&p.lse, DType::F32, c.heads, c.q_seq, 1);
  p.segment_ids_q = in.seg_q.empty() ? nullptr : in.seg_q.data();
  p.segment_ids_kv = in.seg_kv.empty() ? nullptr : in.seg_kv.data();
  p.block_q = c.block_q;
  p.block_kv = c.block_kv;
  p.block_kv_compute = c.block_kv;
  p.block_q_dkv = c.block_q;
  p.block_kv_dkv = c.block_kv;
  p.block_kv_dkv_compute = c.block_kv;
  p.block_q_dq = c.block_q;
  p.block_kv_dq = c.block_kv;
  p.num_threads = 0;
  p.head_shards = 1;
  p.q_seq_shards = 1;
  p.device = 0;
  return p;
}

// ---- oracles ------------------------------------------------------------------------------------------

// Splash semantics, in double, straight from the schedule: every key of every visited block counts
// (masked ones as mask_value), keys of unvisited blocks do not; logits are cap * tanh(scale * q.k / cap)
// (or scale * q.k); a sink is one more term exp(sink) of the denominator with no value; a row with no
// allowed key gives 0 / -inf (0 / its sink with sinks).
void reference_forward(const Case& c, const Inputs& in, const HostSchedule& s, HostTensor* out, std::vector<float>* lse) {
  const int64_t group = c.heads / c.kv_heads;
  std::vector<double> logits(static_cast<size_t>(c.kv_seq));
  std::vector<uint8_t> visited(static_cast<size_t>(c.kv_seq));
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t h = 0; h < c.heads; ++h) {
      const int64_t kvh = h / group;
      const int32_t sched = s.head_schedule.size() == 1 ? s.head_schedule[0] : s.head_schedule[static_cast<size_t>(h)];
      const MaskSpec& m = c.masks.size() == 1 ? c.masks[0] : c.masks[static_cast<size_t>(h)];
      for (int64_t i = 0; i < c.q_seq; ++i) {
        const int64_t qb = i / c.block_q;
        const int64_t row = static_cast<int64_t>(sched) * s.q_blocks + qb;
        std::fill(visited.begin(), visited.end(), 0);
        bool any = false;
        const double sink =
            in.sinks.empty() ? -std::numeric_limits<double>::infinity() : in.sinks[static_cast<size_t>(h)];
        double mx = sink;
        for (int32_t e = s.row_ptr[static_cast<size_t>(row)]; e < s.row_ptr[static_cast<size_t>(row) + 1]; ++e) {
          const int64_t k0 = static_cast<int64_t>(s.col_idx[static_cast<size_t>(e)]) * c.block_kv;
          const int64_t k1 = std::min<int64_t>(k0 + c.block_kv, c.kv_seq);
          for (int64_t j = k0; j < k1; ++j) {
            visited[static_cast<size_t>(j)] = 1;
            bool ok = mask_at(m, c.kv_seq, i, j);
            if (ok && !in.seg_q.empty()) ok = in.seg_q[b * c.q_seq + i] == in.seg_kv[b * c.kv_seq + j];
            double x;
            if (ok) {
              x = 0;
              for (int64_t t = 0; t < c.d; ++t) {
                x += static_cast<double>(in.q.get(((b * c.heads + h) * c.q_seq + i) * c.d + t)) *
                     in.k.get(((b * c.kv_heads + kvh) * c.kv_seq + j) * c.d + t);
              }
              x *= c.scale;
              if (c.soft_cap > 0) x = c.soft_cap * std::tanh(x / c.soft_cap);
              any = true;
            } else {
              x = c.mask_value;
            }
            logits[static_cast<size_t>(j)] = x;
            mx = std::max(mx, x);
          }
        }
        const size_t orow = static_cast<size_t>((b * c.heads + h) * c.q_seq + i);
        if (!any) {
          for (int64_t t = 0; t < c.dv; ++t) out->set(orow * c.dv + t, 0.f);
          (*lse)[orow] = static_cast<float>(sink);
          continue;
        }
        double sum = in.sinks.empty() ? 0.0 : std::exp(sink - mx);
        std::vector<double> acc(static_cast<size_t>(c.dv), 0.0);
        for (int64_t j = 0; j < c.kv_seq; ++j) {
          if (!visited[static_cast<size_t>(j)]) continue;
          const double pj = std::exp(logits[static_cast<size_t>(j)] - mx);
          sum += pj;
          for (int64_t t = 0; t < c.dv; ++t) acc[t] += pj * in.v.get(((b * c.kv_heads + kvh) * c.kv_seq + j) * c.dv + t);
        }
        for (int64_t t = 0; t < c.dv; ++t) out->set(orow * c.dv + t, static_cast<float>(acc[t] / sum));
        (*lse)[orow] = static_cast<float>(mx + std::log(sum));
      }
    }
  }
}

bool cpu_kernel_linked() { return &splash::cpu::forward != nullptr; }

void oracle_forward(const Case& c, const Inputs& in, const HostSchedule& s, bool use_ref, HostTensor* out,
                    std::vector<float>* lse) {
  out->init(c.dtype, static_cast<size_t>(c.batch * c.heads * c.q_seq * c.dv));
  lse->assign(static_cast<size_t>(c.batch * c.heads * c.q_seq), 0.f);
  if (use_ref || !cpu_kernel_linked()) {
    reference_forward(c, in, s, out, lse);
    return;
  }
  AttentionParams p = make_params(c, in);
  p.q.ptr = const_cast<uint8_t*>(in.q.bytes.data());
  p.k.ptr = const_cast<uint8_t*>(in.k.bytes.data());
  p.v.ptr = const_cast<uint8_t*>(in.v.bytes.data());
  p.out.ptr = out->bytes.data();
  p.lse.ptr = lse->data();
  p.fwd = s.view();
  splash::cpu::forward(p);
}

// ---- comparison ---------------------------------------------------------------------------------------------

struct Compare {
  double out_err = 0, lse_err = 0;
  int64_t unwritten = 0;      // NaN left in out or lse (the poison)
  int64_t lse_inf_mismatch = 0;  // -inf (fully masked row) on one side only
};

Compare compare(const HostTensor& got, const std::vector<float>& got_lse, const HostTensor& want,
                const std::vector<float>& want_lse) {
  Compare r;
  double num = 0, den = 0;
  for (size_t i = 0; i < want.count; ++i) {
    const double g = got.get(i), w = want.get(i);
    if (std::isnan(g)) {
      ++r.unwritten;
      continue;
    }
    num += (g - w) * (g - w);
    den += w * w;
  }
  r.out_err = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  num = den = 0;
  for (size_t i = 0; i < want_lse.size(); ++i) {
    const float g = got_lse[i], w = want_lse[i];
    if (std::isnan(g)) {
      ++r.unwritten;
      continue;
    }
    if (std::isinf(w) || std::isinf(g)) {
      if (!(std::isinf(w) && std::isinf(g) && (w < 0) == (g < 0))) ++r.lse_inf_mismatch;
      continue;
    }
    num += static_cast<double>(g - w) * (g - w);
    den += static_cast<double>(w) * w;
  }
  r.lse_err = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return r;
}

double tolerance(DType t) { return t == DType::BF16 ? 2e-2 : t == DType::F16 ? 1e-3 : 1e-5; }

}  // namespace harness
