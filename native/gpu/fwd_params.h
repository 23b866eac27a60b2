// The argument block of the forward kernels (SIMT and tensor-core alike), filled by launch.cu from
// AttentionParams plus the uploaded schedule. Plain C++ so the planner and the tests can see it;
// every pointer is a device pointer and every size is what the kernels index with.
#pragma once

#include <cstdint>

namespace splash {
namespace gpu {

struct FwdKernelParams {
  // ---- tensors: element strides as [batch, head, seq] (the head dim is contiguous) --------------
  const void* q;
  const void* k;
  const void* v;
  void* out;
  float* lse;                    // null when not saved
  int64_t q_batch_stride, q_head_stride, q_seq_stride;
  int64_t k_batch_stride, k_head_stride, k_seq_stride;
  int64_t v_batch_stride, v_head_stride, v_seq_stride;
  int64_t o_batch_stride, o_head_stride, o_seq_stride;
  int64_t lse_batch_stride, lse_head_stride, lse_seq_stride;

  int32_t heads;                 // query heads
  int32_t group;                 // query heads per kv head
  int32_t q_seq, kv_seq;
  int32_t head_dim, head_dim_v;
  int32_t batch_offset;          // added to blockIdx.y (grids are launched in chunks of batches)

  float mask_value;              // logit of a masked position inside a visited block
  float soft_cap;                // 0: no cap
  float scale;                   // logits = scale * q.k, before the soft cap (> 0; 1: none)
  float cap_scale;               // scale / soft_cap (0 without a cap): a capped logit is cap * tanh(s * cap_scale)
  const float* sinks;            // [heads] sink logits joining every row's softmax, or null

  // ---- schedule (rows are q-blocks) --------------------------------------------------------------
  int32_t mask_heads;            // 1: one schedule set for every head
  int32_t block_q, block_kv;
  int32_t q_blocks, kv_blocks;
  int32_t rows_per_schedule;
  const int32_t* head_schedule;
  const int32_t* row_ptr;
  const int32_t* col_idx;
  const uint8_t* col_kind;       // 1 partial, 2 full
  const int32_t* col_mask_ref;   // stored partial block, -1 when the program decides
  const int32_t* programs;
  const int32_t* program_ptr;
  const uint32_t* mask_bits;     // [num_partial, block_q, mask_words] packed dense partial blocks
  int32_t mask_words;            // 32-bit words per stored block row

  // ---- work ---------------------------------------------------------------------------------------
  const int32_t* work;           // q tiles in launch order: qblock * tiles_per_qblock + sub
  int32_t num_work;
  int32_t tiles_per_qblock;

  // ---- segment ids (null when not given) -------------------------------------------------------------
  const int32_t* seg_q;          // [batch * q_seq]
  const int32_t* seg_kv;         // [batch * kv_seq]
  const int32_t* kv_block_seg;   // [batch, kv_blocks, 2] min / max segment id of each kv block
  int32_t segment_skip;          // 1: skip kv blocks whose segment range misses the tile's
};

}  // namespace gpu
}  // namespace splash
