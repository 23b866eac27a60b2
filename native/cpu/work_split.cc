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
  return tasks;
}

int call_threads(const AttentionParams& p, const RunOptions& options) {
  if (p.num_threads > 0) return p.num_threads;
  return options.threads > 0 ? options.threads : default_thread_count();
}

}  // namespace cpu
}  // namespace splash
