// Portable SIMT backward kernels (every dtype, CUDA and HIP alike; f32 arithmetic throughout, bf16
// and f16 converted on load and rounded once on store):
//
//   bwd_di_kernel        di = rowsum(out * dout), one thread per query row;
//   bwd_dsinks_kernel    with sinks: dsinks[h] = -sum over batch and rows of exp(sink_h - lse) * di, one
//                        CTA per head after every di is written (a fixed-order sum: deterministic);
//   bwd_dq_simt_kernel   split pass 1: one CTA per (batch, head, q tile), walking the dq schedule row;
//   bwd_dkv_simt_kernel  split pass 2 (Fused = false): one CTA per (batch, kv head, kv tile), walking
//                        the dkv schedule row of every q head of the GQA group, dk/dv in registers;
//                        fused pass (Fused = true): the same, plus each (q tile, kv tile)'s dq share
//                        added to an f32 buffer with atomicAdd, which bwd_dq_cast_kernel then rounds.
//
// Every gradient element of the split pass is written by exactly one thread after a fixed-order sum,
// so the split backward is bitwise deterministic. Per score element (as the CPU kernel and splash):
//   x = soft_cap(scale * q.k) (if any); masked-but-visited: x = mask_value; p = exp(x - lse);
//   ds = p * (dp - di) * (1 - tanh^2) (cap), 0 where masked or past a ragged edge;
// dq = scale * sum ds k and dk = scale * sum ds q: the scale is applied once, to the finished sums.
// Rows with lse = -inf (no allowed key) use lse = +inf, which makes p and ds exactly 0. Sinks need
// nothing here: they are in the forward's lse, and ds = p (dp - di) holds with them (a sink has no
// value, so its own dp is 0 and it only enters di's softmax weights through lse).
//
// Score tiles use mask.cuh's element layout: a thread holds R rows x C columns, rows RPT*rg + i and
// columns cg + CG*j for a CTA of RG x CG = 128 threads; accumulators (dq, dk, dv) are owned per
// element (element e = tid + 128 * i of a [rows, B] tile), so no reductions across threads are needed.
#pragma once

#include <climits>

#include "bwd_params.h"
#include "bwd_tiles.h"
#include "dtypes.cuh"
#include "mask.cuh"
#include "plan.h"
#include "softmax.cuh"

