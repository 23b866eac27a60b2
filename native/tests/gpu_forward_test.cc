// GPU forward against the CPU forward kernel (its oracle), on the splash test grid, plus kernel
// timings for the benchmark problems. Plain C++: the GPU is reached only through splash/gpu_api.h,
// the oracle through splash/cpu_kernels.h, and schedules are built here exactly as MaskInfo builds
// them (blocks classified element by element; computable masks keep their program, dense masks store
// their partial blocks), so the file needs neither Node nor JSON fixtures.
//
//   splash_gpu_tests [--check] [--bench] [--quick] [--no-backward] [--json FILE] [--device N] [--oracle cpu|ref]
//
// The backward (gpu_backward_cases.h) runs with both unless --no-backward: split and fused vs the CPU
// backward on the same grid, split determinism over 20 runs, and forward + backward timings.
//
// --check (default) runs the correctness grid and prints one row per case; outputs are poisoned with
// 0xFF bytes (NaN in every dtype) before each launch, so an element the kernel never writes shows up
// as "unwritten". --bench times the forward kernel (CUDA/HIP events around the launch, median of 30
// after 5 warm-ups) on bf16, d=128, H=16, S=8192: full, causal, local window 1024 and packed documents,
// reporting TFLOP/s over the unmasked work only (4 * D flops per allowed (q, kv) pair). The exit code
// is non-zero when a case fails.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "harness.h"
#include "splash/gpu_api.h"
#include "splash/params.h"

