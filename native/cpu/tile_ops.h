// The per-instruction-set tile operations the kernel drivers are built from, as a table of function
// pointers chosen once at run time from what the CPU can execute (AVX-512, AVX2 + FMA, NEON, or
// portable C++). Drivers in forward.cc / backward.cc are plain C++; only the code behind this table is
// compiled for a specific instruction set (isa_*.cc), so the binary still runs on baseline x86-64 and
// baseline AArch64.
//
// Conventions: tiles are f32, row-major with an explicit leading dimension; a column count marked
// "padded" is a multiple of `vec` (the vector width in floats), and callers size buffers for it.
// Pad columns are computed like the others and ignored; they never feed a reduction over columns.
#pragma once

#include <cstdint>

#include "splash/params.h"

namespace splash {
namespace cpu {

// One online-softmax step of the forward pass on a transposed tile st[kv row][q column] of q·k dots
// (kv rows x padded q columns), with logit = cap(scale · dot) or mask_value where masked. Afterwards st
// holds exp(logit - m_new), and per q column m, l and `any` (1.0 once an allowed key was seen) are
// updated and alpha = exp(m_old - m_new) is written.
struct SoftmaxStep {
  float* st;
  int64_t ld;
  int64_t rows;
  int64_t cols;           // padded
  const uint8_t* mask;    // [rows][mask_ld], 0 = masked; null = everything allowed
  int64_t mask_ld;
  float mask_value;
  float soft_cap;         // 0 = none
  float scale;            // logits = scale · q·k, before the soft cap
  float* m;
  float* l;
  float* any;
  float* alpha;
};

// Backward probabilities and gradients on a tile s of q·k dots and dp = dout·vᵀ, in place:
// s ← p = exp(logit - lse) with logit = cap(scale · dot) or the mask value, dp ← ds = scale · p·(dp - di)
// ·(1 - tanh²) where allowed (the gradient of the dot, so dq = ds·k and dk = dsᵀ·q) and 0 where masked. Per-row statistics index rows (s is [q][kv]) or columns (s is [kv][q], `transposed`).
// lse holds +inf for rows with no allowed key, which makes their p and ds exactly 0.
struct GradStep {
  float* s;
  float* dp;
  int64_t ld;
  int64_t rows;
  int64_t cols;           // padded
  bool transposed;
  const uint8_t* mask;    // [rows][mask_ld] or null
  int64_t mask_ld;
  float mask_value;
  float soft_cap;
  float scale;
  const float* lse;       // per q: [rows] or [cols] when transposed
  const float* di;
};

// C (m x n) = or += A (m x k) · B (k x n). B is row-major with ldb; n is padded. A(i, p) is
// a[i*lda + p] for gemm_nn and a[p*lda + i] for gemm_tn (a transposed operand read in place).
using GemmFn = void (*)(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                        float* c, int64_t ldc, bool accumulate);

// The same with bf16 operands taken in pairs along k: each uint32 holds two bf16 values (the lower
// k index in the low half). kp = number of pairs; A(i, p) is a[i*lda + p] (nn) or a[p*lda + i] (tn).
using GemmBf16Fn = void (*)(int64_t m, int64_t n, int64_t kp, const uint32_t* a, int64_t lda, const uint32_t* b,
                            int64_t ldb, float* c, int64_t ldc, bool accumulate);

struct TileOps {
  const char* name;
  int64_t vec;  // floats per vector register

  GemmFn gemm_nn;
  GemmFn gemm_tn;
  void (*softmax_step)(const SoftmaxStep&);
  void (*grad_step)(const GradStep&);
  // acc[r][0, cols) *= alpha[r] for every row whose alpha is not 1.
  void (*scale_rows)(float* acc, int64_t ld, int64_t rows, int64_t cols, const float* alpha);
  // Contiguous conversions between a tensor dtype and f32 (round to nearest even on the way out).
  void (*to_f32)(const void* src, DType dtype, int64_t n, float* dst);
  void (*from_f32)(const float* src, int64_t n, DType dtype, void* dst);
  // Σ a[i]·b[i] in a fixed order.
  float (*dot)(const float* a, const float* b, int64_t n);

  // bf16 dot products (avx512_bf16, AArch64 BFDOT); null where the CPU has none.
  GemmBf16Fn gemm_bf16_nn;
  GemmBf16Fn gemm_bf16_tn;
  // Rows 2p and 2p+1 of an f32 tile → one row of bf16 pairs (an odd last row pairs with zero).
  void (*pack_pairs_f32)(const float* src, int64_t ld, int64_t rows, int64_t cols, uint32_t* dst, int64_t dst_ld);
  // The same from bf16 rows (src row r at src + r*ld elements).
  void (*pack_pairs_bf16)(const uint16_t* src, int64_t ld, int64_t rows, int64_t cols, uint32_t* dst,
                          int64_t dst_ld);
};

// The best table for this CPU at or below instruction-set level max_isa (0 portable, 1 AVX2 or NEON,
// 2 AVX-512), with the bf16 dot products when bf16_dots and the CPU has them.
const TileOps& tile_ops(int max_isa = 2, bool bf16_dots = true);

// The tables compiled into this binary; null when an instruction set is not available to the compiler.
const TileOps* generic_tile_ops();
const TileOps* avx2_tile_ops();
const TileOps* avx512_tile_ops();
// AVX-512 plus the bf16 dot-product entries.
const TileOps* avx512_bf16_tile_ops();
const TileOps* neon_tile_ops();
// NEON plus the bf16 dot-product entries (FEAT_BF16).
const TileOps* neon_bf16_tile_ops();

}  // namespace cpu
}  // namespace splash