namespace splash {
namespace gpu {
namespace bwd {

constexpr int kThreads = 128;

template <class T>
__device__ __forceinline__ float load1(const void* base, int64_t index) {
  if constexpr (T::kDType == DType::F32) {
    return static_cast<const float*>(base)[index];
  } else {
    return bits_to_float<T>(static_cast<const uint16_t*>(base)[index]);
  }
}

template <class T>
__device__ __forceinline__ void store1(void* base, int64_t index, float v) {
  if constexpr (T::kDType == DType::F32) {
    static_cast<float*>(base)[index] = v;
  } else {
    static_cast<uint16_t*>(base)[index] = static_cast<uint16_t>(float_to_bits<T>(v));
  }
}

// Rows [0, rows) of width `width` (row r at base + r * stride) into shared rows of LD floats;
// up to tile_rows rows and B columns are written, zeros where there is no data.
template <class T, int B, int LD>
__device__ __forceinline__ void load_rows(float* dst, const void* src, int64_t base, int64_t stride, int rows,
                                          int tile_rows, int width, int tid) {
  for (int idx = tid; idx < tile_rows * B; idx += kThreads) {
    const int r = idx / B, c = idx - (idx / B) * B;
    dst[r * LD + c] = (r < rows && c < width) ? load1<T>(src, base + r * stride + c) : 0.f;
  }
}

// lse (-inf turned into +inf) and di of rows [q0, q0 + rows); +inf / 0 up to tile_rows.
__device__ __forceinline__ void load_row_stats(float* s_lse, float* s_di, const BwdKernelParams& bp, int b, int h,
                                               int q0, int rows, int tile_rows, int tid) {
  const FwdKernelParams& p = bp.s;
  for (int r = tid; r < tile_rows; r += kThreads) {
    float l = pos_inf(), d = 0.f;
    if (r < rows) {
      l = p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + static_cast<int64_t>(q0 + r) * p.lse_seq_stride];
      if (l == neg_inf()) l = pos_inf();
      d = bp.di[(static_cast<int64_t>(b) * p.heads + h) * p.q_seq + q0 + r];
    }
    s_lse[r] = l;
    s_di[r] = d;
  }
}

// p and ds (the gradient of the logit, before the scale) of one score element from its dot product
// s = q.k, dp = dO.v, and the row's lse and di. cap_mul = scale / cap; without a cap the scale goes
// into the exponent's one rounding (fmaf), exact for scale 1.
__device__ __forceinline__ void grad_element(float s, float dp, float lse, float di, bool exists, bool allowed,
                                             float cap, float cap_mul, float scale, float mask_value, float* p_out,
                                             float* ds_out) {
  float dcap = 1.f;
  float sc = scale;  // what still turns s into the logit
  if (cap > 0.f) {
    const float t = tanhf(s * cap_mul);
    s = cap * t;
    dcap = 1.f - t * t;
    sc = 1.f;
  }
  if (!allowed) {
    s = mask_value;
    sc = 1.f;
  }
  const float pr = exists ? expf(fmaf(s, sc, -lse)) : 0.f;
  *p_out = pr;
  *ds_out = (exists && allowed) ? pr * (dp - di) * dcap : 0.f;
}

// ---- di = rowsum(out * dout) ---------------------------------------------------------------------

// Element-wise kernels (di, the dq cast) loop over their items with a grid stride: their grid is
// capped (bwd_plan.h: elementwise_blocks), as HIP's dispatch holds gridDim.x * blockDim.x in 32 bits.
__device__ __forceinline__ int64_t grid_stride() { return static_cast<int64_t>(gridDim.x) * kThreads; }

template <class T>
__global__ void __launch_bounds__(kThreads) bwd_di_kernel(const BwdKernelParams bp) {
  const FwdKernelParams& p = bp.s;
  const int64_t rows = static_cast<int64_t>(p.heads) * p.q_seq;
  const int b = static_cast<int>(blockIdx.y) + p.batch_offset;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; row < rows; row += grid_stride()) {
    const int h = static_cast<int>(row / p.q_seq);
    const int i = static_cast<int>(row - static_cast<int64_t>(h) * p.q_seq);
    const int64_t o = b * p.o_batch_stride + h * p.o_head_stride + i * p.o_seq_stride;
    const int64_t g = b * bp.do_batch_stride + h * bp.do_head_stride + i * bp.do_seq_stride;
    float acc = 0.f;
    for (int c = 0; c < p.head_dim_v; c += 4) {
      const float4 a = load4<T>(p.out, o + c);
      const float4 d = load4<T>(bp.dout, g + c);
      acc = fmaf(a.x, d.x, acc);
      acc = fmaf(a.y, d.y, acc);
      acc = fmaf(a.z, d.z, acc);
      acc = fmaf(a.w, d.w, acc);
    }
    bp.di[(static_cast<int64_t>(b) * p.heads + h) * p.q_seq + i] = acc;
  }
}

// ---- dsinks ----------------------------------------------------------------------------------------

// d loss / d sink_h = -sum over batch and rows of p_sink * di, p_sink = exp(sink_h - lse) being the
// sink's softmax weight (it has no value, so d out / d sink_h = -p_sink * out). One CTA per head, launched
// once after every batch chunk's di: each thread sums a fixed set of rows in double, then a fixed tree
// adds the threads' sums, so the result is the same bits run to run. Rows with lse = -inf are skipped
// (only a sink of -inf leaves a row there; it weighs nothing).
template <class T>
__global__ void __launch_bounds__(kThreads) bwd_dsinks_kernel(const BwdKernelParams bp) {
  const FwdKernelParams& p = bp.s;
  SPLASH_DYNAMIC_SMEM(float4, bwd_smem);
  double* part = reinterpret_cast<double*>(bwd_smem);
  const int tid = static_cast<int>(threadIdx.x);
  const int h = static_cast<int>(blockIdx.x);
  const float sink = p.sinks[h];
  const int64_t rows = static_cast<int64_t>(bp.batch) * p.q_seq;
  double acc = 0.0;
  for (int64_t r = tid; r < rows; r += kThreads) {
    const int64_t b = r / p.q_seq;
    const int64_t i = r - b * p.q_seq;
    const float lse = p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + i * p.lse_seq_stride];
    if (lse == neg_inf()) continue;
    acc -= static_cast<double>(expf(sink - lse) * bp.di[(b * p.heads + h) * p.q_seq + i]);
  }
  part[tid] = acc;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w /= 2) {
    if (tid < w) part[tid] += part[tid + w];
    __syncthreads();
  }
  if (tid == 0) bp.dsinks[h] = static_cast<float>(part[0]);
}