namespace {

using namespace harness;  // NOLINT: the harness is this file's vocabulary

// ---- the GPU side ----------------------------------------------------------------------------------------

struct DeviceMem {
  int device = 0;
  void* ptr = nullptr;
  DeviceMem() = default;
  DeviceMem(const DeviceMem&) = delete;
  DeviceMem& operator=(const DeviceMem&) = delete;
  ~DeviceMem() { (void)gpu::device_free(device, ptr); }
};

bool ok(const gpu::Status& s, std::string* err) {
  if (s.ok()) return true;
  *err = s.message;
  return false;
}

struct GpuRun {
  std::string error;
  gpu::ForwardInfo info;
  HostTensor out;
  std::vector<float> lse;
  std::vector<float> times_ms;
};

// Runs the case on the GPU `reps` times after `warmup` untimed runs (timing the kernel when reps > 1).
GpuRun gpu_forward(const Case& c, const Inputs& in, const HostSchedule& s, int device, int warmup, int reps) {
  GpuRun r;
  std::shared_ptr<gpu::DeviceSchedule> sched;
  if (!ok(gpu::upload_schedule(device, s.view(), &sched), &r.error)) return r;
  DeviceMem q, k, v, out, lse;
  for (DeviceMem* m : {&q, &k, &v, &out, &lse}) m->device = device;
  const size_t out_bytes = static_cast<size_t>(c.batch * c.heads * c.q_seq * c.dv) * elem_size(c.dtype);
  const size_t lse_bytes = static_cast<size_t>(c.batch * c.heads * c.q_seq) * 4;
  if (!ok(gpu::device_alloc(device, in.q.bytes.size(), &q.ptr), &r.error) ||
      !ok(gpu::device_alloc(device, in.k.bytes.size(), &k.ptr), &r.error) ||
      !ok(gpu::device_alloc(device, in.v.bytes.size(), &v.ptr), &r.error) ||
      !ok(gpu::device_alloc(device, out_bytes, &out.ptr), &r.error) ||
      !ok(gpu::device_alloc(device, lse_bytes, &lse.ptr), &r.error) ||
      !ok(gpu::copy_to_device(device, q.ptr, in.q.bytes.data(), in.q.bytes.size()), &r.error) ||
      !ok(gpu::copy_to_device(device, k.ptr, in.k.bytes.data(), in.k.bytes.size()), &r.error) ||
      !ok(gpu::copy_to_device(device, v.ptr, in.v.bytes.data(), in.v.bytes.size()), &r.error) ||
      !ok(gpu::device_fill(device, out.ptr, 0xff, out_bytes), &r.error) ||  // poison: NaN in every dtype
      !ok(gpu::device_fill(device, lse.ptr, 0xff, lse_bytes), &r.error)) {
    return r;
  }
  AttentionParams p = make_params(c, in);
  p.device = device;
  p.q.ptr = q.ptr;
  p.k.ptr = k.ptr;
  p.v.ptr = v.ptr;
  p.out.ptr = out.ptr;
  p.lse.ptr = lse.ptr;
  for (int i = 0; i < warmup + reps; ++i) {
    gpu::ForwardInfo info;
    if (!ok(gpu::forward(p, *sched, c.path, &info, reps > 1), &r.error)) return r;
    if (i >= warmup) r.times_ms.push_back(info.kernel_ms);
    r.info = info;
  }
  r.out.init(c.dtype, static_cast<size_t>(c.batch * c.heads * c.q_seq * c.dv));
  r.lse.assign(static_cast<size_t>(c.batch * c.heads * c.q_seq), 0.f);
  if (!ok(gpu::copy_to_host(device, r.out.bytes.data(), out.ptr, out_bytes), &r.error)) return r;
  if (!ok(gpu::copy_to_host(device, r.lse.data(), lse.ptr, lse_bytes), &r.error)) return r;
  return r;
}

const char* path_name(gpu::ForcePath p) {
  return p == gpu::ForcePath::kSimt ? "simt" : p == gpu::ForcePath::kMma ? "mma" : "auto";
}

// ---- the grid -------------------------------------------------------------------------------------------------

std::vector<Case> check_grid(bool quick) {
  std::vector<Case> g;
  const DType types[] = {DType::BF16, DType::F16, DType::F32};
  // every dtype x the main head dims, causal, ragged sequence
  for (DType t : types)
    for (int64_t d : {64, 128, 256}) g.push_back(make_case("causal", t, d, 1000, causal_mask()));
  // the other head dims
  for (DType t : {DType::BF16, DType::F32})
    for (int64_t d : {32, 96, 192}) g.push_back(make_case("causal", t, d, 640, causal_mask()));
  // every mask kind on both paths' dtypes
  for (DType t : {DType::BF16, DType::F32}) {
    g.push_back(make_case("full", t, 128, 520, full_mask()));
    g.push_back(make_case("random", t, 128, 512, random_mask(512, 512, 0.5, 7)));
    g.push_back(make_case("random sparse", t, 64, 768, random_mask(768, 768, 0.97, 8)));
    g.push_back(make_case("local", t, 128, 1024, local_mask(200, 30)));
    g.push_back(make_case("chunked", t, 128, 900, chunked_mask(300)));
    g.push_back(make_case("nested program", t, 64, 700, causal_or_local()));
    g.push_back(make_case("deep program", t, 128, 500, deep_mask(10)));  // materialised on upload
    g.push_back(make_case("empty rows", t, 128, 600, causal_mask(-200)));  // q-blocks with no visited block
  }
  // GQA, MQA, batch
  for (DType t : {DType::BF16, DType::F32}) {
    Case c = make_case("gqa 8/2", t, 128, 512, causal_mask());
    c.heads = 8;
    c.kv_heads = 2;
    g.push_back(c);
    c = make_case("mqa 4/1", t, 64, 384, local_mask(100, 0));
    c.heads = 4;
    c.kv_heads = 1;
    g.push_back(c);
    c = make_case("batch 3", t, 64, 333, causal_mask());
    c.batch = 3;
    g.push_back(c);
  }
  // segment ids: packed documents, and rows whose segment no key has (fully masked rows)
  for (DType t : {DType::BF16, DType::F16, DType::F32}) {
    Case c = make_case("docs", t, 128, 1024, causal_mask());
    c.docs = 5;
    c.batch = 2;
    g.push_back(c);
  }
  for (DType t : {DType::BF16, DType::F32}) {
    Case c = make_case("docs+orphans", t, 64, 700, full_mask());
    c.docs = 3;
    c.orphan_rows = true;
    g.push_back(c);
  }
  // soft cap
  for (DType t : types) {
    Case c = make_case("softcap 5", t, 128, 512, causal_mask());
    c.soft_cap = 5.f;
    g.push_back(c);
  }
  // block sizes: smaller than, larger than and not multiples of the kernel tiles
  for (DType t : {DType::BF16, DType::F32}) {
    Case c = make_case("blocks 64x64", t, 128, 600, causal_mask());
    c.block_q = c.block_kv = 64;
    g.push_back(c);
    c = make_case("blocks 256x512", t, 128, 1100, causal_mask());
    c.block_q = 256;
    c.block_kv = 512;
    g.push_back(c);
    c = make_case("blocks 100x200", t, 64, 900, random_mask(900, 900, 0.3, 9));
    c.block_q = 100;
    c.block_kv = 200;
    g.push_back(c);
  }
  // q and kv of different lengths, v of another head dim (SIMT path for all dtypes)
  {
    Case c = make_case("sq 300 skv 700", DType::BF16, 128, 300, causal_mask(400));
    c.kv_seq = 700;
    g.push_back(c);
    c = make_case("dv 64", DType::BF16, 128, 512, causal_mask());
    c.dv = 64;
    g.push_back(c);
    c = make_case("dv 256", DType::F32, 64, 256, full_mask());
    c.dv = 256;
    g.push_back(c);
  }
  // a finite mask value: masked logits of visited blocks count
  {
    Case c = make_case("maskValue -3", DType::F32, 64, 512, random_mask(512, 512, 0.6, 11));
    c.mask_value = -3.f;
    g.push_back(c);
    c.dtype = DType::BF16;
    g.push_back(c);
  }
  // finite mask values below about -89, with rows whose first visited block has no allowed key
  // (local(10, 0) in blocks of 32)
  for (const FiniteMaskValue& mv : kFiniteMaskValues) {
    for (DType t : {DType::BF16, DType::F32}) {
      Case c = make_case(std::string("maskValue ") + mv.label, t, 64, 640, local_mask(10, 0));
      c.block_q = c.block_kv = 32;
      c.mask_value = mv.value;
      g.push_back(c);
    }
  }
  // f16 with a loss-scaled dout: in the backward dS = p (dp - di) passes f16's 65504 while the
  // gradients stay in range (small q and k, two keys per row)
  for (int64_t d : {64, 192}) {
    Case c = make_case("f16 dout x8192", DType::F16, d, 512, local_mask(1, 0));
    c.q_scale = c.k_scale = 1.f / 16;
    c.dout_scale = 8192.f;
    g.push_back(c);
  }
  // the kernels' scale (1/sqrt(d) on unscaled q; 0.3 before a soft cap) and sinks (with GQA, and with
  // segment ids whose orphan rows have only the sink: out 0, lse = the sink)
  for (DType t : types) {
    Case c = make_case("scale 1/sqrt(d)", t, 128, 600, causal_mask());
    c.q_scale = std::sqrt(128.f) / 2;  // make_inputs scales q by 2 / sqrt(d)
    c.scale = 1 / std::sqrt(128.f);
    g.push_back(c);
    c = make_case("sinks gqa .3 cap", t, 128, 512, local_mask(200, 0));
    c.heads = 4;
    c.kv_heads = 2;
    c.scale = 0.3f;
    c.soft_cap = 5.f;
    c.sinks = true;
    g.push_back(c);
    c = make_case("sinks docs", t, 64, 700, causal_mask());
    c.batch = 2;
    c.docs = 3;
    c.orphan_rows = true;
    c.sinks = true;
    g.push_back(c);
  }
  // one schedule per head
  {
    Case c = make_case("multihead", DType::BF16, 128, 640, causal_mask());
    c.heads = c.kv_heads = 3;
    c.masks = {causal_mask(), local_mask(128, 0), random_mask(640, 640, 0.8, 12)};
    g.push_back(c);
  }
  if (!quick) {
    Case c = make_case("causal S=8192", DType::BF16, 128, 8192, causal_mask());
    c.heads = c.kv_heads = 2;
    g.push_back(c);
    c = make_case("local S=4096", DType::F16, 64, 4096, local_mask(1024, 0));
    c.heads = c.kv_heads = 2;
    g.push_back(c);
    c = make_case("causal S=4096", DType::F32, 128, 4096, causal_mask());
    c.heads = c.kv_heads = 1;
    g.push_back(c);
  }
  // every half-precision case also on the SIMT path (the tensor-core path is the default there)
  const size_t n = g.size();
  for (size_t i = 0; i < n; ++i) {
    if (g[i].dtype != DType::F32 && g[i].d == g[i].dv && g[i].q_seq <= 1100) {
      Case c = g[i];
      c.path = gpu::ForcePath::kSimt;
      g.push_back(c);
    }
  }
  return g;
}

int run_check(int device, bool quick, bool use_ref, FILE* json, bool* first_json) {
  const std::vector<Case> grid = check_grid(quick);
  std::printf("\n%-16s %-5s %4s %-20s %-10s %5s %-5s %10s %10s %8s %5s  %s\n", "case", "dtype", "D", "mask", "BxHxHkv",
              "S", "path", "out err", "lse err", "tol", "unwr", "result");
  int failed = 0;
  for (size_t i = 0; i < grid.size(); ++i) {
    const Case& c = grid[i];
    const HostSchedule s = build_schedule(c.masks, c.q_seq, c.kv_seq, c.block_q, c.block_kv);
    const Inputs in = make_inputs(c, static_cast<uint32_t>(1000 + i));
    HostTensor want;
    std::vector<float> want_lse;
    oracle_forward(c, in, s, use_ref, &want, &want_lse);
    const GpuRun r = gpu_forward(c, in, s, device, 0, 1);
    const std::string mask = c.masks.size() == 1 ? c.masks[0].name : "per-head";
    const std::string bh = std::to_string(c.batch) + "x" + std::to_string(c.heads) + "x" + std::to_string(c.kv_heads);
    bool pass = false;
    Compare cmp;
    if (r.error.empty()) {
      cmp = compare(r.out, r.lse, want, want_lse);
      pass = cmp.unwritten == 0 && cmp.lse_inf_mismatch == 0 && cmp.out_err <= tolerance(c.dtype) &&
             cmp.lse_err <= tolerance(c.dtype);
    }
    if (!pass) ++failed;
    const std::string path = r.error.empty() ? r.info.path : path_name(c.path);
    std::printf("%-16s %-5s %4lld %-20s %-10s %5lld %-5s %10.2e %10.2e %8.0e %5lld  %s%s%s\n", c.name.c_str(),
                dtype_name(c.dtype), static_cast<long long>(c.d), mask.c_str(), bh.c_str(),
                static_cast<long long>(c.q_seq), path.c_str(), cmp.out_err, cmp.lse_err, tolerance(c.dtype),
                static_cast<long long>(cmp.unwritten + cmp.lse_inf_mismatch), pass ? "PASS" : "FAIL",
                r.error.empty() ? "" : ": ", r.error.c_str());
    std::fflush(stdout);
    if (json) {
      std::fprintf(json, "%s{\"kind\":\"check\",\"case\":\"%s\",\"dtype\":\"%s\",\"d\":%lld,\"mask\":\"%s\",\"path\":\"%s\","
                   "\"outErr\":%.3e,\"lseErr\":%.3e,\"tol\":%.0e,\"unwritten\":%lld,\"pass\":%s}",
                   *first_json ? "" : ",\n", c.name.c_str(), dtype_name(c.dtype), static_cast<long long>(c.d),
                   mask.c_str(), path.c_str(), cmp.out_err, cmp.lse_err, tolerance(c.dtype),
                   static_cast<long long>(cmp.unwritten + cmp.lse_inf_mismatch), pass ? "true" : "false");
      *first_json = false;
    }
  }
  std::printf("\ncorrectness: %zu cases, %d failed (oracle: %s)\n", grid.size(), failed,
              use_ref || !cpu_kernel_linked() ? "harness reference" : "CPU kernel");
  return failed;
}

// ---- timing ------------------------------------------------------------------------------------------------------

// The packed-document layout shared with bench/gpu/flex_peer.py (lengths sum to 8192).
const int64_t kDocLengths[] = {512, 1536, 1024, 2048, 256, 768, 1536, 512};

int64_t allowed_pairs(const Case& c, const Inputs& in) {
  int64_t n = 0;
  const MaskSpec& m = c.masks[0];
  for (int64_t i = 0; i < c.q_seq; ++i)
    for (int64_t j = 0; j < c.kv_seq; ++j) {
      if (!mask_at(m, c.kv_seq, i, j)) continue;
      if (!in.seg_q.empty() && in.seg_q[i] != in.seg_kv[j]) continue;
      ++n;
    }
  return n;
}

// The timing problems, forward and backward alike: bf16, B=1, H=16, S=8192, D=128, default blocks.
constexpr int64_t kBenchS = 8192, kBenchH = 16, kBenchD = 128;
struct BenchProblem {
  const char* name;
  MaskSpec mask;
  bool docs;  // packed documents (kDocLengths) as segment ids, causal inside each
};

std::vector<BenchProblem> bench_problems() {
  return {{"full", full_mask(), false},
          {"causal", causal_mask(), false},
          {"local 1024", local_mask(1024, 0), false},
          {"packed docs", causal_mask(), true}};
}

// The case and seeded inputs of one timing problem.
Case bench_case(const BenchProblem& pr, Inputs* in) {
  Case c = make_case(pr.name, DType::BF16, kBenchD, kBenchS, pr.mask);
  c.heads = c.kv_heads = kBenchH;
  *in = make_inputs(c, 4242);
  if (pr.docs) {
    in->seg_q.resize(static_cast<size_t>(kBenchS));
    int64_t at = 0;
    int32_t doc = 0;
    for (int64_t len : kDocLengths) {
      for (int64_t i = 0; i < len; ++i) in->seg_q[static_cast<size_t>(at + i)] = doc;
      at += len;
      ++doc;
    }
    in->seg_kv = in->seg_q;
  }
  return c;
}

int run_bench(int device, FILE* json, bool* first_json) {
  const int64_t S = kBenchS, H = kBenchH, D = kBenchD;
  const std::vector<BenchProblem> problems = bench_problems();
  std::printf("\nforward timing: bf16, B=1, H=%lld, S=%lld, D=%lld, default blocks 128x128 (median of 30 after 5 warm-ups)\n",
              static_cast<long long>(H), static_cast<long long>(S), static_cast<long long>(D));
  std::printf("%-12s %-5s %10s %10s %12s %10s\n", "mask", "path", "ms", "TFLOP/s", "density", "visited");
  int failed = 0;
  for (const BenchProblem& pr : problems) {
    Inputs in;
    const Case c = bench_case(pr, &in);
    const HostSchedule s = build_schedule(c.masks, S, S, c.block_q, c.block_kv);
    const GpuRun r = gpu_forward(c, in, s, device, 5, 30);
    if (!r.error.empty()) {
      std::printf("%-12s FAILED: %s\n", pr.name, r.error.c_str());
      ++failed;
      continue;
    }
    std::vector<float> t = r.times_ms;
    std::sort(t.begin(), t.end());
    const double ms = t[t.size() / 2];
    const int64_t pairs = allowed_pairs(c, in);
    const double tflops = 4.0 * static_cast<double>(D) * static_cast<double>(pairs) * H / (ms * 1e-3) / 1e12;
    const double density = static_cast<double>(pairs) / (static_cast<double>(S) * S);
    std::printf("%-12s %-5s %10.3f %10.1f %12.4f %10.4f\n", pr.name, r.info.path.c_str(), ms, tflops, density,
                static_cast<double>(s.visited) / static_cast<double>(s.total));
    std::fflush(stdout);
    if (json) {
      std::fprintf(json, "%s{\"kind\":\"bench\",\"impl\":\"splash\",\"mask\":\"%s\",\"path\":\"%s\",\"ms\":%.4f,"
                   "\"tflops\":%.2f,\"allowedPairs\":%lld,\"S\":%lld,\"H\":%lld,\"D\":%lld}",
                   *first_json ? "" : ",\n", pr.name, r.info.path.c_str(), ms, tflops, static_cast<long long>(pairs),
                   static_cast<long long>(S), static_cast<long long>(H), static_cast<long long>(D));
      *first_json = false;
    }
  }
  return failed;
}

}  // namespace

