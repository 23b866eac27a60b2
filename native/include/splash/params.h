// The one plain parameter block that crosses from the addon into every kernel (CPU, CUDA, HIP).
//
// The addon fills it from a validated JS call; kernels only read it. It is a trivial, standard-layout
// struct with no constructors, no STL and no virtuals, so the same bytes can be passed by value to a
// GPU kernel and the header compiles under g++, nvcc and hipcc alike. Zero-initialise it
// (`AttentionParams p{};`) and fill what the pass needs: a zero soft_cap means "no cap", a null pointer
// means "not given". Adding an option means adding one field here and reading it where it matters.
#pragma once

#include <cstdint>
#include <type_traits>

namespace splash {

// Element type of a tensor buffer. bf16 and f16 buffers hold raw 16-bit patterns.
enum class DType : int32_t { F32 = 0, BF16 = 1, F16 = 2 };

// Block kinds stored in ScheduleView::col_kind; the values match lib/mask-info.ts (blockMask).
enum class BlockKind : uint8_t { Empty = 0, Partial = 1, Full = 2 };

// Opcodes of the postfix mask program; the values match MaskOp in lib/mask-program.ts.
enum class MaskOp : int32_t {
  Full = 1,     // push true
  Causal = 2,   // args: offset                                  push q + offset >= kv
  Local = 3,    // args: hasLeft, left, hasRight, right, offset  push the window test
  Chunked = 4,  // args: chunk                                   push same chunk && q >= kv
  And = 5,      // pop b, pop a, push a && b
  Or = 6,       // pop b, pop a, push a || b
};

// One tensor operand: a base pointer plus element (not byte) strides, logically [batch, head, seq, dim].
// A head-dim-minor layout has dim == 1; a seq-minor layout has seq == 1 and dim == the sequence length.
// Broadcast axes (MQA's k/v have no head axis) use a stride of 0.
struct TensorRef {
  void* ptr;
  DType dtype;
  int64_t batch_stride;
  int64_t head_stride;
  int64_t seq_stride;
  int64_t dim_stride;
};

// A read-only view of one MaskInfo schedule (lib/mask-info.ts), as flat arrays owned by JS.
// Rows are q-blocks for forward and dq, kv-blocks for dkv; row r of schedule s is s * rows_per_schedule + r.
struct ScheduleView {
  int32_t heads;              // mask heads (1 for a 2-D mask applied to every head)
  int32_t q_blocks;
  int32_t kv_blocks;
  int32_t block_q;            // block shape the schedule was cut with
  int32_t block_kv;
  int32_t is_dkv;             // 1 when rows are kv-blocks
  int32_t num_schedules;
  int32_t rows_per_schedule;
  int64_t nnz;                // entries of col_idx / col_kind / col_mask_ref
  const int32_t* head_schedule;   // [heads] → schedule index
  const int32_t* row_ptr;         // [num_schedules * rows_per_schedule + 1]
  const int32_t* col_idx;         // [nnz] block index along the other axis, ascending
  const uint8_t* col_kind;        // [nnz] BlockKind::Partial or BlockKind::Full
  const int32_t* col_mask_ref;    // [nnz] index into partial_mask_blocks, -1 when evaluated or full
  const int32_t* programs;        // concatenated postfix mask programs (MaskOp + args)
  const int32_t* program_ptr;     // [num_schedules + 1]; an empty program means all partials are stored
  int64_t program_len;            // entries of programs
  const uint8_t* partial_mask_blocks;  // [num_partial, block_q, block_kv] 0/1, or null
  int64_t num_partial;
  // The same blocks as bits, one row per kv: [num_partial, block_kv, ceil(block_q / 64)] words, bit i
  // of row j = block[i][j]. Host only (the CPU kernels' kv-major tiles read them); may be null.
  const uint64_t* partial_mask_bits_kv;
  const int32_t* q_shard_bounds;  // [num_q_shards + 1] q-block boundaries of the qSeqShards split
  int32_t num_q_shards;
};

struct AttentionParams {
  // ---- operands (host or device pointers, matching the backend) -----------------------------
  TensorRef q, k, v;   // inputs
  TensorRef out;       // forward output / backward residual
  TensorRef dout;      // backward input
  TensorRef dq, dk, dv;
  TensorRef lse;       // logsumexp, always F32, [batch, head, seq] (dim_stride unused)
  const int32_t* segment_ids_q;   // [batch * q_seq] batch-major, or null
  const int32_t* segment_ids_kv;  // [batch * kv_seq], or null
  const float* sinks;             // [heads] sink logits (forward: in every row's denominator), or null
  float* dsinks;                  // [heads] d loss / d sinks, written by a GPU backward given sinks, or null

  // ---- sizes ----------------------------------------------------------------------------------
  int64_t batch;
  int64_t heads;       // query heads
  int64_t kv_heads;    // heads % kv_heads == 0; query head h reads kv head h / (heads / kv_heads)
  int64_t q_seq;
  int64_t kv_seq;
  int64_t head_dim;    // of q and k
  int64_t head_dim_v;  // of v and out

  // ---- options --------------------------------------------------------------------------------
  float mask_value;    // logit written for masked positions inside visited blocks
  float soft_cap;      // logits = cap * tanh(logits / cap); 0 = none
  float scale;         // logits = scale · q·k before the soft cap; 0 (unset) reads as 1, splash's own
  int32_t save_lse;    // forward also writes lse

  // ---- block sizes (what the schedules were cut with, plus the compute sub-tiles) -----------
  int64_t block_q, block_kv, block_kv_compute;               // forward
  int64_t block_q_dkv, block_kv_dkv, block_kv_dkv_compute;   // dkv (and the fused backward)
  int64_t block_q_dq, block_kv_dq;                           // split dq pass; 0 when fused
  int32_t fused_bwd;   // 1: one backward pass writes dq, dk, dv

  // ---- schedules --------------------------------------------------------------------------------
  ScheduleView fwd;
  ScheduleView dq_sched;   // unused (all zero) for the fused backward
  ScheduleView dkv_sched;

  // ---- work split -------------------------------------------------------------------------------
  int32_t num_threads;   // CPU worker threads (0 = the pool's default)
  int32_t head_shards;   // heads are split into this many independent groups
  int32_t q_seq_shards;  // q-blocks are split along fwd.q_shard_bounds
  int32_t device;        // GPU ordinal for the GPU backends
};

// The logit scale a zero-initialised params block means: 1.
inline float logit_scale(const AttentionParams& p) { return p.scale != 0.0f ? p.scale : 1.0f; }

static_assert(std::is_trivial<AttentionParams>::value && std::is_standard_layout<AttentionParams>::value,
              "AttentionParams must stay a plain struct: it is copied by value into GPU kernels");

}  // namespace splash
