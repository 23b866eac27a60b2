// Tensor-core backward kernels for bf16 / f16 on CUDA sm_80 and later (mma.sync m16n8k16, f32
// accumulators; tiles in bwd_tiles.h, primitives and fragment layouts in mma_sm80.cuh):
//
//   bwd_dq_mma_kernel   split pass 1: one CTA per (batch, head, 64 query rows) walking the dq schedule
//                       row, K/V tiles double-buffered: S = Q K^T, dP = dO V^T, dS, dQ += dS K with dS
//                       straight from the accumulator registers (the C tiles are the next A operand);
//   bwd_dkv_mma_kernel  split pass 2 (Fused = false): one CTA per (batch, kv head, 64 keys) walking the
//                       dkv schedule row of every q head of the GQA group, Q/dO tiles double-buffered,
//                       computed transposed so keys are the m dimension: S^T = K Q^T, dP^T = V dO^T,
//                       dV += P^T dO, dK += dS^T Q; fused (Fused = true): dS^T also goes to shared
//                       memory and each warp adds its share of dQ = dS K to the f32 buffer (atomicAdd).
//
// Per score element exactly as the SIMT kernels (bwd_simt.cuh): scale, soft cap, masked-but-visited
// logits become mask_value (p counts for dV, ds = 0), keys past a ragged tile do not exist, and rows
// past the tile or with lse = -inf use lse = +inf, which makes p and ds exactly 0. P and dS are
// rounded to the input dtype for the products, as FlashAttention does; sums stay f32. dS is the
// gradient of the logit: dq and dk take the scale once, when they are stored (the fused dq in the cast).
// No atomics in the split pass: every gradient element is summed in a fixed order by one thread, so
// it is bitwise reproducible run to run.
#pragma once

#include <climits>

#include "bwd_params.h"
#include "bwd_tiles.h"
#include "dtypes.cuh"
#include "mask.cuh"
#include "mma_sm80.cuh"
#include "plan.h"
#include "softmax.cuh"

namespace splash {
namespace gpu {
namespace mma {

// lse * log2e of a stored row, or +inf for a row that must contribute nothing (lse = -inf).
__device__ __forceinline__ float lse_log2(float lse) { return lse == neg_inf() ? pos_inf() : lse * kLog2e; }

// One score element in place: s (q.k) becomes p, dp (dO.v) becomes ds. lse2 is the row's lse in the
// exp2 domain (lse_log2); cap_mul = scale / cap; scale_log2e = scale * log2e takes an uncapped dot
// product to the exp2 domain in the exponent's one rounding (kLog2e itself for scale 1). kMasked:
// `exists` / `allowed` come from the tile's mask.
template <bool kMasked>
__device__ __forceinline__ void grad_in_place(float& s, float& dp, float lse2, float di, float cap, float cap_mul,
                                              float scale_log2e, float mask_value, bool exists, bool allowed) {
  float dcap = 1.f;
  float mul = scale_log2e;
  if (cap > 0.f) {
    const float t = tanhf(s * cap_mul);
    s = cap * t;
    dcap = 1.f - t * t;
    mul = kLog2e;
  }
  if (kMasked && !allowed) {
    s = mask_value;
    mul = kLog2e;
  }
  const float pr = (kMasked && !exists) ? 0.f : exp2f(fmaf(s, mul, -lse2));
  dp = (kMasked && !allowed) ? 0.f : pr * (dp - di) * dcap;
  s = pr;
}

// The A operand (16 x 16, rounded to T) made of two adjacent n8 accumulator tiles: `lo` holds k 0-7 of
// the product's k step, `hi` k 8-15.
template <class T>
__device__ __forceinline__ void acc_to_a(uint32_t (&a)[4], const float (&lo)[4], const float (&hi)[4]) {
  a[0] = cvt_pack<T>(lo[0], lo[1]);
  a[1] = cvt_pack<T>(lo[2], lo[3]);
  a[2] = cvt_pack<T>(hi[0], hi[1]);
  a[3] = cvt_pack<T>(hi[2], hi[3]);
}

// One warp's s = A1 B1^T and (kSecond) dp = A2 B2^T over D: the A operands are rows [a_row0, a_row0 + 16)
// of two [*, D] shared tiles, the B operands rows [b_row0, b_row0 + 8 NT) of two others (the n
// dimension). Without kSecond, dp is zero.
template <class T, int D, int NT, bool kSecond = true>
__device__ __forceinline__ void two_products(float (&s)[NT][4], float (&dp)[NT][4], const FragAddr<D>& a1,
                                             const FragAddr<D>& a2, int a_row0, const FragAddr<D>& b1,
                                             const FragAddr<D>& b2, int b_row0) {
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) s[j][e] = dp[j][e] = 0.f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t x1[4], x2[4];
    ldmatrix_x4(x1, a1.at(a_row0, kk));
    if constexpr (kSecond) ldmatrix_x4(x2, a2.at(a_row0, kk));
#pragma unroll
    for (int jp = 0; jp < NT / 2; ++jp) {
      uint32_t y1[4], y2[4];
      ldmatrix_x4(y1, b1.at(b_row0 + jp * 16, kk));
      mma_16816<T>(s[2 * jp], x1, y1[0], y1[1]);
      mma_16816<T>(s[2 * jp + 1], x1, y1[2], y1[3]);
      if constexpr (kSecond) {
        ldmatrix_x4(y2, b2.at(b_row0 + jp * 16, kk));
        mma_16816<T>(dp[2 * jp], x2, y2[0], y2[1]);
        mma_16816<T>(dp[2 * jp + 1], x2, y2[2], y2[3]);
      }
    }
  }
}

// One warp's acc += A B: A (16 rows x 16 KS) from the accumulator tiles `src` rounded to T, B rows
// [b_row0, b_row0 + 16 KS) of a [*, D] shared tile read transposed (the k dimension).
template <class T, int D, int KS>
__device__ __forceinline__ void acc_times_tile(float (&acc)[D / 8][4], const float (&src)[2 * KS][4],
                                               const FragAddr<D>& b, int b_row0) {
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) {
    uint32_t a[4];
    acc_to_a<T>(a, src[2 * kk], src[2 * kk + 1]);
#pragma unroll
    for (int cp = 0; cp < D / 16; ++cp) {
      uint32_t y[4];
      ldmatrix_x4_trans(y, b.at(b_row0 + kk * 16, cp));
      mma_16816<T>(acc[2 * cp], a, y[0], y[1]);
      mma_16816<T>(acc[2 * cp + 1], a, y[2], y[3]);
    }
  }
}

