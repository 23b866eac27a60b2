// Tensor-core forward kernel for bf16 / f16 on CUDA sm_80 and later: mma.sync m16n8k16 with f32
// accumulators, operands from shared memory through ldmatrix, K and V tiles streamed with cp.async.
// One CTA of 4 warps per (batch, head, q tile of kBlockM rows); warp w owns rows [w*16*MT, (w+1)*16*MT)
// as MT m16 tiles. The CTA walks its q tile's schedule row only (mask.cuh: KvWalk).
//
// Pipeline per K/V tile j (two K buffers, one V buffer, cp.async groups completing in issue order):
// wait K(j), barrier; issue V(j), then K(j+1) into the other K buffer; then for each inner step of
// NC keys: S = Q K^T, mask, online softmax, (first step only: wait for V(j), barrier), O += P V.
// The first barrier orders "every warp finished tile j-1" before V(j) and K(j+1) overwrite what
// tile j-1 read; the second makes V(j) visible while K(j+1) keeps loading under the compute.
// O and the row sums are rescaled only when a row maximum of the warp moved (one warp vote per step).
// Fragment layouts and the shared primitives: mma_sm80.cuh.
#pragma once

#include <climits>

#include "dtypes.cuh"
#include "fwd_params.h"
#include "mask.cuh"
#include "mma_sm80.cuh"
#include "plan.h"
#include "softmax.cuh"

namespace splash {
namespace gpu {
namespace mma {

template <class T, int D>
__global__ void __launch_bounds__(kMmaThreads, 1) fwd_mma_kernel(const FwdKernelParams p) {
#if defined(SPLASH_GPU_EMULATE) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800)
  constexpr int M = mma_tile_m(D);
  constexpr int N = mma_tile_n(D);   // keys per K/V tile (one pipeline stage)
  constexpr int NC = mma_step_n(D);  // keys per inner step
  constexpr int MT = M / 64;         // m16 tiles per warp
  constexpr int NT = NC / 8;         // n8 tiles of S per step
  constexpr int DT = D / 8;          // n8 tiles of O
  constexpr int KT = D / 16;         // k16 steps of Q K^T
  constexpr int PK = NC / 16;        // k16 steps of P V per step
  constexpr int C = 2 * NT;          // key columns of one row per thread and step
  constexpr int LDS = mma_row_stride(D);
  static_assert(N % NC == 0 && NT % 2 == 0 && DT % 2 == 0, "tile shapes");

  SPLASH_DYNAMIC_SMEM(uint4, mma_smem);
  uint16_t* sQ = reinterpret_cast<uint16_t*>(mma_smem);
  uint16_t* sK = sQ + M * LDS;       // two buffers of N rows
  uint16_t* sV = sK + 2 * N * LDS;

  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid >> 5;
  const int lane = tid & 31;
  const int g = lane >> 2;
  const int t4 = lane & 3;

  // ---- which q tile, head and batch -------------------------------------------------------------
  const unsigned heads = static_cast<unsigned>(p.heads);
  const int h = static_cast<int>(blockIdx.x % heads);
  const int w = __ldg(p.work + blockIdx.x / heads);
  const int b = static_cast<int>(blockIdx.y) + p.batch_offset;
  const TileSpan span = tile_span(w, p.tiles_per_qblock, p.block_q, p.q_seq, M);
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
  const int warp_row0 = warp * 16 * MT;  // first tile row of this warp

  // ---- the tile's segment-id range (for block skipping) --------------------------------------------
  KvWalk walk;
  walk.e_end = e_end;
  walk.b = b;
  walk.has_seg = p.seg_q != nullptr;
  walk.q_seg_lo = walk.q_seg_hi = 0;
  if (walk.has_seg) {
    cta_segment_range(p.seg_q + static_cast<int64_t>(b) * p.q_seq + q_begin, rows,
                      tid, kMmaThreads, &walk.q_seg_lo, &walk.q_seg_hi);
  }

  // ---- state (a sink starts every row at m = sink, l = 1: lane t4 0 holds the 1 of the quad's sums) --
  const float sink = p.sinks != nullptr ? __ldg(p.sinks + h) : neg_inf();
  float o[MT][DT][4];
  float m[MT][2], l[MT][2];
  bool any[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int j = 0; j < DT; ++j) o[mt][j][0] = o[mt][j][1] = o[mt][j][2] = o[mt][j][3] = 0.f;
    m[mt][0] = m[mt][1] = sink;
    l[mt][0] = l[mt][1] = p.sinks != nullptr && t4 == 0 ? 1.f : 0.f;
    any[mt][0] = any[mt][1] = false;
  }

