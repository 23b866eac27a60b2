// Device side of the schedule: walking one q tile's visited kv blocks as K/V tiles, and the mask of a
// tile's elements. A thread holds R query rows x C key columns of a score tile (element a * C + c is
// bit a * C + c of a 64-bit word); the kernels pass the coordinates of their own fragment layout.
//
//   full block, no segment ids, whole tile  → no mask work at all (the kernels test this first);
//   partial block with a stored dense block → bits of the packed block (plan.h: pack_mask_bits);
//   partial block of a computable mask       → the postfix mask program, evaluated for all of the
//                                              thread's elements at once, one opcode at a time;
//   segment ids                              → and-ed in, except where the whole tile is one segment.
#pragma once

#include <climits>
#include <cstdint>

#include "compat.h"
#include "fwd_params.h"
#include "plan.h"

namespace splash {
namespace gpu {

template <int R, int C>
__device__ __forceinline__ uint64_t all_bits() {
  static_assert(R * C <= 64, "a thread's tile share must fit one 64-bit mask");
  return R * C == 64 ? ~uint64_t{0} : ((uint64_t{1} << (R * C)) - 1);
}

__device__ __forceinline__ int32_t clamp_to_int32(int64_t x) {
  return x < INT_MIN ? INT_MIN : x > INT_MAX ? INT_MAX : static_cast<int32_t>(x);
}

// Evaluates the postfix program prog[0, len) at the R x C positions (q[a], kv[c]). The stack lives in
// registers as a shift register (constant indices only), kMaxProgramDepth deep; plan.h's
// mask_program_depth() (splash/mask_program.h) has checked every program before upload.
template <int R, int C>
__device__ __forceinline__ uint64_t eval_mask_program(const int32_t* __restrict__ prog, int len, const int (&q)[R],
                                                      const int (&kv)[C]) {
  uint64_t st[kMaxProgramDepth];
#pragma unroll
  for (int i = 0; i < kMaxProgramDepth; ++i) st[i] = 0;
  int pc = 0;
  while (pc < len) {
    const int op = prog[pc];
    if (op == static_cast<int>(MaskOp::And) || op == static_cast<int>(MaskOp::Or)) {
      const uint64_t top = st[0];
#pragma unroll
      for (int i = 0; i + 1 < kMaxProgramDepth; ++i) st[i] = st[i + 1];
      st[0] = op == static_cast<int>(MaskOp::And) ? (st[0] & top) : (st[0] | top);
      pc += 1;
      continue;
    }
    uint64_t bits = 0;
    if (op == static_cast<int>(MaskOp::Full)) {
      bits = all_bits<R, C>();
      pc += 1;
    } else if (op == static_cast<int>(MaskOp::Causal)) {
      // q + offset >= kv  <=>  kv - q <= offset (no overflow: both are below 2^31)
      const int off = prog[pc + 1];
#pragma unroll
      for (int a = 0; a < R; ++a)
#pragma unroll
        for (int c = 0; c < C; ++c) bits |= static_cast<uint64_t>(kv[c] - q[a] <= off) << (a * C + c);
      pc += 2;
    } else if (op == static_cast<int>(MaskOp::Local)) {
      // q + off - left <= kv <= q + off + right, either side optional
      const int has_left = prog[pc + 1], has_right = prog[pc + 3], off = prog[pc + 5];
      const int lo = has_left ? clamp_to_int32(static_cast<int64_t>(off) - prog[pc + 2]) : INT_MIN;
      const int hi = has_right ? clamp_to_int32(static_cast<int64_t>(off) + prog[pc + 4]) : INT_MAX;
#pragma unroll
      for (int a = 0; a < R; ++a)
#pragma unroll
        for (int c = 0; c < C; ++c) {
          const int d = kv[c] - q[a];
          bits |= static_cast<uint64_t>(d >= lo && d <= hi) << (a * C + c);
        }
      pc += 6;
    } else if (op == static_cast<int>(MaskOp::Chunked)) {
      // same chunk and kv <= q  <=>  q - q % chunk <= kv <= q
      const int chunk = prog[pc + 1];
#pragma unroll
      for (int a = 0; a < R; ++a) {
        const int start = q[a] - q[a] % chunk;
#pragma unroll
        for (int c = 0; c < C; ++c) bits |= static_cast<uint64_t>(kv[c] <= q[a] && kv[c] >= start) << (a * C + c);
      }
      pc += 2;
    } else {
      return 0;  // unreachable: programs are checked on upload
    }
#pragma unroll
    for (int i = kMaxProgramDepth - 1; i > 0; --i) st[i] = st[i - 1];
    st[0] = bits;
  }
  return st[0];
}

// Bits of a stored dense partial block: element (q[a], kv[c]) at (q[a] - block_q0, kv[c] - block_kv0)
// of block `ref`. Columns at or past `len_limit` (relative to block_kv0) are not read.
template <int R, int C>
__device__ __forceinline__ uint64_t dense_block_bits(const FwdKernelParams& p, int ref, int block_q0, int block_kv0,
                                                     int col_limit, const int (&q)[R], const int (&kv)[C]) {
  uint64_t bits = 0;
  const int64_t block_base = static_cast<int64_t>(ref) * p.block_q;
#pragma unroll
  for (int a = 0; a < R; ++a) {
    const int r = q[a] - block_q0;
    if (r < 0 || r >= p.block_q) continue;
    const uint32_t* row = p.mask_bits + (block_base + r) * p.mask_words;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const int col = kv[c] - block_kv0;
      if (col < 0 || col >= col_limit) continue;
      const uint32_t w = __ldg(row + (col >> 5));
      bits |= static_cast<uint64_t>((w >> (col & 31)) & 1u) << (a * C + c);
    }
  }
  return bits;
}

// Which of the R x C elements have equal segment ids; seg_row[a] / seg_col[c] already loaded (rows
// past the sequence hold INT_MAX, keys past the tile INT_MIN, so padding never matches).
template <int R, int C>
__device__ __forceinline__ uint64_t segment_bits(const int (&seg_row)[R], const int (&seg_col)[C]) {
  uint64_t bits = 0;
#pragma unroll
  for (int a = 0; a < R; ++a)
#pragma unroll
    for (int c = 0; c < C; ++c) bits |= static_cast<uint64_t>(seg_row[a] == seg_col[c]) << (a * C + c);
  return bits;
}

// The positions one CTA owns along its schedule's rows: tile `tile` (= block * tiles_per_block + sub)
// of a sequence of `seq` positions cut into blocks of `block`, `tile_m` positions per tile.
struct TileSpan {
  int block;      // the schedule row: q-block (forward, dq pass) or kv-block (dk/dv pass)
  int block0;     // the block's first position
  int block_end;  // one past its last position
  int begin;      // the tile's first position
  int count;      // positions in the tile; 0 when the tile starts past the block's end
};

__device__ __forceinline__ TileSpan tile_span(int tile, int tiles_per_block, int64_t block, int64_t seq, int tile_m) {
  TileSpan s;
  s.block = tile / tiles_per_block;
  const int sub = tile - s.block * tiles_per_block;
  const int64_t block0 = static_cast<int64_t>(s.block) * block;  // < seq for every launched tile
  const int64_t end = min(seq, block0 + block);
  const int64_t begin = block0 + static_cast<int64_t>(sub) * tile_m;
  s.block0 = static_cast<int>(block0);
  s.block_end = static_cast<int>(end);
  s.begin = static_cast<int>(min(begin, end));
  s.count = static_cast<int>(max(int64_t{0}, min(static_cast<int64_t>(tile_m), end - begin)));
  return s;
}

// [min, max] of the segment ids ids[0, count) over the whole CTA of `threads` threads (count >= 1). Every
// thread of the CTA calls it, once per kernel: it holds two barriers around one shared pair.
__device__ __forceinline__ void cta_segment_range(const int32_t* ids, int count, int tid, int threads, int* lo_out,
                                                  int* hi_out) {
  __shared__ int s_lo, s_hi;
  if (tid == 0) {
    s_lo = INT_MAX;
    s_hi = INT_MIN;
  }
  __syncthreads();
  int lo = INT_MAX, hi = INT_MIN;
  for (int i = tid; i < count; i += threads) {
    const int s = __ldg(ids + i);
    lo = min(lo, s);
    hi = max(hi, s);
  }
  atomicMin(&s_lo, lo);
  atomicMax(&s_hi, hi);
  __syncthreads();
  *lo_out = s_lo;
  *hi_out = s_hi;
}

// One K/V tile of the walk over a q tile's schedule row.
struct KvTile {
  int e;          // schedule entry (index into col_idx / col_kind / col_mask_ref); e == e_end: done
  int kv0;        // first key of the tile
  int len;        // keys in the tile, 1..tile_n
  int block_kv0;  // first key of the entry's kv block
  int block_end;  // one past the last key of the entry's kv block
  int kind;       // BlockKind of the entry
  int ref;        // stored partial block, or -1
  bool seg_uniform;  // the tile's rows and the whole block lie in one and the same segment
};

// The walk: entries of one schedule row, each block cut into tiles of tile_n keys, blocks whose
// segment-id range cannot meet the q tile's skipped (only when p.segment_skip).
struct KvWalk {
  int e_end;
  int b;           // batch index (for the segment ranges)
  int q_seg_lo, q_seg_hi;
  bool has_seg;

