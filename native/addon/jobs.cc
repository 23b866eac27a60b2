// See jobs.h. Lifetimes, in short:
// - A Job is owned by exactly one place at a time: the submitting call, the dispatcher queue, a runner
//   thread, the thread-safe function's queue, or the JS-thread callback that settles it.
// - EnvState is shared by the environment (its instance data and cleanup hook) and every job made in
//   it; `alive` (under `mu`) says whether the environment may still be called into.
// - Only the JS thread of an environment touches its napi values and references; a runner thread
//   touches nothing of JS but the output memory of a live environment, which the cleanup hook waits
//   for.
#include "jobs.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <new>
#include <thread>
#include <unordered_set>

#include "../cpu/thread_pool.h"
#include "args.h"

namespace splash {
namespace addon {

struct EnvState {
  std::mutex mu;
  bool alive = true;                     // guarded by mu
  std::unordered_set<Job*> running;      // guarded by mu: jobs inside Run
  std::condition_variable none_running;  // signalled when `running` empties
  napi_threadsafe_function tsfn = nullptr;
  int64_t unsettled = 0;                 // JS thread only: submitted, not yet settled
};

struct JobAccess {
  static std::vector<napi_ref>& kept(Job& j) { return j.kept_; }
  static std::shared_ptr<EnvState>& env_state(Job& j) { return j.env_state_; }
  static std::shared_ptr<CancelFlag>& cancel(Job& j) { return j.cancel_; }
  static napi_deferred& deferred(Job& j) { return j.deferred_; }
  static Outcome& outcome(Job& j) { return j.outcome_; }
};

size_t Job::keep(Napi::Env env, const Napi::Value& v) {
  napi_ref ref = nullptr;
  if (napi_create_reference(env, v, 1, &ref) != napi_ok) throw Napi::Error::New(env, "cannot keep an output alive");
  kept_.push_back(ref);
  return kept_.size() - 1;
}

Napi::Value Job::kept(Napi::Env env, size_t i) const {
  napi_value v = nullptr;
  if (i >= kept_.size() || napi_get_reference_value(env, kept_[i], &v) != napi_ok || v == nullptr) {
    throw Napi::Error::New(env, "a kept output is gone");
  }
  return Napi::Value(env, v);
}

namespace {

// Runs the job's work and turns every exception into an outcome.
Outcome run_guarded(Job& job, const CancelFlag& cancel) {
  try {
    return job.Run(cancel);
  } catch (const std::bad_alloc&) {
    return Outcome::range_error("out of memory: the call's working set of about " + num(job.working_set_bytes) +
                                " bytes could not be allocated");
  } catch (const std::exception& e) {
    return Outcome::error(e.what());
  } catch (...) {
    return Outcome::error("native call failed");
  }
}

// The JS error for a failed outcome, made with raw N-API calls that report instead of throwing.
napi_value outcome_error(napi_env env, const Outcome& o) {
  napi_value message = nullptr, error = nullptr;
  if (napi_create_string_utf8(env, o.message.c_str(), o.message.size(), &message) != napi_ok) return nullptr;
  napi_status s = napi_generic_failure;
  switch (o.kind) {
    case Outcome::kTypeError: s = napi_create_type_error(env, nullptr, message, &error); break;
    case Outcome::kRangeError: s = napi_create_range_error(env, nullptr, message, &error); break;
    case Outcome::kAborted: {
      napi_value code = nullptr;
      if (napi_create_string_utf8(env, "ABORT_ERR", NAPI_AUTO_LENGTH, &code) != napi_ok) return nullptr;
      s = napi_create_error(env, code, message, &error);
      break;
    }
    default: s = napi_create_error(env, nullptr, message, &error); break;
  }
  return s == napi_ok ? error : nullptr;
}

// On the JS thread: drops the job's references.
void release_kept(napi_env env, Job& job) {
  for (napi_ref ref : JobAccess::kept(job)) napi_delete_reference(env, ref);
  JobAccess::kept(job).clear();
}

// On the JS thread: resolves or rejects the job's promise and drops its references. Never throws.
void settle(napi_env env, Job& job) {
  EnvState& st = *JobAccess::env_state(job);
  if (--st.unsettled == 0) napi_unref_threadsafe_function(env, st.tsfn);
  napi_value value = nullptr, error = nullptr;
  const Outcome& o = JobAccess::outcome(job);
  if (o.kind == Outcome::kOk) {
    try {
      value = job.Result(Napi::Env(env));
    } catch (const Napi::Error& e) {
      error = e.Value();
    } catch (const ArgError& e) {
      error = outcome_error(env, Outcome{e.type_error ? Outcome::kTypeError : Outcome::kRangeError, e.message});
    } catch (const std::exception& e) {
      error = outcome_error(env, Outcome::error(e.what()));
    } catch (...) {
      error = outcome_error(env, Outcome::error("native call failed"));
    }
  } else {
    error = outcome_error(env, o);
  }
  release_kept(env, job);
  napi_deferred d = JobAccess::deferred(job);
  if (error != nullptr) {
    napi_reject_deferred(env, d, error);
  } else {
    if (value == nullptr) napi_get_undefined(env, &value);
    napi_resolve_deferred(env, d, value);
  }
}

// The thread-safe function's callback. env is null when the function is torn down with the job still
// queued: the environment is gone, so the job is dropped without a napi call.
void deliver(napi_env env, napi_value /*js_callback*/, void* /*context*/, void* data) {
  std::unique_ptr<Job> job(static_cast<Job*>(data));
  if (env != nullptr) settle(env, *job);
}

// Process-wide FIFO queue and its runner threads.
class Dispatcher {
 public:
  void push(std::unique_ptr<Job> job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(job));
      if (started_ < runners_wanted()) {
        // Detached: the dispatcher lives for the whole process and is never destroyed.
        std::thread([this] { loop(); }).detach();
        ++started_;
      }
    }
    ready_.notify_one();
  }

