// Online softmax in the exp2 domain, shared by the forward kernels (the backward kernels use its constants).
//
// Scores stay raw logits (no 1/sqrt(d): callers scale q). A row keeps its running max m (raw), the
// running sum l of exp(s - m) and the output accumulator; each new tile rescales both by
// exp(m_old - m_new). Weights are exp2((s - m) * log2e): the difference is taken first, so s == m
// gives exactly 1 however large |m| is. (A fused fmaf(s, log2e, -m * log2e) rounds m * log2e: for a
// finite mask value below about -1.5e9 that error alone is past 128 and the weights become 0 or inf.)
//
// Masked logits are mask_value (splash's default is -0.7 * FLT_MAX, or a finite one such as -1e4).
// A row whose visited keys so far are all masked has m = mask_value and weights exp(0) = 1 for them,
// as the CPU kernel has; it is reported as fully masked (out 0, lse -inf) unless an allowed key comes
// later, whose rescale exp(mask_value - m_new) then underflows to 0. Only m = -inf (nothing seen yet,
// or only keys past a ragged edge) needs a stand-in offset: 0, so -inf - -inf never happens.
#pragma once

#include <cstdint>

#include "compat.h"

namespace splash {
namespace gpu {

constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float neg_inf() { return __int_as_float(static_cast<int>(0xff800000u)); }
__device__ __forceinline__ float pos_inf() { return __int_as_float(0x7f800000); }

// The offset a row's weights are taken against: its max m, or 0 while m is -inf (every score is then
// -inf too, and gets weight 0).
__device__ __forceinline__ float softmax_offset(float m) { return m == neg_inf() ? 0.f : m; }

// exp(s - m) for a row whose offset is `offset` (= softmax_offset(m)); at most 1, since s <= m.
__device__ __forceinline__ float softmax_weight(float s, float offset) { return exp2f((s - offset) * kLog2e); }

// Factor exp(m_old - m_new) that moves a row's sum and accumulator from max m_old to max m_new >= m_old.
// It is at most 1 (m_old - m_new <= 0 exactly): 1 while the max stays (also -inf to -inf), and 0 from
// m_old = -inf, when the sum and the accumulator are still exactly 0.
__device__ __forceinline__ float softmax_rescale(float m_old, float m_new) {
  return m_old == m_new ? 1.f : exp2f((m_old - m_new) * kLog2e);
}

// logits = cap * tanh(logits / cap); accurate tanh (an approximate one costs f16 its tolerance).
__device__ __forceinline__ float soft_cap(float x, float cap) { return cap * tanhf(x / cap); }

// logsumexp of a finished row: m + log(l); -inf for a row with no allowed key.
__device__ __forceinline__ float row_lse(float m, float l, bool any_allowed) {
  return any_allowed ? m + logf(l) : neg_inf();
}

}  // namespace gpu
}  // namespace splash
