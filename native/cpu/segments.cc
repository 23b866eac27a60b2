// Per-block segment id ranges (see segments.h).
#include "segments.h"

#include <algorithm>

namespace splash {
namespace cpu {

namespace {

// min and max of ids over consecutive blocks of `block` entries (the last one ragged), per batch.
void block_ranges(const int32_t* ids, int64_t batch, int64_t seq, int64_t block, int64_t blocks,
                  std::vector<int32_t>& lo, std::vector<int32_t>& hi) {
  lo.assign(static_cast<size_t>(batch * blocks), 0);
  hi.assign(static_cast<size_t>(batch * blocks), 0);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int32_t* first = ids + b * seq + blk * block;
      const int32_t* last = ids + b * seq + std::min(seq, (blk + 1) * block);
      const auto mm = std::minmax_element(first, last);
      lo[static_cast<size_t>(b * blocks + blk)] = *mm.first;
      hi[static_cast<size_t>(b * blocks + blk)] = *mm.second;
    }
  }
}

}  // namespace

SegmentSkip::SegmentSkip(const AttentionParams& p, int64_t block_q, int64_t block_kv, bool enabled) {
  if (!enabled || p.segment_ids_q == nullptr || p.segment_ids_kv == nullptr) return;
  if (!(p.mask_value < -1e30f)) return;
  active_ = true;
  q_blocks_ = (p.q_seq + block_q - 1) / block_q;
  kv_blocks_ = (p.kv_seq + block_kv - 1) / block_kv;
  block_ranges(p.segment_ids_q, p.batch, p.q_seq, block_q, q_blocks_, q_min_, q_max_);
  block_ranges(p.segment_ids_kv, p.batch, p.kv_seq, block_kv, kv_blocks_, kv_min_, kv_max_);
}

}  // namespace cpu
}  // namespace splash
