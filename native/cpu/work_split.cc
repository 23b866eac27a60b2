// Task order of the q-block passes (see work_split.h).
#include "work_split.h"

#include <algorithm>

#include "thread_pool.h"

namespace splash {
namespace cpu {

namespace {

std::vector<int64_t> head_shard_bounds(const AttentionParams& p) {
  const int64_t head_shards = std::max<int64_t>(1, std::min<int64_t>(p.head_shards, p.heads));
  std::vector<int64_t> head_bounds(static_cast<size_t>(head_shards + 1));
  for (int64_t i = 0; i <= head_shards; ++i) head_bounds[static_cast<size_t>(i)] = i * p.heads / head_shards;
  return head_bounds;
}

}  // namespace

int64_t heads_per_task_for(const AttentionParams& p, const ScheduleView& sv, int64_t rows_per_head, int64_t max_rows,
                           int64_t min_tasks) {
  const int64_t group = p.heads / p.kv_heads;
  const std::vector<int64_t> head_bounds = head_shard_bounds(p);
  for (int64_t n = std::min(group, max_rows / std::max<int64_t>(rows_per_head, 1)); n > 1; --n) {
    if (group % n != 0 || p.batch * (p.heads / n) * sv.q_blocks < min_tasks) continue;
    bool fits = true;
    for (int64_t bound : head_bounds) fits = fits && bound % n == 0;
    // Heads of one task share the schedule of the first (and its q shards).
    for (int64_t h = 0; fits && h < p.heads && sv.heads != 1; ++h) fits = sv.head_schedule[h] == sv.head_schedule[h - h % n];
    if (fits) return n;
  }
  return 1;
}

std::vector<QBlockTask> q_block_tasks(const AttentionParams& p, const ScheduleView& sv, int64_t heads_per_task) {
  const std::vector<int64_t> head_bounds = head_shard_bounds(p);

  std::vector<int64_t> q_bounds;
  if (sv.q_shard_bounds != nullptr && sv.num_q_shards > 0) {
    q_bounds.assign(sv.q_shard_bounds, sv.q_shard_bounds + sv.num_q_shards + 1);
  } else {
    q_bounds = {0, sv.q_blocks};
  }

  std::vector<QBlockTask> tasks;
  tasks.reserve(static_cast<size_t>(p.batch * p.heads * sv.q_blocks));
  for (int64_t b = 0; b < p.batch; ++b) {
    for (size_t hs = 0; hs + 1 < head_bounds.size(); ++hs) {
      for (size_t qs = 0; qs + 1 < q_bounds.size(); ++qs) {
        for (int64_t h = head_bounds[hs]; h < head_bounds[hs + 1]; h += heads_per_task) {
          for (int64_t qb = q_bounds[qs]; qb < q_bounds[qs + 1]; ++qb) tasks.push_back({b, h, qb});
        }
      }
    }
  }
  return tasks;
}

int call_threads(const AttentionParams& p, const RunOptions& options) {
  if (p.num_threads > 0) return p.num_threads;
  return options.threads > 0 ? options.threads : default_thread_count();
}

}  // namespace cpu
}  // namespace splash
