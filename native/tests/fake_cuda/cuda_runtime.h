// Tests only: a stand-in for the CUDA runtime API, so that native/gpu/launch.cu (the device runtime
// layer) runs under a plain C++ compiler on a machine without a GPU. gpu_runtime_test.cc puts this
// directory first on the include path; compat.h then takes it for <cuda_runtime.h>.
//
// It models what the runtime layer relies on, not the GPU: device memory is host memory; a stream is
// a worker thread running its queued operations in order; cudaFree waits until every stream is idle
// (the real one synchronises the device), while cudaFreeAsync only queues the free on its stream;
// events record when their stream reaches them. A failing call sets the calling thread's last error,
// which cudaGetLastError returns and clears, as the real runtime does. Failures are injected per
// entry point with fake_cuda::inject; kernels are whatever the test queues with fake_cuda::enqueue.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorLaunchFailure = 719,
};
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 };
enum cudaDeviceAttr { cudaDevAttrMemoryPoolsSupported = 115 };
constexpr unsigned cudaStreamNonBlocking = 1;

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};

struct cudaDeviceProp {
  char name[256];
  int major, minor;
  size_t sharedMemPerBlock, sharedMemPerBlockOptin, totalGlobalMem;
  int multiProcessorCount, warpSize;
  int maxGridSize[3];
};

namespace fake_cuda {

// One stream: a worker thread running queued operations in order.
struct Stream {
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<std::function<void()>> queue;
  bool running = false;  // an operation is executing

  Stream() {
    std::thread([this] { work(); }).detach();  // lives as long as the process, as a runtime's would
  }
  void push(std::function<void()> op) {
    std::lock_guard<std::mutex> lock(mutex);
    queue.push_back(std::move(op));
    cv.notify_all();
  }
  void wait_idle() {
    std::unique_lock<std::mutex> lock(mutex);
    cv.wait(lock, [this] { return queue.empty() && !running; });
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> op;
      {
        std::unique_lock<std::mutex> lock(mutex);
        cv.wait(lock, [this] { return !queue.empty(); });
        op = std::move(queue.front());
        queue.pop_front();
        running = true;
      }
      op();
      std::lock_guard<std::mutex> lock(mutex);
      running = false;
      cv.notify_all();
    }
  }
};

struct Event {
  bool recorded = false, completed = false;
  std::chrono::steady_clock::time_point at;
};

// The fake device and the test's controls.
struct State {
  std::mutex mutex;
  int device_count = 1;
  bool pools_supported = true;
  std::vector<Stream*> streams;
  std::map<void*, size_t> live;                   // device allocations not yet freed
  struct Fault {
    cudaError_t error;
    int skip;   // calls that still succeed first
    int times;  // calls that fail after those
  };
  std::map<std::string, Fault> faults;            // by entry point
  std::vector<std::string> log;                   // frees and kernels, in the order they took effect
};

inline State& state() {
  static State* s = new State();  // never destroyed: stream threads may outlive static destructors
  return *s;
}

inline cudaError_t& last_error() {
  thread_local cudaError_t e = cudaSuccess;
  return e;
}

// After `skip` more successful calls, the next `times` calls of `entry` (e.g. "cudaEventRecord") fail
// with `e`.
inline void inject(const std::string& entry, cudaError_t e, int skip = 0, int times = 1) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().faults[entry] = State::Fault{e, skip, times};
}

inline void note(const std::string& what) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().log.push_back(what);
}

// The injected failure of this call of `entry`, or cudaSuccess; a failure becomes the last error.
inline cudaError_t check(const char* entry) {
  std::lock_guard<std::mutex> lock(state().mutex);
  auto it = state().faults.find(entry);
  if (it == state().faults.end() || it->second.times <= 0) return cudaSuccess;
  if (it->second.skip > 0) {
    --it->second.skip;
    return cudaSuccess;
  }
  --it->second.times;
  last_error() = it->second.error;
  return it->second.error;
}

inline cudaError_t fail(cudaError_t e) {
  last_error() = e;
  return e;
}

inline size_t live_bytes() {
  std::lock_guard<std::mutex> lock(state().mutex);
  size_t n = 0;
  for (const auto& kv : state().live) n += kv.second;
  return n;
}

inline void wait_device_idle() {
  std::vector<Stream*> streams;
  {
    std::lock_guard<std::mutex> lock(state().mutex);
    streams = state().streams;
  }
  for (Stream* s : streams) s->wait_idle();
}

inline void* allocate(size_t bytes) {
  void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (p != nullptr) {
    std::lock_guard<std::mutex> lock(state().mutex);
    state().live[p] = bytes;
  }
  return p;
}

// Releases p; false when p is not a live allocation.
inline bool release(void* p) {
  {
    std::lock_guard<std::mutex> lock(state().mutex);
    if (state().live.erase(p) == 0) return false;
    state().log.push_back("free");
  }
  std::free(p);
  return true;
}

inline bool is_live(void* p) {
  std::lock_guard<std::mutex> lock(state().mutex);
  return state().live.count(p) != 0;
}

// A kernel launch as `kernel<<<grid, block, smem, stream>>>` behaves: queues `body` on the stream, or
// sets the last error when a "launch" failure is injected.
inline void enqueue(void* stream, std::function<void()> body) {
  if (check("launch") != cudaSuccess) return;
  static_cast<Stream*>(stream)->push(std::move(body));
}

}  // namespace fake_cuda