// ---- dS within f16's range ------------------------------------------------------------------------
//
// dS = p (dp - di) is an f16 mma operand here, and a loss-scaled dout takes it past f16's 65504 (to
// inf) where the SIMT kernels keep it in f32. So a warp whose dS tile holds such a value scales the
// tile, and the f32 accumulator it is added to, by one power of two 2^-k for the product and the
// accumulator back by 2^k: exact in f32, and the tile keeps f16's relative precision. Both paths then
// give the same finite gradients. bf16 has f32's exponent range and never needs it.

constexpr float kF16Max = 65504.f;

template <int R>
__device__ __forceinline__ void scale_tiles(float (&x)[R][4], float f) {
#pragma unroll
  for (int j = 0; j < R; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) x[j][e] *= f;
}

// The factor 2^-k (k >= 1) that brings the largest |x| of the warp's tile below 2^15, or 1 when every
// |x| is within f16's range (or one is inf already, as it would be in f32). Warp-uniform.
template <int R>
__device__ __forceinline__ float f16_range_scale(const float (&x)[R][4]) {
  float mx = 0.f;
#pragma unroll
  for (int j = 0; j < R; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) mx = fmaxf(mx, fabsf(x[j][e]));
  mx = warp_max(mx);  // unconditionally: every warp passes the same collectives (see native/tests/emulate.h)
  if (!(mx > kF16Max) || mx == pos_inf()) return 1.f;
  int e = 0;
  (void)frexpf(mx, &e);         // mx = m * 2^e with 0.5 <= m < 1
  return ldexpf(1.f, 15 - e);  // mx * 2^(15 - e) < 2^15
}

// acc += src B (acc_times_tile) with the T operand src kept within its range: for f16, src and acc are
// scaled by f16_range_scale(src) for the product and acc back. Returns that factor; src is left
// multiplied by it.
template <class T, int D, int KS>
__device__ __forceinline__ float acc_times_tile_in_range(float (&acc)[D / 8][4], float (&src)[2 * KS][4],
                                                         const FragAddr<D>& b, int b_row0) {
  float f = 1.f;
  if constexpr (T::kDType == DType::F16) f = f16_range_scale(src);
  if (f != 1.f) {
    scale_tiles(src, f);
    scale_tiles(acc, f);
  }
  acc_times_tile<T, D, KS>(acc, src, b, b_row0);
  if (f != 1.f) scale_tiles(acc, 1.f / f);
  return f;
}

// [kRows, D] accumulators of four warps (warp w: rows 16w.., C fragment layout), rounded to T, staged
// in `stage` and written with 16-byte stores: rows [0, rows) to dst + r * stride. Ends with the CTA's
// threads past a barrier; the caller makes sure nobody still reads `stage`.
template <class T, int D, int kRows>
__device__ __forceinline__ void store_rows(uint16_t* stage, const float (&acc)[D / 8][4], uint16_t* dst, int64_t stride,
                                           int rows, int warp, int g, int t4, int tid) {
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const int row = warp * 16 + g + 8 * hf;
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      *reinterpret_cast<uint32_t*>(stage + smem_offset<D>(row, j) + 2 * t4) =
          cvt_pack<T>(acc[j][2 * hf], acc[j][2 * hf + 1]);
    }
  }
  __syncthreads();
  constexpr int kChunks = D / 8;
