// Backward additions to harness.h, shared by the GPU harness (gpu_forward_test.cc) and the emulation
// test (gpu_emulate_test.cc): the dkv schedule (the forward schedule's blocks with kv-block rows, as
// lib/mask-info.ts builds it with isDkv), seeded residuals (out, lse from the oracle forward) and
// dout, the oracles (the CPU backward kernel, or a double-precision reference of splash's backward
// semantics) and the comparison of dq / dk / dv.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "harness.h"

namespace splash {
namespace cpu {
__attribute__((weak)) void backward(const AttentionParams& p);
}  // namespace cpu
}  // namespace splash

namespace harness {

// The same blocks as `f` (a forward schedule cut with the dkv block sizes) with kv-block rows and
// q-block columns; stored partial blocks and programs are shared unchanged (still q-major).
struct DkvSchedule {
  const HostSchedule* f = nullptr;
  std::vector<int32_t> row_ptr, col_idx, col_mask_ref;
  std::vector<uint8_t> col_kind;

  explicit DkvSchedule(const HostSchedule& fs) : f(&fs) {
    const int32_t ns = static_cast<int32_t>(fs.program_ptr.size() - 1);
    row_ptr.assign(static_cast<size_t>(ns) * fs.kv_blocks + 1, 0);
    for (int32_t sc = 0; sc < ns; ++sc)
      for (int32_t qb = 0; qb < fs.q_blocks; ++qb) {
        const size_t row = static_cast<size_t>(sc) * fs.q_blocks + qb;
        for (int32_t e = fs.row_ptr[row]; e < fs.row_ptr[row + 1]; ++e) {
          ++row_ptr[static_cast<size_t>(sc) * fs.kv_blocks + fs.col_idx[static_cast<size_t>(e)] + 1];
        }
      }
    for (size_t i = 1; i < row_ptr.size(); ++i) row_ptr[i] += row_ptr[i - 1];
    std::vector<int32_t> cursor(row_ptr.begin(), row_ptr.end() - 1);
    col_idx.resize(fs.col_idx.size());
    col_mask_ref.resize(fs.col_idx.size());
    col_kind.resize(fs.col_idx.size());
    for (int32_t sc = 0; sc < ns; ++sc)
      for (int32_t qb = 0; qb < fs.q_blocks; ++qb) {  // ascending q-blocks within each kv row
        const size_t row = static_cast<size_t>(sc) * fs.q_blocks + qb;
        for (int32_t e = fs.row_ptr[row]; e < fs.row_ptr[row + 1]; ++e) {
          const size_t dst = static_cast<size_t>(cursor[static_cast<size_t>(sc) * fs.kv_blocks + fs.col_idx[static_cast<size_t>(e)]]++);
          col_idx[dst] = qb;
          col_mask_ref[dst] = fs.col_mask_ref[static_cast<size_t>(e)];
          col_kind[dst] = fs.col_kind[static_cast<size_t>(e)];
        }
      }
  }

  ScheduleView view() const {
    ScheduleView s = f->view();
    s.is_dkv = 1;
    s.rows_per_schedule = f->kv_blocks;
    s.row_ptr = row_ptr.data();
    s.col_idx = col_idx.data();
    s.col_kind = col_kind.data();
    s.col_mask_ref = col_mask_ref.data();
    return s;
  }
};

struct Grads {
  HostTensor dq, dk, dv;
  std::vector<float> dsinks;  // [heads] f32 when the case has sinks
  void init(const Case& c) {
    dq.init(c.dtype, static_cast<size_t>(c.batch * c.heads * c.q_seq * c.d));
    dk.init(c.dtype, static_cast<size_t>(c.batch * c.kv_heads * c.kv_seq * c.d));
    dv.init(c.dtype, static_cast<size_t>(c.batch * c.kv_heads * c.kv_seq * c.dv));
    dsinks.assign(c.sinks ? static_cast<size_t>(c.heads) : 0, 0.f);
  }
  void poison() {
    for (HostTensor* t : {&dq, &dk, &dv}) std::fill(t->bytes.begin(), t->bytes.end(), 0xff);
    std::fill(dsinks.begin(), dsinks.end(), std::numeric_limits<float>::quiet_NaN());
  }
};

// Residuals of the oracle forward plus a seeded dout.
struct BwdInputs {
  HostTensor out, dout;
  std::vector<float> lse;
};

BwdInputs make_bwd_inputs(const Case& c, const Inputs& in, const HostSchedule& fwd, uint32_t seed) {
  BwdInputs r;
  oracle_forward(c, in, fwd, false, &r.out, &r.lse);
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.f, 1.f);
  r.dout.init(c.dtype, static_cast<size_t>(c.batch * c.heads * c.q_seq * c.dv));
  for (size_t i = 0; i < r.dout.count; ++i) r.dout.set(i, n(rng) * c.dout_scale);
  return r;
}

