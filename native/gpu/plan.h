// Host-side planning of a GPU forward call, in plain C++ (no CUDA or HIP header), so that the same
// code runs inside the GPU launcher (launch.cu), in the addon (native/addon/gpu.cc exports it for the
// mocha tests, also in builds without a GPU) and in the C++ harness.
//
// What lives here: the tile shapes of every compiled kernel, the choice of kernel for a call, the
// checks a call must pass before anything is launched, and the data the kernels get besides the
// tensors: the order in which q tiles are handed out, dense partial blocks packed to bits, the
// per-block segment-id ranges used to skip blocks, and the depth check of mask programs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "fwd_params.h"
#include "splash/mask_program.h"
#include "splash/params.h"
#include "splash/schedule_check.h"

// The tile-shape functions are also evaluated in device code (as constant expressions).
#if defined(__CUDACC__) || defined(__HIPCC__)
#define SPLASH_HOST_DEVICE __host__ __device__
#else
#define SPLASH_HOST_DEVICE
#endif

namespace splash {
namespace gpu {

// ---- kernels ------------------------------------------------------------------------------------

enum class FwdPath : int32_t { None = 0, Simt = 1, Mma = 2 };

inline const char* path_name(FwdPath p) {
  switch (p) {
    case FwdPath::Simt: return "simt";
    case FwdPath::Mma: return "mma";
    case FwdPath::None: break;
  }
  return "none";
}

// Head dims every GPU path accepts (q/k and v alike). Others are a RangeError.
inline bool supported_head_dim(int64_t d) {
  return d == 32 || d == 64 || d == 96 || d == 128 || d == 192 || d == 256;
}

// The compiled head-dim buckets: a kernel compiled for bucket B serves every supported d <= B.
// The tensor-core kernel is compiled for each supported d exactly (its tiles are sized by d).
inline int simt_bucket(int64_t d) { return d <= 64 ? 64 : d <= 128 ? 128 : 256; }

// SIMT kernel: 128 threads as 16 row groups x 8 column groups. kRowsPerThread rows per row group,
// so the CTA tile is 16 * kRowsPerThread query rows; K/V tiles of 32 keys.
constexpr int kSimtThreads = 128;
constexpr int kSimtTileN = 32;
SPLASH_HOST_DEVICE constexpr int simt_rows_per_thread(int bucket) { return bucket <= 64 ? 4 : bucket <= 128 ? 2 : 1; }
SPLASH_HOST_DEVICE constexpr int simt_tile_m(int bucket) { return 16 * simt_rows_per_thread(bucket); }
// f32 tiles with rows padded by 4 floats (16 bytes) against bank conflicts: Q [M][B+4], one K-or-V
// buffer [N][B+4], P [M][N+4].
SPLASH_HOST_DEVICE constexpr int64_t simt_smem_bytes(int bucket) {
  return 4LL * (simt_tile_m(bucket) * (bucket + 4) + kSimtTileN * (bucket + 4) +
                simt_tile_m(bucket) * (kSimtTileN + 4));
}

// Tensor-core kernel (sm_80+ mma.sync m16n8k16): 4 warps; each warp owns kBlockM / 4 query rows.
// K/V tiles of mma_tile_n keys are loaded per pipeline stage (K double-buffered, V single) and each is
// processed in inner steps of mma_step_n keys, which bounds the score registers (S and the O
// accumulator must both fit in 255 registers).
constexpr int kMmaThreads = 128;
SPLASH_HOST_DEVICE constexpr int mma_tile_m(int d) { return d <= 128 ? 128 : 64; }
SPLASH_HOST_DEVICE constexpr int mma_tile_n(int d) { return d <= 64 ? 128 : d <= 192 ? 64 : 32; }
SPLASH_HOST_DEVICE constexpr int mma_step_n(int d) { return d <= 64 ? 64 : 32; }
// Rows of d halves; d a multiple of 64 uses an XOR swizzle of 16-byte chunks, other d pad each row
// by one chunk. Q tile [M][d], two K tiles [N][d], one V tile [N][d].
// (A 16-wide tile, 32-byte rows, is only the fused backward's dS^T at head dim > 128, which cannot
// spare the padding's shared memory on sm_86/89; its ldmatrix reads take 2-way bank conflicts.)
SPLASH_HOST_DEVICE constexpr int mma_row_stride(int d) { return d % 64 == 0 || d == 16 ? d : d + 8; }
SPLASH_HOST_DEVICE constexpr int64_t mma_smem_bytes(int d) {
  return 2LL * mma_row_stride(d) * (mma_tile_m(d) + 3 * mma_tile_n(d));
}

// Deepest mask program (postfix stack depth) the device evaluator holds in registers.
constexpr int kMaxProgramDepth = 8;

// What the launcher knows about the device a call runs on.
struct DeviceCaps {
  bool hip;                  // HIP (AMD) rather than CUDA
  int cc_major, cc_minor;    // CUDA compute capability (0 on HIP)
  int multiprocessors;
  int64_t max_smem_per_block;  // with the opt-in attribute (CUDA) / the LDS size (HIP)
  int max_grid_y;
};

struct FwdPlan {
  std::string error;        // empty when the call can run
  bool range_error = false; // the error is about a size or option (RangeError in JS), else Error
  FwdPath path = FwdPath::None;
  int bucket = 0;           // head-dim bucket (SIMT) or the exact head dim (MMA)
  int tile_m = 0;           // query rows per CTA
  int tile_n = 0;           // keys per K/V tile
  int threads = 0;
  int64_t smem_bytes = 0;
  int64_t tiles_per_qblock = 0;  // CTAs per schedule q-block
  bool segment_skip = false;     // skip kv blocks whose segment-id range misses the tile's
};

// The most blocks a launch's grid may have along x for blocks of `threads` threads: 2^31 - 1, and on
// HIP also gridDim.x * blockDim.x < 2^32 (the AMD dispatch packet holds the grid size in work-items
// in 32 bits).
inline int64_t max_grid_x(const DeviceCaps& caps, int threads) {
  const int64_t limit = std::numeric_limits<int32_t>::max();
  return caps.hip ? std::min<int64_t>(limit, std::numeric_limits<uint32_t>::max() / threads) : limit;
}

// A mask value this negative makes every masked logit contribute exactly 0 to an f32 softmax of a
// row that has an allowed key (exp underflows), so skipping a block that holds only masked logits
// cannot change any result. Splash's default (-0.7 * FLT_MAX) qualifies.
constexpr float kSkipSafeMaskValue = -1e30f;

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Chooses the kernel and its tiles for a forward call and checks everything a launch relies on.
// force: FwdPath::None = automatic; Simt or Mma = that path or an error saying why not.
inline FwdPlan plan_forward(const AttentionParams& p, const DeviceCaps& caps, FwdPath force = FwdPath::None) {
  FwdPlan plan;
  auto fail = [&plan](const std::string& msg, bool range) {
    plan.error = msg;
    plan.range_error = range;
    plan.path = FwdPath::None;
    return plan;
  };
  if (!supported_head_dim(p.head_dim)) {
    return fail("q.shape: expected a head dim of 32, 64, 96, 128, 192 or 256 on the GPU, got " +
                    std::to_string(p.head_dim), true);
  }
  if (!supported_head_dim(p.head_dim_v)) {
    return fail("v.shape: expected a head dim of 32, 64, 96, 128, 192 or 256 on the GPU, got " +
                    std::to_string(p.head_dim_v), true);
  }
  if (p.batch < 1 || p.heads < 1 || p.kv_heads < 1 || p.q_seq < 1 || p.kv_seq < 1 || p.heads % p.kv_heads != 0) {
    return fail("inconsistent sizes: batch " + std::to_string(p.batch) + ", heads " + std::to_string(p.heads) +
                    ", kv heads " + std::to_string(p.kv_heads) + ", q seq " + std::to_string(p.q_seq) +
                    ", kv seq " + std::to_string(p.kv_seq), true);
  }
  constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
  if (p.q_seq >= kInt32Max || p.kv_seq >= kInt32Max || p.heads > kInt32Max || p.batch > kInt32Max) {
    return fail("sizes beyond 2^31 - 1 are not supported by the GPU kernels", true);
  }
  // The kernels take row maxima of unscaled scores and scale them afterwards: only a positive scale keeps the order.
  const float scale = logit_scale(p);
  if (!(scale > 0.f) || !std::isfinite(scale)) {
    return fail("scale: expected a positive finite number, got " + std::to_string(scale), true);
  }
  const ScheduleView& s = p.fwd;
  if (s.block_q < 1 || s.block_kv < 1 || s.q_blocks != (p.q_seq + s.block_q - 1) / s.block_q ||
      s.kv_blocks != (p.kv_seq + s.block_kv - 1) / s.block_kv || s.is_dkv != 0 ||
      s.rows_per_schedule != s.q_blocks || (s.heads != 1 && s.heads != p.heads)) {
    return fail("the forward schedule does not match the call's sizes", true);
  }
  if (p.q.dtype != p.k.dtype || p.q.dtype != p.v.dtype || p.out.dtype != p.q.dtype) {
    return fail("q, k, v and out must share one dtype", false);
  }
  // Every row is read as 16-byte vectors: the head dim is contiguous and rows start 16-byte aligned.
  const TensorRef* refs[4] = {&p.q, &p.k, &p.v, &p.out};
  const char* names[4] = {"q", "k", "v", "out"};
  const int64_t elem = p.q.dtype == DType::F32 ? 4 : 2;
  for (int i = 0; i < 4; ++i) {
    const TensorRef& t = *refs[i];
    const int64_t v = 16 / elem;  // elements per 16 bytes
    if (t.dim_stride != 1 || t.batch_stride % v != 0 || t.head_stride % v != 0 || t.seq_stride % v != 0 ||
        !aligned16(t.ptr)) {
      return fail(std::string(names[i]) + ": the GPU kernels need a contiguous head dim and 16-byte aligned rows",
                  false);
    }
  }
  if (p.save_lse && p.lse.ptr == nullptr) return fail("lse requested but not given", false);

  const bool half = p.q.dtype != DType::F32;
  const bool mma_ok = !caps.hip && caps.cc_major >= 8 && half && p.head_dim == p.head_dim_v;
  FwdPath path = mma_ok ? FwdPath::Mma : FwdPath::Simt;
  if (force == FwdPath::Mma && !mma_ok) {
    return fail(std::string("the tensor-core path needs CUDA sm_80+, bf16 or f16, and equal q/v head dims") +
                    (caps.hip ? " (this is HIP)" : ""), false);
  }
  if (force == FwdPath::Simt) path = FwdPath::Simt;

  plan.path = path;
  if (path == FwdPath::Mma) {
    const int d = static_cast<int>(p.head_dim);
    plan.bucket = d;
    plan.tile_m = mma_tile_m(d);
    plan.tile_n = mma_tile_n(d);
    plan.threads = kMmaThreads;
    plan.smem_bytes = mma_smem_bytes(d);
  } else {
    const int b = simt_bucket(std::max(p.head_dim, p.head_dim_v));
    plan.bucket = b;
    plan.tile_m = simt_tile_m(b);
    plan.tile_n = kSimtTileN;
    plan.threads = kSimtThreads;
    plan.smem_bytes = simt_smem_bytes(b);
  }
  if (plan.smem_bytes > caps.max_smem_per_block) {
    return fail("the " + std::string(path_name(path)) + " kernel for head dim " + std::to_string(plan.bucket) +
                    " needs " + std::to_string(plan.smem_bytes) + " bytes of shared memory per block; this device has " +
                    std::to_string(caps.max_smem_per_block), false);
  }
  plan.tiles_per_qblock = (s.block_q + plan.tile_m - 1) / plan.tile_m;
  plan.segment_skip = p.segment_ids_q != nullptr && p.segment_ids_kv != nullptr && p.mask_value <= kSkipSafeMaskValue;
  return plan;
}

// ---- work order -----------------------------------------------------------------------------------

// The q tiles of a call, as qblock * tiles_per_qblock + sub, heaviest schedule rows first (longest
// processing time first keeps the tail of the grid short for causal-like masks); ties keep q order.
// Tiles that start past the end of the sequence are left out.
inline std::vector<int32_t> work_order(const int32_t* row_ptr, int32_t num_schedules, int32_t rows_per_schedule,
                                       int64_t block_q, int64_t q_seq, int64_t tile_m, int64_t tiles_per_qblock) {
  std::vector<int32_t> work;
  std::vector<int32_t> cost;
  for (int32_t qb = 0; qb < rows_per_schedule; ++qb) {
    int32_t c = 0;
    for (int32_t s = 0; s < num_schedules; ++s) {
      const int64_t r = static_cast<int64_t>(s) * rows_per_schedule + qb;
      c = std::max(c, row_ptr[r + 1] - row_ptr[r]);
    }
    for (int64_t sub = 0; sub < tiles_per_qblock; ++sub) {
      const int64_t q0 = qb * block_q + sub * tile_m;
      if (q0 >= q_seq || sub * tile_m >= block_q) break;
      work.push_back(static_cast<int32_t>(qb * tiles_per_qblock + sub));
      cost.push_back(c);
    }
  }
  std::vector<int32_t> idx(work.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int32_t>(i);
  std::stable_sort(idx.begin(), idx.end(), [&cost](int32_t a, int32_t b) { return cost[a] > cost[b]; });
  std::vector<int32_t> out(work.size());
  for (size_t i = 0; i < idx.size(); ++i) out[i] = work[idx[i]];
  return out;
}

// ---- dense partial blocks as bits -----------------------------------------------------------------

inline int64_t mask_words_per_row(int64_t block_kv) { return (block_kv + 31) / 32; }

// [n, block_q, block_kv] bytes (0/1) → [n, block_q, words_per_row] 32-bit words, bit c%32 of word c/32.
inline std::vector<uint32_t> pack_mask_bits(const uint8_t* blocks, int64_t n, int64_t block_q, int64_t block_kv) {
  const int64_t wpr = mask_words_per_row(block_kv);
  std::vector<uint32_t> bits(static_cast<size_t>(n * block_q * wpr), 0u);
  for (int64_t row = 0; row < n * block_q; ++row) {
    const uint8_t* src = blocks + row * block_kv;
    uint32_t* dst = bits.data() + row * wpr;
    for (int64_t c = 0; c < block_kv; ++c) {
      if (src[c] != 0) dst[c >> 5] |= 1u << (c & 31);
    }
  }
  return bits;
}

// ---- mask programs --------------------------------------------------------------------------------

// Schedules whose program is deeper than the device evaluator holds get their program-evaluated
// partial blocks materialised instead: each such entry gets its own packed block appended to `bits`
// (laid out as pack_mask_bits does) and its index in `col_mask_ref`. Returns the number of blocks
// added. `col_mask_ref` starts as a copy of s.col_mask_ref; `bits` holds s's packed stored blocks.
inline int64_t materialize_deep_programs(const ScheduleView& s, std::vector<int32_t>* col_mask_ref,
                                         std::vector<uint32_t>* bits) {
  const int64_t wpr = mask_words_per_row(s.block_kv);
  int64_t added = 0;
  for (int32_t sc = 0; sc < s.num_schedules; ++sc) {
    const int32_t begin = s.program_ptr[sc], end = s.program_ptr[sc + 1];
    if (mask_program_depth(s.programs + begin, end - begin) <= kMaxProgramDepth) continue;
    for (int64_t r0 = 0; r0 < s.rows_per_schedule; ++r0) {
      const int64_t row = static_cast<int64_t>(sc) * s.rows_per_schedule + r0;
      for (int32_t e = s.row_ptr[row]; e < s.row_ptr[row + 1]; ++e) {
        if (s.col_kind[e] != static_cast<uint8_t>(BlockKind::Partial) || (*col_mask_ref)[e] >= 0) continue;
        const int64_t index = s.num_partial + added++;
        (*col_mask_ref)[e] = static_cast<int32_t>(index);
        bits->resize(static_cast<size_t>((index + 1) * s.block_q * wpr), 0u);
        uint32_t* block = bits->data() + index * s.block_q * wpr;
        // Rows are q-blocks, or kv-blocks for a dkv schedule; stored blocks are q-major either way.
        const int64_t qb = s.is_dkv ? s.col_idx[e] : r0;
        const int64_t kv0 = (s.is_dkv ? r0 : static_cast<int64_t>(s.col_idx[e])) * s.block_kv;
        for (int64_t r = 0; r < s.block_q; ++r)
          for (int64_t c = 0; c < s.block_kv; ++c)
            if (eval_mask_program(s.programs + begin, end - begin, qb * s.block_q + r, kv0 + c)) {
              block[r * wpr + (c >> 5)] |= 1u << (c & 31);
            }
      }
    }
  }
  return added;
}

// ---- schedule checks ----------------------------------------------------------------------------

// Everything the kernels index with, checked once before a schedule is uploaded (the shared bounds
// check of splash/schedule_check.h, for views whose arrays hold what the view declares): a schedule
// that passes cannot make a kernel read outside its arrays. Returns "" or what is wrong.
inline std::string validate_schedule(const ScheduleView& s) { return check_schedule(s, nullptr, "schedule"); }

// ---- segment ids --------------------------------------------------------------------------------

// [batch, blocks, 2] (min, max) of seg[b * seq + i] over each block of `block` positions (ragged last).
inline std::vector<int32_t> segment_block_ranges(const int32_t* seg, int64_t batch, int64_t seq, int64_t block) {
  const int64_t blocks = (seq + block - 1) / block;
  std::vector<int32_t> out(static_cast<size_t>(batch * blocks * 2));
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t kb = 0; kb < blocks; ++kb) {
      int32_t lo = std::numeric_limits<int32_t>::max();
      int32_t hi = std::numeric_limits<int32_t>::min();
      const int64_t end = std::min(seq, (kb + 1) * block);
      for (int64_t i = kb * block; i < end; ++i) {
        lo = std::min(lo, seg[b * seq + i]);
        hi = std::max(hi, seg[b * seq + i]);
      }
      out[(b * blocks + kb) * 2] = lo;
      out[(b * blocks + kb) * 2 + 1] = hi;
    }
  }
  return out;
}

// ---- kernel arguments -----------------------------------------------------------------------------

// The kernels' argument block for a planned call: p's tensors and sizes, p.fwd's schedule arrays
// (device pointers; partial_mask_blocks holds the packed bits) and the launch order `work`. Segment
// ids and sinks are filled in by the caller, which owns their device copies.
inline FwdKernelParams make_fwd_kernel_params(const AttentionParams& p, const FwdPlan& plan, const int32_t* work,
                                              int32_t num_work) {
  FwdKernelParams kp{};
  kp.q = p.q.ptr;
  kp.k = p.k.ptr;
  kp.v = p.v.ptr;
  kp.out = p.out.ptr;
  kp.lse = p.save_lse ? static_cast<float*>(p.lse.ptr) : nullptr;
  kp.q_batch_stride = p.q.batch_stride;
  kp.q_head_stride = p.q.head_stride;
  kp.q_seq_stride = p.q.seq_stride;
  kp.k_batch_stride = p.k.batch_stride;
  kp.k_head_stride = p.k.head_stride;
  kp.k_seq_stride = p.k.seq_stride;
  kp.v_batch_stride = p.v.batch_stride;
  kp.v_head_stride = p.v.head_stride;
  kp.v_seq_stride = p.v.seq_stride;
  kp.o_batch_stride = p.out.batch_stride;
  kp.o_head_stride = p.out.head_stride;
  kp.o_seq_stride = p.out.seq_stride;
  kp.lse_batch_stride = p.lse.batch_stride;
  kp.lse_head_stride = p.lse.head_stride;
  kp.lse_seq_stride = p.lse.seq_stride;
  kp.heads = static_cast<int32_t>(p.heads);
  kp.group = static_cast<int32_t>(p.heads / p.kv_heads);
  kp.q_seq = static_cast<int32_t>(p.q_seq);
  kp.kv_seq = static_cast<int32_t>(p.kv_seq);
  kp.head_dim = static_cast<int32_t>(p.head_dim);
  kp.head_dim_v = static_cast<int32_t>(p.head_dim_v);
  kp.mask_value = p.mask_value;
  kp.soft_cap = p.soft_cap > 0.f ? p.soft_cap : 0.f;
  kp.scale = logit_scale(p);
  kp.cap_scale = kp.soft_cap > 0.f ? kp.scale / kp.soft_cap : 0.f;
  kp.sinks = nullptr;
  const ScheduleView& sv = p.fwd;
  kp.mask_heads = sv.heads;
  kp.block_q = sv.block_q;
  kp.block_kv = sv.block_kv;
  kp.q_blocks = sv.q_blocks;
  kp.kv_blocks = sv.kv_blocks;
  kp.rows_per_schedule = sv.rows_per_schedule;
  kp.head_schedule = sv.head_schedule;
  kp.row_ptr = sv.row_ptr;
  kp.col_idx = sv.col_idx;
  kp.col_kind = sv.col_kind;
  kp.col_mask_ref = sv.col_mask_ref;
  kp.programs = sv.programs;
  kp.program_ptr = sv.program_ptr;
  kp.mask_bits = reinterpret_cast<const uint32_t*>(sv.partial_mask_blocks);
  kp.mask_words = static_cast<int32_t>(mask_words_per_row(sv.block_kv));
  kp.work = work;
  kp.num_work = num_work;
  kp.tiles_per_qblock = static_cast<int32_t>(plan.tiles_per_qblock);
  kp.segment_skip = plan.segment_skip ? 1 : 0;

  return kp;
}

}  // namespace gpu
}  // namespace splash