  __device__ __forceinline__ bool skip_block(const FwdKernelParams& p, int kb, bool* uniform) const {
    *uniform = false;
    if (!has_seg) return false;
    const int32_t* r = p.kv_block_seg + (static_cast<int64_t>(b) * p.kv_blocks + kb) * 2;
    const int lo = __ldg(r), hi = __ldg(r + 1);
    *uniform = lo == hi && q_seg_lo == q_seg_hi && lo == q_seg_lo;
    return p.segment_skip && (hi < q_seg_lo || lo > q_seg_hi);
  }

  // The first tile of entry e or of the first later entry that is not skipped.
  __device__ __forceinline__ KvTile first_from(const FwdKernelParams& p, int e, int tile_n) const {
    KvTile t;
    for (; e < e_end; ++e) {
      const int kb = __ldg(p.col_idx + e);
      bool uniform;
      if (skip_block(p, kb, &uniform)) continue;
      t.e = e;
      t.block_kv0 = kb * p.block_kv;  // < kv_seq
      t.block_end = static_cast<int>(min(static_cast<int64_t>(p.kv_seq), static_cast<int64_t>(t.block_kv0) + p.block_kv));
      t.kv0 = t.block_kv0;
      t.len = min(tile_n, t.block_end - t.kv0);
      t.kind = __ldg(p.col_kind + e);
      t.ref = __ldg(p.col_mask_ref + e);
      t.seg_uniform = uniform;
      return t;
    }
    t.e = e_end;
    t.kv0 = t.len = t.block_kv0 = t.block_end = t.kind = 0;
    t.ref = -1;
    t.seg_uniform = false;
    return t;
  }

