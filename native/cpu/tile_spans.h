// Where a partial tile's allowed pairs lie, at a granularity of kSpan x kSpan sub-blocks, so that its
// matrix products can leave out the sub-blocks that hold none (the triangle above a causal diagonal,
// the far side of a local window, the other documents beside a packed one).
//
// Leaving them out changes no result when a masked logit's probability is exactly 0 once its row has
// seen an allowed key, i.e. when exp(maskValue - logit) underflows for every real logit: true for
// maskValue < kTrimMaskValueBelow (as for segment skipping) unless a real logit is itself below about
// -1e30. Rows that have seen no allowed key yet give masked logits probability 1; what those add is
// wiped by the rescale at their first allowed key (by exp(maskValue - m) = 0), so leaving it out
// changes nothing either.
#pragma once

#include <cstdint>

#include "splash/cpu_kernels.h"
#include "splash/params.h"

namespace splash {
namespace cpu {

constexpr int64_t kSpan = 16;
constexpr float kTrimMaskValueBelow = -1e30f;

inline int64_t span_groups(int64_t n) { return (n + kSpan - 1) / kSpan; }

// Whether a call's partial tiles leave out their sub-blocks without an allowed pair: only with a mask
// value below kTrimMaskValueBelow, and unless SPLASH_TRIM_TILES=0 switched it off.
inline bool trims_tiles(const AttentionParams& p, const RunOptions& options) {
  return p.mask_value < kTrimMaskValueBelow && options.trim_tiles != 0;
}

// Lines [first, first + count) of one side of a tile (its rows, or its columns) that need the same range
// [lo, hi) of the other side.
struct SpanRun {
  int64_t first, count;
  int64_t lo, hi;
};

struct RunCounts {
  int64_t rows, cols;
};

// mask: [rows][ld] bytes (0 = masked), 0 from cols to ld. Writes runs of rows with the columns their
// allowed pairs lie in (whole sub-blocks, at most ld) to row_runs, and runs of columns with the rows
// theirs lie in (at most rows) to col_runs: consecutive groups of kSpan lines with equal ranges share a
// run, and groups without an allowed pair are left out. The arrays need room for span_groups(rows) and
// span_groups(cols) runs.
RunCounts tile_runs(const uint8_t* mask, int64_t ld, int64_t rows, int64_t cols, SpanRun* row_runs,
                    SpanRun* col_runs);

// The runs a tile's products cover: tile_runs of `mask`, or with a null mask (a full tile, or trimming
// off) one run each over the whole tile: rows [0, rows) x columns [0, ld), columns [0, cols) x rows
// [0, rows).
RunCounts product_runs(const uint8_t* mask, int64_t ld, int64_t rows, int64_t cols, SpanRun* row_runs,
                       SpanRun* col_runs);

}  // namespace cpu
}  // namespace splash