// ---- dq pass -------------------------------------------------------------------------------------

template <class T, int B>
__global__ void __launch_bounds__(kThreads) bwd_dq_simt_kernel(const BwdKernelParams bp) {
  constexpr int M = bwd_dq_rows(B);
  constexpr int N = bwd_dq_keys(B);
  constexpr int RG = 16, CG = 8;
  constexpr int RPT = M / RG, CPT = N / CG;
  constexpr int LD = B + 1, LDS = N + 1;
  constexpr int ACC = M * B / kThreads;
  static_assert(RPT * RG == M && CPT * CG == N && ACC * kThreads == M * B, "tile shape");
  const FwdKernelParams& p = bp.s;
  const float cap_mul = p.soft_cap > 0.f ? p.scale / p.soft_cap : 0.f;
  SPLASH_DYNAMIC_SMEM(float4, bwd_smem);
  float* sQ = reinterpret_cast<float*>(bwd_smem);
  float* sdO = sQ + M * LD;
  float* sKV = sdO + M * LD;
  float* sdS = sKV + N * LD;
  float* sLse = sdS + M * LDS;
  float* sDi = sLse + M;

  const int tid = static_cast<int>(threadIdx.x);
  const int rg = tid / CG, cg = tid - (tid / CG) * CG;
  const unsigned heads = static_cast<unsigned>(p.heads);
  const int h = static_cast<int>(blockIdx.x % heads);
  const int tile = __ldg(p.work + blockIdx.x / heads);  // launch order: heaviest schedule rows first
  const int b = static_cast<int>(blockIdx.y) + p.batch_offset;
  const TileSpan span = tile_span(tile, bp.tiles_per_block, p.block_q, p.q_seq, M);
  if (span.count == 0) return;  // the tile starts past its q-block
  const int qb = span.block, q_begin = span.begin, rows = span.count;
  const int64_t qblock_q0 = span.block0;
  const int d = p.head_dim, dv = p.head_dim_v;

  const int sched = __ldg(p.head_schedule + (p.mask_heads == 1 ? 0 : h));
  const int row_index = sched * p.rows_per_schedule + qb;
  const int e_begin = __ldg(p.row_ptr + row_index);
  const int e_end = __ldg(p.row_ptr + row_index + 1);
  const int prog_begin = __ldg(p.program_ptr + sched);
  const int prog_end = __ldg(p.program_ptr + sched + 1);
  const int kvh = h / p.group;

  KvWalk walk;
  walk.e_end = e_end;
  walk.b = b;
  walk.has_seg = p.seg_q != nullptr;
  walk.q_seg_lo = walk.q_seg_hi = 0;
  int seg_row[RPT], qrow[RPT];
#pragma unroll
  for (int i = 0; i < RPT; ++i) {
    qrow[i] = q_begin + rg * RPT + i;
    seg_row[i] = INT_MAX;
  }
  if (walk.has_seg) {
    cta_segment_range(p.seg_q + static_cast<int64_t>(b) * p.q_seq + q_begin, rows,
                      tid, kThreads, &walk.q_seg_lo, &walk.q_seg_hi);
#pragma unroll
    for (int i = 0; i < RPT; ++i) {
      if (rg * RPT + i < rows) seg_row[i] = __ldg(p.seg_q + static_cast<int64_t>(b) * p.q_seq + qrow[i]);
    }
  }

  load_rows<T, B, LD>(sQ, p.q, b * p.q_batch_stride + h * p.q_head_stride + q_begin * p.q_seq_stride, p.q_seq_stride,
                      rows, M, d, tid);
  load_rows<T, B, LD>(sdO, bp.dout, b * bp.do_batch_stride + h * bp.do_head_stride + q_begin * bp.do_seq_stride,
                      bp.do_seq_stride, rows, M, dv, tid);
  load_row_stats(sLse, sDi, bp, b, h, q_begin, rows, M, tid);

  float acc[ACC];
#pragma unroll
  for (int a = 0; a < ACC; ++a) acc[a] = 0.f;

  const int64_t k_base = b * p.k_batch_stride + kvh * p.k_head_stride;
  const int64_t v_base = b * p.v_batch_stride + kvh * p.v_head_stride;
  const bool has_seg = walk.has_seg;
  for (KvTile t = walk.first_from(p, e_begin, N); !walk.done(t); t = walk.next(p, t, N)) {
    __syncthreads();  // the previous tile's K and dS are no longer read
    load_rows<T, B, LD>(sKV, p.v, v_base + t.kv0 * p.v_seq_stride, p.v_seq_stride, t.len, N, dv, tid);
    __syncthreads();
    float dp[RPT][CPT];
#pragma unroll
    for (int i = 0; i < RPT; ++i)
#pragma unroll
      for (int j = 0; j < CPT; ++j) dp[i][j] = 0.f;
    for (int k = 0; k < dv; ++k) {
#pragma unroll
      for (int i = 0; i < RPT; ++i) {
        const float o = sdO[(rg * RPT + i) * LD + k];
#pragma unroll
        for (int j = 0; j < CPT; ++j) dp[i][j] = fmaf(o, sKV[(cg + CG * j) * LD + k], dp[i][j]);
      }
    }
    __syncthreads();  // V is no longer read
    load_rows<T, B, LD>(sKV, p.k, k_base + t.kv0 * p.k_seq_stride, p.k_seq_stride, t.len, N, d, tid);
    __syncthreads();
    float s[RPT][CPT];
#pragma unroll
    for (int i = 0; i < RPT; ++i)
#pragma unroll
      for (int j = 0; j < CPT; ++j) s[i][j] = 0.f;
    for (int k = 0; k < d; ++k) {
#pragma unroll
      for (int i = 0; i < RPT; ++i) {
        const float qv = sQ[(rg * RPT + i) * LD + k];
#pragma unroll
        for (int j = 0; j < CPT; ++j) s[i][j] = fmaf(qv, sKV[(cg + CG * j) * LD + k], s[i][j]);
      }
    }
    uint64_t allowed = all_bits<RPT, CPT>(), exists = all_bits<RPT, CPT>();
    const bool plain = t.kind == static_cast<int>(BlockKind::Full) && (!has_seg || t.seg_uniform) && t.len == N;
    if (!plain) {
      int kvcol[CPT];
#pragma unroll
      for (int j = 0; j < CPT; ++j) kvcol[j] = t.kv0 + cg + CG * j;
      tile_mask<RPT, CPT>(p, t, N, prog_begin, prog_end, static_cast<int>(qblock_q0), qrow, kvcol, seg_row,
                          static_cast<int64_t>(b) * p.kv_seq, &allowed, &exists);
    }
#pragma unroll
    for (int i = 0; i < RPT; ++i) {
      const int r = rg * RPT + i;
#pragma unroll
      for (int j = 0; j < CPT; ++j) {
        const int bit = i * CPT + j;
        float pr, ds;
        grad_element(s[i][j], dp[i][j], sLse[r], sDi[r], (exists >> bit) & 1u, (allowed >> bit) & 1u, p.soft_cap,
                     cap_mul, p.scale, p.mask_value, &pr, &ds);
        sdS[r * LDS + cg + CG * j] = ds;
      }
    }
    __syncthreads();
    // dQ += dS K over the tile's keys, in key order for every element.
    for (int n = 0; n < t.len; ++n) {
#pragma unroll
      for (int a = 0; a < ACC; ++a) {
        const int e = tid + kThreads * a;
        const int r = e / B, c = e - (e / B) * B;
        acc[a] = fmaf(sdS[r * LDS + n], sKV[n * LD + c], acc[a]);
      }
    }
  }

  const int64_t dq_base = b * bp.dq_batch_stride + h * bp.dq_head_stride;
#pragma unroll
  for (int a = 0; a < ACC; ++a) {
    const int e = tid + kThreads * a;
    const int r = e / B, c = e - (e / B) * B;
    if (r < rows && c < d) {
      store1<T>(bp.dq, dq_base + static_cast<int64_t>(q_begin + r) * bp.dq_seq_stride + c, acc[a] * p.scale);
    }
  }
}