  // ldmatrix lanes: Q (A operand) rows lane&7 + 8*bit3, chunk hi = bit4; K (B operand of Q K^T)
  // rows lane&7 + 8*bit4, chunk hi = bit3; V (B operand of P V, transposed) like Q.
  const FragAddr<D> q_frag(sQ, (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4);
  const FragAddr<D> k_frag(sK, (lane & 7) + (lane >> 4) * 8, (lane >> 3) & 1);
  const FragAddr<D> v_frag(sV, (lane & 7) + ((lane >> 3) & 1) * 8, lane >> 4);

  const bool has_seg = walk.has_seg;
  const float cap = p.soft_cap;
  KvTile t = walk.first_from(p, e_begin, N);
  if (!walk.done(t)) {
    load_tile_async<D, M>(sQ, static_cast<const uint16_t*>(p.q) + b * p.q_batch_stride + h * p.q_head_stride +
                                  q_begin * p.q_seq_stride,
                          p.q_seq_stride, rows, tid);
    load_tile_async<D, N>(sK, k_ptr + t.kv0 * p.k_seq_stride, p.k_seq_stride, t.len, tid);
    cp_async_commit();
  }
  int kbuf = 0;  // which K buffer holds the current tile

  while (!walk.done(t)) {
    cp_async_wait_all();
    __syncthreads();  // K(j) (and Q) visible; every warp is done with tile j-1, so V and the other K buffer are free
    load_tile_async<D, N>(sV, v_ptr + t.kv0 * p.v_seq_stride, p.v_seq_stride, t.len, tid);
    cp_async_commit();
    const KvTile next = walk.next(p, t, N);
    const bool has_next = !walk.done(next);
    if (has_next) {
      load_tile_async<D, N>(sK + (kbuf ^ 1) * N * LDS, k_ptr + next.kv0 * p.k_seq_stride, p.k_seq_stride, next.len,
                            tid);
      cp_async_commit();
    }
    const bool plain = t.kind == static_cast<int>(BlockKind::Full) && (!has_seg || t.seg_uniform) && t.len == N;
    if (plain) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) any[mt][0] = any[mt][1] = true;
    }

    // Not unrolled: with both steps unrolled the scheduler hoists loads across them and spills.
#pragma unroll 1
    for (int step = 0; step < N / NC; ++step) {
      if (step > 0 && step * NC >= t.len) break;  // the rest of a ragged tile holds no keys

      // ---- S = Q K^T for NC keys ------------------------------------------------------------------
      float s[MT][NT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int j = 0; j < NT; ++j) s[mt][j][0] = s[mt][j][1] = s[mt][j][2] = s[mt][j][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < KT; ++kk) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) ldmatrix_x4(a[mt], q_frag.at(warp_row0 + mt * 16, kk));
#pragma unroll
        for (int jp = 0; jp < NT / 2; ++jp) {
          uint32_t bk[4];
          ldmatrix_x4(bk, k_frag.at(kbuf * N + step * NC + jp * 16, kk));
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_16816<T>(s[mt][2 * jp], a[mt], bk[0], bk[1]);
            mma_16816<T>(s[mt][2 * jp + 1], a[mt], bk[2], bk[3]);
          }
        }
      }

