// The one async layer of the addon: every promise-returning call (CPU and GPU kernels, device copies)
// is a Job queued on a process-wide FIFO dispatcher with runner threads of its own, never on libuv's
// pool (whose 4 threads serve fs, DNS and zlib). A finished job settles its promise on its JS thread
// through that environment's thread-safe function.
//
// Environments end (a worker terminated, an Electron utility process closing): the environment's
// cleanup hook cancels its running jobs, waits for them to stop (they poll the cancel flag at
// block-row boundaries), and abandons its queued and unsettled ones, so a job never touches the memory
// of a dead environment and nothing throws across the N-API boundary. Jobs copy their inputs when they
// are made, so detaching an input's buffer while a call runs cannot pull memory from under a kernel;
// Job::keep holds the outputs the call itself allocated, and inputs on a SharedArrayBuffer, which
// cannot be detached and are read in place.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace splash {
namespace addon {

// How a job ended on its runner thread.
struct Outcome {
  enum Kind { kOk, kAborted, kTypeError, kRangeError, kError };
  Kind kind = kOk;
  std::string message;

  static Outcome ok() { return Outcome{}; }
  static Outcome aborted() { return Outcome{kAborted, "the call was aborted"}; }
  static Outcome range_error(std::string m) { return Outcome{kRangeError, std::move(m)}; }
  static Outcome error(std::string m) { return Outcome{kError, std::move(m)}; }
};

// One call's cancellation flag: set by cancel(token) from JS or by the end of its environment;
// kernels poll it between block rows.
using CancelFlag = std::atomic<bool>;

struct EnvState;

class Job {
 public:
  virtual ~Job() = default;

  // The work, on a runner thread (or the JS thread for *Sync calls, with a flag that never turns).
  // Returns Outcome::aborted() when it stopped because `cancel` turned true. Exceptions it throws
  // become errors (std::bad_alloc a RangeError naming working_set_bytes).
  virtual Outcome Run(const CancelFlag& cancel) = 0;

  // On the JS thread after Run succeeded: the value the promise resolves with (or the Sync call
  // returns). Exceptions reject the promise.
  virtual Napi::Value Result(Napi::Env env) = 0;

  // Keeps a JS value alive until the job settles: an output array the kernel writes into, or an input
  // on a SharedArrayBuffer that it reads in place. Any other input is copied instead, since its buffer
  // could be detached while the job runs.
  // Returns the index to read it back with kept().
  size_t keep(Napi::Env env, const Napi::Value& v);
  // The value keep() returned index i for (in Result, on the JS thread).
  Napi::Value kept(Napi::Env env, size_t i) const;

  // Bytes the job allocates beyond its inputs and outputs, for the out-of-memory message.
  int64_t working_set_bytes = 0;

 private:
  friend struct JobAccess;
  std::vector<napi_ref> kept_;
  std::shared_ptr<EnvState> env_state_;
  std::shared_ptr<CancelFlag> cancel_;
  napi_deferred deferred_ = nullptr;
  Outcome outcome_;
};

// Queues `job` on the dispatcher and returns its promise. `token` is the call's cancel token (from
// cancelToken()) or undefined / null.
Napi::Value submit(Napi::Env env, std::unique_ptr<Job> job, const Napi::Value& token);

// Runs `job` on the calling JS thread and returns its result (the *Sync entry points); a failure throws.
Napi::Value run_now(Napi::Env env, Job& job);

// cancelToken() → token; cancel(token): the call holding the token stops at its next block row (a
// queued one never starts) and rejects with an Error whose code is 'ABORT_ERR'. Also sets up this
// environment's completion channel and cleanup hook; call once per environment, at module load.
void RegisterJobs(Napi::Env env, Napi::Object exports);

}  // namespace addon
}  // namespace splash
