// Tile shapes of the SIMT backward kernels, plain C++ so launch planning and the tests see them.
// Every kernel runs 128 threads; B is the head-dim bucket (64, 128, 256; plan.h: simt_bucket).
//
//   dq pass:   a CTA owns kBwdDqRows(B) query rows, streams K/V tiles of kBwdDqKeys(B) keys;
//   dkv pass:  a CTA owns kBwdDkvKeys(B) keys, streams Q/dO tiles of kBwdDkvRows(B) query rows.
// Shared memory (f32, rows padded by one float) stays under 56 KiB for every bucket, so HIP's 64 KiB
// LDS holds one CTA and CUDA needs the >48 KiB opt-in only.
#pragma once

#include <cstdint>

#include "plan.h"

namespace splash {
namespace gpu {

SPLASH_HOST_DEVICE constexpr int bwd_dq_rows(int b) { return b <= 64 ? 64 : b <= 128 ? 32 : 16; }
SPLASH_HOST_DEVICE constexpr int bwd_dq_keys(int b) { return b <= 128 ? 32 : 16; }
SPLASH_HOST_DEVICE constexpr int bwd_dkv_keys(int b) { return b <= 64 ? 64 : b <= 128 ? 32 : 16; }
SPLASH_HOST_DEVICE constexpr int bwd_dkv_rows(int b) { return b <= 128 ? 16 : 8; }

SPLASH_HOST_DEVICE constexpr int64_t bwd_dq_smem_bytes(int b) {
  return 4 * (static_cast<int64_t>(2 * bwd_dq_rows(b) + bwd_dq_keys(b)) * (b + 1) +
              static_cast<int64_t>(bwd_dq_rows(b)) * (bwd_dq_keys(b) + 1) + 2 * bwd_dq_rows(b));
}
SPLASH_HOST_DEVICE constexpr int64_t bwd_dkv_smem_bytes(int b) {
  return 4 * (static_cast<int64_t>(2 * bwd_dkv_keys(b) + 2 * bwd_dkv_rows(b)) * (b + 1) +
              2 * static_cast<int64_t>(bwd_dkv_rows(b)) * (bwd_dkv_keys(b) + 1) + 2 * bwd_dkv_rows(b));
}

}  // namespace gpu
}  // namespace splash
