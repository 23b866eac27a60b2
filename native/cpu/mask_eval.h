// Which (q, kv) pairs of one compute tile may attend: the block's class from the schedule, its stored
// partial block or its mask program, and-ed with the segment ids. Evaluated once per tile into a
// byte map the tile operations read with vector loads, never per element inside the math loops.
#pragma once

#include <cstdint>
#include <vector>

#include "splash/params.h"

namespace splash {
namespace cpu {

struct TileRegion {
  int32_t schedule;  // schedule index of the head
  int64_t entry;     // index into col_idx / col_kind / col_mask_ref
  int64_t q_block;   // block coordinates in the schedule's grid
  int64_t kv_block;
  int64_t q0, nq;    // the tile: rows [q0, q0 + nq) x columns [k0, k0 + nk), inside that block
  int64_t k0, nk;
};

// Writes the allowed flags (1 allowed, 0 masked) of `tile` into out, one row per q (kv_major false:
// out[i * ld + j] for (q0 + i, k0 + j)) or one row per kv (kv_major true: out[j * ld + i]). Columns
// from the tile's width up to ld are written 0. seg_q / seg_kv point at this batch's segment ids (or
// are null). Returns false, leaving out untouched, when every pair of the tile is allowed.
bool build_tile_mask(const ScheduleView& sv, const TileRegion& tile, const int32_t* seg_q, const int32_t* seg_kv,
                     bool kv_major, uint8_t* out, int64_t ld);

// The stored partial blocks of a (checked) schedule as ScheduleView::partial_mask_bits_kv: a kv-major
// tile then reads each of its rows from a few words instead of a strided column of the q-major bytes.
std::vector<uint64_t> kv_major_mask_bits(const ScheduleView& sv);

}  // namespace cpu
}  // namespace splash