#pragma unroll
  for (int i = 0; i < kRows * kChunks / kMmaThreads; ++i) {
    const int idx = tid + i * kMmaThreads;
    const int row = idx / kChunks;
    const int chunk = idx % kChunks;
    if (row < rows) {
      *reinterpret_cast<uint4*>(dst + row * stride + chunk * 8) =
          *reinterpret_cast<const uint4*>(stage + smem_offset<D>(row, chunk));
    }
  }
}

// ---- dq pass -------------------------------------------------------------------------------------

template <class T, int D>
__global__ void __launch_bounds__(kMmaThreads, 1) bwd_dq_mma_kernel(const BwdKernelParams bp) {
#if defined(SPLASH_GPU_EMULATE) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800)
  constexpr int M = kBwdMmaDqRows;       // query rows of the CTA, 16 per warp
  constexpr int N = bwd_mma_dq_keys(D);  // keys per K/V tile
  constexpr int NC = bwd_mma_dq_step(D); // keys per inner step
  constexpr int NT = NC / 8;             // n8 tiles of S and dP per step
  constexpr int DT = D / 8;              // n8 tiles of dQ
  constexpr int PK = NC / 16;            // k16 steps of dS K per step
  constexpr int C = 2 * NT;              // key columns of one row per thread and step
  constexpr int LDS = mma_row_stride(D);
  static_assert(M == 16 * 4 && N % NC == 0 && NT % 2 == 0 && DT % 2 == 0, "tile shapes");
  const FwdKernelParams& p = bp.s;

  SPLASH_DYNAMIC_SMEM(uint4, bwd_mma_smem);
  uint16_t* sQ = reinterpret_cast<uint16_t*>(bwd_mma_smem);
  uint16_t* sdO = sQ + M * LDS;
  uint16_t* sK = sdO + M * LDS;      // two buffers of N rows
  uint16_t* sV = sK + 2 * N * LDS;   // two buffers of N rows

  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid >> 5;
  const int lane = tid & 31;
  const int g = lane >> 2;
  const int t4 = lane & 3;

  const unsigned heads = static_cast<unsigned>(p.heads);
  const int h = static_cast<int>(blockIdx.x % heads);
  const int tile = __ldg(p.work + blockIdx.x / heads);  // launch order: heaviest schedule rows first
  const int b = static_cast<int>(blockIdx.y) + p.batch_offset;
  const TileSpan span = tile_span(tile, bp.tiles_per_block, p.block_q, p.q_seq, M);
  if (span.count == 0) return;  // the tile starts past its q-block
  const int qb = span.block, q_begin = span.begin, rows = span.count;
  const int64_t qblock_q0 = span.block0;

  const int sched = __ldg(p.head_schedule + (p.mask_heads == 1 ? 0 : h));
  const int row_index = sched * p.rows_per_schedule + qb;
  const int e_begin = __ldg(p.row_ptr + row_index);
  const int e_end = __ldg(p.row_ptr + row_index + 1);
  const int kvh = h / p.group;
  const uint16_t* k_ptr = static_cast<const uint16_t*>(p.k) + b * p.k_batch_stride + kvh * p.k_head_stride;
  const uint16_t* v_ptr = static_cast<const uint16_t*>(p.v) + b * p.v_batch_stride + kvh * p.v_head_stride;
  const int warp_row0 = warp * 16;

  KvWalk walk;
  walk.e_end = e_end;
  walk.b = b;
  walk.has_seg = p.seg_q != nullptr;
  walk.q_seg_lo = walk.q_seg_hi = 0;
  if (walk.has_seg) {
    cta_segment_range(p.seg_q + static_cast<int64_t>(b) * p.q_seq + q_begin, rows,
                      tid, kMmaThreads, &walk.q_seg_lo, &walk.q_seg_hi);
  }

  // The thread's two rows (g and g + 8 of its warp's strip): lse, di and segment id, once.
  int qrow[2], seg_row[2];
  float lse2[2], di[2];
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const int r = warp_row0 + g + 8 * hf;
    qrow[hf] = q_begin + r;
    lse2[hf] = pos_inf();
    di[hf] = 0.f;
    seg_row[hf] = INT_MAX;
    if (r < rows) {
      lse2[hf] = lse_log2(p.lse[b * p.lse_batch_stride + h * p.lse_head_stride +
                                static_cast<int64_t>(qrow[hf]) * p.lse_seq_stride]);
      di[hf] = bp.di[(static_cast<int64_t>(b) * p.heads + h) * p.q_seq + qrow[hf]];
      if (walk.has_seg) seg_row[hf] = __ldg(p.seg_q + static_cast<int64_t>(b) * p.q_seq + qrow[hf]);
    }
  }

  float dq[DT][4];
