// The device runtime layer (native/gpu/launch.cu: memory, streams, launches, timing, error handling)
// on the fake CUDA runtime of native/tests/fake_cuda, with kernels that only take time: what the
// layer promises its callers, without a GPU.
//
//   - freeing device memory (DeviceTensor.dispose(), a collected buffer) while kernels are queued
//     returns at once, and the memory outlives the queued work;
//   - a failed event or launch call is reported by the call it happened in, and never again as a
//     stale error by a later call;
//   - every temporary a call allocates is freed.
//
// This file includes launch.cu itself; build it with fake_cuda/ first on the include path (as
// test/gpu.test.ts and CMake's splash_gpu_runtime_tests do):
//   g++ -std=c++17 -pthread -Inative/tests/fake_cuda -Inative/include native/tests/gpu_runtime_test.cc
// Run: gpu_runtime_test [--no-pools]   (--no-pools: a device without the stream-ordered allocator)
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "../gpu/kernels.h"
#include "../gpu/launch.cu"  // the layer under test, on fake_cuda/cuda_runtime.h
#include "bwd_harness.h"
#include "harness.h"

namespace {

using namespace harness;  // NOLINT: the harness is this file's vocabulary
namespace g = splash::gpu;
using Clock = std::chrono::steady_clock;

// ---- kernels: each launch queues a body that takes g_kernel_ms, as kernel<<<...>>> would ----------------

std::atomic<int> g_kernel_ms{0};
std::atomic<int> g_kernels_started{0};
std::atomic<void*> g_watch{nullptr};             // a buffer whose liveness each kernel records when it ends
std::atomic<bool> g_watch_live_at_kernel_end{false};

g::gpuError_t fake_launch(g::gpuStream_t stream) {
  fake_cuda::enqueue(stream, [] {
    ++g_kernels_started;
    std::this_thread::sleep_for(std::chrono::milliseconds(g_kernel_ms.load()));
    if (void* w = g_watch.load()) g_watch_live_at_kernel_end = fake_cuda::is_live(w);
  });
  return gpuGetLastError();
}

}  // namespace

namespace splash {
namespace gpu {
gpuError_t launch_fwd_simt_f32(int, const FwdKernelParams&, dim3, gpuStream_t s) { return fake_launch(s); }
gpuError_t launch_fwd_simt_bf16(int, const FwdKernelParams&, dim3, gpuStream_t s) { return fake_launch(s); }
gpuError_t launch_fwd_simt_f16(int, const FwdKernelParams&, dim3, gpuStream_t s) { return fake_launch(s); }
gpuError_t launch_fwd_mma_small(DType, int, const FwdKernelParams&, dim3, gpuStream_t s) { return fake_launch(s); }
gpuError_t launch_fwd_mma_medium(DType, int, const FwdKernelParams&, dim3, gpuStream_t s) { return fake_launch(s); }
gpuError_t launch_fwd_mma_large(DType, int, const FwdKernelParams&, dim3, gpuStream_t s) { return fake_launch(s); }
gpuError_t launch_bwd_simt_f32(BwdStep, int, const BwdKernelParams&, dim3, gpuStream_t s) { return fake_launch(s); }
gpuError_t launch_bwd_simt_bf16(BwdStep, int, const BwdKernelParams&, dim3, gpuStream_t s) { return fake_launch(s); }
gpuError_t launch_bwd_simt_f16(BwdStep, int, const BwdKernelParams&, dim3, gpuStream_t s) { return fake_launch(s); }
gpuError_t launch_bwd_mma_small(DType, int, BwdStep, const BwdKernelParams&, dim3, gpuStream_t s) { return fake_launch(s); }
gpuError_t launch_bwd_mma_medium(DType, int, BwdStep, const BwdKernelParams&, dim3, gpuStream_t s) { return fake_launch(s); }
gpuError_t launch_bwd_mma_large(DType, int, BwdStep, const BwdKernelParams&, dim3, gpuStream_t s) { return fake_launch(s); }
}  // namespace gpu
}  // namespace splash

namespace {

int g_failed = 0, g_passed = 0;

void expect(bool ok, const std::string& what) {
  std::printf("%-100s %s\n", what.c_str(), ok ? "PASS" : "FAIL");
  std::fflush(stdout);
  (ok ? g_passed : g_failed)++;
}

// One small problem's device buffers and schedules (bf16, d 64, causal, segment ids, sinks and dsinks:
// every temporary of a call is exercised).
struct Problem {
  Case c;
  Inputs in;
  HostSchedule s;
  BwdInputs bi;
  Grads grads;
  std::vector<void*> buffers;
  std::shared_ptr<g::DeviceSchedule> fwd, dkv;
  AttentionParams fp{}, bp{};