// ---- dk / dv pass (and the fused pass) ------------------------------------------------------------

template <class T, int B, bool Fused>
__global__ void __launch_bounds__(kThreads) bwd_dkv_simt_kernel(const BwdKernelParams bp) {
  constexpr int N = bwd_dkv_keys(B);   // keys owned by the CTA
  constexpr int M = bwd_dkv_rows(B);   // query rows per streamed tile
  constexpr int RG = M <= 8 ? 8 : 16;
  constexpr int CG = kThreads / RG;
  constexpr int RPT = M / RG, CPT = N / CG;
  constexpr int LD = B + 1, LDS = N + 1;
  constexpr int ACC = N * B / kThreads;
  constexpr int QACC = M * B / kThreads;
  static_assert(RPT * RG == M && CPT * CG == N && ACC * kThreads == N * B && QACC * kThreads == M * B, "tile shape");
  const FwdKernelParams& p = bp.s;
  const float cap_mul = p.soft_cap > 0.f ? p.scale / p.soft_cap : 0.f;
  SPLASH_DYNAMIC_SMEM(float4, bwd_smem);
  float* sK = reinterpret_cast<float*>(bwd_smem);
  float* sV = sK + N * LD;
  float* sQ = sV + N * LD;
  float* sdO = sQ + M * LD;
  float* sP = sdO + M * LD;
  float* sdS = sP + M * LDS;
  float* sLse = sdS + M * LDS;
  float* sDi = sLse + M;

  const int tid = static_cast<int>(threadIdx.x);
  const int rg = tid / CG, cg = tid - (tid / CG) * CG;
  const unsigned kv_heads = static_cast<unsigned>(bp.kv_heads);
  const int kvh = static_cast<int>(blockIdx.x % kv_heads);
  const int tile = __ldg(p.work + blockIdx.x / kv_heads);  // launch order: heaviest schedule rows first
  const int b = static_cast<int>(blockIdx.y) + p.batch_offset;
  const TileSpan span = tile_span(tile, bp.tiles_per_block, p.block_kv, p.kv_seq, N);
  if (span.count == 0) return;  // the tile starts past its kv-block
  const int kb = span.block, kv_begin = span.begin, len = span.count;
  const int d = p.head_dim, dv = p.head_dim_v;
  const bool has_seg = p.seg_q != nullptr;

  // Segment range of the CTA's keys.
  int kv_seg_lo = 0, kv_seg_hi = 0;
  if (has_seg) {
    cta_segment_range(p.seg_kv + static_cast<int64_t>(b) * p.kv_seq + kv_begin, len,
                      tid, kThreads, &kv_seg_lo, &kv_seg_hi);
  }

  load_rows<T, B, LD>(sK, p.k, b * p.k_batch_stride + kvh * p.k_head_stride + kv_begin * p.k_seq_stride,
                      p.k_seq_stride, len, N, d, tid);
  load_rows<T, B, LD>(sV, p.v, b * p.v_batch_stride + kvh * p.v_head_stride + kv_begin * p.v_seq_stride,
                      p.v_seq_stride, len, N, dv, tid);

  float dk[ACC], dvacc[ACC];
#pragma unroll
  for (int a = 0; a < ACC; ++a) dk[a] = dvacc[a] = 0.f;
  int kvcol[CPT];
#pragma unroll
  for (int j = 0; j < CPT; ++j) kvcol[j] = kv_begin + cg + CG * j;

  for (int g = 0; g < p.group; ++g) {
    const int h = kvh * p.group + g;
    const int sched = __ldg(p.head_schedule + (p.mask_heads == 1 ? 0 : h));
    const int row_index = sched * p.rows_per_schedule + kb;
    const int e_begin = __ldg(p.row_ptr + row_index);
    const int e_end = __ldg(p.row_ptr + row_index + 1);
    const int prog_begin = __ldg(p.program_ptr + sched);
    const int prog_end = __ldg(p.program_ptr + sched + 1);
    const int64_t q_base = b * p.q_batch_stride + h * p.q_head_stride;
    const int64_t do_base = b * bp.do_batch_stride + h * bp.do_head_stride;
    for (int e = e_begin; e < e_end; ++e) {
      const int qb = __ldg(p.col_idx + e);
      bool seg_uniform = false;
      if (has_seg) {
        const int32_t* rgq = bp.q_block_seg + (static_cast<int64_t>(b) * p.q_blocks + qb) * 2;
        const int qlo = __ldg(rgq), qhi = __ldg(rgq + 1);
        if (p.segment_skip && (qhi < kv_seg_lo || qlo > kv_seg_hi)) continue;
        seg_uniform = qlo == qhi && kv_seg_lo == kv_seg_hi && qlo == kv_seg_lo;
      }
      KvTile t;
      t.e = e;
      t.kv0 = kv_begin;
      t.len = len;
      t.block_kv0 = span.block0;
      t.block_end = span.block_end;
      t.kind = __ldg(p.col_kind + e);
      t.ref = __ldg(p.col_mask_ref + e);
      t.seg_uniform = seg_uniform;
      const bool plain = t.kind == static_cast<int>(BlockKind::Full) && (!has_seg || seg_uniform) && len == N;
      const int qblock_q0 = qb * p.block_q;
      const int q_stop = static_cast<int>(min(static_cast<int64_t>(p.q_seq), static_cast<int64_t>(qblock_q0) + p.block_q));
      for (int q0 = qblock_q0; q0 < q_stop; q0 += M) {
        const int rows = min(M, q_stop - q0);
        __syncthreads();  // the previous tile's Q, dO, P and dS are no longer read
        load_rows<T, B, LD>(sQ, p.q, q_base + q0 * p.q_seq_stride, p.q_seq_stride, rows, M, d, tid);
        load_rows<T, B, LD>(sdO, bp.dout, do_base + q0 * bp.do_seq_stride, bp.do_seq_stride, rows, M, dv, tid);
        load_row_stats(sLse, sDi, bp, b, h, q0, rows, M, tid);
        __syncthreads();
        float s[RPT][CPT], dp[RPT][CPT];
#pragma unroll
        for (int i = 0; i < RPT; ++i)
#pragma unroll
          for (int j = 0; j < CPT; ++j) s[i][j] = dp[i][j] = 0.f;
        for (int k = 0; k < d; ++k) {
#pragma unroll
          for (int i = 0; i < RPT; ++i) {
            const float qv = sQ[(rg * RPT + i) * LD + k];
#pragma unroll
            for (int j = 0; j < CPT; ++j) s[i][j] = fmaf(qv, sK[(cg + CG * j) * LD + k], s[i][j]);
          }
        }
        for (int k = 0; k < dv; ++k) {
#pragma unroll
          for (int i = 0; i < RPT; ++i) {
            const float o = sdO[(rg * RPT + i) * LD + k];
#pragma unroll
            for (int j = 0; j < CPT; ++j) dp[i][j] = fmaf(o, sV[(cg + CG * j) * LD + k], dp[i][j]);
          }
        }
        int qrow[RPT], seg_row[RPT];
#pragma unroll
        for (int i = 0; i < RPT; ++i) {
          qrow[i] = q0 + rg * RPT + i;
          seg_row[i] = (has_seg && rg * RPT + i < rows) ? __ldg(p.seg_q + static_cast<int64_t>(b) * p.q_seq + qrow[i])
                                                        : INT_MAX;
        }
        uint64_t allowed = all_bits<RPT, CPT>(), exists = all_bits<RPT, CPT>();
        if (!plain) {
          tile_mask<RPT, CPT>(p, t, N, prog_begin, prog_end, qblock_q0, qrow, kvcol, seg_row,
                              static_cast<int64_t>(b) * p.kv_seq, &allowed, &exists);
        }
#pragma unroll
        for (int i = 0; i < RPT; ++i) {
          const int r = rg * RPT + i;
#pragma unroll
          for (int j = 0; j < CPT; ++j) {
            const int bit = i * CPT + j;
            float pr, ds;
            grad_element(s[i][j], dp[i][j], sLse[r], sDi[r], ((exists >> bit) & 1u) && r < rows,
                         (allowed >> bit) & 1u, p.soft_cap, cap_mul, p.scale, p.mask_value, &pr, &ds);
            sP[r * LDS + cg + CG * j] = pr;
            sdS[r * LDS + cg + CG * j] = ds;
          }
        }
        __syncthreads();
        // dV += P^T dO, dK += dS^T Q over the tile's rows, in row order for every element.
        for (int r = 0; r < rows; ++r) {
#pragma unroll
          for (int a = 0; a < ACC; ++a) {
            const int el = tid + kThreads * a;
            const int n = el / B, c = el - (el / B) * B;
            dvacc[a] = fmaf(sP[r * LDS + n], sdO[r * LD + c], dvacc[a]);
            dk[a] = fmaf(sdS[r * LDS + n], sQ[r * LD + c], dk[a]);
          }
        }
        if constexpr (Fused) {
          // This tile's share of dQ = dS K, added to the f32 buffer.
          float qacc[QACC];
#pragma unroll
          for (int a = 0; a < QACC; ++a) qacc[a] = 0.f;
          for (int n = 0; n < len; ++n) {
#pragma unroll
            for (int a = 0; a < QACC; ++a) {
              const int el = tid + kThreads * a;
              const int r = el / B, c = el - (el / B) * B;
              qacc[a] = fmaf(sdS[r * LDS + n], sK[n * LD + c], qacc[a]);
            }
          }
          const int64_t acc_base = ((static_cast<int64_t>(b) * p.heads + h) * p.q_seq + q0) * d;
#pragma unroll
          for (int a = 0; a < QACC; ++a) {
            const int el = tid + kThreads * a;
            const int r = el / B, c = el - (el / B) * B;
            if (r < rows && c < d) atomicAdd(bp.dq_acc + acc_base + static_cast<int64_t>(r) * d + c, qacc[a]);
          }
        }
      }
    }
  }

  const int64_t dk_base = b * bp.dk_batch_stride + kvh * bp.dk_head_stride;
  const int64_t dv_base = b * bp.dv_batch_stride + kvh * bp.dv_head_stride;
#pragma unroll
  for (int a = 0; a < ACC; ++a) {
    const int el = tid + kThreads * a;
    const int n = el / B, c = el - (el / B) * B;
    if (n < len) {
      if (c < d) store1<T>(bp.dk, dk_base + static_cast<int64_t>(kv_begin + n) * bp.dk_seq_stride + c, dk[a] * p.scale);
      if (c < dv) store1<T>(bp.dv, dv_base + static_cast<int64_t>(kv_begin + n) * bp.dv_seq_stride + c, dvacc[a]);
    }
  }
}