  __device__ __forceinline__ KvTile next(const FwdKernelParams& p, KvTile t, int tile_n) const {
    if (t.kv0 + tile_n < t.block_end) {
      t.kv0 += tile_n;
      t.len = min(tile_n, t.block_end - t.kv0);
      return t;
    }
    return first_from(p, t.e + 1, tile_n);
  }

  __device__ __forceinline__ bool done(const KvTile& t) const { return t.e >= e_end; }
};

// Everything a kernel needs to mask one tile for one thread: the allowed and the existing elements
// of its R x C share. `exists` is clear for keys past the tile (ragged tiles), whose logits are
// dropped outright (-inf), while `allowed` clear on an existing key means the logit becomes
// p.mask_value, as splash does inside visited blocks.
template <int R, int C>
__device__ __forceinline__ void tile_mask(const FwdKernelParams& p, const KvTile& t, int tile_n, int prog_begin,
                                          int prog_end, int qblock_q0, const int (&q)[R], const int (&kv)[C],
                                          const int (&seg_row)[R], int64_t seg_kv_base, uint64_t* allowed,
                                          uint64_t* exists) {
  uint64_t ex = all_bits<R, C>();
  if (t.len < tile_n) {
    // Keys at or past the tile's end do not exist for this tile.
#pragma unroll
    for (int c = 0; c < C; ++c) {
      if (kv[c] >= t.kv0 + t.len) {
#pragma unroll
        for (int a = 0; a < R; ++a) ex &= ~(uint64_t{1} << (a * C + c));
      }
    }
  }
  uint64_t al;
  if (t.kind == static_cast<int>(BlockKind::Full)) {
    al = all_bits<R, C>();
  } else if (t.ref >= 0) {
    al = dense_block_bits<R, C>(p, t.ref, qblock_q0, t.block_kv0, t.block_end - t.block_kv0, q, kv);
  } else {
    al = eval_mask_program<R, C>(p.programs + prog_begin, prog_end - prog_begin, q, kv);
  }
  if (p.seg_q != nullptr && !t.seg_uniform) {
    int seg_col[C];
#pragma unroll
    for (int c = 0; c < C; ++c) seg_col[c] = kv[c] < t.kv0 + t.len ? __ldg(p.seg_kv + seg_kv_base + kv[c]) : INT_MIN;
    al &= segment_bits<R, C>(seg_row, seg_col);
  }
  *allowed = al & ex;
  *exists = ex;
}

}  // namespace gpu
}  // namespace splash