struct CUstream_st;
struct CUevent_st;
using cudaStream_t = CUstream_st*;
using cudaEvent_t = CUevent_st*;

#define SPLASH_FAKE_ENTRY(name)                                  \
  do {                                                           \
    const cudaError_t injected_ = fake_cuda::check(name);        \
    if (injected_ != cudaSuccess) return injected_;              \
  } while (0)

inline fake_cuda::Stream* fake_stream(cudaStream_t s) { return reinterpret_cast<fake_cuda::Stream*>(s); }
inline fake_cuda::Event* fake_event(cudaEvent_t e) { return reinterpret_cast<fake_cuda::Event*>(e); }

inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}
inline const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : "injected by the test's fake runtime";
}
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = fake_cuda::last_error();
  fake_cuda::last_error() = cudaSuccess;
  return e;
}

inline cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceCount(int* n) {
  SPLASH_FAKE_ENTRY("cudaGetDeviceCount");
  *n = fake_cuda::state().device_count;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int d) {
  SPLASH_FAKE_ENTRY("cudaSetDevice");
  return d >= 0 && d < fake_cuda::state().device_count ? cudaSuccess : fake_cuda::fail(cudaErrorInvalidDevice);
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  SPLASH_FAKE_ENTRY("cudaGetDeviceProperties");
  std::memset(p, 0, sizeof(*p));
  std::strcpy(p->name, "fake sm_90");
  p->major = 9;
  p->minor = 0;
  p->sharedMemPerBlock = 48 * 1024;
  p->sharedMemPerBlockOptin = 227 * 1024;
  p->totalGlobalMem = size_t{80} << 30;
  p->multiProcessorCount = 132;
  p->warpSize = 32;
  p->maxGridSize[0] = 0x7fffffff;
  p->maxGridSize[1] = p->maxGridSize[2] = 65535;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int) {
  SPLASH_FAKE_ENTRY("cudaDeviceGetAttribute");
  if (attr != cudaDevAttrMemoryPoolsSupported) return fake_cuda::fail(cudaErrorInvalidValue);
  *v = fake_cuda::state().pools_supported ? 1 : 0;
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  SPLASH_FAKE_ENTRY("cudaStreamCreateWithFlags");
  auto* stream = new fake_cuda::Stream();
  {
    std::lock_guard<std::mutex> lock(fake_cuda::state().mutex);
    fake_cuda::state().streams.push_back(stream);
  }
  *s = reinterpret_cast<cudaStream_t>(stream);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  SPLASH_FAKE_ENTRY("cudaStreamSynchronize");
  fake_stream(s)->wait_idle();
  return cudaSuccess;
}

inline cudaError_t cudaMalloc(void** p, size_t bytes) {
  SPLASH_FAKE_ENTRY("cudaMalloc");
  *p = fake_cuda::allocate(bytes);
  return *p != nullptr ? cudaSuccess : fake_cuda::fail(cudaErrorMemoryAllocation);
}
// Synchronises the device first, as the real cudaFree does.
inline cudaError_t cudaFree(void* p) {
  SPLASH_FAKE_ENTRY("cudaFree");
  fake_cuda::wait_device_idle();
  return fake_cuda::release(p) ? cudaSuccess : fake_cuda::fail(cudaErrorInvalidValue);
}
inline cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) {
  SPLASH_FAKE_ENTRY("cudaMallocAsync");
  *p = fake_cuda::allocate(bytes);
  return *p != nullptr ? cudaSuccess : fake_cuda::fail(cudaErrorMemoryAllocation);
}
// Queued: the memory goes when the stream reaches this point.
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t s) {
  SPLASH_FAKE_ENTRY("cudaFreeAsync");
  if (!fake_cuda::is_live(p)) return fake_cuda::fail(cudaErrorInvalidValue);
  fake_stream(s)->push([p] { fake_cuda::release(p); });
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t s) {
  SPLASH_FAKE_ENTRY("cudaMemcpyAsync");
  fake_stream(s)->push([=] { std::memcpy(dst, src, bytes); });
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t s) {
  SPLASH_FAKE_ENTRY("cudaMemsetAsync");
  fake_stream(s)->push([=] { std::memset(dst, value, bytes); });
  return cudaSuccess;
}

inline cudaError_t cudaEventCreate(cudaEvent_t* e) {
  SPLASH_FAKE_ENTRY("cudaEventCreate");
  *e = reinterpret_cast<cudaEvent_t>(new fake_cuda::Event());
  return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete fake_event(e);  // also when a failure is injected: the caller cannot do more than report it
  SPLASH_FAKE_ENTRY("cudaEventDestroy");
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  SPLASH_FAKE_ENTRY("cudaEventRecord");
  fake_cuda::Event* ev = fake_event(e);
  ev->recorded = true;
  ev->completed = false;
  fake_stream(s)->push([ev] {
    ev->at = std::chrono::steady_clock::now();
    ev->completed = true;
  });
  return cudaSuccess;
}
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  SPLASH_FAKE_ENTRY("cudaEventElapsedTime");
  const fake_cuda::Event* x = fake_event(a);
  const fake_cuda::Event* y = fake_event(b);
  if (!x->recorded || !y->recorded) return fake_cuda::fail(cudaErrorInvalidResourceHandle);
  if (!x->completed || !y->completed) return fake_cuda::fail(cudaErrorNotReady);
  *ms = std::chrono::duration<float, std::milli>(y->at - x->at).count();
  return cudaSuccess;
}

#undef SPLASH_FAKE_ENTRY