#include "gpu_backward_cases.h"

int main(int argc, char** argv) {
  bool check = false, bench = false, quick = false, use_ref = false, backward = true;
  int device = 0;
  const char* json_path = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--check") check = true;
    else if (a == "--bench") bench = true;
    else if (a == "--quick") quick = true;
    else if (a == "--no-backward") backward = false;
    else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (a == "--device" && i + 1 < argc) device = std::atoi(argv[++i]);
    else if (a == "--oracle" && i + 1 < argc) use_ref = std::string(argv[++i]) == "ref";
    else {
      std::fprintf(stderr, "usage: %s [--check] [--bench] [--quick] [--no-backward] [--json FILE] [--device N] [--oracle cpu|ref]\n", argv[0]);
      return 2;
    }
  }
  if (!check && !bench) check = true;
  std::string desc;
  const gpu::Status st = gpu::describe_device(device, &desc);
  if (!st.ok()) {
    std::printf("no usable %s device: %s\n", gpu::backend_name(), st.message.c_str());
    return 3;
  }
  std::printf("device %d: %s (%s)\n", device, desc.c_str(), gpu::backend_name());
  FILE* json = json_path ? std::fopen(json_path, "w") : nullptr;
  bool first = true;
  if (json) std::fprintf(json, "{\"device\":\"%s\",\"results\":[\n", desc.c_str());
  int failed = 0;
  if (check) failed += run_check(device, quick, use_ref, json, &first);
  if (check && backward) failed += run_bwd_check(device, quick, use_ref, json, &first);
  if (bench) failed += run_bench(device, json, &first);
  if (bench && backward) failed += run_bwd_bench(device, json, &first);
  if (json) {
    std::fprintf(json, "\n]}\n");
    std::fclose(json);
  }
  std::printf("%s\n", failed == 0 ? "ALL PASSED" : "SOME FAILED");
  return failed == 0 ? 0 : 1;
}
