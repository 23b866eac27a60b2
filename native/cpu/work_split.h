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
  int64_t head;
  int64_t q_block;
};

// Every (batch, query head, q-block) of schedule sv: by batch, then head shard, then the q shards of
// sv.q_shard_bounds, then head and q-block inside the shard.
std::vector<QBlockTask> q_block_tasks(const AttentionParams& p, const ScheduleView& sv);

// Threads for this call: p.num_threads, else options.threads, else default_thread_count().
int call_threads(const AttentionParams& p, const RunOptions& options);

}  // namespace cpu
}  // namespace splash
