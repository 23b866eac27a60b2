// Task order of the q-block passes (see work_split.h).
#include "work_split.h"

#include <algorithm>

#include "thread_pool.h"

namespace splash {
namespace cpu {

std::vector<QBlockTask> q_block_tasks(const AttentionParams& p, const ScheduleView& sv) {
  const int64_t head_shards = std::max<int64_t>(1, std::min<int64_t>(p.head_shards, p.heads));
  std::vector<int64_t> head_bounds(static_cast<size_t>(head_shards + 1));
  for (int64_t i = 0; i <= head_shards; ++i) head_bounds[static_cast<size_t>(i)] = i * p.heads / head_shards;

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
        for (int64_t h = head_bounds[hs]; h < head_bounds[hs + 1]; ++h) {
          for (int64_t qb = q_bounds[qs]; qb < q_bounds[qs + 1]; ++qb) tasks.push_back({b, h, qb});
        }
      }
    }
  }
  const auto kv_blocks = [&](const QBlockTask& t) {
    const int64_t row = static_cast<int64_t>(sv.head_schedule[sv.heads == 1 ? 0 : t.head]) * sv.rows_per_schedule +
                        t.q_block;
    return sv.row_ptr[row + 1] - sv.row_ptr[row];
  };
  // Only within a run of one (batch, head): consecutive tasks keep sharing that head's K and V in cache.
  for (size_t first = 0; first < tasks.size();) {
    size_t last = first + 1;
    while (last < tasks.size() && tasks[last].batch == tasks[first].batch && tasks[last].head == tasks[first].head) ++last;
    std::stable_sort(tasks.begin() + static_cast<std::ptrdiff_t>(first), tasks.begin() + static_cast<std::ptrdiff_t>(last),
                     [&](const QBlockTask& a, const QBlockTask& b) { return kv_blocks(a) > kv_blocks(b); });
    first = last;
  }
  return tasks;
}

int call_threads(const AttentionParams& p, const RunOptions& options) {
  if (p.num_threads > 0) return p.num_threads;
  return options.threads > 0 ? options.threads : default_thread_count();
}

}  // namespace cpu
}  // namespace splash