#pragma unroll
  for (int j = 0; j < DT; ++j) dq[j][0] = dq[j][1] = dq[j][2] = dq[j][3] = 0.f;

  // A operands (Q, dO rows): lane rows lane&7 + 8*bit3, chunk hi = bit4; B operands of Q K^T and
  // dO V^T (K, V rows as n): rows lane&7 + 8*bit4, hi = bit3; B of dS K (K rows as k, transposed)
  // like the A operands.
  const FragAddr<D> q_frag(sQ, (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4);
  const FragAddr<D> do_frag(sdO, (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4);
  const FragAddr<D> k_frag(sK, (lane & 7) + (lane >> 4) * 8, (lane >> 3) & 1);
  const FragAddr<D> v_frag(sV, (lane & 7) + (lane >> 4) * 8, (lane >> 3) & 1);
  const FragAddr<D> kt_frag(sK, (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4);

  const bool has_seg = walk.has_seg;
  const float cap = p.soft_cap;
  const float cap_mul = cap > 0.f ? p.scale / cap : 0.f;
  const float scale_log2e = p.scale * kLog2e;
  const int prog_begin = __ldg(p.program_ptr + sched);
  const int prog_end = __ldg(p.program_ptr + sched + 1);
  KvTile t = walk.first_from(p, e_begin, N);
  if (!walk.done(t)) {
    const int64_t q_off = b * p.q_batch_stride + h * p.q_head_stride + q_begin * p.q_seq_stride;
    const int64_t do_off = b * bp.do_batch_stride + h * bp.do_head_stride + q_begin * bp.do_seq_stride;
    load_tile_async<D, M>(sQ, static_cast<const uint16_t*>(p.q) + q_off, p.q_seq_stride, rows, tid);
    load_tile_async<D, M>(sdO, static_cast<const uint16_t*>(bp.dout) + do_off, bp.do_seq_stride, rows, tid);
    load_tile_async<D, N>(sK, k_ptr + t.kv0 * p.k_seq_stride, p.k_seq_stride, t.len, tid);
    load_tile_async<D, N>(sV, v_ptr + t.kv0 * p.v_seq_stride, p.v_seq_stride, t.len, tid);
    cp_async_commit();
  }
  int buf = 0;

  while (!walk.done(t)) {
    cp_async_wait_all();
    __syncthreads();  // tile j visible; every warp is done with tile j - 1, whose buffers take tile j + 1
    const KvTile next = walk.next(p, t, N);
    if (!walk.done(next)) {
      load_tile_async<D, N>(sK + (buf ^ 1) * N * LDS, k_ptr + next.kv0 * p.k_seq_stride, p.k_seq_stride, next.len, tid);
      load_tile_async<D, N>(sV + (buf ^ 1) * N * LDS, v_ptr + next.kv0 * p.v_seq_stride, p.v_seq_stride, next.len, tid);
      cp_async_commit();
    }
    const bool plain = t.kind == static_cast<int>(BlockKind::Full) && (!has_seg || t.seg_uniform) && t.len == N;

#pragma unroll 1
    for (int step = 0; step < N / NC; ++step) {
      if (step > 0 && step * NC >= t.len) break;  // the rest of a ragged tile holds no keys
      const int key0 = buf * N + step * NC;

      // ---- S = Q K^T and dP = dO V^T for NC keys ---------------------------------------------------
      float s[NT][4], dp[NT][4];
      two_products<T, D, NT>(s, dp, q_frag, do_frag, warp_row0, k_frag, v_frag, key0);

      // ---- p and ds (element (row half hf, column 2j + e1) is bit hf * C + 2j + e1) ----------------
      if (plain) {
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            grad_in_place<false>(s[j][e], dp[j][e], lse2[e >> 1], di[e >> 1], cap, cap_mul, scale_log2e, p.mask_value,
                                 true, true);
      } else {
        int kvcol[C];
#pragma unroll
        for (int j = 0; j < NT; ++j) {
          kvcol[2 * j] = t.kv0 + step * NC + 8 * j + 2 * t4;
          kvcol[2 * j + 1] = kvcol[2 * j] + 1;
        }
        uint64_t allowed, exists;
        tile_mask<2, C>(p, t, N, prog_begin, prog_end, static_cast<int>(qblock_q0), qrow, kvcol, seg_row,
                        static_cast<int64_t>(b) * p.kv_seq, &allowed, &exists);
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int bit = (e >> 1) * C + 2 * j + (e & 1);
            grad_in_place<true>(s[j][e], dp[j][e], lse2[e >> 1], di[e >> 1], cap, cap_mul, scale_log2e, p.mask_value,
                                (exists >> bit) & 1u, (allowed >> bit) & 1u);
          }
      }

      // ---- dQ += dS K --------------------------------------------------------------------------------
      (void)acc_times_tile_in_range<T, D, PK>(dq, dp, kt_frag, key0);
    }
    buf ^= 1;
    t = next;
  }

  // ---- dq through sQ (each warp stages its own rows, which only it has read) ------------------------
  uint16_t* dst = static_cast<uint16_t*>(bp.dq) + b * bp.dq_batch_stride + h * bp.dq_head_stride +
                  q_begin * bp.dq_seq_stride;
  if (p.scale != 1.f) scale_tiles(dq, p.scale);
  store_rows<T, D, M>(sQ, dq, dst, bp.dq_seq_stride, rows, warp, g, t4, tid);
#endif  // device code for sm_80+
}

// ---- dk / dv pass (and the fused pass) ------------------------------------------------------------

// One Q/dO tile of a dk/dv CTA: q head h, dkv-schedule entry e (q-block qb), rows [q0, q0 + rows).
struct QTile {
  int h;            // h >= the walk's h_end: done
  int e, qb, q0, rows, q_stop;
  int sched, kind, ref;
  bool seg_uniform;  // the q-block and the CTA's keys lie in one and the same segment
};

// The Q/dO tiles of a dk/dv CTA in order: the group's q heads, the visited q-blocks of each head's
// dkv row (q-blocks whose segment range misses the keys' skipped, when p.segment_skip), each q-block
// in tiles of tile_m rows.
struct QWalk {
  int h_end, kb, b;
  bool has_seg;
  int kv_seg_lo, kv_seg_hi;

  // The first tile of entry e of head h (e < 0: the row's first entry) or of a later one.
  __device__ __forceinline__ QTile first_from(const BwdKernelParams& bp, int h, int e, int tile_m) const {
    const FwdKernelParams& p = bp.s;
    QTile t;
    for (; h < h_end; ++h, e = -1) {
      const int sched = __ldg(p.head_schedule + (p.mask_heads == 1 ? 0 : h));
      const int row = sched * p.rows_per_schedule + kb;
      if (e < 0) e = __ldg(p.row_ptr + row);
      const int e_end = __ldg(p.row_ptr + row + 1);
      for (; e < e_end; ++e) {
        const int qb = __ldg(p.col_idx + e);
        bool uniform = false;
        if (has_seg) {
          const int32_t* r = bp.q_block_seg + (static_cast<int64_t>(b) * p.q_blocks + qb) * 2;
          const int lo = __ldg(r), hi = __ldg(r + 1);
          if (p.segment_skip && (hi < kv_seg_lo || lo > kv_seg_hi)) continue;
          uniform = lo == hi && kv_seg_lo == kv_seg_hi && lo == kv_seg_lo;
        }
        t.h = h;
        t.e = e;
        t.qb = qb;
        t.q0 = qb * p.block_q;  // < q_seq
        t.q_stop = static_cast<int>(min(static_cast<int64_t>(p.q_seq), static_cast<int64_t>(t.q0) + p.block_q));
        t.rows = min(tile_m, t.q_stop - t.q0);
        t.sched = sched;
        t.kind = __ldg(p.col_kind + e);
        t.ref = __ldg(p.col_mask_ref + e);
        t.seg_uniform = uniform;
        return t;
      }
    }
    t.h = h_end;
    t.e = t.qb = t.q0 = t.rows = t.q_stop = t.sched = t.kind = 0;
    t.ref = -1;
    t.seg_uniform = false;
    return t;
  }

  __device__ __forceinline__ QTile next(const BwdKernelParams& bp, QTile t, int tile_m) const {
    if (t.q0 + tile_m < t.q_stop) {
      t.q0 += tile_m;
      t.rows = min(tile_m, t.q_stop - t.q0);
      return t;
    }
    return first_from(bp, t.h, t.e + 1, tile_m);
  }

  __device__ __forceinline__ bool done(const QTile& t) const { return t.h >= h_end; }
};

// Starts the loads of one Q/dO tile into buffer `buf` (cp.async, not committed) and writes its rows'
// lse (exp2 domain, +inf past the tile) and di.
template <int D, int M>
__device__ __forceinline__ void load_q_tile(const BwdKernelParams& bp, const QTile& t, int b, uint16_t* sQ,
                                            uint16_t* sdO, float* sLse2, float* sDi, int tid) {
  const FwdKernelParams& p = bp.s;
  load_tile_async<D, M>(sQ, static_cast<const uint16_t*>(p.q) + b * p.q_batch_stride + t.h * p.q_head_stride +
                                t.q0 * p.q_seq_stride,
                        p.q_seq_stride, t.rows, tid);
  load_tile_async<D, M>(sdO, static_cast<const uint16_t*>(bp.dout) + b * bp.do_batch_stride + t.h * bp.do_head_stride +
                                 t.q0 * bp.do_seq_stride,
                        bp.do_seq_stride, t.rows, tid);
  for (int r = tid; r < M; r += kMmaThreads) {
    float l2 = pos_inf(), d = 0.f;
    if (r < t.rows) {
      l2 = lse_log2(p.lse[b * p.lse_batch_stride + t.h * p.lse_head_stride +
                          static_cast<int64_t>(t.q0 + r) * p.lse_seq_stride]);
      d = bp.di[(static_cast<int64_t>(b) * p.heads + t.h) * p.q_seq + t.q0 + r];
    }
    sLse2[r] = l2;
    sDi[r] = d;
  }
}

// kDv / kDk: which of dV and dK this launch computes (both up to d = 128; above, one launch each over
// the same tiles, bwd_tiles.h: bwd_mma_dkv_in_two). Fused needs kDk (it uses dS).
template <class T, int D, bool Fused, bool kDv = true, bool kDk = true>
__global__ void __launch_bounds__(kMmaThreads, 1) bwd_dkv_mma_kernel(const BwdKernelParams bp) {
#if defined(SPLASH_GPU_EMULATE) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800)
  constexpr int N = kBwdMmaDkvKeys;      // keys of the CTA, 16 per warp
  constexpr int M = bwd_mma_dkv_rows(D); // query rows per Q/dO tile
  constexpr int NT = M / 8;              // n8 tiles of S^T and dP^T (query rows)
  constexpr int DT = D / 8;              // n8 tiles of dK and dV
  constexpr int PK = M / 16;             // k16 steps of P^T dO and dS^T Q
  constexpr int R = 2 * NT;              // query rows per thread (mask)
  constexpr int LDS = mma_row_stride(D);
  constexpr int LDT = mma_row_stride(M); // the dS^T tile's rows (fused)
  static_assert(N == 16 * 4 && NT % 2 == 0 && DT % 2 == 0 && R * 2 <= 64, "tile shapes");
  static_assert((kDv || kDk) && (kDk || !Fused), "a dk/dv launch computes dV, dK or both; fused needs dK");
  const FwdKernelParams& p = bp.s;

  SPLASH_DYNAMIC_SMEM(uint4, bwd_mma_smem);
  uint16_t* sK = reinterpret_cast<uint16_t*>(bwd_mma_smem);
  uint16_t* sV = sK + N * LDS;
  uint16_t* sQ = sV + N * LDS;         // two buffers of M rows
  uint16_t* sdO = sQ + 2 * M * LDS;    // two buffers of M rows
  uint16_t* sdS = sdO + 2 * M * LDS;   // fused: [N keys, M rows]
  float* sLse2 = reinterpret_cast<float*>(sdS + (Fused ? N * LDT : 0));  // two buffers of M
  float* sDi = sLse2 + 2 * M;                                            // two buffers of M
  float* sDsScale = sDi + 2 * M;  // fused: the factor each warp's rows of dS^T were stored with

  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid >> 5;
  const int lane = tid & 31;
  const int g = lane >> 2;
  const int t4 = lane & 3;

  const unsigned kv_heads = static_cast<unsigned>(bp.kv_heads);
  const int kvh = static_cast<int>(blockIdx.x % kv_heads);
  const int tile = __ldg(p.work + blockIdx.x / kv_heads);  // launch order: heaviest schedule rows first
  const int b = static_cast<int>(blockIdx.y) + p.batch_offset;
  const TileSpan span = tile_span(tile, bp.tiles_per_block, p.block_kv, p.kv_seq, N);
  if (span.count == 0) return;  // the tile starts past its kv-block
  const int kb = span.block, kv_begin = span.begin, len = span.count;
  const bool has_seg = p.seg_q != nullptr;

  QWalk walk;
  walk.h_end = (kvh + 1) * p.group;
  walk.kb = kb;
  walk.b = b;
  walk.has_seg = has_seg;
  walk.kv_seg_lo = walk.kv_seg_hi = 0;
  if (has_seg) {
    cta_segment_range(p.seg_kv + static_cast<int64_t>(b) * p.kv_seq + kv_begin, len,
                      tid, kMmaThreads, &walk.kv_seg_lo, &walk.kv_seg_hi);
  }

  float dk[DT][4], dv[DT][4];
#pragma unroll
  for (int j = 0; j < DT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[j][e] = dv[j][e] = 0.f;

  // A operands (K, V rows of the warp's strip): rows lane&7 + 8*bit3, hi = bit4. B operands of K Q^T
  // and V dO^T (Q, dO rows as n): rows lane&7 + 8*bit4, hi = bit3. B operands of P^T dO and dS^T Q
  // (rows as k, transposed) like the A operands. Fused: dS (A of dS K) from the stored dS^T,
  // transposed, with the B-operand lane rows; K as the B of dS K, transposed.
  const int key0 = warp * 16;
  const FragAddr<D> ka_frag(sK, (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4);
  const FragAddr<D> va_frag(sV, (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4);
  const FragAddr<D> qb_frag(sQ, (lane & 7) + (lane >> 4) * 8, (lane >> 3) & 1);
  const FragAddr<D> dob_frag(sdO, (lane & 7) + (lane >> 4) * 8, (lane >> 3) & 1);
  const FragAddr<D> qt_frag(sQ, (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4);
  const FragAddr<D> dot_frag(sdO, (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4);

  const float cap = p.soft_cap;
  const float cap_mul = cap > 0.f ? p.scale / cap : 0.f;
  const float scale_log2e = p.scale * kLog2e;
  int kvcol[2];
  kvcol[0] = kv_begin + key0 + g;
  kvcol[1] = kvcol[0] + 8;
  QTile t = walk.first_from(bp, kvh * p.group, -1, M);
  if (!walk.done(t)) {
    load_tile_async<D, N>(sK, static_cast<const uint16_t*>(p.k) + b * p.k_batch_stride + kvh * p.k_head_stride +
                                  kv_begin * p.k_seq_stride,
                          p.k_seq_stride, len, tid);
    load_tile_async<D, N>(sV, static_cast<const uint16_t*>(p.v) + b * p.v_batch_stride + kvh * p.v_head_stride +
                                  kv_begin * p.v_seq_stride,
                          p.v_seq_stride, len, tid);
    load_q_tile<D, M>(bp, t, b, sQ, sdO, sLse2, sDi, tid);
    cp_async_commit();
  }
  int buf = 0;

  while (!walk.done(t)) {
    cp_async_wait_all();
    __syncthreads();  // tile j (and K, V) visible; every warp is done with tile j - 1's buffers and dS^T
    const QTile next = walk.next(bp, t, M);
    if (!walk.done(next)) {
      const int o = (buf ^ 1) * M;
      load_q_tile<D, M>(bp, next, b, sQ + o * LDS, sdO + o * LDS, sLse2 + o, sDi + o, tid);
      cp_async_commit();
    }
    const int row0 = buf * M;

    // ---- S^T = K Q^T and dP^T = V dO^T (keys x query rows) ---------------------------------------------
    float s[NT][4], dp[NT][4];
    two_products<T, D, NT, kDk>(s, dp, ka_frag, va_frag, key0, qb_frag, dob_frag, row0);

    // ---- p and ds: accumulator s[j][2 * hf + e1] is (key g + 8 hf, query row 8j + 2 t4 + e1) --------------
    const bool plain = t.kind == static_cast<int>(BlockKind::Full) && (!has_seg || t.seg_uniform) && len == N;
    if (plain) {
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = row0 + 8 * j + 2 * t4 + (e & 1);
          grad_in_place<false>(s[j][e], dp[j][e], sLse2[r], sDi[r], cap, cap_mul, scale_log2e, p.mask_value, true,
                               true);
        }
    } else {
      // The mask sees the thread's R query rows x 2 keys; element (row a = 2j + e1, key hf) is bit a * 2 + hf.
      int qrow[R], seg_row[R];
#pragma unroll
      for (int a = 0; a < R; ++a) {
        const int r = 8 * (a >> 1) + 2 * t4 + (a & 1);
        qrow[a] = t.q0 + r;
        seg_row[a] = has_seg && r < t.rows ? __ldg(p.seg_q + static_cast<int64_t>(b) * p.q_seq + qrow[a]) : INT_MAX;
      }
      KvTile kt;
      kt.e = t.e;
      kt.kv0 = kv_begin;
      kt.len = len;
      kt.block_kv0 = span.block0;
      kt.block_end = span.block_end;
      kt.kind = t.kind;
      kt.ref = t.ref;
      kt.seg_uniform = t.seg_uniform;
      const int prog_begin = __ldg(p.program_ptr + t.sched);
      const int prog_end = __ldg(p.program_ptr + t.sched + 1);
      uint64_t allowed, exists;
      tile_mask<R, 2>(p, kt, N, prog_begin, prog_end, t.qb * p.block_q, qrow, kvcol, seg_row,
                      static_cast<int64_t>(b) * p.kv_seq, &allowed, &exists);
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = row0 + 8 * j + 2 * t4 + (e & 1);
          const int bit = (2 * j + (e & 1)) * 2 + (e >> 1);
          grad_in_place<true>(s[j][e], dp[j][e], sLse2[r], sDi[r], cap, cap_mul, scale_log2e, p.mask_value,
                              (exists >> bit) & 1u, (allowed >> bit) & 1u);
        }
    }

    // ---- dV += P^T dO, dK += dS^T Q ------------------------------------------------------------------------
    if constexpr (kDv) acc_times_tile<T, D, PK>(dv, s, dot_frag, row0);  // p <= 1 fits every dtype
    float ds_scale = 1.f;  // dp holds dS times this from here on
    if constexpr (kDk) ds_scale = acc_times_tile_in_range<T, D, PK>(dk, dp, qt_frag, row0);

    if constexpr (Fused) {
      // dS^T to shared memory (each warp's 16 keys times its ds_scale), then warp w computes rows
      // strip (w % RS) x dims part (w / RS) of dS K.
      constexpr int RS = M / 16;
      constexpr int DW = D * RS / 4;  // dims per warp
      static_assert(RS * (4 / RS) == 4 && DW % 16 == 0, "fused dq split");
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
          *reinterpret_cast<uint32_t*>(sdS + smem_offset<M>(key0 + g + 8 * hf, j) + 2 * t4) =
              cvt_pack<T>(dp[j][2 * hf], dp[j][2 * hf + 1]);
        }
      if (lane == 0) sDsScale[warp] = ds_scale;
      __syncthreads();
      const int rs = warp % RS, part = warp / RS;
      const FragAddr<M> ds_frag(sdS, (lane & 7) + (lane >> 4) * 8, (lane >> 3) & 1);
      const FragAddr<D> kt_frag(sK, (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4);
      float qacc[DW / 8][4];
#pragma unroll
      for (int j = 0; j < DW / 8; ++j) qacc[j][0] = qacc[j][1] = qacc[j][2] = qacc[j][3] = 0.f;
      // k16 step kk reads warp kk's keys, stored times sDsScale[kk]: qacc is kept times the current
      // step's factor (powers of two, exact) and divided by the last one at the end.
      float qscale = 1.f;
#pragma unroll
      for (int kk = 0; kk < N / 16; ++kk) {
        const float f = sDsScale[kk];
        if (f != qscale) {
          scale_tiles(qacc, f / qscale);
          qscale = f;
        }
        uint32_t a[4];
        ldmatrix_x4_trans(a, ds_frag.at(kk * 16, rs));
#pragma unroll
        for (int cp = 0; cp < DW / 16; ++cp) {
          uint32_t bk[4];
          ldmatrix_x4_trans(bk, kt_frag.at(kk * 16, part * (DW / 16) + cp));
          mma_16816<T>(qacc[2 * cp], a, bk[0], bk[1]);
          mma_16816<T>(qacc[2 * cp + 1], a, bk[2], bk[3]);
        }
      }
      if (qscale != 1.f) scale_tiles(qacc, 1.f / qscale);
      float* acc = bp.dq_acc + ((static_cast<int64_t>(b) * p.heads + t.h) * p.q_seq + t.q0) * p.head_dim + part * DW;
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const int r = rs * 16 + g + 8 * hf;
        if (r < t.rows) {
#pragma unroll
          for (int j = 0; j < DW / 8; ++j) {
            atomicAdd(acc + static_cast<int64_t>(r) * p.head_dim + 8 * j + 2 * t4, qacc[j][2 * hf]);
            atomicAdd(acc + static_cast<int64_t>(r) * p.head_dim + 8 * j + 2 * t4 + 1, qacc[j][2 * hf + 1]);
          }
        }
      }
    }
    buf ^= 1;
    t = next;
  }

  // ---- dk and dv, staged through sK and sV once every warp is past its last read of them ------------
  __syncthreads();
  uint16_t* dk_dst = static_cast<uint16_t*>(bp.dk) + b * bp.dk_batch_stride + kvh * bp.dk_head_stride +
                     kv_begin * bp.dk_seq_stride;
  uint16_t* dv_dst = static_cast<uint16_t*>(bp.dv) + b * bp.dv_batch_stride + kvh * bp.dv_head_stride +
                     kv_begin * bp.dv_seq_stride;
  if constexpr (kDk) {
    if (p.scale != 1.f) scale_tiles(dk, p.scale);
    store_rows<T, D, N>(sK, dk, dk_dst, bp.dk_seq_stride, len, warp, g, t4, tid);
  }
  if constexpr (kDv) store_rows<T, D, N>(sV, dv, dv_dst, bp.dv_seq_stride, len, warp, g, t4, tid);
#endif  // device code for sm_80+
}

}  // namespace mma

#ifndef SPLASH_GPU_EMULATE
// One launch of `kernel` with `smem` bytes of dynamic shared memory (opted into above 48 KiB).
inline gpuError_t launch_with_smem(void (*kernel)(BwdKernelParams), size_t smem, const BwdKernelParams& p, dim3 grid,
                                   gpuStream_t stream) {
  if (smem > 48 * 1024) {
    const gpuError_t e = gpuFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                                             gpuFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != gpuSuccess) return e;
  }
  kernel<<<grid, kMmaThreads, smem, stream>>>(p);
  return gpuGetLastError();
}

// Launches one tensor-core backward step (kDq, kDkv or kFused) for one (dtype, head dim).
template <class T, int D>
gpuError_t launch_bwd_mma_t(BwdStep step, const BwdKernelParams& p, dim3 grid, gpuStream_t stream) {
  if (step == BwdStep::kDq) {
    return launch_with_smem(&mma::bwd_dq_mma_kernel<T, D>, static_cast<size_t>(bwd_mma_dq_smem_bytes(D)), p, grid,
                            stream);
  }
  if (step != BwdStep::kDkv && step != BwdStep::kFused) return gpuErrorInvalidValue;
  const bool fused = step == BwdStep::kFused;
  const size_t smem = static_cast<size_t>(bwd_mma_dkv_smem_bytes(D, fused));
  if constexpr (bwd_mma_dkv_in_two(D)) {  // dV, then dK (and the fused dQ) over the same tiles
    const gpuError_t e = launch_with_smem(&mma::bwd_dkv_mma_kernel<T, D, false, true, false>, smem, p, grid, stream);
    if (e != gpuSuccess) return e;
    return fused ? launch_with_smem(&mma::bwd_dkv_mma_kernel<T, D, true, false, true>, smem, p, grid, stream)
                 : launch_with_smem(&mma::bwd_dkv_mma_kernel<T, D, false, false, true>, smem, p, grid, stream);
  } else {
    return fused ? launch_with_smem(&mma::bwd_dkv_mma_kernel<T, D, true>, smem, p, grid, stream)
                 : launch_with_smem(&mma::bwd_dkv_mma_kernel<T, D, false>, smem, p, grid, stream);
  }
}
#endif

}  // namespace gpu
}  // namespace splash
