// Sub-block occupancy of a tile mask (see tile_spans.h).
#include "tile_spans.h"

#include <algorithm>
#include <cstring>

namespace splash {
namespace cpu {

namespace {

// Whether any of bytes [0, n) is non-zero, eight at a time.
bool any_byte(const uint8_t* p, int64_t n) {
  uint64_t acc = 0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    acc |= w;
  }
  for (; i < n; ++i) acc |= p[i];
  return acc != 0;
}

// Merges consecutive runs with equal ranges and drops empty ones, in place; returns how many remain.
int64_t compact(SpanRun* runs, int64_t n) {
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const SpanRun r = runs[i];
    if (r.lo >= r.hi) continue;
    SpanRun* last = kept > 0 ? &runs[kept - 1] : nullptr;
    if (last != nullptr && last->lo == r.lo && last->hi == r.hi && last->first + last->count == r.first) {
      last->count += r.count;
    } else {
      runs[kept++] = r;
    }
  }
  return kept;
}

}  // namespace

RunCounts tile_runs(const uint8_t* mask, int64_t ld, int64_t rows, int64_t cols, SpanRun* row_runs,
                    SpanRun* col_runs) {
  const int64_t row_groups = span_groups(rows), col_groups = span_groups(std::min(cols, ld));
  for (int64_t c = 0; c < col_groups; ++c) {
    col_runs[c] = SpanRun{c * kSpan, std::min(kSpan, cols - c * kSpan), rows, 0};
  }
  for (int64_t g = 0; g < row_groups; ++g) {
    const int64_t r0 = g * kSpan, r1 = std::min(r0 + kSpan, rows);
    int64_t first = col_groups, last = -1;
    for (int64_t c = 0; c < col_groups; ++c) {
      const int64_t c0 = c * kSpan, width = std::min(kSpan, ld - c0);
      bool any = false;
      for (int64_t r = r0; r < r1 && !any; ++r) any = any_byte(mask + r * ld + c0, width);
      if (!any) continue;
      first = std::min(first, c);
      last = c;
      col_runs[c].lo = std::min(col_runs[c].lo, r0);
      col_runs[c].hi = r1;
    }
    row_runs[g] = last < 0 ? SpanRun{r0, r1 - r0, 0, 0}
                           : SpanRun{r0, r1 - r0, first * kSpan, std::min((last + 1) * kSpan, ld)};
  }
  return RunCounts{compact(row_runs, row_groups), compact(col_runs, col_groups)};
}

RunCounts product_runs(const uint8_t* mask, int64_t ld, int64_t rows, int64_t cols, SpanRun* row_runs,
                       SpanRun* col_runs) {
  if (mask != nullptr) return tile_runs(mask, ld, rows, cols, row_runs, col_runs);
  row_runs[0] = SpanRun{0, rows, 0, ld};
  col_runs[0] = SpanRun{0, cols, 0, rows};
  return RunCounts{1, 1};
}

}  // namespace cpu
}  // namespace splash
