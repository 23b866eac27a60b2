// Host-side planning of a GPU backward call (plain C++, shared by launch.cu and the tests): the checks
// a call must pass, the tile shapes and grids of its launches, and the kernels' argument blocks.
//
//   split (p.fused_bwd == 0):  di; dq over p.dq_sched; dk/dv over p.dkv_sched       (no atomics)
//   fused (p.fused_bwd == 1):  di; zero the f32 dq buffer; fused over p.dkv_sched; cast dq
// The dq, dk/dv and fused steps run the tensor-core kernels (bwd_mma_sm80.cuh) for bf16 / f16 on
// CUDA sm_80+ with equal q/k and v head dims, else the SIMT kernels (bwd_simt.cuh); di and the dq
// cast are SIMT kernels either way.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "bwd_params.h"
#include "bwd_tiles.h"
#include "plan.h"
#include "splash/params.h"

namespace splash {
namespace gpu {

struct BwdPlan {
  std::string error;         // empty when the call can run
  bool range_error = false;
  FwdPath path = FwdPath::Simt;  // kernels of the dq, dk/dv and fused steps
  int bucket = 0;            // SIMT: head-dim bucket of every kernel; mma: the head dim
  int dq_rows = 0;           // query rows per dq CTA
  int dkv_keys = 0;          // keys per dk/dv (or fused) CTA
  int64_t dq_smem = 0, dkv_smem = 0;
  int64_t dq_tiles_per_block = 0;   // q tiles per dq q-block
  int64_t dkv_tiles_per_block = 0;  // kv tiles per dkv kv-block
  int64_t dq_grid_x = 0;            // at most: (q-blocks x tiles) x heads; launched: work list x heads
  int64_t dkv_grid_x = 0;           // at most: (kv-blocks x tiles) x kv heads; launched: work list x kv heads
  int64_t di_grid_x = 0;            // rows of one batch entry / 128, capped (grid-stride loop)
  int64_t cast_grid_x = 0;          // dq elements of one batch entry / 128, capped (fused; grid-stride loop)
  bool segment_skip = false;
};

// Blocks of an element-wise kernel (di, the dq cast: 128 threads, one item each per pass of its
// grid-stride loop) over `items`: one per 128 items up to 65536 blocks (8 Mi threads, enough to fill
// any GPU), so the grid stays far inside every launch limit.
constexpr int64_t kMaxElementwiseBlocks = 65536;
inline int64_t elementwise_blocks(int64_t items) {
  return std::max<int64_t>(1, std::min<int64_t>((items + 127) / 128, kMaxElementwiseBlocks));
}

inline bool schedule_matches(const ScheduleView& s, int64_t q_seq, int64_t kv_seq, int64_t heads, bool dkv) {
  return s.block_q >= 1 && s.block_kv >= 1 && s.q_blocks == (q_seq + s.block_q - 1) / s.block_q &&
         s.kv_blocks == (kv_seq + s.block_kv - 1) / s.block_kv && s.is_dkv == (dkv ? 1 : 0) &&
         s.rows_per_schedule == (dkv ? s.kv_blocks : s.q_blocks) && (s.heads == 1 || s.heads == heads);
}

// `force` as for the forward (plan.h: plan_forward): Simt or Mma pins the kernels, None chooses.
inline BwdPlan plan_backward(const AttentionParams& p, const DeviceCaps& caps, FwdPath force = FwdPath::None) {
  BwdPlan plan;
  auto fail = [&plan](const std::string& msg, bool range) {
    plan.error = msg;
    plan.range_error = range;
    return plan;
  };
  if (!supported_head_dim(p.head_dim)) {
    return fail("q.shape: expected a head dim of 32, 64, 96, 128, 192 or 256 on the GPU, got " +
                    std::to_string(p.head_dim), true);
  }
  if (!supported_head_dim(p.head_dim_v)) {
    return fail("v.shape: expected a head dim of 32, 64, 96, 128, 192 or 256 on the GPU, got " +
                    std::to_string(p.head_dim_v), true);
  }
  if (p.batch < 1 || p.heads < 1 || p.kv_heads < 1 || p.q_seq < 1 || p.kv_seq < 1 || p.heads % p.kv_heads != 0) {
    return fail("inconsistent sizes: batch " + std::to_string(p.batch) + ", heads " + std::to_string(p.heads) +
                    ", kv heads " + std::to_string(p.kv_heads), true);
  }
  constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
  if (p.q_seq >= kInt32Max || p.kv_seq >= kInt32Max || p.heads > kInt32Max || p.batch > kInt32Max ||
      p.heads * p.q_seq * p.head_dim >= kInt32Max * int64_t{128}) {
    return fail("sizes beyond 2^31 - 1 are not supported by the GPU kernels", true);
  }
  const float scale = logit_scale(p);
  if (!(scale > 0.f) || !std::isfinite(scale)) {
    return fail("scale: expected a positive finite number, got " + std::to_string(scale), true);
  }
  if (!p.fused_bwd && !schedule_matches(p.dq_sched, p.q_seq, p.kv_seq, p.heads, false)) {
    return fail("the dq schedule does not match the call's sizes", true);
  }
  if (!schedule_matches(p.dkv_sched, p.q_seq, p.kv_seq, p.heads, true)) {
    return fail("the dkv schedule does not match the call's sizes", true);
  }
  const DType t = p.q.dtype;
  if (p.k.dtype != t || p.v.dtype != t || p.out.dtype != t || p.dout.dtype != t || p.dq.dtype != t ||
      p.dk.dtype != t || p.dv.dtype != t) {
    return fail("q, k, v, out, dout, dq, dk and dv must share one dtype", false);
  }
  // out and dout are read as 4-element vectors (di); everything else element by element.
  const TensorRef* refs[8] = {&p.q, &p.k, &p.v, &p.out, &p.dout, &p.dq, &p.dk, &p.dv};
  const char* names[8] = {"q", "k", "v", "out", "dout", "dq", "dk", "dv"};
  const int64_t elem = t == DType::F32 ? 4 : 2;
  for (int i = 0; i < 8; ++i) {
    const TensorRef& r = *refs[i];
    const int64_t v = 16 / elem;
    if (r.ptr == nullptr || r.dim_stride != 1 || r.batch_stride % v != 0 || r.head_stride % v != 0 ||
        r.seq_stride % v != 0 || !aligned16(r.ptr)) {
      return fail(std::string(names[i]) + ": the GPU kernels need a contiguous head dim and 16-byte aligned rows",
                  false);
    }
  }
  if (p.lse.ptr == nullptr) return fail("logsumexp not given", false);

  const bool mma_ok = !caps.hip && caps.cc_major >= 8 && t != DType::F32 && p.head_dim == p.head_dim_v;
  if (force == FwdPath::Mma && !mma_ok) {
    return fail(std::string("the tensor-core backward needs CUDA sm_80+, bf16 or f16, and equal q/v head dims") +
                    (caps.hip ? " (this is HIP)" : ""), false);
  }
  plan.path = mma_ok && force != FwdPath::Simt ? FwdPath::Mma : FwdPath::Simt;
  if (plan.path == FwdPath::Mma) {
    const int d = static_cast<int>(p.head_dim);
    plan.bucket = d;
    plan.dq_smem = bwd_mma_dq_smem_bytes(d);
    plan.dkv_smem = bwd_mma_dkv_smem_bytes(d, p.fused_bwd != 0);
    plan.dq_rows = kBwdMmaDqRows;  // (the dk/dv pass of d > 128 is two kernels over the same tiles)
    plan.dkv_keys = kBwdMmaDkvKeys;
  } else {
    const int b = simt_bucket(std::max(p.head_dim, p.head_dim_v));
    plan.bucket = b;
    plan.dq_smem = bwd_dq_smem_bytes(b);
    plan.dkv_smem = bwd_dkv_smem_bytes(b);
    plan.dq_rows = bwd_dq_rows(b);
    plan.dkv_keys = bwd_dkv_keys(b);
  }
  const int64_t need = p.fused_bwd ? plan.dkv_smem : std::max(plan.dq_smem, plan.dkv_smem);
  if (need > caps.max_smem_per_block) {
    return fail("the " + std::string(path_name(plan.path)) + " backward kernels for head dim " +
                    std::to_string(plan.bucket) + " need " + std::to_string(need) +
                    " bytes of shared memory per block; this device has " + std::to_string(caps.max_smem_per_block),
                false);
  }
  if (!p.fused_bwd) {
    const ScheduleView& s = p.dq_sched;
    plan.dq_tiles_per_block = (s.block_q + plan.dq_rows - 1) / plan.dq_rows;
    plan.dq_grid_x = static_cast<int64_t>(s.q_blocks) * plan.dq_tiles_per_block * p.heads;
  }
  const ScheduleView& s = p.dkv_sched;
  plan.dkv_tiles_per_block = (s.block_kv + plan.dkv_keys - 1) / plan.dkv_keys;
  plan.dkv_grid_x = static_cast<int64_t>(s.kv_blocks) * plan.dkv_tiles_per_block * p.kv_heads;
  plan.di_grid_x = elementwise_blocks(p.heads * p.q_seq);
  plan.cast_grid_x = elementwise_blocks(p.heads * p.q_seq * p.head_dim);
  const int64_t grid_limit = max_grid_x(caps, 128);  // every backward kernel runs 128 threads
  // (dsinks, with sinks, runs one block per head.)
  if (std::max({plan.dq_grid_x, plan.dkv_grid_x, static_cast<int64_t>(p.heads)}) > grid_limit) {
    return fail("the backward grid exceeds " + std::to_string(grid_limit) + " blocks", true);
  }
  plan.segment_skip = p.segment_ids_q != nullptr && p.segment_ids_kv != nullptr && p.mask_value <= kSkipSafeMaskValue;
  return plan;
}

// The argument block of one pass over schedule `sv` (device pointers). Segment ids, their block
// ranges, sinks, dsinks, di and the dq buffer are filled in by the caller, which owns those device copies.
inline BwdKernelParams make_bwd_kernel_params(const AttentionParams& p, const BwdPlan& plan, const ScheduleView& sv,
                                              bool dkv_pass) {
  AttentionParams q = p;
  q.fwd = sv;
  q.save_lse = 1;
  FwdPlan fp;
  fp.tiles_per_qblock = dkv_pass ? plan.dkv_tiles_per_block : plan.dq_tiles_per_block;
  fp.segment_skip = plan.segment_skip;
  BwdKernelParams bp{};
  bp.s = make_fwd_kernel_params(q, fp, nullptr, 0);
  bp.s.lse = static_cast<float*>(p.lse.ptr);
  bp.s.block_q = sv.block_q;
  bp.s.block_kv = sv.block_kv;
  bp.dout = p.dout.ptr;
  bp.do_batch_stride = p.dout.batch_stride;
  bp.do_head_stride = p.dout.head_stride;
  bp.do_seq_stride = p.dout.seq_stride;
  bp.dq = p.dq.ptr;
  bp.dq_batch_stride = p.dq.batch_stride;
  bp.dq_head_stride = p.dq.head_stride;
  bp.dq_seq_stride = p.dq.seq_stride;
  bp.dk = p.dk.ptr;
  bp.dk_batch_stride = p.dk.batch_stride;
  bp.dk_head_stride = p.dk.head_stride;
  bp.dk_seq_stride = p.dk.seq_stride;
  bp.dv = p.dv.ptr;
  bp.dv_batch_stride = p.dv.batch_stride;
  bp.dv_head_stride = p.dv.head_stride;
  bp.dv_seq_stride = p.dv.seq_stride;
  bp.kv_heads = static_cast<int32_t>(p.kv_heads);
  bp.batch = static_cast<int32_t>(p.batch);
  bp.tiles_per_block = static_cast<int32_t>(fp.tiles_per_qblock);
  return bp;
}

}  // namespace gpu
}  // namespace splash
