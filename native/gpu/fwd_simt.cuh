// Portable SIMT forward kernel: f32 on every GPU, every dtype on HIP (gfx90a / gfx940, wave64) and on
// CUDA devices below sm_80, and any call the tensor-core kernel does not take (q and v head dims that
// differ). One CTA of 128 threads per (batch, head, q tile); the kernel walks that q tile's schedule row
// only, one K/V tile of 32 keys at a time, in f32 shared memory.
//
// Thread layout: 16 row groups x 8 column groups (tid = 8 * rg + cg). A row group owns RPT query rows
// (rows RPT*rg .. RPT*rg + RPT - 1 of the tile); its 8 threads share them and split the columns: in the
// score tile keys cg + 8j (j < 4), in the output columns 4cg + 32jj .. +3. Row statistics are
// reduced over those 8 lanes with width-8 shuffles, which behave the same in 32- and 64-wide warps.
// Shared rows are padded by 16 bytes, so the float4 reads of 8 different rows hit 8 different banks.
#pragma once

#include <climits>

#include "dtypes.cuh"
#include "fwd_params.h"
#include "mask.cuh"
#include "plan.h"
#include "softmax.cuh"

namespace splash {
namespace gpu {

__device__ __forceinline__ void fma4(float& acc, float4 a, float4 b) {
  acc = fmaf(a.x, b.x, acc);
  acc = fmaf(a.y, b.y, acc);
  acc = fmaf(a.z, b.z, acc);
  acc = fmaf(a.w, b.w, acc);
}

__device__ __forceinline__ void axpy4(float4& acc, float a, float4 x) {
  acc.x = fmaf(a, x.x, acc.x);
  acc.y = fmaf(a, x.y, acc.y);
  acc.z = fmaf(a, x.z, acc.z);
  acc.w = fmaf(a, x.w, acc.w);
}

// Rows [0, rows) of a [*, width] tensor slice (row r at base + r * stride) into shared f32 rows of
// LD floats; rows up to `tile_rows` past that are zero-filled.
template <class T, int LD>
__device__ __forceinline__ void simt_load_tile(float* dst, const void* src, int64_t base, int64_t stride, int rows,
                                               int tile_rows, int width, int rg, int cg) {
  const int chunks = width / 4;
  for (int r = rg; r < tile_rows; r += 16) {
    for (int c = cg; c < chunks; c += 8) {
      const float4 v = r < rows ? load4<T>(src, base + r * stride + 4 * c) : make_float4(0.f, 0.f, 0.f, 0.f);
      *reinterpret_cast<float4*>(dst + r * LD + 4 * c) = v;
    }
  }
}

template <class T, int B>
__global__ void __launch_bounds__(kSimtThreads) fwd_simt_kernel(const FwdKernelParams p) {
  constexpr int RPT = simt_rows_per_thread(B);
  constexpr int M = simt_tile_m(B);
  constexpr int N = kSimtTileN;
  constexpr int CPT = N / 8;
  constexpr int LD = B + 4;
  constexpr int LDP = N + 4;
  constexpr int OJ = B / 32;
  SPLASH_DYNAMIC_SMEM(float4, simt_smem);
  float* sQ = reinterpret_cast<float*>(simt_smem);
  float* sKV = sQ + M * LD;
  float* sP = sKV + N * LD;

  const int tid = static_cast<int>(threadIdx.x);
  const int rg = tid >> 3;
  const int cg = tid & 7;

  // ---- which q tile, head and batch -------------------------------------------------------------
  const unsigned heads = static_cast<unsigned>(p.heads);
  const int h = static_cast<int>(blockIdx.x % heads);
  const int w = __ldg(p.work + blockIdx.x / heads);
  const int b = static_cast<int>(blockIdx.y) + p.batch_offset;
  const TileSpan span = tile_span(w, p.tiles_per_qblock, p.block_q, p.q_seq, M);
  if (span.count == 0) return;  // the tile starts past its q-block
  const int qb = span.block, q_begin = span.begin, rows = span.count;
  const int64_t qblock_q0 = span.block0;
  const int d = p.head_dim;
  const int dv = p.head_dim_v;

  const int sched = __ldg(p.head_schedule + (p.mask_heads == 1 ? 0 : h));
  const int row_index = sched * p.rows_per_schedule + qb;
  const int e_begin = __ldg(p.row_ptr + row_index);
  const int e_end = __ldg(p.row_ptr + row_index + 1);
  const int prog_begin = __ldg(p.program_ptr + sched);
  const int prog_end = __ldg(p.program_ptr + sched + 1);

  const int kvh = h / p.group;
  const int64_t q_base = b * p.q_batch_stride + h * p.q_head_stride + q_begin * p.q_seq_stride;
  const int64_t k_base = b * p.k_batch_stride + kvh * p.k_head_stride;
  const int64_t v_base = b * p.v_batch_stride + kvh * p.v_head_stride;

  // ---- segment ids of this tile's rows, and their range -------------------------------------------
  KvWalk walk;
  walk.e_end = e_end;
  walk.b = b;
  walk.has_seg = p.seg_q != nullptr;
  walk.q_seg_lo = walk.q_seg_hi = 0;
  int seg_row[RPT];
  int qrow[RPT];
#pragma unroll
  for (int i = 0; i < RPT; ++i) {
    qrow[i] = q_begin + rg * RPT + i;
    seg_row[i] = INT_MAX;
  }
  const int64_t seg_q_base = static_cast<int64_t>(b) * p.q_seq;
  if (walk.has_seg) {
    cta_segment_range(p.seg_q + seg_q_base + q_begin, rows, tid, kSimtThreads, &walk.q_seg_lo, &walk.q_seg_hi);
#pragma unroll
    for (int i = 0; i < RPT; ++i) {
      if (rg * RPT + i < rows) seg_row[i] = __ldg(p.seg_q + seg_q_base + qrow[i]);
    }
  }

  simt_load_tile<T, LD>(sQ, p.q, q_base, p.q_seq_stride, rows, M, d, rg, cg);

  // A sink starts every row at m = sink, l = 1; lane cg 0 holds the 1 of the row's 8 partial sums.
  const float sink = p.sinks != nullptr ? __ldg(p.sinks + h) : neg_inf();
  float m[RPT], l[RPT];
  bool any[RPT];
  float4 o[RPT][OJ];
#pragma unroll
  for (int i = 0; i < RPT; ++i) {
    m[i] = sink;
    l[i] = p.sinks != nullptr && cg == 0 ? 1.f : 0.f;
    any[i] = false;
#pragma unroll
    for (int jj = 0; jj < OJ; ++jj) o[i][jj] = make_float4(0.f, 0.f, 0.f, 0.f);
  }

  const bool has_seg = walk.has_seg;
  const float cap = p.soft_cap;
  for (KvTile t = walk.first_from(p, e_begin, N); !walk.done(t); t = walk.next(p, t, N)) {
    __syncthreads();  // the previous tile's V and P are no longer read
    simt_load_tile<T, LD>(sKV, p.k, k_base + t.kv0 * p.k_seq_stride, p.k_seq_stride, t.len, N, d, rg, cg);
    __syncthreads();

    // ---- S = Q K^T for RPT rows x CPT keys -------------------------------------------------------
    float s[RPT][CPT];
#pragma unroll
    for (int i = 0; i < RPT; ++i)
#pragma unroll
      for (int j = 0; j < CPT; ++j) s[i][j] = 0.f;
    for (int k4 = 0; k4 < d / 4; ++k4) {
      float4 qv[RPT], kv4[CPT];
#pragma unroll
      for (int i = 0; i < RPT; ++i) qv[i] = *reinterpret_cast<const float4*>(sQ + (rg * RPT + i) * LD + 4 * k4);
#pragma unroll
      for (int j = 0; j < CPT; ++j) kv4[j] = *reinterpret_cast<const float4*>(sKV + (cg + 8 * j) * LD + 4 * k4);
#pragma unroll
      for (int i = 0; i < RPT; ++i)
#pragma unroll
        for (int j = 0; j < CPT; ++j) fma4(s[i][j], qv[i], kv4[j]);
    }

    // ---- scale and soft cap, then the mask ---------------------------------------------------------
    if (cap > 0.f) {
#pragma unroll
      for (int i = 0; i < RPT; ++i)
#pragma unroll
        for (int j = 0; j < CPT; ++j) s[i][j] = soft_cap(s[i][j], cap, p.cap_scale);
    }
    const bool plain = t.kind == static_cast<int>(BlockKind::Full) && (!has_seg || t.seg_uniform) && t.len == N;
    // What still turns s into logits: the scale for a plain uncapped tile, else 1 (applied below).
    const float sc = plain && !(cap > 0.f) ? p.scale : 1.f;
    if (plain) {
#pragma unroll
      for (int i = 0; i < RPT; ++i) any[i] = true;
    } else {
      int kvcol[CPT];
#pragma unroll
      for (int j = 0; j < CPT; ++j) kvcol[j] = t.kv0 + cg + 8 * j;
      uint64_t allowed, exists;
      tile_mask<RPT, CPT>(p, t, N, prog_begin, prog_end, static_cast<int>(qblock_q0), qrow, kvcol, seg_row,
                          static_cast<int64_t>(b) * p.kv_seq, &allowed, &exists);
#pragma unroll
      for (int i = 0; i < RPT; ++i) {
#pragma unroll
        for (int j = 0; j < CPT; ++j) {
          const int bit = i * CPT + j;
          if (!((exists >> bit) & 1u)) {
            s[i][j] = neg_inf();
          } else if (!((allowed >> bit) & 1u)) {
            s[i][j] = p.mask_value;
          } else if (!(cap > 0.f)) {
            s[i][j] *= p.scale;
          }
        }
        any[i] = any[i] || ((allowed >> (i * CPT)) & ((uint64_t{1} << CPT) - 1)) != 0;
      }
    }

    // ---- online softmax; P to shared memory ------------------------------------------------------
#pragma unroll
    for (int i = 0; i < RPT; ++i) {
      float mx = s[i][0];
#pragma unroll
      for (int j = 1; j < CPT; ++j) mx = fmaxf(mx, s[i][j]);
      mx = warp_max(mx, 8) * sc;
      const float m_new = fmaxf(m[i], mx);
      const float alpha = softmax_rescale(m[i], m_new);
      m[i] = m_new;
      const float off = softmax_offset(m_new);
      l[i] *= alpha;
#pragma unroll
      for (int jj = 0; jj < OJ; ++jj) {
        o[i][jj].x *= alpha;
        o[i][jj].y *= alpha;
        o[i][jj].z *= alpha;
        o[i][jj].w *= alpha;
      }
#pragma unroll
      for (int j = 0; j < CPT; ++j) {
        const float pj = softmax_weight(s[i][j], sc, off);
        l[i] += pj;
        sP[(rg * RPT + i) * LDP + cg + 8 * j] = pj;
      }
    }
    __syncthreads();  // K is no longer read; P is complete
    simt_load_tile<T, LD>(sKV, p.v, v_base + t.kv0 * p.v_seq_stride, p.v_seq_stride, t.len, N, dv, rg, cg);
    __syncthreads();

    // ---- O += P V ---------------------------------------------------------------------------------
    for (int n = 0; n < t.len; n += 4) {  // P past t.len is 0 and V rows past it are zero
      float4 pv[RPT];
#pragma unroll
      for (int i = 0; i < RPT; ++i) pv[i] = *reinterpret_cast<const float4*>(sP + (rg * RPT + i) * LDP + n);
#pragma unroll
      for (int jj = 0; jj < OJ; ++jj) {
        const int col = 4 * cg + 32 * jj;
        if (col < dv) {
          const float4 v0 = *reinterpret_cast<const float4*>(sKV + (n + 0) * LD + col);
          const float4 v1 = *reinterpret_cast<const float4*>(sKV + (n + 1) * LD + col);
          const float4 v2 = *reinterpret_cast<const float4*>(sKV + (n + 2) * LD + col);
          const float4 v3 = *reinterpret_cast<const float4*>(sKV + (n + 3) * LD + col);
#pragma unroll
          for (int i = 0; i < RPT; ++i) {
            axpy4(o[i][jj], pv[i].x, v0);
            axpy4(o[i][jj], pv[i].y, v1);
            axpy4(o[i][jj], pv[i].z, v2);
            axpy4(o[i][jj], pv[i].w, v3);
          }
        }
      }
    }
  }

  // ---- epilogue: normalise, write out and lse ---------------------------------------------------
  // lse of a row with no allowed key: its sink (read again here rather than held through the loop).
  const float empty_lse = p.sinks != nullptr ? __ldg(p.sinks + h) : neg_inf();
  const int64_t o_base = b * p.o_batch_stride + h * p.o_head_stride;
#pragma unroll
  for (int i = 0; i < RPT; ++i) {
    const float l_row = warp_sum(l[i], 8);
    const bool any_row = warp_max(any[i] ? 1 : 0, 8) != 0;
    const int r = rg * RPT + i;
    if (r < rows) {
      const float inv = any_row ? 1.f / l_row : 0.f;
      const int64_t row_off = o_base + static_cast<int64_t>(q_begin + r) * p.o_seq_stride;
#pragma unroll
      for (int jj = 0; jj < OJ; ++jj) {
        const int col = 4 * cg + 32 * jj;
        if (col < dv) {
          const float4 v = make_float4(o[i][jj].x * inv, o[i][jj].y * inv, o[i][jj].z * inv, o[i][jj].w * inv);
          store4<T>(p.out, row_off + col, v);
        }
      }
      if (p.lse != nullptr && cg == 0) {
        p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + static_cast<int64_t>(q_begin + r) * p.lse_seq_stride] =
            row_lse(m[i], l_row, any_row, empty_lse);
      }
    }
  }
}

#ifndef SPLASH_GPU_EMULATE
// Launches the kernel for one (dtype, head-dim bucket); returns the launch's status.
template <class T, int B>
gpuError_t launch_fwd_simt_t(const FwdKernelParams& p, dim3 grid, gpuStream_t stream) {
  constexpr size_t smem = static_cast<size_t>(simt_smem_bytes(B));
#ifndef SPLASH_GPU_HIP
  if (smem > 48 * 1024) {
    const gpuError_t e = gpuFuncSetAttribute(reinterpret_cast<const void*>(&fwd_simt_kernel<T, B>),
                                             gpuFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != gpuSuccess) return e;
  }
#endif
  fwd_simt_kernel<T, B><<<grid, kSimtThreads, smem, stream>>>(p);
  return gpuGetLastError();
}
#endif

}  // namespace gpu
}  // namespace splash
