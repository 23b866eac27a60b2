// Tile shapes of the SIMT backward kernels, plain C++ so launch planning and the tests see them.
// Every kernel runs 128 threads; B is the head-dim bucket (64, 128, 256; plan.h: simt_bucket).
//
//   dq pass:   a CTA owns kBwdDqRows(B) query rows, streams K/V tiles of kBwdDqKeys(B) keys;
//   dkv pass:  a CTA owns kBwdDkvKeys(B) keys, streams Q/dO tiles of kBwdDkvRows(B) query rows.
// Shared memory (f32, rows padded by one float) stays under 56 KiB for every bucket, so HIP's 64 KiB
// LDS holds one CTA and CUDA needs the >48 KiB opt-in only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "plan.h"

namespace splash {
namespace gpu {

SPLASH_HOST_DEVICE constexpr int bwd_dq_rows(int b) { return b <= 64 ? 64 : b <= 128 ? 32 : 16; }
SPLASH_HOST_DEVICE constexpr int bwd_dq_keys(int b) { return b <= 128 ? 32 : 16; }
SPLASH_HOST_DEVICE constexpr int bwd_dkv_keys(int b) { return b <= 64 ? 64 : b <= 128 ? 32 : 16; }
SPLASH_HOST_DEVICE constexpr int bwd_dkv_rows(int b) { return b <= 128 ? 16 : 8; }

// The dsinks reduction (bwd_simt.cuh): one double per thread of its 128.
constexpr size_t kBwdDsinksSmem = 128 * sizeof(double);

SPLASH_HOST_DEVICE constexpr int64_t bwd_dq_smem_bytes(int b) {
  return 4 * (static_cast<int64_t>(2 * bwd_dq_rows(b) + bwd_dq_keys(b)) * (b + 1) +
              static_cast<int64_t>(bwd_dq_rows(b)) * (bwd_dq_keys(b) + 1) + 2 * bwd_dq_rows(b));
}
SPLASH_HOST_DEVICE constexpr int64_t bwd_dkv_smem_bytes(int b) {
  return 4 * (static_cast<int64_t>(2 * bwd_dkv_keys(b) + 2 * bwd_dkv_rows(b)) * (b + 1) +
              2 * static_cast<int64_t>(bwd_dkv_rows(b)) * (bwd_dkv_keys(b) + 1) + 2 * bwd_dkv_rows(b));
}

// Tensor-core backward (bwd_mma_sm80.cuh: bf16 / f16 on CUDA sm_80+, q/k head dim == v head dim).
// 128 threads = 4 warps, 16 rows (dq pass: query rows; dk/dv pass: keys) per warp.
//
//   dq pass:   a CTA owns 64 query rows, streams K/V tiles of bwd_mma_dq_keys(d) keys
//              (double-buffered), each in inner steps of bwd_mma_dq_step(d) keys;
//   dkv pass:  a CTA owns 64 keys, streams Q/dO tiles of bwd_mma_dkv_rows(d) query rows
//              (double-buffered); the fused pass adds a [64 keys, rows] tile of dS^T for dQ = dS K.
//              Above d = 128 the dk and dv accumulators do not fit the registers together, so the
//              pass runs as two kernels over the same tiles: dV, then dK (and the fused dQ).
constexpr int kBwdMmaDqRows = 64;
constexpr int kBwdMmaDkvKeys = 64;
SPLASH_HOST_DEVICE constexpr int bwd_mma_dq_keys(int d) { return d <= 128 ? 64 : 16; }
SPLASH_HOST_DEVICE constexpr int bwd_mma_dq_step(int d) { return d <= 64 ? 64 : d <= 128 ? 32 : 16; }
SPLASH_HOST_DEVICE constexpr int bwd_mma_dkv_rows(int d) { return d <= 64 ? 64 : d <= 128 ? 32 : 16; }
SPLASH_HOST_DEVICE constexpr bool bwd_mma_dkv_in_two(int d) { return d > 128; }

// Q, dO and two K / V buffers, 16-bit.
SPLASH_HOST_DEVICE constexpr int64_t bwd_mma_dq_smem_bytes(int d) {
  return 2LL * mma_row_stride(d) * (2 * kBwdMmaDqRows + 4 * bwd_mma_dq_keys(d));
}
// K, V and two Q / dO buffers (16-bit); fused: the dS^T tile (16-bit); then lse and di, two buffers;
// fused: one f32 per warp (the factor its rows of dS^T were stored with). At most 99 KiB (sm_86/89's
// opt-in limit) for every head dim, split or fused.
SPLASH_HOST_DEVICE constexpr int64_t bwd_mma_dkv_smem_bytes(int d, bool fused) {
  return 2LL * mma_row_stride(d) * (2 * kBwdMmaDkvKeys + 4 * bwd_mma_dkv_rows(d)) +
         (fused ? 2LL * kBwdMmaDkvKeys * mma_row_stride(bwd_mma_dkv_rows(d)) : 0) + 4LL * 4 * bwd_mma_dkv_rows(d) +
         (fused ? 4LL * (kBwdMmaDkvKeys / 16) : 0);
}

}  // namespace gpu
}  // namespace splash
