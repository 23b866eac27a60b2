// Tile masks from schedules, stored partial blocks, mask programs and segment ids (see mask_eval.h).
//
// Every mask primitive allows, for a fixed q (or a fixed kv), one contiguous range of the other
// index, so a program is evaluated row by row as ranges written with memset, and And / Or combine
// whole rows. Opcodes and arguments follow MaskOp in lib/mask-program.ts.
#include "mask_eval.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "splash/mask_program.h"

namespace splash {
namespace cpu {

namespace {

constexpr int64_t kUnbounded = INT64_C(1) << 60;

// Inclusive range [lo, hi] of the other index that a primitive allows at fixed index x.
struct Range {
  int64_t lo, hi;
};

// x is q when rows are q (kv_major false) and kv otherwise.
Range primitive_range(const int32_t* ins, int64_t x, bool kv_major) {
  switch (static_cast<MaskOp>(ins[0])) {
    case MaskOp::Causal: {  // q + offset >= kv
      const int64_t offset = ins[1];
      return kv_major ? Range{x - offset, kUnbounded} : Range{-kUnbounded, x + offset};
    }
    case MaskOp::Local: {  // (!hasLeft || q + offset - left <= kv) && (!hasRight || q + offset + right >= kv)
      const bool has_left = ins[1] != 0, has_right = ins[3] != 0;
      const int64_t left = ins[2], right = ins[4], offset = ins[5];
      if (kv_major) {
        return Range{has_right ? x - right - offset : -kUnbounded, has_left ? x + left - offset : kUnbounded};
      }
      return Range{has_left ? x + offset - left : -kUnbounded, has_right ? x + offset + right : kUnbounded};
    }
    case MaskOp::Chunked: {  // same chunk and q >= kv
      const int64_t chunk = ins[1];
      return kv_major ? Range{x, x - x % chunk + chunk - 1} : Range{x - x % chunk, x};
    }
    default:  // Full
      return Range{-kUnbounded, kUnbounded};
  }
}

// row[0, n) = 1 inside the range (shifted by the row's first column c0), 0 elsewhere.
void fill_range(uint8_t* row, int64_t c0, int64_t n, Range r) {
  const int64_t lo = std::max<int64_t>(r.lo - c0, 0);
  const int64_t hi = std::min<int64_t>(r.hi - c0, n - 1);
  std::memset(row, 0, static_cast<size_t>(n));
  if (lo <= hi) std::memset(row + lo, 1, static_cast<size_t>(hi - lo + 1));
}

// Evaluates program[0, length) on rows [r0, r0 + rows) x columns [c0, c0 + cols) into out (ld).
void eval_program(const int32_t* program, int64_t length, int64_t r0, int64_t rows, int64_t c0, int64_t cols,
                  bool kv_major, uint8_t* out, int64_t ld) {
  if (length == mask_instruction_width(program[0]) && mask_op_is_primitive(program[0])) {
    for (int64_t i = 0; i < rows; ++i) fill_range(out + i * ld, c0, cols, primitive_range(program, r0 + i, kv_major));
    return;
  }
  // A stack of whole-tile maps; And / Or fold the top two.
  thread_local std::vector<uint8_t> stack;
  const int64_t depth = mask_program_depth(program, length);
  const int64_t slot = rows * cols;
  stack.resize(static_cast<size_t>(std::max<int64_t>(depth, 1) * slot));
  int64_t sp = 0;
  for (int64_t pc = 0; pc < length; pc += mask_instruction_width(program[pc])) {
    const int32_t op = program[pc];
    if (mask_op_is_primitive(op)) {
      uint8_t* top = stack.data() + sp * slot;
      for (int64_t i = 0; i < rows; ++i) {
        fill_range(top + i * cols, c0, cols, primitive_range(program + pc, r0 + i, kv_major));
      }
      ++sp;
      continue;
    }
    uint8_t* a = stack.data() + (sp - 2) * slot;
    const uint8_t* b = a + slot;
    if (op == static_cast<int32_t>(MaskOp::And)) {
      for (int64_t i = 0; i < slot; ++i) a[i] &= b[i];
    } else {
      for (int64_t i = 0; i < slot; ++i) a[i] |= b[i];
    }
    --sp;
  }
  for (int64_t i = 0; i < rows; ++i) std::memcpy(out + i * ld, stack.data() + i * cols, static_cast<size_t>(cols));
}

// out[i] = bit (first + i) of words, for i < n.
void expand_bits(const uint64_t* words, int64_t first, int64_t n, uint8_t* out) {
  int64_t i = 0;
  if (first % 8 == 0) {
    // A byte of the mask at a time, spread to 8 output bytes without branches: copy it into every byte,
    // keep bit k in byte k, then turn each non-zero byte into 1.
    for (; i + 8 <= n; i += 8) {
      const int64_t at = first + i;
      const uint64_t b = (words[at >> 6] >> (at & 63)) & 0xff;
      const uint64_t x = (b * UINT64_C(0x0101010101010101)) & UINT64_C(0x8040201008040201);
      const uint64_t ones = (((x + UINT64_C(0x7f7f7f7f7f7f7f7f)) | x) & UINT64_C(0x8080808080808080)) >> 7;
      std::memcpy(out + i, &ones, 8);  // byte k of a little-endian word is out[i + k]
    }
  }
  for (; i < n; ++i) out[i] = static_cast<uint8_t>((words[(first + i) >> 6] >> ((first + i) & 63)) & 1);
}

bool all_equal(const int32_t* ids, int64_t n, int32_t value) {
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] != value) return false;
  }
  return true;
}

}  // namespace

