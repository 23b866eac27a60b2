// Tensor-core primitives for CUDA sm_80 and later, shared by the forward and backward mma kernels:
// swizzled shared tiles, cp.async, ldmatrix, mma.sync m16n8k16 (bf16 / f16 in, f32 accumulators),
// packing to 16-bit pairs, per-lane fragment addressing and asynchronous tile loads. Under
// SPLASH_GPU_EMULATE the same names run on the CPU (native/tests/emulate.h).
//
// Fragment facts (PTX ISA, mma.m16n8k16 with .bf16/.f16; g = lane / 4, t = lane % 4):
//   A (16x16, row): reg0 = (row g, k 2t..2t+1), reg1 = (row g+8, k 2t..), reg2 = (row g, k 2t+8..),
//                   reg3 = (row g+8, k 2t+8..); the lower half of each register holds the lower k.
//   B (16x8, col):  reg0 = (k 2t..2t+1, col g), reg1 = (k 2t+8.., col g).
//   C (16x8, f32):  c0, c1 = (row g, cols 2t, 2t+1), c2, c3 = (row g+8, cols 2t, 2t+1).
// So the C tiles of a product over 16 columns are exactly the A operand of the next product's k-step.
// ldmatrix.x4: lanes 8i..8i+7 give the row addresses of matrix i, and register i of every lane gets
// (row g, cols 2t, 2t+1) of matrix i; with .trans, (rows 2t, 2t+1, col g), which turns a row-major
// [k, n] tile into B fragments (and a row-major [k, m] tile into A fragments).
#pragma once

#include <cstdint>

#include "dtypes.cuh"
#include "plan.h"

namespace splash {
namespace gpu {
namespace mma {

// Offset in halves of 16-byte chunk `chunk` of row `row` in a tile of D-wide rows (see plan.h:
// mma_row_stride): d % 64 == 0 swizzles chunks by the row's low 3 bits, other d pad each row.
template <int D>
__device__ __forceinline__ int smem_offset(int row, int chunk) {
  if constexpr (D % 64 == 0) {
    return row * D + ((chunk ^ (row & 7)) << 3);
  } else {
    return row * mma_row_stride(D) + (chunk << 3);
  }
}

#ifndef SPLASH_GPU_EMULATE

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, bool valid) {
  const int bytes = valid ? 16 : 0;  // 0: no global read, the 16 bytes are zero-filled
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_one() { asm volatile("cp.async.wait_group 1;\n" ::: "memory"); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

template <class T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma_16816<BF16>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma_16816<F16>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats rounded to nearest even into one register of two 16-bit values (lo in the low half).
template <class T>
__device__ __forceinline__ uint32_t cvt_pack(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t cvt_pack<BF16>(float lo, float hi) {
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));  // first source → upper half
  return r;
}
template <>
__device__ __forceinline__ uint32_t cvt_pack<F16>(float lo, float hi) {
  uint32_t r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

#else  // SPLASH_GPU_EMULATE: the same primitives on the CPU (native/tests/emulate.h)

inline uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(static_cast<const uint8_t*>(p) - emu::smem_base());
}
inline void cp_async_16(uint32_t dst, const void* src, bool valid) { emu::cp_async(dst, src, valid); }
inline void cp_async_commit() { emu::cp_commit(); }
inline void cp_async_wait_all() { emu::cp_wait(0); }
inline void cp_async_wait_one() { emu::cp_wait(1); }
inline void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) { emu::ldmatrix(r, addr, false); }
inline void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) { emu::ldmatrix(r, addr, true); }
inline float emu_bf16(uint32_t b) { return bf16_bits_to_float(b); }
inline float emu_f16(uint32_t b) { return f16_bits_to_float(b); }
template <class T>
inline void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (T::kDType == DType::BF16) {
    emu::mma_m16n8k16<emu_bf16>(c, a, b0, b1);
  } else {
    emu::mma_m16n8k16<emu_f16>(c, a, b0, b1);
  }
}
template <class T>
inline uint32_t cvt_pack(float lo, float hi) {
  return pack2<T>(lo, hi);
}

#endif

// Per-thread ldmatrix addressing: a lane reads 16 bytes at (row, chunk) where row = (compile-time
// multiple of 16) + the lane's own row (lane_row) and chunk = 2 * (compile-time step) + hi. With the
// swizzle, the physical chunk is chunk ^ (row & 7) and row & 7 == lane_row & 7, so the lane's four
// possible low-chunk offsets are computed once; every address in the loops is then one register plus
// an immediate, and the compiler keeps no table of addresses alive across the K/V loop.
template <int D>
struct FragAddr {
  uint32_t base;  // shared address of (lane_row, chunk 0), bytes
  int hx;         // hi ^ (lane_row & 7): the swizzle of the lane's low chunk bits

  __device__ __forceinline__ FragAddr(const uint16_t* tile, int lane_row, int hi) {
    base = smem_addr(tile) + 2u * static_cast<uint32_t>(lane_row * mma_row_stride(D));
    hx = D % 64 == 0 ? (hi ^ (lane_row & 7)) : hi;
  }
  // Shared address of (row0 + lane_row, chunk 2 * step + hi); row0 a multiple of 8, step compile-time.
  __device__ __forceinline__ uint32_t at(int row0, int step) const {
    const int low = D % 64 == 0 ? ((2 * (step & 3)) ^ hx) : (2 * (step & 3) + hx);
    return base + 2u * static_cast<uint32_t>(row0 * mma_row_stride(D) + (step >> 2) * 64 + (low << 3));
  }
};

// Rows [0, rows) of a global tile (row r at src + r * stride, D contiguous halves) into a shared tile
// of kRows rows; the rest are zero-filled. All 128 threads take part; the caller commits.
template <int D, int kRows>
__device__ __forceinline__ void load_tile_async(uint16_t* dst, const uint16_t* src, int64_t stride, int rows, int tid) {
  constexpr int kChunks = D / 8;
  constexpr int kTotal = kRows * kChunks;
  static_assert(kTotal % kMmaThreads == 0, "tile chunks must split evenly over the CTA");
#pragma unroll
  for (int i = 0; i < kTotal / kMmaThreads; ++i) {
    const int idx = tid + i * kMmaThreads;
    const int row = idx / kChunks;
    const int chunk = idx % kChunks;
    const bool valid = row < rows;
    const uint16_t* g = src + (valid ? row * stride : 0) + chunk * 8;
    cp_async_16(smem_addr(dst + smem_offset<D>(row, chunk)), g, valid);
  }
}

}  // namespace mma
}  // namespace gpu
}  // namespace splash
