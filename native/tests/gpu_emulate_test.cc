// The GPU forward kernels (both the SIMT and the tensor-core one, from their real source) run on the
// CPU through native/tests/emulate.h and are compared with the CPU forward kernel on a small grid of the
// splash cases. Host-side launch planning is the launcher's own (plan.h): kernel choice, work order,
// packed dense blocks, segment ranges, the kernel argument block. What this cannot show: timing, real
// concurrency between warps, and whether the hardware agrees with the PTX ISA's fragment layouts as
// emulate.h restates them.
//
// The backward kernels (bwd_simt.cuh: di, dq, dk/dv, fused, dq cast; bwd_mma_sm80.cuh: the
// tensor-core dq, dk/dv and fused steps) run the same way through the launch sequence of launch.cu's
// backward, split (twice, compared bitwise) and fused, against the CPU
// backward or bwd_harness.h's double-precision reference.
//
//   splash_gpu_emulate_tests [--quick] [--backward-only] [--oracle cpu|ref] [--shard K/N]
// --shard K/N runs the cases whose index is K modulo N (and the launch-limit checks in shard 0), so that
// N processes share the grid between cores.
#define SPLASH_GPU_EMULATE 1
// The emulator's fibers switch stacks with siglongjmp, which glibc's fortified longjmp check would take
// for a jump into a dead frame; it must be off before the first system header.
#undef _FORTIFY_SOURCE

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "../gpu/bwd_mma_sm80.cuh"
#include "../gpu/bwd_plan.h"
#include "../gpu/bwd_simt.cuh"
#include "../gpu/fwd_mma_sm80.cuh"
#include "../gpu/fwd_simt.cuh"
#include "../gpu/plan.h"
#include "bwd_harness.h"
#include "harness.h"

