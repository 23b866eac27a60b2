// How a call's work is cut into tasks for the thread pool. A task owns a disjoint set of output
// rows, so the split (and the thread count) can never change a result; headShards / qSeqShards only
// decide the order in which tasks are handed out.
#pragma once

#include <cstdint>
#include <vector>

#include "splash/cpu_kernels.h"
#include "splash/params.h"

namespace splash {
namespace cpu {

struct QBlockTask {
  int64_t batch;
  int64_t head;  // the first of the task's heads
  int64_t q_block;
};

// Every (batch, query head, q-block) of schedule sv: by batch, then head shard, then the q shards of
// sv.q_shard_bounds, then head and q-block inside the shard. With heads_per_task > 1 a task stands for
// that many consecutive heads; it must divide every head-shard bound (heads_per_task_for checks that).
std::vector<QBlockTask> q_block_tasks(const AttentionParams& p, const ScheduleView& sv, int64_t heads_per_task = 1);

// How many query heads of one kv head a forward task runs together: the most (a divisor of the group)
// whose rows fit in `max_rows` columns while the call still has `min_tasks` tasks, when those heads share
// a schedule and no head-shard bound splits them; else 1.
int64_t heads_per_task_for(const AttentionParams& p, const ScheduleView& sv, int64_t rows_per_head, int64_t max_rows,
                           int64_t min_tasks);

// Threads for this call: p.num_threads, else options.threads, else default_thread_count().
int call_threads(const AttentionParams& p, const RunOptions& options);

}  // namespace cpu
}  // namespace splash