// ---- fused: dq from the f32 buffer -------------------------------------------------------------------

template <class T>
__global__ void __launch_bounds__(kThreads) bwd_dq_cast_kernel(const BwdKernelParams bp) {
  const FwdKernelParams& p = bp.s;
  const int64_t per_batch = static_cast<int64_t>(p.heads) * p.q_seq * p.head_dim;
  const int b = static_cast<int>(blockIdx.y) + p.batch_offset;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; idx < per_batch; idx += grid_stride()) {
    const int64_t row = idx / p.head_dim;
    const int c = static_cast<int>(idx - row * p.head_dim);
    const int h = static_cast<int>(row / p.q_seq);
    const int i = static_cast<int>(row - static_cast<int64_t>(h) * p.q_seq);
    store1<T>(bp.dq, b * bp.dq_batch_stride + h * bp.dq_head_stride + static_cast<int64_t>(i) * bp.dq_seq_stride + c,
              bp.dq_acc[b * per_batch + idx] * p.scale);
  }
}

}  // namespace bwd

#ifndef SPLASH_GPU_EMULATE
// Launches one backward step for one dtype; `bucket` is plan.h's simt_bucket. Returns the launch status.

template <class T, int B>
gpuError_t launch_bwd_bucket(BwdStep step, const BwdKernelParams& p, dim3 grid, gpuStream_t stream) {
  const void* fn = nullptr;
  size_t smem = 0;
  if (step == BwdStep::kDq) {
    fn = reinterpret_cast<const void*>(&bwd::bwd_dq_simt_kernel<T, B>);
    smem = static_cast<size_t>(bwd_dq_smem_bytes(B));
  } else if (step == BwdStep::kDkv) {
    fn = reinterpret_cast<const void*>(&bwd::bwd_dkv_simt_kernel<T, B, false>);
    smem = static_cast<size_t>(bwd_dkv_smem_bytes(B));
  } else {
    fn = reinterpret_cast<const void*>(&bwd::bwd_dkv_simt_kernel<T, B, true>);
    smem = static_cast<size_t>(bwd_dkv_smem_bytes(B));
  }
#ifndef SPLASH_GPU_HIP
  if (smem > 48 * 1024) {
    const gpuError_t e = gpuFuncSetAttribute(fn, gpuFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != gpuSuccess) return e;
  }
#else
  (void)fn;
#endif
  if (step == BwdStep::kDq) {
    bwd::bwd_dq_simt_kernel<T, B><<<grid, bwd::kThreads, smem, stream>>>(p);
  } else if (step == BwdStep::kDkv) {
    bwd::bwd_dkv_simt_kernel<T, B, false><<<grid, bwd::kThreads, smem, stream>>>(p);
  } else {
    bwd::bwd_dkv_simt_kernel<T, B, true><<<grid, bwd::kThreads, smem, stream>>>(p);
  }
  return gpuGetLastError();
}

template <class T>
gpuError_t launch_bwd_t(BwdStep step, int bucket, const BwdKernelParams& p, dim3 grid, gpuStream_t stream) {
  if (step == BwdStep::kDi) {
    bwd::bwd_di_kernel<T><<<grid, bwd::kThreads, 0, stream>>>(p);
    return gpuGetLastError();
  }
  if (step == BwdStep::kDsinks) {
    bwd::bwd_dsinks_kernel<T><<<grid, bwd::kThreads, kBwdDsinksSmem, stream>>>(p);
    return gpuGetLastError();
  }
  if (step == BwdStep::kCast) {
    bwd::bwd_dq_cast_kernel<T><<<grid, bwd::kThreads, 0, stream>>>(p);
    return gpuGetLastError();
  }
  switch (bucket) {
    case 64: return launch_bwd_bucket<T, 64>(step, p, grid, stream);
    case 128: return launch_bwd_bucket<T, 128>(step, p, grid, stream);
    case 256: return launch_bwd_bucket<T, 256>(step, p, grid, stream);
    default: return gpuErrorInvalidValue;
  }
}
#endif

}  // namespace gpu
}  // namespace splash
