// The GPU backward part of splash_gpu_tests (included by gpu_forward_test.cc after its DeviceMem, ok and
// bench_case helpers): correctness of the split and the fused backward against the CPU backward on the check
// grid, a determinism check (the split backward 20 times, bitwise equal), and forward + backward
// timings on the benchmark problems.
#pragma once

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "bwd_harness.h"

namespace {

struct GpuBwdRun {
  std::string error;
  std::string path;  // kernels of the dq, dk/dv and fused steps
  Grads grads;
  std::vector<float> times_ms;
};

// dq / dk / dv of the case on the GPU, `reps` times after `warmup` runs; outputs poisoned first.
GpuBwdRun gpu_backward(const Case& c, const Inputs& in, const BwdInputs& bi, const HostSchedule& s, bool fused,
                       int device, int warmup, int reps) {
  GpuBwdRun r;
  r.grads.init(c);
  const DkvSchedule dkv_host(s);
  std::shared_ptr<gpu::DeviceSchedule> dq_sched, dkv_sched;
  if (!fused && !ok(gpu::upload_schedule(device, s.view(), &dq_sched), &r.error)) return r;
  if (!ok(gpu::upload_schedule(device, dkv_host.view(), &dkv_sched), &r.error)) return r;
  DeviceMem q, k, v, out, lse, dout, dq, dk, dv, dsinks;
  struct Up {
    DeviceMem* m;
    const void* src;
    size_t bytes;
  };
  const Up ups[] = {{&q, in.q.bytes.data(), in.q.bytes.size()},
                    {&k, in.k.bytes.data(), in.k.bytes.size()},
                    {&v, in.v.bytes.data(), in.v.bytes.size()},
                    {&out, bi.out.bytes.data(), bi.out.bytes.size()},
                    {&lse, bi.lse.data(), bi.lse.size() * sizeof(float)},
                    {&dout, bi.dout.bytes.data(), bi.dout.bytes.size()}};
  for (const Up& u : ups) {
    u.m->device = device;
    if (!ok(gpu::device_alloc(device, u.bytes, &u.m->ptr), &r.error) ||
        !ok(gpu::copy_to_device(device, u.m->ptr, u.src, u.bytes), &r.error)) {
      return r;
    }
  }
  HostTensor* outs[3] = {&r.grads.dq, &r.grads.dk, &r.grads.dv};
  DeviceMem* dev_outs[3] = {&dq, &dk, &dv};
  for (int i = 0; i < 3; ++i) {
    dev_outs[i]->device = device;
    if (!ok(gpu::device_alloc(device, outs[i]->bytes.size(), &dev_outs[i]->ptr), &r.error) ||
        !ok(gpu::device_fill(device, dev_outs[i]->ptr, 0xff, outs[i]->bytes.size()), &r.error)) {  // NaN poison
      return r;
    }
  }
  const size_t dsinks_bytes = r.grads.dsinks.size() * sizeof(float);
  dsinks.device = device;
  if (dsinks_bytes > 0 && (!ok(gpu::device_alloc(device, dsinks_bytes, &dsinks.ptr), &r.error) ||
                           !ok(gpu::device_fill(device, dsinks.ptr, 0xff, dsinks_bytes), &r.error))) {
    return r;
  }
  AttentionParams p = make_bwd_params(c, in, bi, &r.grads, fused);
  p.device = device;
  p.dsinks = static_cast<float*>(dsinks.ptr);  // device memory (make_bwd_params points at the host copy)
  p.q.ptr = q.ptr;
  p.k.ptr = k.ptr;
  p.v.ptr = v.ptr;
  p.out.ptr = out.ptr;
  p.lse.ptr = lse.ptr;
  p.dout.ptr = dout.ptr;
  p.dq.ptr = dq.ptr;
  p.dk.ptr = dk.ptr;
  p.dv.ptr = dv.ptr;
  for (int i = 0; i < warmup + reps; ++i) {
    gpu::BackwardInfo info;
    if (!ok(gpu::backward(p, dq_sched.get(), *dkv_sched, &info, reps > 1, c.path), &r.error)) return r;
    if (i >= warmup) r.times_ms.push_back(info.kernel_ms);
    r.path = info.path;
  }
  for (int i = 0; i < 3; ++i) {
    if (!ok(gpu::copy_to_host(device, outs[i]->bytes.data(), dev_outs[i]->ptr, outs[i]->bytes.size()), &r.error)) return r;
  }
  if (dsinks_bytes > 0) (void)ok(gpu::copy_to_host(device, r.grads.dsinks.data(), dsinks.ptr, dsinks_bytes), &r.error);
  return r;
}

// The forward check grid, sequences up to 4096: each case on its path (the half-precision cases forced
// to SIMT check the SIMT backward; the forced tensor-core duplicates are left out, auto picks it).
int run_bwd_check(int device, bool quick, bool use_ref, FILE* json, bool* first_json) {
  std::vector<Case> grid;
  for (const Case& c : check_grid(quick)) {
    if (c.path == gpu::ForcePath::kMma || c.q_seq > 4096 || c.kv_seq > 4096) continue;
    grid.push_back(c);
  }
  std::printf("\n%-16s %-5s %4s %-20s %-10s %5s %-5s %-4s %9s %9s %9s %9s %7s %5s  %s\n", "backward case", "dtype",
              "D", "mask", "BxHxHkv", "S", "mode", "path", "dq err", "dk err", "dv err", "dsink err", "tol", "unwr",
              "result");
  int failed = 0, total = 0;
  for (size_t i = 0; i < grid.size(); ++i) {
    const Case& c = grid[i];
    const HostSchedule s = build_schedule(c.masks, c.q_seq, c.kv_seq, c.block_q, c.block_kv);
    const Inputs in = make_inputs(c, static_cast<uint32_t>(3000 + i));
    const BwdInputs bi = make_bwd_inputs(c, in, s, static_cast<uint32_t>(5000 + i));
    Grads want;
    oracle_backward(c, in, bi, s, use_ref, &want);
    for (const bool fused : {false, true}) {
      const GpuBwdRun r = gpu_backward(c, in, bi, s, fused, device, 0, 1);
      GradCompare cmp;
      bool pass = false;
      if (r.error.empty()) {
        cmp = compare_grads(r.grads, want);
        pass = cmp.unwritten == 0 && cmp.worst() <= bwd_tolerance(c.dtype);
      }
      ++total;
      if (!pass) ++failed;
      const std::string mask = c.masks.size() == 1 ? c.masks[0].name : "per-head";
      const std::string bh = std::to_string(c.batch) + "x" + std::to_string(c.heads) + "x" + std::to_string(c.kv_heads);
      char dsink_err[16] = "-";
      if (c.sinks) std::snprintf(dsink_err, sizeof dsink_err, "%.2e", cmp.dsinks);
      std::printf("%-16s %-5s %4lld %-20s %-10s %5lld %-5s %-4s %9.2e %9.2e %9.2e %9s %7.0e %5lld  %s%s%s\n",
                  c.name.c_str(), dtype_name(c.dtype), static_cast<long long>(c.d), mask.c_str(), bh.c_str(),
                  static_cast<long long>(c.q_seq), fused ? "fused" : "split", r.path.c_str(), cmp.dq, cmp.dk, cmp.dv,
                  dsink_err, bwd_tolerance(c.dtype), static_cast<long long>(cmp.unwritten), pass ? "PASS" : "FAIL",
                  r.error.empty() ? "" : ": ", r.error.c_str());
      std::fflush(stdout);
      if (json) {
        std::fprintf(json, "%s{\"kind\":\"check_bwd\",\"case\":\"%s\",\"dtype\":\"%s\",\"d\":%lld,\"mask\":\"%s\","
                     "\"mode\":\"%s\",\"path\":\"%s\",\"dqErr\":%.3e,\"dkErr\":%.3e,\"dvErr\":%.3e,\"dsinksErr\":%.3e,"
                     "\"tol\":%.0e,\"unwritten\":%lld,\"pass\":%s}",
                     *first_json ? "" : ",\n", c.name.c_str(), dtype_name(c.dtype), static_cast<long long>(c.d),
                     mask.c_str(), fused ? "fused" : "split", r.path.c_str(), cmp.dq, cmp.dk, cmp.dv, cmp.dsinks,
                     bwd_tolerance(c.dtype),
                     static_cast<long long>(cmp.unwritten), pass ? "true" : "false");
        *first_json = false;
      }
    }
  }
  std::printf("\nbackward correctness: %d runs, %d failed (oracle: %s)\n", total, failed,
              use_ref || !cpu_backward_linked() ? "harness reference" : "CPU kernel");

  // Determinism: the split backward 20 times on one problem with GQA, segment ids and a ragged edge.
  Case c = make_case("determinism", DType::BF16, 128, 2000, causal_mask());
  c.heads = 4;
  c.kv_heads = 2;
  c.docs = 3;
  const HostSchedule s = build_schedule(c.masks, c.q_seq, c.kv_seq, c.block_q, c.block_kv);
  const Inputs in = make_inputs(c, 6001);
  const BwdInputs bi = make_bwd_inputs(c, in, s, 6002);
  const GpuBwdRun first = gpu_backward(c, in, bi, s, false, device, 0, 1);
  int differ = first.error.empty() ? 0 : 1;
  for (int i = 1; i < 20 && first.error.empty(); ++i) {
    const GpuBwdRun again = gpu_backward(c, in, bi, s, false, device, 0, 1);
    if (!again.error.empty() || !same_bits(first.grads, again.grads)) ++differ;
  }
  std::printf("determinism: split backward, 20 runs, %d differ from the first%s%s\n", differ,
              first.error.empty() ? "" : ": ", first.error.c_str());
  if (json) {
    std::fprintf(json, "%s{\"kind\":\"determinism\",\"runs\":20,\"differ\":%d,\"pass\":%s}", *first_json ? "" : ",\n",
                 differ, differ == 0 ? "true" : "false");
    *first_json = false;
  }
  return failed + (differ == 0 ? 0 : 1);
}

// Forward + backward (split and fused) times on the benchmark problems (see run_bench).
int run_bwd_bench(int device, FILE* json, bool* first_json) {
  const int64_t S = kBenchS, H = kBenchH, D = kBenchD;
  const std::vector<BenchProblem> problems = bench_problems();
  std::printf("\nbackward timing: bf16, B=1, H=%lld, S=%lld, D=%lld, blocks 128x128 (median of 20 after 2 warm-ups;"
              " SIMT: of 3)\n",
              static_cast<long long>(H), static_cast<long long>(S), static_cast<long long>(D));
  std::printf("%-12s %-5s %10s %10s %10s %12s %10s %12s\n", "mask", "path", "fwd ms", "bwd ms", "fused ms", "fwd+bwd ms",
              "split/fused", "simt bwd ms");
  int failed = 0;
  for (const BenchProblem& pr : problems) {
    Inputs in;
    const Case c = bench_case(pr, &in);
    const HostSchedule s = build_schedule(c.masks, S, S, c.block_q, c.block_kv);
    const GpuRun f = gpu_forward(c, in, s, device, 2, 20);
    if (!f.error.empty()) {
      std::printf("%-12s FAILED: %s\n", pr.name, f.error.c_str());
      ++failed;
      continue;
    }
    // The GPU forward's residuals stand in for the oracle's (timing only).
    BwdInputs bi;
    bi.out = f.out;
    bi.lse = f.lse;
    bi.dout.init(c.dtype, f.out.count);
    std::mt19937 rng(99);
    std::normal_distribution<float> n(0.f, 1.f);
    for (size_t i = 0; i < bi.dout.count; ++i) bi.dout.set(i, n(rng));
    const GpuBwdRun split = gpu_backward(c, in, bi, s, false, device, 2, 20);
    const GpuBwdRun fused = gpu_backward(c, in, bi, s, true, device, 2, 20);
    Case simt_case = c;  // the SIMT split backward on the same problem, for the tensor cores' gain
    simt_case.path = gpu::ForcePath::kSimt;
    const GpuBwdRun simt = gpu_backward(simt_case, in, bi, s, false, device, 1, 3);
    if (!split.error.empty() || !fused.error.empty() || !simt.error.empty()) {
      std::printf("%-12s FAILED: %s%s%s\n", pr.name, split.error.c_str(), fused.error.c_str(), simt.error.c_str());
      ++failed;
      continue;
    }
    auto median = [](std::vector<float> t) {
      std::sort(t.begin(), t.end());
      return static_cast<double>(t[t.size() / 2]);
    };
    const double fms = median(f.times_ms), bms = median(split.times_ms), fused_ms = median(fused.times_ms);
    const double simt_ms = median(simt.times_ms);
    std::printf("%-12s %-5s %10.3f %10.3f %10.3f %12.3f %10.2f %12.3f\n", pr.name, split.path.c_str(), fms, bms, fused_ms,
                fms + bms, bms / fused_ms, simt_ms);
    std::fflush(stdout);
    if (json) {
      std::fprintf(json, "%s{\"kind\":\"bench_bwd\",\"impl\":\"splash\",\"mask\":\"%s\",\"path\":\"%s\",\"fwdMs\":%.4f,"
                   "\"bwdMs\":%.4f,\"fusedBwdMs\":%.4f,\"simtBwdMs\":%.4f,\"S\":%lld,\"H\":%lld,\"D\":%lld}",
                   *first_json ? "" : ",\n", pr.name, split.path.c_str(), fms, bms, fused_ms, simt_ms, static_cast<long long>(S),
                   static_cast<long long>(H), static_cast<long long>(D));
      *first_json = false;
    }
  }
  return failed;
}

}  // namespace