  static Case make() {
    Case c = make_case("runtime", DType::BF16, 64, 200, causal_mask());
    c.docs = 2;
    c.scale = 0.5f;
    c.sinks = true;
    return c;
  }

  Problem()
      : c(make()),
        in(make_inputs(c, 3)),
        s(build_schedule(c.masks, c.q_seq, c.kv_seq, c.block_q, c.block_kv)),
        bi(make_bwd_inputs(c, in, s, 4)) {
    grads.init(c);
  }

  void* upload(const void* host, size_t bytes, std::string* error) {
    void* d = nullptr;
    g::Status st = g::device_alloc(0, bytes, &d);
    if (st.ok()) st = g::copy_to_device(0, d, host, bytes);
    if (!st.ok()) *error = st.message;
    buffers.push_back(d);
    return d;
  }

  std::string setup() {
    std::string error;
    fp = make_params(c, in);
    fp.q.ptr = upload(in.q.bytes.data(), in.q.bytes.size(), &error);
    fp.k.ptr = upload(in.k.bytes.data(), in.k.bytes.size(), &error);
    fp.v.ptr = upload(in.v.bytes.data(), in.v.bytes.size(), &error);
    fp.out.ptr = upload(bi.out.bytes.data(), bi.out.bytes.size(), &error);
    fp.lse.ptr = upload(bi.lse.data(), bi.lse.size() * sizeof(float), &error);
    bp = make_bwd_params(c, in, bi, &grads, false);  // host pointers, replaced by device ones
    bp.q.ptr = fp.q.ptr;
    bp.k.ptr = fp.k.ptr;
    bp.v.ptr = fp.v.ptr;
    bp.out.ptr = fp.out.ptr;
    bp.lse.ptr = fp.lse.ptr;
    bp.dout.ptr = upload(bi.dout.bytes.data(), bi.dout.bytes.size(), &error);
    bp.dq.ptr = upload(grads.dq.bytes.data(), grads.dq.bytes.size(), &error);
    bp.dk.ptr = upload(grads.dk.bytes.data(), grads.dk.bytes.size(), &error);
    bp.dv.ptr = upload(grads.dv.bytes.data(), grads.dv.bytes.size(), &error);
    bp.dsinks = static_cast<float*>(upload(grads.dsinks.data(), grads.dsinks.size() * sizeof(float), &error));
    if (!error.empty()) return error;
    const DkvSchedule dkv_host(s);
    g::Status st = g::upload_schedule(0, s.view(), &fwd);
    if (st.ok()) st = g::upload_schedule(0, dkv_host.view(), &dkv);
    return st.ok() ? "" : st.message;
  }

  g::Status forward(bool time_kernel) {
    g::ForwardInfo info;
    return g::forward(fp, *fwd, g::ForcePath::kAuto, &info, time_kernel);
  }
  g::Status backward(bool time_kernel) {
    g::BackwardInfo info;
    return g::backward(bp, fwd.get(), *dkv, &info, time_kernel);
  }

  void release() {
    for (void* b : buffers) (void)g::device_free(0, b);
    buffers.clear();
    fwd.reset();
    dkv.reset();
  }
};

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// A buffer freed while a 400 ms kernel of another call is queued on the device's stream.
void dispose_while_queued(Problem& pr, bool pools) {
  void* tensor = nullptr;
  std::vector<uint8_t> host(1 << 20, 7);
  g::Status st = g::device_alloc(0, host.size(), &tensor);
  if (st.ok()) st = g::copy_to_device(0, tensor, host.data(), host.size());
  expect(st.ok(), "a 1 MiB device buffer is allocated and filled" + (st.ok() ? "" : ": " + st.message));
  g_watch = tensor;
  g_kernel_ms = 400;
  g_kernels_started = 0;
  g::Status call;
  std::thread worker([&] { call = pr.forward(false); });  // an async call on the addon's worker
  const Clock::time_point wait0 = Clock::now();
  while (g_kernels_started.load() == 0 && ms_since(wait0) < 10000) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const Clock::time_point t0 = Clock::now();
  st = g::device_free(0, tensor);
  const double free_ms = ms_since(t0);
  const bool live_after_free = fake_cuda::is_live(tensor);
  worker.join();
  g_kernel_ms = 0;
  char what[160];
  std::snprintf(what, sizeof what, "device_free with a 400 ms kernel queued returns in %.1f ms%s", free_ms,
                pools ? " (stream-ordered)" : " (no memory pools: a plain free, which waits)");
  if (pools) {
    // The free is a queue insertion (microseconds); 100 ms leaves a loaded machine room and is still
    // a quarter of the kernel it must not wait for.
    expect(st.ok() && free_ms < 100.0, what);
    expect(live_after_free, "the memory is still held right after device_free returns (the kernel may use it)");
  } else {
    expect(st.ok(), what);
  }
  expect(call.ok(), "the queued forward completes" + (call.ok() ? "" : ": " + call.message));
  expect(g_watch_live_at_kernel_end.load() && !fake_cuda::is_live(tensor),
         "the memory outlives the queued kernel and is released once the stream passes it");
  g_watch = nullptr;
}

// A failure injected into one entry point during a timed call: that call reports it (naming the
// entry point) or completes, the next call succeeds, and the thread's last error is clear.
void no_stale_errors(Problem& pr, bool backward, const char* entry, cudaError_t e, int skip) {
  const char* which = backward ? "backward" : "forward";
  fake_cuda::inject(entry, e, skip);
  const g::Status first = backward ? pr.backward(true) : pr.forward(true);
  const bool attributed = first.ok() || first.message.find(std::string(entry).substr(4)) != std::string::npos;
  fake_cuda::inject(entry, cudaSuccess, 0, 0);
  const g::Status next = backward ? pr.backward(false) : pr.forward(false);  // a stale error shows here
  const bool clear = cudaGetLastError() == cudaSuccess;
  expect(attributed && clear && next.ok(),
         std::string(which) + ": " + entry + " failing (call " + std::to_string(skip + 1) + ") -> \"" +
             (first.ok() ? std::string("ok") : first.message) + "\"; next call: " +
             (next.ok() ? std::string("ok") : next.message));
}

}  // namespace