 private:
  // One runner per CPU (at least two, so a GPU job waiting on its device leaves a runner free). A CPU
  // job spreads over the compute pool, whose helpers serve the oldest job first.
  static int runners_wanted() { return std::max(2, cpu::default_thread_count()); }

  void loop() {
    for (;;) {
      std::unique_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        ready_.wait(lock, [&] { return !queue_.empty(); });
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      run_one(std::move(job));
    }
  }

  static void run_one(std::unique_ptr<Job> job) {
    // Own shares: once the job is handed to the JS thread it may be settled and freed at any moment.
    const std::shared_ptr<EnvState> state = JobAccess::env_state(*job);
    const std::shared_ptr<CancelFlag> flag = JobAccess::cancel(*job);
    EnvState& st = *state;
    const CancelFlag& cancel = *flag;
    {
      std::lock_guard<std::mutex> lock(st.mu);
      if (!st.alive) return;  // its environment ended while it waited: dropped unrun
      st.running.insert(job.get());
    }
    JobAccess::outcome(*job) = cancel.load() ? Outcome::aborted() : run_guarded(*job, cancel);
    std::lock_guard<std::mutex> lock(st.mu);
    st.running.erase(job.get());
    if (st.alive && napi_call_threadsafe_function(st.tsfn, job.get(), napi_tsfn_nonblocking) == napi_ok) {
      job.release();  // now owned by the thread-safe function's queue
    }
    st.none_running.notify_all();
    // Otherwise the environment is gone: the job is destroyed here and its references abandoned.
  }

  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<std::unique_ptr<Job>> queue_;
  int started_ = 0;
};

Dispatcher& dispatcher() {
  // Leaked on purpose: detached runners may still wait on it at process exit.
  static Dispatcher* d = new Dispatcher();
  return *d;
}

// Cleanup hook of one environment: no job of it may run or settle after this returns.
void on_environment_end(void* arg) {
  std::unique_ptr<std::shared_ptr<EnvState>> holder(static_cast<std::shared_ptr<EnvState>*>(arg));
  EnvState& st = **holder;
  {
    std::unique_lock<std::mutex> lock(st.mu);
    st.alive = false;
    for (Job* job : st.running) JobAccess::cancel(*job)->store(true);
    st.none_running.wait(lock, [&] { return st.running.empty(); });
  }
  // Jobs still in the function's queue reach deliver() with a null env and are dropped there.
  napi_release_threadsafe_function(st.tsfn, napi_tsfn_abort);
}

EnvState& env_state(Napi::Env env) {
  auto* holder = env.GetInstanceData<std::shared_ptr<EnvState>>();
  if (holder == nullptr) throw Napi::Error::New(env, "splash addon: jobs are not set up in this environment");
  return **holder;
}

std::shared_ptr<EnvState> env_state_shared(Napi::Env env) {
  auto* holder = env.GetInstanceData<std::shared_ptr<EnvState>>();
  if (holder == nullptr) throw Napi::Error::New(env, "splash addon: jobs are not set up in this environment");
  return *holder;
}

// A random constant that marks cancel tokens (napi_type_tag_object).
const napi_type_tag kCancelTag = {0x3d5f7a9b1c2e4f60ULL, 0x9e8d7c6b5a493827ULL};

struct CancelToken {
  std::shared_ptr<CancelFlag> flag;
};

std::shared_ptr<CancelFlag> cancel_flag_of(const Napi::Value& v, const char* path) {
  if (!v.IsExternal() || !v.As<Napi::External<CancelToken>>().CheckTypeTag(&kCancelTag)) {
    type_error(path, "expected a cancel token (from cancelToken())");
  }
  return v.As<Napi::External<CancelToken>>().Data()->flag;
}

Napi::Value NewCancelToken(const Napi::CallbackInfo& info) {
  auto* token = new CancelToken{std::make_shared<CancelFlag>(false)};
  Napi::External<CancelToken> ext =
      Napi::External<CancelToken>::New(info.Env(), token, [](Napi::Env, CancelToken* dead) { delete dead; });
  ext.TypeTag(&kCancelTag);
  return ext;
}

Napi::Value Cancel(const Napi::CallbackInfo& info) {
  cancel_flag_of(info[0], "token")->store(true);
  return info.Env().Undefined();
}

}  // namespace