// Params of a backward call on host buffers (dq_sched and dkv_sched filled by the caller).
AttentionParams make_bwd_params(const Case& c, const Inputs& in, const BwdInputs& bi, Grads* g, bool fused) {
  AttentionParams p = make_params(c, in);
  p.q.ptr = const_cast<uint8_t*>(in.q.bytes.data());
  p.k.ptr = const_cast<uint8_t*>(in.k.bytes.data());
  p.v.ptr = const_cast<uint8_t*>(in.v.bytes.data());
  p.out.ptr = const_cast<uint8_t*>(bi.out.bytes.data());
  p.lse.ptr = const_cast<float*>(bi.lse.data());
  p.dout = p.out;
  p.dout.ptr = const_cast<uint8_t*>(bi.dout.bytes.data());
  contiguous(&p.dq, c.dtype, c.heads, c.q_seq, c.d);
  contiguous(&p.dk, c.dtype, c.kv_heads, c.kv_seq, c.d);
  contiguous(&p.dv, c.dtype, c.kv_heads, c.kv_seq, c.dv);
  p.dq.ptr = g->dq.bytes.data();
  p.dk.ptr = g->dk.bytes.data();
  p.dv.ptr = g->dv.bytes.data();
  p.fused_bwd = fused ? 1 : 0;
  if (fused) p.block_q_dq = p.block_kv_dq = 0;
  p.dsinks = g->dsinks.empty() ? nullptr : g->dsinks.data();
  return p;
}

// d loss / d sinks in double from the residuals: -sum over batch and rows of exp(sink - lse) * di,
// di = rowsum(out * dout); rows with lse = -inf weigh nothing. Empty without sinks.
std::vector<float> reference_dsinks(const Case& c, const Inputs& in, const BwdInputs& bi) {
  std::vector<double> d(in.sinks.size(), 0.0);
  for (int64_t b = 0; b < c.batch && !d.empty(); ++b)
    for (int64_t h = 0; h < c.heads; ++h)
      for (int64_t i = 0; i < c.q_seq; ++i) {
        const size_t orow = static_cast<size_t>((b * c.heads + h) * c.q_seq + i);
        const double lse = bi.lse[orow];
        if (lse == -std::numeric_limits<double>::infinity()) continue;
        double di = 0;
        for (int64_t t = 0; t < c.dv; ++t) di += static_cast<double>(bi.out.get(orow * c.dv + t)) * bi.dout.get(orow * c.dv + t);
        d[static_cast<size_t>(h)] -= std::exp(in.sinks[static_cast<size_t>(h)] - lse) * di;
      }
  return std::vector<float>(d.begin(), d.end());
}

// Splash's backward in double straight from the (forward-shaped) schedule: every key of every visited
// block counts (masked ones with logit mask_value: they add to dv, not to dq / dk), keys of unvisited
// blocks do not; logits are scaled (and capped) as in the forward, so dq and dk carry the scale; lse =
// -inf rows get zero gradients. Sinks enter only through lse: with a sink's term in the denominator,
// d lse / d x_j is still p_j, so ds_j = p_j (dp_j - di) as without one.
void reference_backward(const Case& c, const Inputs& in, const BwdInputs& bi, const HostSchedule& s, Grads* g) {
  const int64_t group = c.heads / c.kv_heads;
  std::vector<double> dq(g->dq.count, 0.0), dk(g->dk.count, 0.0), dv(g->dv.count, 0.0);
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t h = 0; h < c.heads; ++h) {
      const int64_t kvh = h / group;
      const int32_t sched = s.head_schedule.size() == 1 ? s.head_schedule[0] : s.head_schedule[static_cast<size_t>(h)];
      const MaskSpec& m = c.masks.size() == 1 ? c.masks[0] : c.masks[static_cast<size_t>(h)];
      for (int64_t i = 0; i < c.q_seq; ++i) {
        const size_t orow = static_cast<size_t>((b * c.heads + h) * c.q_seq + i);
        const double lse = bi.lse[orow];
        if (std::isinf(lse)) continue;
        double di = 0;
        for (int64_t t = 0; t < c.dv; ++t) di += static_cast<double>(bi.out.get(orow * c.dv + t)) * bi.dout.get(orow * c.dv + t);
        const size_t row = static_cast<size_t>(sched) * s.q_blocks + i / c.block_q;
        for (int32_t e = s.row_ptr[row]; e < s.row_ptr[row + 1]; ++e) {
          const int64_t k0 = static_cast<int64_t>(s.col_idx[static_cast<size_t>(e)]) * c.block_kv;
          const int64_t k1 = std::min<int64_t>(k0 + c.block_kv, c.kv_seq);
          for (int64_t j = k0; j < k1; ++j) {
            bool ok = mask_at(m, c.kv_seq, i, j);
            if (ok && !in.seg_q.empty()) ok = in.seg_q[b * c.q_seq + i] == in.seg_kv[b * c.kv_seq + j];
            const size_t krow = static_cast<size_t>((b * c.kv_heads + kvh) * c.kv_seq + j);
            double x = 0, dcap = 1;
            for (int64_t t = 0; t < c.d; ++t) x += static_cast<double>(in.q.get(orow * c.d + t)) * in.k.get(krow * c.d + t);
            x *= c.scale;
            if (c.soft_cap > 0) {
              const double th = std::tanh(x / c.soft_cap);
              x = c.soft_cap * th;
              dcap = 1 - th * th;
            }
            if (!ok) x = c.mask_value;
            const double p = std::exp(x - lse);
            double dp = 0;
            for (int64_t t = 0; t < c.dv; ++t) dp += static_cast<double>(bi.dout.get(orow * c.dv + t)) * in.v.get(krow * c.dv + t);
            for (int64_t t = 0; t < c.dv; ++t) dv[krow * c.dv + t] += p * bi.dout.get(orow * c.dv + t);
            if (!ok) continue;
            const double ds = p * (dp - di) * dcap * c.scale;  // d loss / d (q.k)
            for (int64_t t = 0; t < c.d; ++t) {
              dq[orow * c.d + t] += ds * in.k.get(krow * c.d + t);
              dk[krow * c.d + t] += ds * in.q.get(orow * c.d + t);
            }
          }
        }
      }
    }
  for (size_t i = 0; i < dq.size(); ++i) g->dq.set(i, static_cast<float>(dq[i]));
  for (size_t i = 0; i < dk.size(); ++i) g->dk.set(i, static_cast<float>(dk[i]));
  for (size_t i = 0; i < dv.size(); ++i) g->dv.set(i, static_cast<float>(dv[i]));
}

