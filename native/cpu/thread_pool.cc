// The process-wide worker pool behind parallel_for (see thread_pool.h).
//
// Each parallel_for call publishes a Job that lives on the caller's stack. Idle workers pick the
// oldest job that still has room for helpers, claim indices from its atomic counter until none are
// left, and sign off. The caller claims indices too, then withdraws the job and waits until every
// helper has signed off, so the Job never outlives a thread that can still touch it.
#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

namespace splash {
namespace cpu {

namespace {

constexpr int kMaxThreads = 256;

struct Job {
  const std::function<void(int64_t)>* task = nullptr;
  int64_t count = 0;
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;  // first failure; written once under error_mu
  std::mutex error_mu;
  int helper_slots = 0;      // workers that may still join (guarded by the pool mutex)
  int helpers_active = 0;    // workers inside run() (guarded by the pool mutex)
};

// Claims and runs tasks until the counter passes the end. After a failure the remaining tasks are
// claimed but skipped, so the call ends quickly.
void run(Job& job) {
  for (;;) {
    const int64_t i = job.next.fetch_add(1, std::memory_order_relaxed);
    if (i >= job.count) return;
    if (job.failed.load(std::memory_order_relaxed)) continue;
    try {
      (*job.task)(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(job.error_mu);
      if (!job.error) job.error = std::current_exception();
      job.failed.store(true, std::memory_order_relaxed);
    }
  }
}

class Pool {
 public:
  // Makes sure at least `workers` helper threads exist.
  void ensure_workers(int workers) {
    std::lock_guard<std::mutex> lock(mu_);
    while (static_cast<int>(started_) < workers) {
      // Detached: the pool lives for the whole process and is never destroyed, so nothing joins it.
      std::thread([this] { worker_loop(); }).detach();
      ++started_;
    }
  }

  void execute(Job& job, int helpers) {
    if (helpers > 0) {
      ensure_workers(helpers);
      std::lock_guard<std::mutex> lock(mu_);
      job.helper_slots = helpers;
      jobs_.push_back(&job);
    }
    if (helpers > 0) work_cv_.notify_all();
    run(job);
    if (helpers > 0) {
      std::unique_lock<std::mutex> lock(mu_);
      withdraw(&job);
      done_cv_.wait(lock, [&] { return job.helpers_active == 0; });
    }
  }

 private:
  void withdraw(Job* job) {
    auto it = std::find(jobs_.begin(), jobs_.end(), job);
    if (it != jobs_.end()) jobs_.erase(it);
  }

  void worker_loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      work_cv_.wait(lock, [&] { return !jobs_.empty(); });
      Job* job = jobs_.front();
      if (--job->helper_slots == 0 || job->next.load(std::memory_order_relaxed) >= job->count) withdraw(job);
      ++job->helpers_active;
      lock.unlock();
      run(*job);
      lock.lock();
      if (--job->helpers_active == 0) done_cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::deque<Job*> jobs_;
  size_t started_ = 0;
};

Pool& pool() {
  // Leaked on purpose: detached workers may still be parked on its condition variable at exit.
  static Pool* p = new Pool();
  return *p;
}

int cpus_available() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

}  // namespace

int default_thread_count() { return std::min(cpus_available(), kMaxThreads); }

void parallel_for(int64_t count, int threads, const std::function<void(int64_t)>& task) {
  if (count <= 0) return;
  const int64_t wanted = std::min<int64_t>(std::max(threads, 1), std::min<int64_t>(count, kMaxThreads));
  Job job;
  job.task = &task;
  job.count = count;
  pool().execute(job, static_cast<int>(wanted) - 1);
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace cpu
}  // namespace splash
