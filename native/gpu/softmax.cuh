// Online softmax in the exp2 domain, shared by the forward kernels (the backward kernels use its constants).
//
// Logits are scale * q.k (scale 1 unless the call sets one; no 1/sqrt(d) of its own), soft-capped after
// the scale. A row keeps its running max m (a logit), the running sum l of exp(x - m) and the output
// accumulator; each new tile rescales both by exp(m_old - m_new). The scale costs no extra pass: a
// soft-capped tile takes it in the cap's divisor, a masked tile where its mask is applied, and a plain
// tile keeps raw dot products s, scales its row maxima afterwards (a positive scale keeps the order)
// and takes the scale inside each weight's one rounding (softmax_weight's sc).
//
// A sink is a first key with logit s_h and no value: a row starts from m = s_h and l = 1 (counted once
// across the lanes sharing the row), and a row with no allowed key reports lse = s_h.
//
// Weights are exp2((x - m) * log2e): the difference is taken first, so x == m gives exactly 1 however
// large |m| is. (A fused fmaf(x, log2e, -m * log2e) rounds m * log2e: for a finite mask value below
// about -1.5e9 that error alone is past 128 and the weights become 0 or inf.)
//
// Masked logits are mask_value (splash's default is -0.7 * FLT_MAX, or a finite one such as -1e4).
// A row whose visited keys so far are all masked has m = mask_value and weights exp(0) = 1 for them,
// as the CPU kernel has; it is reported as fully masked (out 0, lse -inf, or the sink with one) unless
// an allowed key comes later, whose rescale exp(mask_value - m_new) then underflows to 0. Only m = -inf
// (nothing seen yet, or only keys past a ragged edge) needs a stand-in offset: 0, so -inf - -inf never
// happens.
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

// exp(sc * s - offset) for a row whose offset is `offset` (= softmax_offset(m)), where sc turns s into
// a logit (the scale for raw dot products, 1 for logits). fmaf rounds the product and the difference
// once: with sc = 1 this is exactly exp2((s - offset) log2e), at most 1 since s <= m.
__device__ __forceinline__ float softmax_weight(float s, float sc, float offset) {
  return exp2f(fmaf(s, sc, -offset) * kLog2e);
}

// Factor exp(m_old - m_new) that moves a row's sum and accumulator from max m_old to max m_new >= m_old.
// It is at most 1 (m_old - m_new <= 0 exactly): 1 while the max stays (also -inf to -inf), and 0 from
// m_old = -inf, when the sum and the accumulator are still exactly 0.
__device__ __forceinline__ float softmax_rescale(float m_old, float m_new) {
  return m_old == m_new ? 1.f : exp2f((m_old - m_new) * kLog2e);
}

// logits = cap * tanh(scale * s / cap) with cap_mul = scale / cap (the scale rides on the cap's
// divisor); accurate tanh (an approximate one costs f16 its tolerance).
__device__ __forceinline__ float soft_cap(float s, float cap, float cap_mul) { return cap * tanhf(s * cap_mul); }

// logsumexp of a finished row: m + log(l); `empty` (the row's sink, or -inf) for a row with no allowed key.
__device__ __forceinline__ float row_lse(float m, float l, bool any_allowed, float empty) {
  return any_allowed ? m + logf(l) : empty;
}

}  // namespace gpu
}  // namespace splash
