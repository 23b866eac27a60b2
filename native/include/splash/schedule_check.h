// The one bounds check of a schedule (a MaskInfo's CSR arrays, see ScheduleView in params.h). Every
// kernel indexes these arrays without checking, so the CPU and GPU bindings, the GPU upload and the
// C++ test harnesses all pass a schedule through check_schedule before any kernel sees it. A failure is
// a message naming the field and index, the expected and the actual value; "" means the schedule is
// safe to walk.
#pragma once

#include <cstdint>
#include <string>

#include "splash/mask_program.h"
#include "splash/params.h"

namespace splash {

// Element counts of the arrays behind a ScheduleView, as the caller really holds them. A view built in
// C++ from its own vectors passes no lengths: they are then taken from the view's declared sizes.
struct ScheduleLengths {
  int64_t head_schedule, row_ptr, col_idx, col_kind, col_mask_ref, programs, program_ptr, partial_mask_blocks,
      q_shard_bounds;
};

namespace schedule_check_detail {

inline std::string num(int64_t x) { return std::to_string(x); }

inline std::string index_error(const std::string& field, int64_t i, int64_t lo, int64_t hi, int64_t got) {
  return field + "[" + num(i) + "]: expected an index in [" + num(lo) + ", " + num(hi) + "), got " + num(got);
}

// a[0] == first, a[n - 1] == last, never decreasing in between.
inline std::string spans(const int32_t* a, int64_t n, int64_t first, int64_t last, const std::string& field) {
  if (a[0] != first) return field + "[0]: expected " + num(first) + ", got " + num(a[0]);
  for (int64_t i = 1; i < n; ++i) {
    if (a[i] < a[i - 1]) return field + "[" + num(i) + "]: expected a non-decreasing sequence";
  }
  if (a[n - 1] != last) return field + "[" + num(n - 1) + "]: expected " + num(last) + ", got " + num(a[n - 1]);
  return "";
}

}  // namespace schedule_check_detail

// Checks s (field names as in lib/mask-info.ts, prefixed with `path` + "."). With `lengths`, every
// array is first checked to hold what the view's sizes say it holds.
inline std::string check_schedule(const ScheduleView& s, const ScheduleLengths* lengths, const std::string& path) {
  using schedule_check_detail::index_error;
  using schedule_check_detail::num;
  using schedule_check_detail::spans;
  const std::string p = path + ".";
  if (s.heads < 1 || s.q_blocks < 1 || s.kv_blocks < 1 || s.block_q < 1 || s.block_kv < 1 || s.num_schedules < 1 ||
      s.num_schedules > s.heads || s.nnz < 0 || s.program_len < 0 || s.num_partial < 0) {
    return p + "sizes: expected positive block counts and 1 <= numSchedules <= heads";
  }
  const int64_t rows = s.is_dkv ? s.kv_blocks : s.q_blocks;
  const int64_t cols = s.is_dkv ? s.q_blocks : s.kv_blocks;
  if (s.rows_per_schedule != rows) {
    return p + "rowsPerSchedule: expected " + num(rows) + ", got " + num(s.rows_per_schedule);
  }
  const int64_t row_count = static_cast<int64_t>(s.num_schedules) * rows;
  const int64_t block_area = static_cast<int64_t>(s.block_q) * s.block_kv;
  if (lengths != nullptr) {
    const ScheduleLengths& n = *lengths;
    auto expect = [&](int64_t got, int64_t want, const char* field) {
      return got == want ? std::string() : p + field + ": expected length " + num(want) + ", got " + num(got);
    };
    std::string e;
    if (!(e = expect(n.head_schedule, s.heads, "headSchedule")).empty()) return e;
    if (!(e = expect(n.row_ptr, row_count + 1, "rowPtr")).empty()) return e;
    if (!(e = expect(n.col_idx, s.nnz, "colIdx")).empty()) return e;
    if (!(e = expect(n.col_kind, s.nnz, "colKind")).empty()) return e;
    if (!(e = expect(n.col_mask_ref, s.nnz, "colMaskRef")).empty()) return e;
    if (!(e = expect(n.programs, s.program_len, "programs")).empty()) return e;
    if (!(e = expect(n.program_ptr, static_cast<int64_t>(s.num_schedules) + 1, "programPtr")).empty()) return e;
    if (n.partial_mask_blocks != s.num_partial * block_area) {
      return p + "partialMaskBlocks: expected a multiple of blockQ·blockKv = " + num(block_area) + " entries, got " +
             num(n.partial_mask_blocks);
    }
    if (n.q_shard_bounds < 2 || n.q_shard_bounds != static_cast<int64_t>(s.num_q_shards) + 1) {
      return p + "qShardBounds: expected at least 2 entries, got " + num(n.q_shard_bounds);
    }
  }
  if (s.head_schedule == nullptr || s.row_ptr == nullptr || s.program_ptr == nullptr ||
      (s.nnz > 0 && (s.col_idx == nullptr || s.col_kind == nullptr || s.col_mask_ref == nullptr)) ||
      (s.program_len > 0 && s.programs == nullptr) || (s.num_partial > 0 && s.partial_mask_blocks == nullptr)) {
    return p + "arrays: a declared array is missing";
  }
  for (int64_t h = 0; h < s.heads; ++h) {
    const int32_t v = s.head_schedule[h];
    if (v < 0 || v >= s.num_schedules) return index_error(p + "headSchedule", h, 0, s.num_schedules, v);
  }
  std::string e = spans(s.row_ptr, row_count + 1, 0, s.nnz, p + "rowPtr");
  if (e.empty()) e = spans(s.program_ptr, static_cast<int64_t>(s.num_schedules) + 1, 0, s.program_len, p + "programPtr");
  if (!e.empty()) return e;
  for (int64_t sc = 0; sc < s.num_schedules; ++sc) {
    const int32_t begin = s.program_ptr[sc], end = s.program_ptr[sc + 1];
    std::string why;
    if (mask_program_depth(s.programs + begin, end - begin, &why) < 0) {
      return p + "programs: schedule " + num(sc) + "'s " + why;
    }
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t row = sc * rows + r;
      for (int64_t i = s.row_ptr[row]; i < s.row_ptr[row + 1]; ++i) {
        const int32_t col = s.col_idx[i];
        if (col < 0 || col >= cols) return index_error(p + "colIdx", i, 0, cols, col);
        if (i > s.row_ptr[row] && col <= s.col_idx[i - 1]) {
          return p + "colIdx[" + num(i) + "]: expected ascending columns within a row, got " + num(col) + " after " +
                 num(s.col_idx[i - 1]);
        }
        const uint8_t kind = s.col_kind[i];
        if (kind != static_cast<uint8_t>(BlockKind::Partial) && kind != static_cast<uint8_t>(BlockKind::Full)) {
          return p + "colKind[" + num(i) + "]: expected 1 (partial) or 2 (full), got " + num(kind);
        }
        const int32_t ref = s.col_mask_ref[i];
        if (ref < -1 || ref >= s.num_partial) return index_error(p + "colMaskRef", i, -1, s.num_partial, ref);
        if (kind == static_cast<uint8_t>(BlockKind::Partial) && ref < 0 && end == begin) {
          return p + "colMaskRef[" + num(i) + "]: a partial block needs a stored block or its schedule's mask program";
        }
      }
    }
  }
  if (s.q_shard_bounds != nullptr) {
    e = spans(s.q_shard_bounds, static_cast<int64_t>(s.num_q_shards) + 1, 0, s.q_blocks, p + "qShardBounds");
    if (!e.empty()) return e;
  } else if (s.num_q_shards != 0) {
    return p + "qShardBounds: declared " + num(s.num_q_shards) + " shards but the array is missing";
  }
  return "";
}

}  // namespace splash
