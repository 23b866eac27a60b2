// The argument block of the backward kernels (di, dq, dk/dv, fused, dq cast). `s` carries the
// tensors, sizes and the schedule of the pass being launched, laid out as the forward's block so the
// schedule walk and the tile mask of mask.cuh serve both directions: for the dq pass it is the dq
// schedule (rows q-blocks), for the dk/dv and fused passes the dkv schedule (rows kv-blocks, columns
// q-blocks, stored partial blocks still q-major [block_q, block_kv]). Plain C++, device pointers.
#pragma once

#include <cstdint>

#include "fwd_params.h"

namespace splash {
namespace gpu {

// The launches of one backward call: di, then dq and dk/dv (split) or fused then the dq cast.
// With sinks, kDsinks reduces dsinks from di and lse once every batch's di is written.
enum class BwdStep : int32_t { kDi = 0, kDq = 1, kDkv = 2, kFused = 3, kCast = 4, kDsinks = 5 };

struct BwdKernelParams {
  FwdKernelParams s;             // q, k, v, out, lse (read), sizes, options, schedule, segment ids, and
                                 // s.work: the pass's tiles (plan.h: work_order over its schedule's rows)
  const void* dout;
  int64_t do_batch_stride, do_head_stride, do_seq_stride;
  void* dq;
  int64_t dq_batch_stride, dq_head_stride, dq_seq_stride;
  void* dk;
  int64_t dk_batch_stride, dk_head_stride, dk_seq_stride;
  void* dv;
  int64_t dv_batch_stride, dv_head_stride, dv_seq_stride;
  float* di;                     // [batch, heads, q_seq] rowsum(out * dout)
  float* dq_acc;                 // fused only: [batch, heads, q_seq, head_dim] f32, zeroed before launch
  float* dsinks;                 // [heads] d loss / d sinks (kDsinks; s.sinks holds the sinks), or null
  int32_t batch;                 // every batch entry (kDsinks sums over all of them in one launch)
  int32_t kv_heads;
  int32_t tiles_per_block;       // CTAs per schedule row (q tiles per q-block, or kv tiles per kv-block)
  const int32_t* q_block_seg;    // dkv passes with segment ids: [batch, q_blocks, 2] min / max per q-block
};

}  // namespace gpu
}  // namespace splash
