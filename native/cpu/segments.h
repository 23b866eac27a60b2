// Segment-aware block skipping. Per call, each q-block's and kv-block's smallest and largest segment
// id are found; a (q-block, kv-block) pair whose ranges do not overlap has no pair of equal ids, so
// every logit in it is masked and the pair is skipped like an empty block. Packed documents then cost
// what their real attention costs.
//
// Skipping never changes a result: a visited block whose logits are all maskValue only adds
// exp(maskValue - m) = 0 (flushed) to a row that has a real key, and a row without one ends as
// 0 / -inf either way. That holds for a hugely negative maskValue (the default, -0.7·FLT_MAX), so
// skipping is used only when maskValue < -1e30 (and RunOptions::segment_skip is set).
#pragma once

#include <cstdint>
#include <vector>

#include "splash/params.h"

namespace splash {
namespace cpu {

class SegmentSkip {
 public:
  // Ranges for blocks of block_q x block_kv; inactive without segment ids or when not `enabled`.
  SegmentSkip(const AttentionParams& p, int64_t block_q, int64_t block_kv, bool enabled);

  bool active() const { return active_; }

  // True when q-block qb and kv-block kb of batch b cannot share a segment.
  bool disjoint(int64_t b, int64_t qb, int64_t kb) const {
    if (!active_) return false;
    const int64_t q = b * q_blocks_ + qb, k = b * kv_blocks_ + kb;
    return q_max_[q] < kv_min_[k] || kv_max_[k] < q_min_[q];
  }

 private:
  bool active_ = false;
  int64_t q_blocks_ = 0, kv_blocks_ = 0;
  std::vector<int32_t> q_min_, q_max_, kv_min_, kv_max_;
};

}  // namespace cpu
}  // namespace splash
