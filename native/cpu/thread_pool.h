// A persistent pool of worker threads shared by every kernel call in the process (all Node threads
// and worker_threads included).
//
// parallel_for hands out task indices in ascending order from an atomic counter; the calling thread
// works on its own job too, so a call always makes progress even when every worker is busy with
// other callers' jobs. Which thread runs a task never changes what the task computes: kernels give
// each output element to exactly one task, so results are bitwise identical for any thread count.
#pragma once

#include <cstdint>
#include <functional>

namespace splash {
namespace cpu {

// Threads a call uses when it does not ask for a number: the CPUs this process may run on.
int default_thread_count();

// Runs task(i) for every i in [0, count) on up to `threads` threads (the caller included), and
// returns when all are done. Tasks are claimed in ascending index order, one at a time per thread,
// which lets a task wait for a lower-indexed task of the same call to reach some point (the fused
// backward relies on that). The first exception a task throws is rethrown here after the others
// finish; tasks not yet started are skipped.
void parallel_for(int64_t count, int threads, const std::function<void(int64_t)>& task);

}  // namespace cpu
}  // namespace splash
