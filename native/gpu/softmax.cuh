// Online softmax in the exp2 domain, shared by the forward kernels (the backward kernels use its constants).
//
// Scores stay raw logits (no 1/sqrt(d): callers scale q). A row keeps its running max m (raw), the
// running sum l of exp(s - m) and the output accumulator; each new tile rescales both by
// exp(m_old - m_new). Probabilities are exp2(fma(s, log2e, -m * log2e)): one FFMA and one MUFU.
//
// Masked logits are mask_value (splash's default is -0.7 * FLT_MAX), and mask_value * log2e
// overflows to -inf. A row whose max is still such a value (or -inf: nothing seen yet) uses an
// offset of 0 instead, so -inf - -inf never happens: its masked entries give exp2(-inf) = 0, and
// the row is reported as fully masked (out 0, lse -inf) unless an allowed key comes later, whose
// rescale then multiplies zeros. A finite custom mask_value keeps exact semantics: masked entries
// contribute exp(mask_value - m) like any logit.
#pragma once

#include <cstdint>

#include "compat.h"

namespace splash {
namespace gpu {

constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float neg_inf() { return __int_as_float(static_cast<int>(0xff800000u)); }
__device__ __forceinline__ float pos_inf() { return __int_as_float(0x7f800000); }

// m * log2e, or 0 where that is -inf.
__device__ __forceinline__ float exp2_offset(float m) {
  const float s = m * kLog2e;
  return s == neg_inf() ? 0.f : s;
}

// exp(s - m) for a row whose exp2 offset is `offset` (= exp2_offset(m)).
__device__ __forceinline__ float softmax_weight(float s, float offset) { return exp2f(fmaf(s, kLog2e, -offset)); }

// Factor that moves a row's sum and accumulator from max m_old to max m_new >= m_old.
__device__ __forceinline__ float softmax_rescale(float m_old, float m_new) {
  return exp2f(exp2_offset(m_old) - exp2_offset(m_new));
}

// logits = cap * tanh(logits / cap); accurate tanh (an approximate one costs f16 its tolerance).
__device__ __forceinline__ float soft_cap(float x, float cap) { return cap * tanhf(x / cap); }

// logsumexp of a finished row: m + log(l); -inf for a row with no allowed key.
__device__ __forceinline__ float row_lse(float m, float l, bool any_allowed) {
  return any_allowed ? m + logf(l) : neg_inf();
}

}  // namespace gpu
}  // namespace splash