Napi::Value submit(Napi::Env env, std::unique_ptr<Job> job, const Napi::Value& token) {
  std::shared_ptr<CancelFlag> flag =
      token.IsUndefined() || token.IsNull() ? std::make_shared<CancelFlag>(false) : cancel_flag_of(token, "cancel");
  EnvState& st = env_state(env);
  napi_value promise = nullptr;
  napi_deferred deferred = nullptr;
  if (napi_create_promise(env, &deferred, &promise) != napi_ok) throw Napi::Error::New(env, "cannot create a promise");
  JobAccess::env_state(*job) = env_state_shared(env);
  JobAccess::cancel(*job) = std::move(flag);
  JobAccess::deferred(*job) = deferred;
  // A pending call keeps the event loop alive, as libuv work would.
  if (st.unsettled++ == 0) napi_ref_threadsafe_function(env, st.tsfn);
  dispatcher().push(std::move(job));
  return Napi::Value(env, promise);
}

Napi::Value run_now(Napi::Env env, Job& job) {
  // The references go with the job, however it ends.
  struct Release {
    napi_env env;
    Job& job;
    ~Release() { release_kept(env, job); }
  } release{env, job};
  const CancelFlag never(false);
  const Outcome o = run_guarded(job, never);
  switch (o.kind) {
    case Outcome::kOk: return job.Result(env);
    case Outcome::kTypeError: throw Napi::TypeError::New(env, o.message);
    case Outcome::kRangeError: throw Napi::RangeError::New(env, o.message);
    default: throw Napi::Error::New(env, o.message);
  }
}

void RegisterJobs(Napi::Env env, Napi::Object exports) {
  auto state = std::make_shared<EnvState>();
  napi_value name = Napi::String::New(env, "splash.job");
  // Created unreferenced: it holds the event loop open only while calls are pending.
  if (napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, nullptr, deliver,
                                      &state->tsfn) != napi_ok ||
      napi_unref_threadsafe_function(env, state->tsfn) != napi_ok) {
    throw Napi::Error::New(env, "splash addon: cannot create the completion channel");
  }
  env.SetInstanceData<std::shared_ptr<EnvState>>(new std::shared_ptr<EnvState>(state));
  // Added after the thread-safe function, so that it runs before the function's own teardown.
  if (napi_add_env_cleanup_hook(env, on_environment_end, new std::shared_ptr<EnvState>(state)) != napi_ok) {
    throw Napi::Error::New(env, "splash addon: cannot register the environment cleanup hook");
  }
  exports.Set("cancelToken", guarded_function(env, "cancelToken", NewCancelToken));
  exports.Set("cancel", guarded_function(env, "cancel", Cancel));
}

}  // namespace addon
}  // namespace splash
