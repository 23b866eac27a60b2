// The tile operations of tile_ops.h, written once over a vector "ISA" type (Avx512, Avx2, Scalar:
// simd_*.h) and instantiated by each isa_*.cc under its own target pragma.
//
// Everything here has internal linkage (anonymous namespace) and calls no std:: templates, so the
// copies compiled for different instruction sets can never be merged by the linker into code the
// CPU cannot run.
#pragma once

#include "half.h"
#include "tile_ops.h"

namespace splash {
namespace cpu {
namespace {

template <class T>
inline T lesser(T a, T b) { return a < b ? a : b; }

// ---- elementwise math ------------------------------------------------------------------------

// e^x to about 1e-7 relative (a few ulp): x = n·ln2 + r, |r| <= ln2/2, e^r by its degree-7 Taylor
// polynomial, then scaled by 2^n. Results below e^-86 (≈ 4e-38) are flushed to exactly 0, which
// keeps masked logits (maskValue, -inf) from ever contributing.
template <class I>
inline typename I::V exp_v(typename I::V x) {
  using V = typename I::V;
  const V lo = I::set1(-86.0f);
  const typename I::M under = I::lt(x, lo);
  x = I::min(I::max(x, lo), I::set1(88.0f));
  const V n = I::round(I::mul(x, I::set1(1.44269504088896341f)));
  V r = I::fma(n, I::set1(-0.693359375f), x);  // ln 2 split in two so n·ln2 is exact enough
  r = I::fma(n, I::set1(2.12194440e-4f), r);
  V p = I::set1(1.0f / 5040.0f);
  p = I::fma(p, r, I::set1(1.0f / 720.0f));
  p = I::fma(p, r, I::set1(1.0f / 120.0f));
  p = I::fma(p, r, I::set1(1.0f / 24.0f));
  p = I::fma(p, r, I::set1(1.0f / 6.0f));
  p = I::fma(p, r, I::set1(0.5f));
  p = I::fma(p, r, I::set1(1.0f));
  p = I::fma(p, r, I::set1(1.0f));
  return I::select(under, I::zero(), I::scale_pow2(p, n));
}

// tanh x = sign(x)·(1 - e)/(1 + e), e = e^(-2|x|): never overflows; absolute error ~1e-7.
template <class I>
inline typename I::V tanh_v(typename I::V x) {
  using V = typename I::V;
  const V e = exp_v<I>(I::mul(I::abs(x), I::set1(-2.0f)));
  const V one = I::set1(1.0f);
  return I::copysign(I::div(I::sub(one, e), I::add(one, e)), x);
}

// ---- matrix products -------------------------------------------------------------------------

// One MR x (NV·W) block of C, its accumulators held in registers across the whole k loop.
template <class I, int MR, int NV, bool ATrans>
__attribute__((noinline)) void micro_kernel(int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                                            float* c, int64_t ldc, bool accumulate) {
  using V = typename I::V;
  constexpr int W = I::W;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = accumulate ? I::load(c + i * ldc + v * W) : I::zero();
  for (int64_t p = 0; p < k; ++p) {
    const float* bp = b + p * ldb;
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = I::load(bp + v * W);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const V av = I::set1(ATrans ? a[p * lda + i] : a[i * lda + p]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = I::fma(av, bv[v], acc[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) I::store(c + i * ldc + v * W, acc[i][v]);
}

// Picks the micro-kernel for an edge block of mr rows and nv vectors (both at most the full tile).
template <class I, bool ATrans, int MR, int NV = I::NV>
inline void micro_cols(int nv, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                       int64_t ldc, bool accumulate) {
  if (nv == NV) return micro_kernel<I, MR, NV, ATrans>(k, a, lda, b, ldb, c, ldc, accumulate);
  if constexpr (NV > 1) micro_cols<I, ATrans, MR, NV - 1>(nv, k, a, lda, b, ldb, c, ldc, accumulate);
}

template <class I, bool ATrans, int MR = I::MR>
inline void micro_any(int mr, int nv, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                      int64_t ldc, bool accumulate) {
  if (mr == MR) return micro_cols<I, ATrans, MR>(nv, k, a, lda, b, ldb, c, ldc, accumulate);
  if constexpr (MR > 1) micro_any<I, ATrans, MR - 1>(mr, nv, k, a, lda, b, ldb, c, ldc, accumulate);
}

// Column panels outside, row blocks inside: one panel of B (k x NV·W) stays in L1 while A streams.
template <class I, bool ATrans>
void gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
          int64_t ldc, bool accumulate) {
  constexpr int64_t W = I::W;
  constexpr int64_t panel = I::NV * W;
  for (int64_t j = 0; j < n; j += panel) {
    const int nv = static_cast<int>(lesser<int64_t>(I::NV, (n - j) / W));
    for (int64_t i = 0; i < m; i += I::MR) {
      const int mr = static_cast<int>(lesser<int64_t>(I::MR, m - i));
      const float* ai = ATrans ? a + i : a + i * lda;
      micro_any<I, ATrans>(mr, nv, k, ai, lda, b + j, ldb, c + i * ldc + j, ldc, accumulate);
    }
  }
}

// ---- forward softmax ------------------------------------------------------------------------

// Columns are handled in chunks of kChunk vectors: both passes over a chunk (max, then exp and sum)
// run while its rows are still in L1.
constexpr int kChunk = 4;

template <class I, bool Cap, bool Masked>
void softmax_step_impl(const SoftmaxStep& s) {
  using V = typename I::V;
  constexpr int64_t W = I::W;
  // A capped or masked tile is rewritten in pass 1, with the scale applied there (folded into the cap's
  // divisor). A plain tile is only read: its raw maximum is scaled afterwards (scale > 0 keeps the order)
  // and pass 2 scales each dot as it exponentiates it, so plain tiles cost no extra store.
  constexpr bool kRewrite = Cap || Masked;
  const V cap = I::set1(s.soft_cap);
  const V inv_cap = I::set1(Cap ? s.scale / s.soft_cap : 1.0f);
  const V scale = I::set1(s.scale);
  const V mask_value = I::set1(s.mask_value);
  const V one = I::set1(1.0f);
  const V neg_inf = I::set1(-__builtin_inff());
  for (int64_t c0 = 0; c0 < s.cols; c0 += kChunk * W) {
    const int nvec = static_cast<int>(lesser<int64_t>(kChunk, (s.cols - c0) / W));
    V mx[kChunk], seen[kChunk], m_eff[kChunk], neg_m[kChunk], sum[kChunk];
    for (int v = 0; v < nvec; ++v) {
      mx[v] = kRewrite ? I::load(s.m + c0 + v * W) : neg_inf;
      seen[v] = I::load(s.any + c0 + v * W);
    }
    // Pass 1: logits (scale, soft cap, mask) and the running column maximum.
    for (int64_t r = 0; r < s.rows; ++r) {
      float* row = s.st + r * s.ld + c0;
      for (int v = 0; v < nvec; ++v) {
        V x = I::load(row + v * W);
        if (Cap) {
          x = I::mul(cap, tanh_v<I>(I::mul(x, inv_cap)));
        } else if (Masked) {
          x = I::mul(x, scale);
        }
        if (Masked) {
          const typename I::M allowed = I::mask_bytes(s.mask + r * s.mask_ld + c0 + v * W);
          x = I::select(allowed, x, mask_value);
          seen[v] = I::select(allowed, one, seen[v]);
        }
        if (kRewrite) I::store(row + v * W, x);
        mx[v] = I::max(mx[v], x);
      }
    }
    // New maxima and the rescale factor of what was accumulated so far. A column whose maximum is
    // still -inf (maskValue = -inf, nothing allowed yet) subtracts 0 instead, so its p is 0, not NaN.
    for (int v = 0; v < nvec; ++v) {
      const V m_old = I::load(s.m + c0 + v * W);
      if (!kRewrite) mx[v] = I::max(m_old, I::mul(mx[v], scale));
      m_eff[v] = I::select(I::eq(mx[v], neg_inf), I::zero(), mx[v]);
      neg_m[v] = I::sub(I::zero(), m_eff[v]);
      I::store(s.alpha + c0 + v * W, exp_v<I>(I::sub(m_old, m_eff[v])));
      I::store(s.m + c0 + v * W, mx[v]);
      I::store(s.any + c0 + v * W, seen[v]);
      sum[v] = I::zero();
    }
    // Pass 2: probabilities and their column sums.
    for (int64_t r = 0; r < s.rows; ++r) {
      float* row = s.st + r * s.ld + c0;
      for (int v = 0; v < nvec; ++v) {
        const V x = I::load(row + v * W);
        // x·scale - m in one rounding; with scale 1 that is exactly x - m.
        const V e = exp_v<I>(kRewrite ? I::sub(x, m_eff[v]) : I::fma(x, scale, neg_m[v]));
        I::store(row + v * W, e);
        sum[v] = I::add(sum[v], e);
      }
    }
    for (int v = 0; v < nvec; ++v) {
      float* l = s.l + c0 + v * W;
      I::store(l, I::fma(I::load(l), I::load(s.alpha + c0 + v * W), sum[v]));
    }
  }
}

template <class I>
void softmax_step(const SoftmaxStep& s) {
  const bool cap = s.soft_cap > 0.0f;
  if (cap) {
    s.mask ? softmax_step_impl<I, true, true>(s) : softmax_step_impl<I, true, false>(s);
  } else {
    s.mask ? softmax_step_impl<I, false, true>(s) : softmax_step_impl<I, false, false>(s);
  }
}

template <class I>
void scale_rows(float* acc, int64_t ld, int64_t rows, int64_t cols, const float* alpha) {
  constexpr int64_t W = I::W;
  for (int64_t r = 0; r < rows; ++r) {
    if (alpha[r] == 1.0f) continue;
    const typename I::V a = I::set1(alpha[r]);
    float* row = acc + r * ld;
    for (int64_t c = 0; c < cols; c += W) I::store(row + c, I::mul(I::load(row + c), a));
  }
}

// ---- backward probabilities -----------------------------------------------------------------

template <class I, bool Cap, bool Masked, bool Transposed>
void grad_step_impl(const GradStep& g) {
  using V = typename I::V;
  constexpr int64_t W = I::W;
  const V cap = I::set1(g.soft_cap);
  const V inv_cap = I::set1(Cap ? g.scale / g.soft_cap : 1.0f);  // the scale folded in, as in the forward
  const V scale = I::set1(g.scale);
  const bool scaled = g.scale != 1.0f;
  const V mask_value = I::set1(g.mask_value);
  const V one = I::set1(1.0f);
  for (int64_t r = 0; r < g.rows; ++r) {
    float* srow = g.s + r * g.ld;
    float* drow = g.dp + r * g.ld;
    const V row_lse = I::set1(Transposed ? 0.0f : g.lse[r]);
    const V row_di = I::set1(Transposed ? 0.0f : g.di[r]);
    for (int64_t c = 0; c < g.cols; c += W) {
      V x = I::load(srow + c);
      if (!Cap && scaled) x = I::mul(x, scale);
      const V lse = Transposed ? I::load(g.lse + c) : row_lse;
      const V di = Transposed ? I::load(g.di + c) : row_di;
      V dcap = one;
      if (Cap) {
        const V t = tanh_v<I>(I::mul(x, inv_cap));
        x = I::mul(cap, t);
        dcap = I::sub(one, I::mul(t, t));
      }
      typename I::M allowed{};
      if (Masked) {
        allowed = I::mask_bytes(g.mask + r * g.mask_ld + c);
        x = I::select(allowed, x, mask_value);
      }
      const V p = exp_v<I>(I::sub(x, lse));
      V ds = I::mul(p, I::sub(I::load(drow + c), di));
      if (Cap) ds = I::mul(ds, dcap);
      if (scaled) ds = I::mul(ds, scale);
      if (Masked) ds = I::select(allowed, ds, I::zero());
      I::store(srow + c, p);
      I::store(drow + c, ds);
    }
  }
}

template <class I, bool Cap, bool Masked>
void grad_step_oriented(const GradStep& g) {
  g.transposed ? grad_step_impl<I, Cap, Masked, true>(g) : grad_step_impl<I, Cap, Masked, false>(g);
}

template <class I>
void grad_step(const GradStep& g) {
  if (g.soft_cap > 0.0f) {
    g.mask ? grad_step_oriented<I, true, true>(g) : grad_step_oriented<I, true, false>(g);
  } else {
    g.mask ? grad_step_oriented<I, false, true>(g) : grad_step_oriented<I, false, false>(g);
  }
}

// ---- conversions and reductions ---------------------------------------------------------------

template <class I>
void to_f32(const void* src, DType dtype, int64_t n, float* dst) {
  constexpr int64_t W = I::W;
  int64_t i = 0;
  if (dtype == DType::F32) {
    const float* s = static_cast<const float*>(src);
    for (; i < n; ++i) dst[i] = s[i];
    return;
  }
  const uint16_t* h = static_cast<const uint16_t*>(src);
  if (dtype == DType::BF16) {
    for (; i + W <= n; i += W) I::store(dst + i, I::load_bf16(h + i));
    for (; i < n; ++i) dst[i] = bits_float(static_cast<uint32_t>(h[i]) << 16);
  } else {
    for (; i + W <= n; i += W) I::store(dst + i, I::load_f16(h + i));
    for (; i < n; ++i) dst[i] = f16_bits_to_f32(h[i]);
  }
}

template <class I>
void from_f32(const float* src, int64_t n, DType dtype, void* dst) {
  constexpr int64_t W = I::W;
  int64_t i = 0;
  if (dtype == DType::F32) {
    float* d = static_cast<float*>(dst);
    for (; i < n; ++i) d[i] = src[i];
    return;
  }
  uint16_t* h = static_cast<uint16_t*>(dst);
  if (dtype == DType::BF16) {
    for (; i + W <= n; i += W) I::store_bf16(h + i, I::load(src + i));
    for (; i < n; ++i) h[i] = f32_to_bf16_bits(src[i]);
  } else {
    for (; i + W <= n; i += W) I::store_f16(h + i, I::load(src + i));
    for (; i < n; ++i) h[i] = f32_to_f16_bits(src[i]);
  }
}

template <class I>
float dot(const float* a, const float* b, int64_t n) {
  constexpr int64_t W = I::W;
  typename I::V acc = I::zero();
  int64_t i = 0;
  for (; i + W <= n; i += W) acc = I::fma(I::load(a + i), I::load(b + i), acc);
  float sum = I::reduce_add(acc);
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// The table of the f32 operations for one instruction set (bf16 entries left null).
template <class I>
TileOps make_tile_ops(const char* name) {
  TileOps t{};
  t.name = name;
  t.vec = I::W;
  t.gemm_nn = gemm<I, false>;
  t.gemm_tn = gemm<I, true>;
  t.softmax_step = softmax_step<I>;
  t.grad_step = grad_step<I>;
  t.scale_rows = scale_rows<I>;
  t.to_f32 = to_f32<I>;
  t.from_f32 = from_f32<I>;
  t.dot = dot<I>;
  return t;
}

}  // namespace
}  // namespace cpu
}  // namespace splash