int main(int argc, char** argv) {
  bool pools = true;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--no-pools") {
      pools = false;
    } else {
      std::fprintf(stderr, "usage: %s [--no-pools]\n", argv[0]);
      return 2;
    }
  }
  fake_cuda::state().pools_supported = pools;

  Problem pr;
  const std::string error = pr.setup();
  expect(error.empty(), "problem set up on the fake device" + (error.empty() ? "" : ": " + error));
  if (!error.empty()) return 1;
  g::Status st = pr.forward(true);
  expect(st.ok(), "a timed forward runs" + (st.ok() ? "" : ": " + st.message));
  st = pr.backward(true);
  expect(st.ok(), "a timed backward runs" + (st.ok() ? "" : ": " + st.message));

  dispose_while_queued(pr, pools);

  for (const bool backward : {false, true}) {
    no_stale_errors(pr, backward, "cudaEventCreate", cudaErrorMemoryAllocation, 1);
    no_stale_errors(pr, backward, "cudaEventRecord", cudaErrorInvalidResourceHandle, 0);
    no_stale_errors(pr, backward, "cudaEventRecord", cudaErrorInvalidResourceHandle, 1);
    no_stale_errors(pr, backward, "cudaEventElapsedTime", cudaErrorNotReady, 0);
    no_stale_errors(pr, backward, "cudaEventDestroy", cudaErrorInvalidResourceHandle, 0);
    fake_cuda::inject("launch", cudaErrorLaunchFailure, 0);
    const g::Status failed = backward ? pr.backward(false) : pr.forward(false);
    fake_cuda::inject("launch", cudaSuccess, 0, 0);
    const g::Status next = backward ? pr.backward(false) : pr.forward(false);
    expect(!failed.ok() && failed.message.find("LaunchKernel(splash") != std::string::npos &&
               failed.message.find("cudaErrorLaunchFailure") != std::string::npos && next.ok(),
           std::string(backward ? "backward" : "forward") + ": a failed launch is reported (\"" + failed.message +
               "\"), the next call succeeds");
  }

  // dsinks is the split backward's fourth launch (after di, dq, dk/dv): its failure names it.
  fake_cuda::inject("launch", cudaErrorLaunchFailure, 3);
  const g::Status dsinks_failed = pr.backward(false);
  fake_cuda::inject("launch", cudaSuccess, 0, 0);
  const g::Status after = pr.backward(false);
  expect(!dsinks_failed.ok() && dsinks_failed.message.find("LaunchKernel(splash backward dsinks)") != std::string::npos &&
             after.ok(),
         "backward: a failed dsinks launch is reported (\"" + dsinks_failed.message + "\"), the next call succeeds");
  {
    AttentionParams no_sinks = pr.bp;
    no_sinks.sinks = nullptr;
    g::BackwardInfo info;
    const g::Status refused = g::backward(no_sinks, pr.fwd.get(), *pr.dkv, &info, false);
    expect(!refused.ok() && refused.message == "dsinks asked for without sinks",
           "backward: dsinks without sinks is refused (\"" + refused.message + "\")");
  }

  pr.release();
  fake_cuda::wait_device_idle();  // the stream-ordered frees take effect
  expect(fake_cuda::live_bytes() == 0,
         "every buffer, schedule and call temporary is freed (" + std::to_string(fake_cuda::live_bytes()) +
             " bytes left)");

  std::printf("\n%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