namespace {

using namespace harness;  // NOLINT: the harness is this file's vocabulary
namespace g = splash::gpu;

template <class T>
void run_simt(int bucket, const g::FwdKernelParams& kp) {
  switch (bucket) {
    case 64: g::fwd_simt_kernel<T, 64>(kp); break;
    case 128: g::fwd_simt_kernel<T, 128>(kp); break;
    default: g::fwd_simt_kernel<T, 256>(kp); break;
  }
}

template <class T>
void run_mma(int d, const g::FwdKernelParams& kp) {
  switch (d) {
    case 32: g::mma::fwd_mma_kernel<T, 32>(kp); break;
    case 64: g::mma::fwd_mma_kernel<T, 64>(kp); break;
    case 96: g::mma::fwd_mma_kernel<T, 96>(kp); break;
    case 128: g::mma::fwd_mma_kernel<T, 128>(kp); break;
    case 192: g::mma::fwd_mma_kernel<T, 192>(kp); break;
    default: g::mma::fwd_mma_kernel<T, 256>(kp); break;
  }
}

struct EmuRun {
  std::string error;
  std::string path;
  HostTensor out;
  std::vector<float> lse;
};

EmuRun emulate(const Case& c, const Inputs& in, const HostSchedule& s) {
  EmuRun r;
  r.out.init(c.dtype, static_cast<size_t>(c.batch * c.heads * c.q_seq * c.dv));
  std::fill(r.out.bytes.begin(), r.out.bytes.end(), 0xff);  // poison
  r.lse.assign(static_cast<size_t>(c.batch * c.heads * c.q_seq), std::numeric_limits<float>::quiet_NaN());

  AttentionParams p = make_params(c, in);
  p.q.ptr = const_cast<uint8_t*>(in.q.bytes.data());
  p.k.ptr = const_cast<uint8_t*>(in.k.bytes.data());
  p.v.ptr = const_cast<uint8_t*>(in.v.bytes.data());
  p.out.ptr = r.out.bytes.data();
  p.lse.ptr = r.lse.data();

  // What upload_schedule puts on the device: the same arrays, dense blocks packed to bits.
  const ScheduleView host = s.view();
  const std::string problem = g::validate_schedule(host);
  if (!problem.empty()) {
    r.error = problem;
    return r;
  }
  std::vector<uint32_t> bits =
      host.num_partial > 0 ? g::pack_mask_bits(host.partial_mask_blocks, host.num_partial, host.block_q, host.block_kv)
                           : std::vector<uint32_t>();
  std::vector<int32_t> mask_ref(host.col_mask_ref, host.col_mask_ref + host.nnz);
  const int64_t materialized = g::materialize_deep_programs(host, &mask_ref, &bits);
  p.fwd = host;
  p.fwd.col_mask_ref = mask_ref.data();
  p.fwd.num_partial += materialized;
  p.fwd.partial_mask_blocks = reinterpret_cast<const uint8_t*>(bits.data());

  g::DeviceCaps caps{};
  caps.cc_major = 9;
  caps.max_smem_per_block = 227 * 1024;
  caps.multiprocessors = 132;
  caps.max_grid_y = 65535;
  const g::FwdPath force = c.path == g::ForcePath::kSimt ? g::FwdPath::Simt
                           : c.path == g::ForcePath::kMma ? g::FwdPath::Mma
                                                          : g::FwdPath::None;
  const g::FwdPlan plan = g::plan_forward(p, caps, force);
  if (!plan.error.empty()) {
    r.error = plan.error;
    return r;
  }
  r.path = g::path_name(plan.path);
  const std::vector<int32_t> work = g::work_order(host.row_ptr, host.num_schedules, host.rows_per_schedule,
                                                  host.block_q, c.q_seq, plan.tile_m, plan.tiles_per_qblock);
  g::FwdKernelParams kp = g::make_fwd_kernel_params(p, plan, work.data(), static_cast<int32_t>(work.size()));
  std::vector<int32_t> ranges;
  if (!in.seg_q.empty()) {
    ranges = g::segment_block_ranges(in.seg_kv.data(), c.batch, c.kv_seq, host.block_kv);
    kp.seg_q = in.seg_q.data();
    kp.seg_kv = in.seg_kv.data();
    kp.kv_block_seg = ranges.data();
  }
  kp.sinks = in.sinks.empty() ? nullptr : in.sinks.data();  // launch.cu's device copy of the host array
  const dim3 grid(static_cast<unsigned>(work.size() * c.heads), static_cast<unsigned>(c.batch), 1);
  try {
    g::emu::launch(grid, plan.threads, static_cast<size_t>(plan.smem_bytes), [&]() {
      if (plan.path == g::FwdPath::Simt) {
        if (c.dtype == DType::F32) run_simt<g::F32>(plan.bucket, kp);
        else if (c.dtype == DType::BF16) run_simt<g::BF16>(plan.bucket, kp);
        else run_simt<g::F16>(plan.bucket, kp);
      } else {
        if (c.dtype == DType::BF16) run_mma<g::BF16>(plan.bucket, kp);
        else run_mma<g::F16>(plan.bucket, kp);
      }
    });
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  return r;
}

// ---- backward ---------------------------------------------------------------------------------------------

template <class T>
void run_bwd_simt_step(g::BwdStep step, int bucket, const g::BwdKernelParams& bp) {
  namespace k = g::bwd;
  switch (step) {
    case g::BwdStep::kDi: k::bwd_di_kernel<T>(bp); return;
    case g::BwdStep::kCast: k::bwd_dq_cast_kernel<T>(bp); return;
    case g::BwdStep::kDsinks: k::bwd_dsinks_kernel<T>(bp); return;
    default: break;
  }
  const bool dq = step == g::BwdStep::kDq, fused = step == g::BwdStep::kFused;
  switch (bucket) {
    case 64: dq ? k::bwd_dq_simt_kernel<T, 64>(bp) : fused ? k::bwd_dkv_simt_kernel<T, 64, true>(bp) : k::bwd_dkv_simt_kernel<T, 64, false>(bp); break;
    case 128: dq ? k::bwd_dq_simt_kernel<T, 128>(bp) : fused ? k::bwd_dkv_simt_kernel<T, 128, true>(bp) : k::bwd_dkv_simt_kernel<T, 128, false>(bp); break;
    default: dq ? k::bwd_dq_simt_kernel<T, 256>(bp) : fused ? k::bwd_dkv_simt_kernel<T, 256, true>(bp) : k::bwd_dkv_simt_kernel<T, 256, false>(bp); break;
  }
}

// One tensor-core step as launch_bwd_mma_t launches it; `part` picks the launch of a two-kernel dk/dv
// pass (0: dV, 1: dK and the fused dQ).
template <class T, int D>
void run_bwd_mma_d(g::BwdStep step, int part, const g::BwdKernelParams& bp) {
  const bool fused = step == g::BwdStep::kFused;
  if (step == g::BwdStep::kDq) {
    g::mma::bwd_dq_mma_kernel<T, D>(bp);
  } else if constexpr (g::bwd_mma_dkv_in_two(D)) {
    if (part == 0) g::mma::bwd_dkv_mma_kernel<T, D, false, true, false>(bp);
    else if (fused) g::mma::bwd_dkv_mma_kernel<T, D, true, false, true>(bp);
    else g::mma::bwd_dkv_mma_kernel<T, D, false, false, true>(bp);
  } else {
    if (fused) g::mma::bwd_dkv_mma_kernel<T, D, true>(bp);
    else g::mma::bwd_dkv_mma_kernel<T, D, false>(bp);
  }
}

// One backward step as launch.cu's launch_bwd dispatches it (di, the dq cast and dsinks are SIMT either way).
template <class T>
void run_bwd_step(const g::BwdPlan& plan, g::BwdStep step, int part, const g::BwdKernelParams& bp) {
  if (plan.path == g::FwdPath::Simt || step == g::BwdStep::kDi || step == g::BwdStep::kCast ||
      step == g::BwdStep::kDsinks) {
    run_bwd_simt_step<T>(step, plan.bucket, bp);
    return;
  }
  if constexpr (T::kDType == DType::F32) {
    throw std::runtime_error("no tensor-core backward for f32");
  } else {
    switch (plan.bucket) {
      case 32: run_bwd_mma_d<T, 32>(step, part, bp); break;
      case 64: run_bwd_mma_d<T, 64>(step, part, bp); break;
      case 96: run_bwd_mma_d<T, 96>(step, part, bp); break;
      case 128: run_bwd_mma_d<T, 128>(step, part, bp); break;
      case 192: run_bwd_mma_d<T, 192>(step, part, bp); break;
      default: run_bwd_mma_d<T, 256>(step, part, bp); break;
    }
  }
}

// A schedule as upload_schedule leaves it: dense blocks packed, deep programs materialised.
struct DeviceView {
  std::vector<uint32_t> bits;
  std::vector<int32_t> mask_ref;
  ScheduleView view{};
  std::string error;
  explicit DeviceView(const ScheduleView& host) {
    error = g::validate_schedule(host);
    if (!error.empty()) return;
    bits = host.num_partial > 0 ? g::pack_mask_bits(host.partial_mask_blocks, host.num_partial, host.block_q, host.block_kv)
                                : std::vector<uint32_t>();
    mask_ref.assign(host.col_mask_ref, host.col_mask_ref + host.nnz);
    const int64_t added = g::materialize_deep_programs(host, &mask_ref, &bits);
    view = host;
    view.col_mask_ref = mask_ref.data();
    view.num_partial += added;
    view.partial_mask_blocks = reinterpret_cast<const uint8_t*>(bits.data());
  }
};

// The launch sequence of launch.cu's backward, on the emulator. Outputs start poisoned (NaN).
std::string emulate_backward(const Case& c, const Inputs& in, const BwdInputs& bi, const HostSchedule& s, bool fused,
                             Grads* out, std::string* path) {
  out->init(c);
  out->poison();
  AttentionParams p = make_bwd_params(c, in, bi, out, fused);
  const DkvSchedule dkv_host(s);
  const DeviceView dq_dev(s.view()), dkv_dev(dkv_host.view());
  if (!dq_dev.error.empty()) return dq_dev.error;
  if (!dkv_dev.error.empty()) return dkv_dev.error;
  p.fwd = dq_dev.view;
  p.dq_sched = fused ? ScheduleView{} : dq_dev.view;
  p.dkv_sched = dkv_dev.view;
  g::DeviceCaps caps{};
  caps.hip = false;
  caps.cc_major = 9;
  caps.max_smem_per_block = 99 * 1024;  // the opt-in limit of sm_86 / sm_89, the smallest of sm_80+
  caps.multiprocessors = 132;
  caps.max_grid_y = 65535;
  const g::FwdPath force = c.path == g::ForcePath::kSimt ? g::FwdPath::Simt
                           : c.path == g::ForcePath::kMma ? g::FwdPath::Mma
                                                          : g::FwdPath::None;
  const g::BwdPlan plan = g::plan_backward(p, caps, force);
  if (!plan.error.empty()) return plan.error;
  *path = g::path_name(plan.path);
  if (plan.path == g::FwdPath::Simt && std::max(plan.dq_smem, plan.dkv_smem) > 64 * 1024) {
    return "the SIMT backward kernels must fit HIP's 64 KiB of LDS";
  }

  std::vector<float> di(static_cast<size_t>(c.batch * c.heads * c.q_seq), std::numeric_limits<float>::quiet_NaN());
  std::vector<float> dq_acc(fused ? static_cast<size_t>(c.batch * c.heads * c.q_seq * c.d) : 0, 0.f);
  std::vector<int32_t> kv_ranges, q_ranges;
  // Launch orders as launch.cu makes them: work_order over each pass's schedule rows.
  const std::vector<int32_t> dq_work =
      fused ? std::vector<int32_t>()
            : g::work_order(p.dq_sched.row_ptr, p.dq_sched.num_schedules, p.dq_sched.rows_per_schedule,
                            p.dq_sched.block_q, c.q_seq, plan.dq_rows, plan.dq_tiles_per_block);
  const std::vector<int32_t> dkv_work =
      g::work_order(p.dkv_sched.row_ptr, p.dkv_sched.num_schedules, p.dkv_sched.rows_per_schedule,
                    p.dkv_sched.block_kv, c.kv_seq, plan.dkv_keys, plan.dkv_tiles_per_block);
  auto params = [&](const ScheduleView& sv, bool dkv_pass) {
    g::BwdKernelParams bp = g::make_bwd_kernel_params(p, plan, sv, dkv_pass);
    bp.s.work = dkv_pass ? dkv_work.data() : dq_work.data();
    bp.s.num_work = static_cast<int32_t>(dkv_pass ? dkv_work.size() : dq_work.size());
    bp.di = di.data();
    bp.dq_acc = fused ? dq_acc.data() : nullptr;
    if (!in.sinks.empty()) {  // as launch.cu: the sinks' device copy and the dsinks output
      bp.s.sinks = in.sinks.data();
      bp.dsinks = p.dsinks;
    }
    if (!in.seg_q.empty()) {
      bp.s.seg_q = in.seg_q.data();
      bp.s.seg_kv = in.seg_kv.data();
      if (dkv_pass) {
        q_ranges = g::segment_block_ranges(in.seg_q.data(), c.batch, c.q_seq, sv.block_q);
        bp.q_block_seg = q_ranges.data();
      } else {
        kv_ranges = g::segment_block_ranges(in.seg_kv.data(), c.batch, c.kv_seq, sv.block_kv);
        bp.s.kv_block_seg = kv_ranges.data();
      }
    }
    return bp;
  };
  auto run = [&](g::BwdStep step, const g::BwdKernelParams& bp, int64_t grid_x, size_t smem) {
    const int threads = g::bwd::kThreads;  // == kMmaThreads
    const bool two = plan.path == g::FwdPath::Mma && g::bwd_mma_dkv_in_two(plan.bucket) &&
                     (step == g::BwdStep::kDkv || step == g::BwdStep::kFused);
    for (int part = 0; part < (two ? 2 : 1); ++part) {
      g::emu::launch(dim3(static_cast<unsigned>(grid_x), static_cast<unsigned>(c.batch), 1), threads, smem, [&]() {
        if (c.dtype == DType::F32) run_bwd_step<g::F32>(plan, step, part, bp);
        else if (c.dtype == DType::BF16) run_bwd_step<g::BF16>(plan, step, part, bp);
        else run_bwd_step<g::F16>(plan, step, part, bp);
      });
    }
  };
  try {
    const g::BwdKernelParams dkv_bp = params(p.dkv_sched, true);
    run(g::BwdStep::kDi, dkv_bp, plan.di_grid_x, 0);
    if (fused) {
      run(g::BwdStep::kFused, dkv_bp, static_cast<int64_t>(dkv_work.size()) * c.kv_heads,
          static_cast<size_t>(plan.dkv_smem));
      run(g::BwdStep::kCast, dkv_bp, plan.cast_grid_x, 0);
    } else {
      run(g::BwdStep::kDq, params(p.dq_sched, false), static_cast<int64_t>(dq_work.size()) * c.heads,
          static_cast<size_t>(plan.dq_smem));
      run(g::BwdStep::kDkv, dkv_bp, static_cast<int64_t>(dkv_work.size()) * c.kv_heads,
          static_cast<size_t>(plan.dkv_smem));
    }
    if (p.dsinks != nullptr) {  // after every di, one CTA per head (launch.cu)
      g::BwdKernelParams bp = dkv_bp;
      bp.s.batch_offset = 0;
      g::emu::launch(dim3(static_cast<unsigned>(c.heads), 1, 1), g::bwd::kThreads, g::kBwdDsinksSmem, [&]() {
        if (c.dtype == DType::F32) run_bwd_step<g::F32>(plan, g::BwdStep::kDsinks, 0, bp);
        else if (c.dtype == DType::BF16) run_bwd_step<g::BF16>(plan, g::BwdStep::kDsinks, 0, bp);
        else run_bwd_step<g::F16>(plan, g::BwdStep::kDsinks, 0, bp);
      });
    }
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// ---- launch limits ------------------------------------------------------------------------------------------

// Backward plans of calls far too large to emulate (only their sizes are read): the element-wise
// kernels' grids stay capped, and on HIP a grid whose blocks x threads reach 2^32 is a RangeError.
int check_grid_limits() {
  auto plan_of = [](bool hip, int64_t heads, int64_t seq, int64_t d) {
    AttentionParams p{};
    p.batch = 1;
    p.heads = p.kv_heads = heads;
    p.q_seq = p.kv_seq = seq;
    p.head_dim = p.head_dim_v = d;
    p.fused_bwd = 1;
    p.mask_value = -1e30f;
    void* const fake = reinterpret_cast<void*>(uintptr_t{1} << 20);  // never dereferenced by planning
    for (splash::TensorRef* t : {&p.q, &p.k, &p.v, &p.out, &p.dout, &p.dq, &p.dk, &p.dv}) {
      contiguous(t, DType::F16, heads, seq, d);
      t->ptr = fake;
    }
    p.lse.ptr = fake;
    ScheduleView sv{};
    sv.heads = 1;
    sv.block_q = sv.block_kv = 128;
    sv.q_blocks = sv.kv_blocks = static_cast<int32_t>((seq + 127) / 128);
    sv.rows_per_schedule = sv.kv_blocks;
    sv.is_dkv = 1;
    p.dkv_sched = sv;
    g::DeviceCaps caps{};
    caps.hip = hip;
    caps.cc_major = hip ? 0 : 9;
    caps.max_smem_per_block = hip ? 64 * 1024 : 227 * 1024;
    caps.multiprocessors = hip ? 304 : 132;
    caps.max_grid_y = 65535;
    return g::plan_backward(p, caps, g::FwdPath::Simt);
  };
  int failed = 0;
  auto expect = [&failed](bool ok, const std::string& what) {
    std::printf("%-88s %s\n", what.c_str(), ok ? "PASS" : "FAIL");
    if (!ok) ++failed;
  };
  constexpr int64_t kThreads32 = int64_t{1} << 32;
  // H 64, S 262144, D 256: 2^32 dq elements, which an uncapped one-per-thread cast grid would need.
  const g::BwdPlan big = plan_of(true, 64, 262144, 256);
  expect(big.error.empty(), "HIP plan of H 64, S 262144, D 256 (2^32 dq elements) is accepted" +
                                (big.error.empty() ? std::string() : ": " + big.error));
  expect(big.cast_grid_x * 128 < kThreads32 && big.di_grid_x * 128 < kThreads32 && big.cast_grid_x >= 1,
         "its dq cast and di grids: " + std::to_string(big.cast_grid_x) + " and " + std::to_string(big.di_grid_x) +
             " blocks of 128, under 2^32 threads");
  // H 512, S 2^23, D 32: 2^26 kv tiles x kv heads of the fused SIMT kernel (64 keys each): 2^33 threads.
  const g::BwdPlan hip_wide = plan_of(true, 512, int64_t{1} << 23, 32);
  expect(hip_wide.range_error && hip_wide.error.find("grid exceeds") != std::string::npos,
         "HIP: a 2^26-block backward grid is a RangeError (" + hip_wide.error + ")");
  const g::BwdPlan cuda_wide = plan_of(false, 512, int64_t{1} << 23, 32);
  expect(cuda_wide.error.empty(), "CUDA: the same grid is accepted" + (cuda_wide.error.empty() ? std::string() : ": " + cuda_wide.error));
  return failed;
}

// di and the dq cast launched with fewer blocks than their items need (1 and 3 instead of the plan's):
// the grid-stride loops must still write every item, with the same bits.
int check_elementwise_grids() {
  Case c = make_case("grid stride", DType::F16, 64, 300, causal_mask());
  c.batch = 2;
  c.heads = 3;
  c.kv_heads = 1;
  const HostSchedule s = build_schedule(c.masks, c.q_seq, c.kv_seq, c.block_q, c.block_kv);
  const Inputs in = make_inputs(c, 41);
  const BwdInputs bi = make_bwd_inputs(c, in, s, 42);
  Grads grads;
  grads.init(c);
  AttentionParams p = make_bwd_params(c, in, bi, &grads, true);
  const DkvSchedule dkv(s);
  p.dkv_sched = dkv.view();
  g::DeviceCaps caps{};
  caps.hip = true;
  caps.max_smem_per_block = 64 * 1024;
  caps.max_grid_y = 65535;
  const g::BwdPlan plan = g::plan_backward(p, caps, g::FwdPath::Simt);
  if (!plan.error.empty()) {
    std::printf("element-wise grids: %s FAIL\n", plan.error.c_str());
    return 1;
  }
  g::BwdKernelParams bp = g::make_bwd_kernel_params(p, plan, p.dkv_sched, true);
  const size_t rows = static_cast<size_t>(c.batch * c.heads * c.q_seq);
  std::vector<float> di(rows), acc(grads.dq.count);
  for (size_t i = 0; i < acc.size(); ++i) acc[i] = std::sin(static_cast<float>(i)) * 3.f;
  bp.di = di.data();
  bp.dq_acc = acc.data();
  std::vector<float> want_di;
  std::vector<uint8_t> want_dq;
  int failed = 0;
  for (const int64_t blocks : {int64_t{0}, int64_t{1}, int64_t{3}}) {  // 0: the plan's grids
    std::fill(di.begin(), di.end(), std::numeric_limits<float>::quiet_NaN());
    grads.poison();
    const unsigned di_blocks = static_cast<unsigned>(blocks > 0 ? blocks : plan.di_grid_x);
    const unsigned cast_blocks = static_cast<unsigned>(blocks > 0 ? blocks : plan.cast_grid_x);
    g::emu::launch(dim3(di_blocks, static_cast<unsigned>(c.batch), 1), g::bwd::kThreads, 0,
                   [&]() { g::bwd::bwd_di_kernel<g::F16>(bp); });
    g::emu::launch(dim3(cast_blocks, static_cast<unsigned>(c.batch), 1), g::bwd::kThreads, 0,
                   [&]() { g::bwd::bwd_dq_cast_kernel<g::F16>(bp); });
    if (want_di.empty()) {
      want_di = di;
      want_dq = grads.dq.bytes;
    }
    bool ok = std::memcmp(di.data(), want_di.data(), rows * sizeof(float)) == 0 && grads.dq.bytes == want_dq;
    for (size_t i = 0; i < rows && ok; ++i) ok = !std::isnan(di[i]);
    for (size_t i = 0; i < grads.dq.count && ok; ++i) ok = grads.dq.get(i) == f16_to_f32(f32_to_f16(acc[i]));
    std::printf("%-88s %s\n",
                ("di and dq cast with " + std::to_string(di_blocks) + " and " + std::to_string(cast_blocks) +
                 " block(s) per batch entry" + (blocks > 0 ? "" : " (the plan's)"))
                    .c_str(),
                ok ? "PASS" : "FAIL");
    if (!ok) ++failed;
  }
  return failed;
}

std::vector<Case> bwd_grid(bool quick) {
  std::vector<Case> v;
  auto one = [](Case c) {
    c.heads = c.kv_heads = 1;
    return c;
  };
  for (DType t : {DType::F32, DType::BF16, DType::F16}) v.push_back(one(make_case("causal", t, 64, 100, causal_mask())));
  v.push_back(one(make_case("causal", DType::BF16, 128, 70, causal_mask())));
  v.push_back(one(make_case("full", DType::F32, 256, 40, full_mask())));
  v.push_back(one(make_case("random", DType::BF16, 64, 96, random_mask(96, 96, 0.5, 3))));
  v.push_back(one(make_case("local", DType::F16, 64, 120, local_mask(30, 10))));
  v.push_back(one(make_case("chunked", DType::F32, 64, 110, chunked_mask(40))));
  v.push_back(one(make_case("deep program", DType::F32, 64, 80, deep_mask(10))));
  Case c = one(make_case("docs+orphans", DType::F32, 64, 100, causal_mask()));
  c.batch = 2;
  c.docs = 3;
  c.orphan_rows = true;
  v.push_back(c);
  c = one(make_case("softcap", DType::F32, 64, 70, causal_mask()));
  c.soft_cap = 2.f;
  v.push_back(c);
  c = make_case("gqa 4/2", DType::BF16, 64, 70, causal_mask());
  c.heads = 4;
  c.kv_heads = 2;
  v.push_back(c);
  c = make_case("mqa 3/1", DType::F32, 64, 50, full_mask());
  c.heads = 3;
  c.kv_heads = 1;
  v.push_back(c);
  c = one(make_case("blocks 48x40", DType::F32, 64, 130, random_mask(130, 130, 0.4, 5)));
  c.block_q = 48;
  c.block_kv = 40;
  v.push_back(c);
  c = one(make_case("maskValue -3", DType::F32, 64, 64, random_mask(64, 64, 0.6, 6)));
  c.mask_value = -3.f;
  c.block_q = c.block_kv = 32;
  v.push_back(c);
  c = one(make_case("sq 40 skv 90", DType::F32, 64, 40, causal_mask(50)));
  c.kv_seq = 90;
  c.block_q = c.block_kv = 32;
  v.push_back(c);
  c = one(make_case("empty rows", DType::F32, 64, 96, causal_mask(-40)));
  c.block_q = c.block_kv = 32;
  v.push_back(c);
  c = one(make_case("dv 64", DType::F32, 128, 40, causal_mask()));
  c.dv = 64;
  v.push_back(c);
  c = make_case("multihead", DType::F32, 64, 64, causal_mask());
  c.heads = c.kv_heads = 2;
  c.masks = {local_mask(20, 0), random_mask(64, 64, 0.7, 4)};
  c.block_q = c.block_kv = 32;
  v.push_back(c);
  // bf16 / f16 above run the tensor-core backward where it applies (head dims up to 128); these add
  // its other head dims and edge cases, and keep the SIMT kernels covered for 16-bit dtypes.
  c = one(make_case("causal simt", DType::BF16, 64, 100, causal_mask()));
  c.path = g::ForcePath::kSimt;
  v.push_back(c);
  c = one(make_case("d32", DType::F16, 32, 90, causal_mask()));
  v.push_back(c);
  c = one(make_case("d96 48x40", DType::F16, 96, 130, random_mask(130, 130, 0.4, 7)));
  c.block_q = 48;
  c.block_kv = 40;
  v.push_back(c);
  c = one(make_case("docs+orphans", DType::BF16, 64, 100, causal_mask()));
  c.batch = 2;
  c.docs = 3;
  c.orphan_rows = true;
  v.push_back(c);
  c = one(make_case("softcap", DType::F16, 128, 70, causal_mask()));
  c.soft_cap = 2.f;
  v.push_back(c);
  c = one(make_case("maskValue -3", DType::BF16, 32, 64, random_mask(64, 64, 0.6, 8)));
  c.mask_value = -3.f;
  c.block_q = c.block_kv = 32;
  v.push_back(c);
  // Finite mask values below about -89 with rows whose first visited block is fully masked, on the
  // tensor-core (bf16) and SIMT (f32, forced-SIMT f16) kernels.
  for (const FiniteMaskValue& mv : kFiniteMaskValues) {
    for (DType t : {DType::BF16, DType::F16, DType::F32}) {
      c = one(make_case(std::string("maskValue ") + mv.label, t, 64, 96, local_mask(10, 0)));
      c.mask_value = mv.value;
      c.block_q = c.block_kv = 32;
      if (t == DType::F16) c.path = g::ForcePath::kSimt;
      v.push_back(c);
    }
  }
  // Packed documents with a finite mask value (see kSegmentMaskValues), full and partial masks, on the
  // SIMT (f32) and tensor-core (bf16) backward.
  for (const FiniteMaskValue& mv : kSegmentMaskValues) {
    for (DType t : {DType::F32, DType::BF16}) {
      for (const bool causal : {false, true}) {
        c = one(make_case(std::string("docs mv ") + mv.label, t, 64, 160, causal ? causal_mask() : full_mask()));
        c.docs = 3;
        c.block_q = c.block_kv = 32;
        c.mask_value = mv.value;
        v.push_back(c);
      }
    }
  }
  // f16 with a loss-scaled dout: dS = p (dp - di) reaches ~1e5, past f16's 65504, while dq, dk and dv
  // stay in range (small q and k, two keys per row); tensor-core and SIMT kernels, d 64 and d 192.
  for (int64_t d : {64, 192}) {
    for (g::ForcePath path : {g::ForcePath::kAuto, g::ForcePath::kSimt}) {
      c = one(make_case("f16 dout x8192", DType::F16, d, 96, local_mask(1, 0)));
      c.q_scale = c.k_scale = 1.f / 16;
      c.dout_scale = 8192.f;
      c.path = path;
      v.push_back(c);
    }
  }
  c = one(make_case("sq 40 skv 90", DType::F16, 64, 40, causal_mask(50)));
  c.kv_seq = 90;
  c.block_q = c.block_kv = 32;
  v.push_back(c);
  c = make_case("mqa 3/1", DType::F16, 128, 50, full_mask());
  c.heads = 3;
  c.kv_heads = 1;
  v.push_back(c);
  c = make_case("multihead", DType::BF16, 64, 64, causal_mask());
  c.heads = c.kv_heads = 2;
  c.masks = {local_mask(20, 0), random_mask(64, 64, 0.7, 9)};
  c.block_q = c.block_kv = 32;
  v.push_back(c);
  c = one(make_case("deep program", DType::F16, 64, 80, deep_mask(10)));
  v.push_back(c);
  c = one(make_case("empty rows", DType::BF16, 128, 96, causal_mask(-40)));
  c.block_q = c.block_kv = 32;
  v.push_back(c);
  c = make_case("full blocks", DType::F16, 64, 256, causal_mask());  // whole 64-key tiles of full blocks
  c.heads = 2;
  c.kv_heads = 1;
  v.push_back(c);
  c = make_case("d256 cap gqa", DType::BF16, 256, 90, local_mask(40, 0));  // Gemma-like: d 256, soft cap
  c.soft_cap = 30.f;
  c.heads = 2;
  c.kv_heads = 1;
  v.push_back(c);
  c = one(make_case("d192 docs", DType::F16, 192, 100, causal_mask()));
  c.docs = 3;
  c.orphan_rows = true;
  v.push_back(c);
  // Scale and sinks: scale 1/sqrt(D) on unscaled q (q_scale 4: standard logits at d 64) and 0.3, crossed
  // with sinks, soft cap, masks, GQA / MQA and segment ids, f32 (SIMT) and bf16 / f16 (tensor-core, and
  // SIMT forced); rows with no allowed key have the sink as lse. dsinks is checked against the double sum
  // from the residuals.
  for (DType t : {DType::F32, DType::BF16}) {
    c = make_case("sinks gqa 1/8", t, 64, 70, causal_mask());
    c.heads = 4;
    c.kv_heads = 2;
    c.q_scale = 4.f;
    c.scale = 0.125f;
    c.sinks = true;
    v.push_back(c);
    c = make_case("sinks docs+orph", t, 64, 100, causal_mask());
    c.batch = 2;
    c.heads = 2;
    c.kv_heads = 1;
    c.docs = 3;
    c.orphan_rows = true;
    c.scale = 0.3f;
    c.sinks = true;
    v.push_back(c);
  }
  for (g::ForcePath path : {g::ForcePath::kAuto, g::ForcePath::kSimt}) {
    c = one(make_case("sinks cap .3", DType::F16, 64, 120, local_mask(30, 10)));
    c.scale = 0.3f;
    c.soft_cap = 2.f;
    c.sinks = true;
    c.path = path;
    v.push_back(c);
  }
  c = one(make_case("sinks rand .3", DType::BF16, 64, 96, random_mask(96, 96, 0.5, 3)));
  c.scale = 0.3f;
  c.sinks = true;
  c.path = g::ForcePath::kSimt;
  v.push_back(c);
  c = make_case("sinks multihead", DType::F32, 64, 64, causal_mask());
  c.heads = c.kv_heads = 2;
  c.masks = {local_mask(20, 0), random_mask(64, 64, 0.7, 4)};
  c.block_q = c.block_kv = 32;
  c.scale = 0.3f;
  c.sinks = true;
  v.push_back(c);
  c = one(make_case("sinks empty rows", DType::BF16, 64, 96, causal_mask(-40)));
  c.block_q = c.block_kv = 32;
  c.sinks = true;
  v.push_back(c);
  c = one(make_case("sinks mv -3", DType::F32, 64, 64, random_mask(64, 64, 0.6, 6)));
  c.mask_value = -3.f;
  c.block_q = c.block_kv = 32;
  c.sinks = true;
  v.push_back(c);
  c = make_case("scale .3 mqa", DType::F16, 128, 50, full_mask());
  c.heads = 3;
  c.kv_heads = 1;
  c.scale = 0.3f;
  v.push_back(c);
  c = one(make_case("sinks d192 .3", DType::F16, 192, 100, causal_mask()));
  c.scale = 0.3f;
  c.sinks = true;
  v.push_back(c);
  if (!quick) {
    c = one(make_case("causal simt", DType::BF16, 256, 60, causal_mask()));
    c.path = g::ForcePath::kSimt;
    v.push_back(c);
    c = one(make_case("d256 blocks", DType::F16, 256, 200, random_mask(200, 200, 0.5, 10)));
    c.block_q = 64;
    c.block_kv = 80;
    v.push_back(c);
    c = one(make_case("2 tiles/block", DType::BF16, 128, 300, local_mask(90, 30)));
    c.block_q = c.block_kv = 256;
    v.push_back(c);
  }
  return v;
}

// Tolerances of the emulated kernels (relative norm against the oracle): 4x the largest error measured
// over the full grid against both oracles (CPU kernels and float64 reference), 2026-11-30:
//   forward out      f32 6.9e-7   bf16 2.5e-3   f16 2.0e-4   (bf16 / f16: the output's one rounding)
//   logsumexp        1.2e-7 in every dtype (always f32)
//   backward         f32 1.2e-6   bf16 3.1e-3   f16 3.8e-4   (the worst of dq, dk and dv)
// The scale and sinks cases added later measured within these, but for f16 forward out: 3.2e-4 (a 0.3
// scale with a soft cap: nearly uniform weights, P's f16 rounding shows), 2.5x below its bound. The
// emulator is deterministic, so that margin cannot flake.
// gpu_forward_test.cc keeps the harness's wider bounds for hardware until a GPU has been measured.
double emu_out_tolerance(DType t) { return t == DType::BF16 ? 1e-2 : t == DType::F16 ? 8e-4 : 3e-6; }
constexpr double kEmuLseTolerance = 5e-7;
double emu_grad_tolerance(DType t) { return t == DType::BF16 ? 1.25e-2 : t == DType::F16 ? 1.5e-3 : 5e-6; }

// Which cases a process runs (--shard K/N): index % count == index_mod.
struct Shard {
  int64_t index = 0, count = 1;
  bool has(size_t i) const { return static_cast<int64_t>(i) % count == index; }
};

// Every backward case of the shard split and fused; the split one twice, bitwise compared.
int run_backward(bool quick, bool use_ref, const Shard& shard, int* ran) {
  const std::vector<Case> cases = bwd_grid(quick);
  std::printf("\n%-16s %-5s %4s %-14s %-8s %5s %-5s %-4s %9s %9s %9s %9s %7s %5s  %s\n", "backward case", "dtype",
              "D", "mask", "BxHxHkv", "S", "mode", "path", "dq err", "dk err", "dv err", "dsink err", "tol", "unwr",
              "result");
  int failed = 0, total = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    if (!shard.has(i)) continue;
    const Case& c = cases[i];
    const HostSchedule s = build_schedule(c.masks, c.q_seq, c.kv_seq, c.block_q, c.block_kv);
    const Inputs in = make_inputs(c, static_cast<uint32_t>(900 + i));
    const BwdInputs bi = make_bwd_inputs(c, in, s, static_cast<uint32_t>(77 + i));
    Grads want;
    oracle_backward(c, in, bi, s, use_ref, &want);
    for (const bool fused : {false, true}) {
      Grads got;
      std::string path = "?";
      std::string error = emulate_backward(c, in, bi, s, fused, &got, &path);
      bool deterministic = true;
      if (error.empty() && !fused) {
        Grads again;
        error = emulate_backward(c, in, bi, s, fused, &again, &path);
        deterministic = same_bits(got, again);
      }
      GradCompare cmp;
      bool pass = false;
      if (error.empty()) {
        cmp = compare_grads(got, want);
        pass = cmp.unwritten == 0 && deterministic && cmp.worst() <= emu_grad_tolerance(c.dtype);
      }
      ++total;
      if (!pass) ++failed;
      const std::string mask = c.masks.size() == 1 ? c.masks[0].name : "per-head";
      const std::string bh = std::to_string(c.batch) + "x" + std::to_string(c.heads) + "x" + std::to_string(c.kv_heads);
      char dsink_err[16] = "-";
      if (c.sinks) std::snprintf(dsink_err, sizeof dsink_err, "%.2e", cmp.dsinks);
      std::printf("%-16s %-5s %4lld %-14s %-8s %5lld %-5s %-4s %9.2e %9.2e %9.2e %9s %7.1e %5lld  %s%s%s%s\n",
                  c.name.c_str(), dtype_name(c.dtype), static_cast<long long>(c.d), mask.c_str(), bh.c_str(),
                  static_cast<long long>(c.q_seq), fused ? "fused" : "split", path.c_str(), cmp.dq, cmp.dk, cmp.dv,
                  dsink_err, emu_grad_tolerance(c.dtype), static_cast<long long>(cmp.unwritten), pass ? "PASS" : "FAIL",
                  deterministic ? "" : " (runs differ)", error.empty() ? "" : ": ", error.c_str());
      std::fflush(stdout);
    }
  }
  std::printf("backward: %d passed, %d failed\n", total - failed, failed);
  *ran = total;
  return failed;
}

std::vector<Case> grid(bool quick) {
  std::vector<Case> v;
  auto add = [&v](Case c, g::ForcePath path) {
    c.path = path;
    v.push_back(c);
  };
  const g::ForcePath kSimt = g::ForcePath::kSimt, kMma = g::ForcePath::kMma;
  // Tensor-core kernel: every head dim (one CTA row tile, ragged lengths), both dtypes.
  for (int64_t d : {32, 64, 96, 128, 192, 256}) {
    Case c = make_case("causal", DType::BF16, d, d <= 128 ? 200 : 150, causal_mask());
    c.heads = c.kv_heads = 1;
    add(c, kMma);
  }
  {
    Case c = make_case("causal f16", DType::F16, 64, 260, causal_mask());
    c.heads = c.kv_heads = 1;
    add(c, kMma);
  }
  // SIMT kernel: every bucket and dtype.
  for (DType t : {DType::F32, DType::BF16, DType::F16})
    for (int64_t d : {64, 128, 256}) {
      Case c = make_case("causal", t, d, 100, causal_mask());
      c.heads = c.kv_heads = 1;
      add(c, kSimt);
    }
  // Masks, segments, soft cap, GQA, blocks, mask value: on both kernels.
  for (g::ForcePath path : {kMma, kSimt}) {
    const DType t = DType::BF16;
    Case c = make_case("random", t, 64, 192, random_mask(192, 192, 0.5, 3));
    c.heads = c.kv_heads = 1;
    add(c, path);
    c = make_case("local", t, 64, 300, local_mask(70, 20));
    c.heads = c.kv_heads = 1;
    add(c, path);
    c = make_case("chunked", t, 64, 260, chunked_mask(90));
    c.heads = c.kv_heads = 1;
    add(c, path);
    c = make_case("nested program", t, 64, 200, causal_or_local());
    c.heads = c.kv_heads = 1;
    add(c, path);
    c = make_case("docs+orphans", t, 64, 256, causal_mask());
    c.heads = c.kv_heads = 1;
    c.batch = 2;
    c.docs = 4;
    c.orphan_rows = true;
    add(c, path);
    c = make_case("softcap", t, 64, 130, full_mask());
    c.heads = c.kv_heads = 1;
    c.soft_cap = 2.f;
    add(c, path);
    c = make_case("gqa 4/2", t, 64, 140, causal_mask());
    c.heads = 4;
    c.kv_heads = 2;
    add(c, path);
    c = make_case("blocks 64x96", t, 64, 250, random_mask(250, 250, 0.4, 5));
    c.heads = c.kv_heads = 1;
    c.block_q = 64;
    c.block_kv = 96;
    add(c, path);
    c = make_case("blocks 256x64", t, 64, 300, causal_mask());
    c.heads = c.kv_heads = 1;
    c.block_q = 256;
    c.block_kv = 64;
    add(c, path);
    c = make_case("maskValue -3", t, 64, 160, random_mask(160, 160, 0.6, 6));
    c.heads = c.kv_heads = 1;
    c.mask_value = -3.f;
    add(c, path);
    c = make_case("sq 90 skv 250", t, 64, 90, causal_mask(160));
    c.heads = c.kv_heads = 1;
    c.kv_seq = 250;
    add(c, path);
    c = make_case("multihead", t, 64, 160, causal_mask());
    c.heads = c.kv_heads = 2;
    c.masks = {local_mask(40, 0), random_mask(160, 160, 0.7, 4)};
    add(c, path);
    c = make_case("deep program", t, 64, 150, deep_mask(10));
    c.heads = c.kv_heads = 1;
    add(c, path);
    c = make_case("empty rows", t, 64, 300, causal_mask(-150));  // q-block 0 has no visited block
    c.heads = c.kv_heads = 1;
    add(c, path);
    // Finite mask values below about -89: rows whose first visited block holds no allowed key (the
    // window of local(10, 0) leaves kv-block 0 of q-block 1 fully masked for rows 42..63).
    for (const FiniteMaskValue& mv : kFiniteMaskValues) {
      c = make_case(std::string("maskValue ") + mv.label, t, 64, 96, local_mask(10, 0));
      c.heads = c.kv_heads = 1;
      c.block_q = c.block_kv = 32;
      c.mask_value = mv.value;
      add(c, path);
    }
    // Packed documents with a finite mask value, on a full and a partial mask: no block may be skipped for
    // its segments, and a tile counts as one segment only when its rows and keys share it. Blocks of 32
    // make some tiles lie inside one document and others across two.
    for (const FiniteMaskValue& mv : kSegmentMaskValues) {
      for (const bool causal : {false, true}) {
        c = make_case(std::string("docs mv ") + mv.label, t, 64, 192, causal ? causal_mask() : full_mask());
        c.heads = c.kv_heads = 1;
        c.docs = 3;
        c.block_q = c.block_kv = 32;
        c.mask_value = mv.value;
        add(c, path);
      }
    }
  }
  // Scale and sinks on both kernels: scale 1/sqrt(D) on unscaled q (q_scale 4: standard logits at d 64)
  // and 0.3, crossed with sinks, soft cap, masks, GQA and segment ids, a finite mask value, and rows with
  // no allowed key (orphans, a q-block with no visited block: out 0, lse = the sink); the dtypes each
  // kernel takes, in turn.
  for (g::ForcePath path : {kMma, kSimt}) {
    const std::vector<DType> types = path == kMma ? std::vector<DType>{DType::BF16, DType::F16}
                                                  : std::vector<DType>{DType::F32, DType::BF16, DType::F16};
    size_t turn = 0;
    auto next_type = [&types, &turn]() { return types[turn++ % types.size()]; };
    Case c = make_case("scale 1/8", next_type(), 64, 200, causal_mask());
    c.heads = c.kv_heads = 1;
    c.q_scale = 4.f;
    c.scale = 0.125f;
    add(c, path);
    c = make_case("scale .3 cap", next_type(), 64, 130, full_mask());
    c.heads = c.kv_heads = 1;
    c.scale = 0.3f;
    c.soft_cap = 2.f;
    add(c, path);
    c = make_case("sinks gqa", next_type(), 64, 140, causal_mask());
    c.heads = 4;
    c.kv_heads = 2;
    c.sinks = true;
    add(c, path);
    c = make_case("sinks local .3", next_type(), 64, 300, local_mask(70, 20));
    c.heads = c.kv_heads = 2;
    c.scale = 0.3f;
    c.sinks = true;
    add(c, path);
    c = make_case("sinks rand cap", next_type(), 64, 192, random_mask(192, 192, 0.5, 3));
    c.heads = c.kv_heads = 1;
    c.q_scale = 4.f;
    c.scale = 0.125f;
    c.soft_cap = 2.f;
    c.sinks = true;
    add(c, path);
    c = make_case("sinks multihead", next_type(), 64, 160, causal_mask());
    c.heads = c.kv_heads = 2;
    c.masks = {local_mask(40, 0), random_mask(160, 160, 0.7, 4)};
    c.scale = 0.3f;
    c.sinks = true;
    add(c, path);
    c = make_case("sinks docs+orph", next_type(), 64, 256, causal_mask());
    c.batch = 2;
    c.heads = 2;
    c.kv_heads = 1;
    c.docs = 4;
    c.orphan_rows = true;
    c.scale = 0.3f;
    c.sinks = true;
    add(c, path);
    c = make_case("sinks empty rows", next_type(), 64, 300, causal_mask(-150));
    c.heads = c.kv_heads = 2;
    c.sinks = true;
    add(c, path);
    c = make_case("sinks mv -3", next_type(), 64, 160, random_mask(160, 160, 0.6, 6));
    c.heads = c.kv_heads = 1;
    c.mask_value = -3.f;
    c.block_q = c.block_kv = 32;
    c.sinks = true;
    add(c, path);
  }
  if (!quick) {
    Case c = make_case("causal 2 tiles", DType::BF16, 128, 400, causal_mask());
    c.heads = c.kv_heads = 1;
    add(c, kMma);
    c = make_case("dv 64", DType::F32, 128, 120, causal_mask());
    c.dv = 64;
    c.heads = c.kv_heads = 1;
    add(c, g::ForcePath::kAuto);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, use_ref = false, bwd_only = false;
  Shard shard;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    long long k = 0, n = 0;
    if (a == "--quick") quick = true;
    else if (a == "--backward-only") bwd_only = true;
    else if (a == "--oracle" && i + 1 < argc) use_ref = std::string(argv[++i]) == "ref";
    else if (a == "--shard" && i + 1 < argc && std::sscanf(argv[++i], "%lld/%lld", &k, &n) == 2 && n >= 1 && k >= 0 && k < n) {
      shard.index = k;
      shard.count = n;
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--backward-only] [--oracle cpu|ref] [--shard K/N]\n", argv[0]);
      return 2;
    }
  }
  std::printf("oracle: %s\n\n", use_ref || !cpu_kernel_linked() ? "float64 reference" : "CPU kernels");
  const std::vector<Case> cases = bwd_only ? std::vector<Case>() : grid(quick);
  std::printf("%-16s %-5s %4s %-20s %-8s %5s %-5s %10s %10s %8s %5s  %s\n", "case", "dtype", "D", "mask", "BxHxHkv", "S",
              "path", "out err", "lse err", "tol", "unwr", "result");
  int failed = 0, fwd_ran = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    if (!shard.has(i)) continue;
    ++fwd_ran;
    const Case& c = cases[i];
    const HostSchedule s = build_schedule(c.masks, c.q_seq, c.kv_seq, c.block_q, c.block_kv);
    const Inputs in = make_inputs(c, static_cast<uint32_t>(500 + i));
    HostTensor want;
    std::vector<float> want_lse;
    oracle_forward(c, in, s, use_ref, &want, &want_lse);
    const EmuRun r = emulate(c, in, s);
    Compare cmp;
    bool pass = false;
    if (r.error.empty()) {
      cmp = compare(r.out, r.lse, want, want_lse);
      pass = cmp.unwritten == 0 && cmp.lse_inf_mismatch == 0 && cmp.out_err <= emu_out_tolerance(c.dtype) &&
             cmp.lse_err <= kEmuLseTolerance;
    }
    if (!pass) ++failed;
    const std::string mask = c.masks.size() == 1 ? c.masks[0].name : "per-head";
    const std::string bh = std::to_string(c.batch) + "x" + std::to_string(c.heads) + "x" + std::to_string(c.kv_heads);
    std::printf("%-16s %-5s %4lld %-20s %-8s %5lld %-5s %10.2e %10.2e %8.1e %5lld  %s%s%s\n", c.name.c_str(),
                dtype_name(c.dtype), static_cast<long long>(c.d), mask.c_str(), bh.c_str(),
                static_cast<long long>(c.q_seq), r.path.c_str(), cmp.out_err, cmp.lse_err, emu_out_tolerance(c.dtype),
                static_cast<long long>(cmp.unwritten + cmp.lse_inf_mismatch), pass ? "PASS" : "FAIL",
                r.error.empty() ? "" : ": ", r.error.c_str());
    std::fflush(stdout);
  }
  int bwd_total = 0;
  failed += run_backward(quick, use_ref, shard, &bwd_total);
  int limit_checks = 0;
  if (shard.index == 0) {
    std::printf("\nlaunch limits\n");
    limit_checks = 4 + 3;  // check_grid_limits, check_elementwise_grids
    const int limit_failed = check_grid_limits() + check_elementwise_grids();
    std::printf("launch limits: %d passed, %d failed\n", limit_checks - limit_failed, limit_failed);
    failed += limit_failed;
  }
  std::printf("\n%d passed, %d failed\n", fwd_ran + bwd_total + limit_checks - failed, failed);
  return failed == 0 ? 0 : 1;
}