bool cpu_backward_linked() { return &splash::cpu::backward != nullptr; }

// The oracle's dq / dk / dv: the CPU backward (split) when linked and not use_ref, else the reference.
// `s` is the forward-shaped schedule cut with the call's block sizes (used for dq and, transposed, dkv).
// dsinks always comes from reference_dsinks (the CPU backend leaves it to the library, as the same sum).
void oracle_backward(const Case& c, const Inputs& in, const BwdInputs& bi, const HostSchedule& s, bool use_ref,
                     Grads* g) {
  g->init(c);
  g->dsinks = reference_dsinks(c, in, bi);
  if (use_ref || !cpu_backward_linked()) {
    reference_backward(c, in, bi, s, g);
    return;
  }
  const DkvSchedule dkv(s);
  AttentionParams p = make_bwd_params(c, in, bi, g, false);
  p.sinks = nullptr;  // the CPU backward takes none (its binding refuses them): they are in lse
  p.dsinks = nullptr;
  p.fwd = s.view();
  p.dq_sched = s.view();
  p.dkv_sched = dkv.view();
  splash::cpu::backward(p);
}

struct GradCompare {
  double dq = 0, dk = 0, dv = 0, dsinks = 0;
  int64_t unwritten = 0;
  double worst() const { return std::max(std::max(dq, dsinks), std::max(dk, dv)); }
};

double rel_norm(const HostTensor& got, const HostTensor& want, int64_t* nan_count) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.count; ++i) {
    const double a = got.get(i), w = want.get(i);
    if (std::isnan(a)) {
      ++*nan_count;
      continue;
    }
    num += (a - w) * (a - w);
    den += w * w;
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

GradCompare compare_grads(const Grads& got, const Grads& want) {
  GradCompare r;
  r.dq = rel_norm(got.dq, want.dq, &r.unwritten);
  r.dk = rel_norm(got.dk, want.dk, &r.unwritten);
  r.dv = rel_norm(got.dv, want.dv, &r.unwritten);
  if (got.dsinks.size() != want.dsinks.size()) {
    r.unwritten += static_cast<int64_t>(want.dsinks.size());
  } else if (!want.dsinks.empty()) {
    HostTensor g, w;
    g.init(DType::F32, got.dsinks.size());
    w.init(DType::F32, want.dsinks.size());
    for (size_t i = 0; i < want.dsinks.size(); ++i) {
      g.set(i, got.dsinks[i]);
      w.set(i, want.dsinks[i]);
    }
    r.dsinks = rel_norm(g, w, &r.unwritten);
  }
  return r;
}

bool same_bits(const Grads& a, const Grads& b) {
  return a.dq.bytes == b.dq.bytes && a.dk.bytes == b.dk.bytes && a.dv.bytes == b.dv.bytes &&
         a.dsinks.size() == b.dsinks.size() &&
         std::memcmp(a.dsinks.data(), b.dsinks.data(), a.dsinks.size() * sizeof(float)) == 0;
}

// Backward tolerances (relative norm against the oracle): bf16 / f16 inputs and outputs round once
// each, the rest is f32 accumulation.
double bwd_tolerance(DType t) { return t == DType::BF16 ? 3e-2 : t == DType::F16 ? 2e-3 : 1e-4; }

}  // namespace harness