      // ---- scale and soft cap, then the mask ---------------------------------------------------------
      if (cap > 0.f) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) s[mt][j][e] = soft_cap(s[mt][j][e], cap, p.cap_scale);
      }
      if (!plain) {
        int kvcol[C];
#pragma unroll
        for (int j = 0; j < NT; ++j) {
          kvcol[2 * j] = t.kv0 + step * NC + 8 * j + 2 * t4;
          kvcol[2 * j + 1] = kvcol[2 * j] + 1;
        }
        const int prog_begin = __ldg(p.program_ptr + sched);
        const int prog_end = __ldg(p.program_ptr + sched + 1);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          int qrow[2], seg_row[2];
          qrow[0] = q_begin + warp_row0 + mt * 16 + g;
          qrow[1] = qrow[0] + 8;
#pragma unroll
          for (int hf = 0; hf < 2; ++hf) {
            seg_row[hf] = has_seg && qrow[hf] < q_begin + rows
                              ? __ldg(p.seg_q + static_cast<int64_t>(b) * p.q_seq + qrow[hf])
                              : INT_MAX;
          }
          uint64_t allowed, exists;
          tile_mask<2, C>(p, t, N, prog_begin, prog_end, static_cast<int>(qblock_q0), qrow, kvcol, seg_row,
                          static_cast<int64_t>(b) * p.kv_seq, &allowed, &exists);
          // element (row half hf, column 2j + e1) is bit hf * C + 2j + e1; accumulator s[mt][j][2hf + e1]
#pragma unroll
          for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int bit = (e >> 1) * C + 2 * j + (e & 1);
              const float x = s[mt][j][e] * (cap > 0.f ? 1.f : p.scale);  // a capped tile is scaled already
              s[mt][j][e] = !((exists >> bit) & 1u) ? neg_inf() : !((allowed >> bit) & 1u) ? p.mask_value : x;
            }
          constexpr uint64_t kRowBits = (uint64_t{1} << C) - 1;
          any[mt][0] = any[mt][0] || (allowed & kRowBits) != 0;
          any[mt][1] = any[mt][1] || ((allowed >> C) & kRowBits) != 0;
        }
      }

      // ---- online softmax (rows g and g+8 of each m16 tile; a row spans the 4 lanes of a quad) -----
      // What still turns S into logits: the scale for a plain uncapped tile, else 1 (applied above).
      const float sc = plain && !(cap > 0.f) ? p.scale : 1.f;
      float alpha[MT][2];
      bool rescale = false;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
          float mx = neg_inf();
#pragma unroll
          for (int j = 0; j < NT; ++j) mx = fmaxf(mx, fmaxf(s[mt][j][2 * hf], s[mt][j][2 * hf + 1]));
          mx = fmaxf(mx, shfl_xor(mx, 1));
          mx = fmaxf(mx, shfl_xor(mx, 2)) * sc;
          const float m_new = fmaxf(m[mt][hf], mx);
          alpha[mt][hf] = softmax_rescale(m[mt][hf], m_new);
          rescale = rescale || alpha[mt][hf] != 1.f;
          m[mt][hf] = m_new;
          const float off = softmax_offset(m_new);
          float sum = 0.f;
#pragma unroll
          for (int j = 0; j < NT; ++j) {
            const float p0 = softmax_weight(s[mt][j][2 * hf], sc, off);
            const float p1 = softmax_weight(s[mt][j][2 * hf + 1], sc, off);
            s[mt][j][2 * hf] = p0;
            s[mt][j][2 * hf + 1] = p1;
            sum += p0 + p1;
          }
          l[mt][hf] = fmaf(l[mt][hf], alpha[mt][hf], sum);
        }
      }
      if (warp_any(rescale)) {  // once the row maxima settle, most steps skip this
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int j = 0; j < DT; ++j) {
            o[mt][j][0] *= alpha[mt][0];
            o[mt][j][1] *= alpha[mt][0];
            o[mt][j][2] *= alpha[mt][1];
            o[mt][j][3] *= alpha[mt][1];
          }
      }

      if (step == 0) {
        // V(j) must have landed for every warp; K(j+1) may still be in flight.
        if (has_next) {
          cp_async_wait_one();
        } else {
          cp_async_wait_all();
        }
        __syncthreads();
      }

      // ---- O += P V for these NC keys -------------------------------------------------------------
