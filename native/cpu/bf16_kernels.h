// The bf16 pair-dot products and pair packing shared by the instruction sets that have a bf16 dot
// instruction (isa_avx512_bf16.cc, isa_neon_bf16.cc), written once over a traits type. Include it after
// the file's target pragmas, so that its templates are compiled for that instruction set.
//
// A Dot traits type gives:
//   Acc, Pairs, kLanes            f32 accumulator vector, vector of bf16 pairs, f32 lanes per vector
//   kMR, kNV                      micro-tile rows, and vectors per row
//   zero(), load(p), store(p, x)  accumulator access
//   pairs(p), broadcast(p)        kLanes pairs from memory; the pair at p in every lane
//   dot(acc, a, b)                acc + the pairwise products of a and b, per lane
//   pack_f32(lo, hi, out, cols), pack_bf16(lo, hi, out, cols)
//                                 the vector part of the packing: writes whole vectors of words
//                                 lo | hi << 16 (hi null: 0) and returns how many columns it did
#pragma once

#include <cstdint>

#include "half.h"
#include "tile_ops.h"

namespace splash {
namespace cpu {
namespace bf16_kernels {

template <class Dot, int MR, int NV, bool ATrans>
__attribute__((noinline)) void micro(int64_t kp, const uint32_t* a, int64_t lda, const uint32_t* b, int64_t ldb, float* c,
                                     int64_t ldc, bool accumulate) {
  constexpr int L = Dot::kLanes;
  typename Dot::Acc acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = accumulate ? Dot::load(c + i * ldc + v * L) : Dot::zero();
  for (int64_t p = 0; p < kp; ++p) {
    const uint32_t* bp = b + p * ldb;
    typename Dot::Pairs bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = Dot::pairs(bp + v * L);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      // One pair of A in every lane: each lane adds it dotted with its own column's pair.
      const typename Dot::Pairs av = Dot::broadcast(ATrans ? a + p * lda + i : a + i * lda + p);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = Dot::dot(acc[i][v], av, bv[v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) Dot::store(c + i * ldc + v * L, acc[i][v]);
}

// The micro-kernel for nv vectors per row (nv <= NV), chosen at run time among the instantiated ones.
template <class Dot, bool ATrans, int MR, int NV = Dot::kNV>
inline void micro_cols(int nv, int64_t kp, const uint32_t* a, int64_t lda, const uint32_t* b, int64_t ldb, float* c,
                       int64_t ldc, bool accumulate) {
  if (nv == NV) return micro<Dot, MR, NV, ATrans>(kp, a, lda, b, ldb, c, ldc, accumulate);
  if constexpr (NV > 1) micro_cols<Dot, ATrans, MR, NV - 1>(nv, kp, a, lda, b, ldb, c, ldc, accumulate);
}

// The same for mr rows (mr <= MR).
template <class Dot, bool ATrans, int MR = Dot::kMR>
inline void micro_any(int mr, int nv, int64_t kp, const uint32_t* a, int64_t lda, const uint32_t* b, int64_t ldb,
                      float* c, int64_t ldc, bool accumulate) {
  if (mr == MR) return micro_cols<Dot, ATrans, MR>(nv, kp, a, lda, b, ldb, c, ldc, accumulate);
  if constexpr (MR > 1) micro_any<Dot, ATrans, MR - 1>(mr, nv, kp, a, lda, b, ldb, c, ldc, accumulate);
}

// C (m x n) = A · B (or += with accumulate) over kp pair rows: TileOps::gemm_bf16_nn / _tn.
template <class Dot, bool ATrans>
void gemm(int64_t m, int64_t n, int64_t kp, const uint32_t* a, int64_t lda, const uint32_t* b, int64_t ldb, float* c,
          int64_t ldc, bool accumulate) {
  constexpr int L = Dot::kLanes;
  for (int64_t j = 0; j < n; j += Dot::kNV * L) {
    const int nv = static_cast<int>((n - j) / L < Dot::kNV ? (n - j) / L : Dot::kNV);
    for (int64_t i = 0; i < m; i += Dot::kMR) {
      const int mr = static_cast<int>(m - i < Dot::kMR ? m - i : Dot::kMR);
      const uint32_t* ai = ATrans ? a + i : a + i * lda;
      micro_any<Dot, ATrans>(mr, nv, kp, ai, lda, b + j, ldb, c + i * ldc + j, ldc, accumulate);
    }
  }
}

// Word j of pair row p: bf16(src[2p][j]) in the low half, bf16(src[2p+1][j]) (or 0) in the high half.
template <class Dot>
void pack_pairs_f32(const float* src, int64_t ld, int64_t rows, int64_t cols, uint32_t* dst, int64_t dst_ld) {
  for (int64_t r = 0; r < rows; r += 2) {
    const float* lo = src + r * ld;
    const float* hi = r + 1 < rows ? lo + ld : nullptr;
    uint32_t* out = dst + (r / 2) * dst_ld;
    int64_t j = Dot::pack_f32(lo, hi, out, cols);
    for (; j < cols; ++j) {
      const uint32_t a = f32_to_bf16_bits(lo[j]);
      const uint32_t b = hi ? f32_to_bf16_bits(hi[j]) : 0u;
      out[j] = a | (b << 16);
    }
    for (; j < dst_ld; ++j) out[j] = 0;
  }
}

template <class Dot>
void pack_pairs_bf16(const uint16_t* src, int64_t ld, int64_t rows, int64_t cols, uint32_t* dst, int64_t dst_ld) {
  for (int64_t r = 0; r < rows; r += 2) {
    const uint16_t* lo = src + r * ld;
    const uint16_t* hi = r + 1 < rows ? lo + ld : nullptr;
    uint32_t* out = dst + (r / 2) * dst_ld;
    int64_t j = Dot::pack_bf16(lo, hi, out, cols);
    for (; j < cols; ++j) out[j] = static_cast<uint32_t>(lo[j]) | (hi ? static_cast<uint32_t>(hi[j]) << 16 : 0u);
    for (; j < dst_ld; ++j) out[j] = 0;
  }
}

// `base` (the same instruction set's f32 table) with the bf16 entries of Dot, named `name`.
template <class Dot>
TileOps with_bf16_dots(const TileOps& base, const char* name) {
  TileOps t = base;
  t.name = name;
  t.gemm_bf16_nn = gemm<Dot, false>;
  t.gemm_bf16_tn = gemm<Dot, true>;
  t.pack_pairs_f32 = pack_pairs_f32<Dot>;
  t.pack_pairs_bf16 = pack_pairs_bf16<Dot>;
  return t;
}

}  // namespace bf16_kernels
}  // namespace cpu
}  // namespace splash