bool build_tile_mask(const ScheduleView& sv, const TileRegion& t, const int32_t* seg_q, const int32_t* seg_kv,
                     bool kv_major, uint8_t* out, int64_t ld) {
  const bool full = sv.col_kind[t.entry] == static_cast<uint8_t>(BlockKind::Full);
  bool segments = seg_q != nullptr && seg_kv != nullptr;
  if (segments) {
    // One segment across the whole tile constrains nothing.
    const int32_t id = seg_q[t.q0];
    if (all_equal(seg_q + t.q0, t.nq, id) && all_equal(seg_kv + t.k0, t.nk, id)) segments = false;
  }
  if (full && !segments) return false;

  const int64_t rows = kv_major ? t.nk : t.nq;
  const int64_t cols = kv_major ? t.nq : t.nk;
  if (full) {
    for (int64_t i = 0; i < rows; ++i) std::memset(out + i * ld, 1, static_cast<size_t>(cols));
  } else if (sv.col_mask_ref[t.entry] >= 0 && kv_major && sv.partial_mask_bits_kv != nullptr) {
    // A stored block, from its kv-major bits: row j of the tile is bits [q off, q off + nq) of kv row j.
    const int64_t words = (sv.block_q + 63) / 64;
    const uint64_t* rows_bits = sv.partial_mask_bits_kv +
                                (sv.col_mask_ref[t.entry] * sv.block_kv + (t.k0 - t.kv_block * sv.block_kv)) * words;
    const int64_t q_off = t.q0 - t.q_block * sv.block_q;
    for (int64_t j = 0; j < t.nk; ++j) expand_bits(rows_bits + j * words, q_off, t.nq, out + j * ld);
  } else if (sv.col_mask_ref[t.entry] >= 0) {
    // A stored [block_q, block_kv] block; the tile is a window of it.
    const int64_t bkv = sv.block_kv;
    const uint8_t* block = sv.partial_mask_blocks + sv.col_mask_ref[t.entry] * sv.block_q * bkv +
                           (t.q0 - t.q_block * sv.block_q) * bkv + (t.k0 - t.kv_block * bkv);
    if (kv_major) {
      for (int64_t j = 0; j < t.nk; ++j) {
        for (int64_t i = 0; i < t.nq; ++i) out[j * ld + i] = block[i * bkv + j] != 0;
      }
    } else {
      for (int64_t i = 0; i < t.nq; ++i) {
        for (int64_t j = 0; j < t.nk; ++j) out[i * ld + j] = block[i * bkv + j] != 0;
      }
    }
  } else {
    const int32_t* program = sv.programs + sv.program_ptr[t.schedule];
    const int64_t length = sv.program_ptr[t.schedule + 1] - sv.program_ptr[t.schedule];
    if (kv_major) {
      eval_program(program, length, t.k0, t.nk, t.q0, t.nq, true, out, ld);
    } else {
      eval_program(program, length, t.q0, t.nq, t.k0, t.nk, false, out, ld);
    }
  }

  if (segments) {
    if (kv_major) {
      for (int64_t j = 0; j < t.nk; ++j) {
        const int32_t id = seg_kv[t.k0 + j];
        uint8_t* row = out + j * ld;
        for (int64_t i = 0; i < t.nq; ++i) row[i] &= static_cast<uint8_t>(seg_q[t.q0 + i] == id);
      }
    } else {
      for (int64_t i = 0; i < t.nq; ++i) {
        const int32_t id = seg_q[t.q0 + i];
        uint8_t* row = out + i * ld;
        for (int64_t j = 0; j < t.nk; ++j) row[j] &= static_cast<uint8_t>(seg_kv[t.k0 + j] == id);
      }
    }
  }
  for (int64_t i = 0; i < rows; ++i) std::memset(out + i * ld + cols, 0, static_cast<size_t>(ld - cols));
  return true;
}

std::vector<uint64_t> kv_major_mask_bits(const ScheduleView& sv) {
  const int64_t bq = sv.block_q, bkv = sv.block_kv, words = (bq + 63) / 64;
  std::vector<uint64_t> bits(static_cast<size_t>(sv.num_partial * bkv * words), 0);
  for (int64_t n = 0; n < sv.num_partial; ++n) {
    const uint8_t* block = sv.partial_mask_blocks + n * bq * bkv;
    uint64_t* rows = bits.data() + n * bkv * words;
    for (int64_t i = 0; i < bq; ++i) {
      const uint64_t bit = UINT64_C(1) << (i & 63);
      for (int64_t j = 0; j < bkv; ++j) {
        if (block[i * bkv + j] != 0) rows[j * words + (i >> 6)] |= bit;
      }
    }
  }
  return bits;
}

}  // namespace cpu
}  // namespace splash