#pragma unroll
      for (int kk = 0; kk < PK; ++kk) {
        uint32_t pa[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          pa[mt][0] = cvt_pack<T>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
          pa[mt][1] = cvt_pack<T>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
          pa[mt][2] = cvt_pack<T>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
          pa[mt][3] = cvt_pack<T>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
        }
#pragma unroll
        for (int cp = 0; cp < DT / 2; ++cp) {
          uint32_t bv[4];
          ldmatrix_x4_trans(bv, v_frag.at(step * NC + kk * 16, cp));
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_16816<T>(o[mt][2 * cp], pa[mt], bv[0], bv[1]);
            mma_16816<T>(o[mt][2 * cp + 1], pa[mt], bv[2], bv[3]);
          }
        }
      }
    }
    kbuf ^= 1;
    t = next;
  }

  // ---- epilogue: normalise, stage the tile in sQ (each warp its own rows), write out and lse ----
  // lse of a row with no allowed key: its sink (read again here rather than held through the loop).
  const float empty_lse = p.sinks != nullptr ? __ldg(p.sinks + h) : neg_inf();
  const int64_t o_base = b * p.o_batch_stride + h * p.o_head_stride;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      float sum = l[mt][hf];
      sum += shfl_xor(sum, 1);
      sum += shfl_xor(sum, 2);
      int seen = any[mt][hf] ? 1 : 0;
      seen |= shfl_xor(seen, 1);
      seen |= shfl_xor(seen, 2);
      const float inv = seen ? 1.f / sum : 0.f;
      const int row = warp_row0 + mt * 16 + g + 8 * hf;
#pragma unroll
      for (int j = 0; j < DT; ++j) {
        const uint32_t packed = cvt_pack<T>(o[mt][j][2 * hf] * inv, o[mt][j][2 * hf + 1] * inv);
        *reinterpret_cast<uint32_t*>(sQ + smem_offset<D>(row, j) + 2 * t4) = packed;
      }
      if (p.lse != nullptr && t4 == 0 && row < rows) {
        p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + static_cast<int64_t>(q_begin + row) * p.lse_seq_stride] =
            row_lse(m[mt][hf], sum, seen != 0, empty_lse);
      }
    }
  }
  __syncthreads();
  uint16_t* out = static_cast<uint16_t*>(p.out) + o_base + q_begin * p.o_seq_stride;
  constexpr int kChunks = D / 8;
#pragma unroll
  for (int i = 0; i < M * kChunks / kMmaThreads; ++i) {
    const int idx = tid + i * kMmaThreads;
    const int row = idx / kChunks;
    const int chunk = idx % kChunks;
    if (row < rows) {
      *reinterpret_cast<uint4*>(out + row * p.o_seq_stride + chunk * 8) =
          *reinterpret_cast<const uint4*>(sQ + smem_offset<D>(row, chunk));
    }
  }
#endif  // device code for sm_80+
}

}  // namespace mma

#ifndef SPLASH_GPU_EMULATE
// Launches the tensor-core kernel for one (dtype, head dim); returns the launch's status.
template <class T, int D>
gpuError_t launch_fwd_mma_t(const FwdKernelParams& p, dim3 grid, gpuStream_t stream) {
  constexpr size_t smem = static_cast<size_t>(mma_smem_bytes(D));
  if (smem > 48 * 1024) {
    const gpuError_t e = gpuFuncSetAttribute(reinterpret_cast<const void*>(&mma::fwd_mma_kernel<T, D>),
                                             gpuFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != gpuSuccess) return e;
  }
  mma::fwd_mma_kernel<T, D><<<grid, kMmaThreads, smem, stream>>>(p);
  return gpuGetLastError();
}
#endif

}  // namespace gpu
}  // namespace splash
