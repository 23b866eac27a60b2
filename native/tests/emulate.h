// A CPU emulation of the device side of native/gpu, for tests only (compiled when SPLASH_GPU_EMULATE is
// defined, by native/tests/gpu_emulate_test.cc; never part of an addon or of the package). It lets the
// real kernel source run on a machine without a GPU:
//
//   - a CTA is 128 fibers run round-robin on one OS thread; __syncthreads and every warp collective are
//     yields, so all threads of a CTA pass the same sequence of them, and a CTA whose threads disagree
//     on that sequence (a divergent barrier) is reported. A fiber starts through ucontext and switches
//     with sigsetjmp / siglongjmp without the signal mask: swapcontext makes a system call per switch,
//     which cost more than the kernels' arithmetic;
//   - shared memory is one buffer per CTA, filled with 0xFF (NaN in every dtype) at launch, so a read
//     of shared memory that was never written poisons the result;
//   - cp.async copies are deferred per thread and land only at cp.async.wait_group, so a read before
//     the matching wait sees stale data;
//   - ldmatrix and mma.sync are restated from their definitions in the PTX ISA (which lane holds which
//     matrix element), independently of the kernels' own index arithmetic, which they therefore check.
//
// Arithmetic is the host's f32 (accumulation order inside an mma differs from the hardware's).
#pragma once

#include <setjmp.h>
#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct float4 {
  float x, y, z, w;
};
struct uint2 {
  unsigned x, y;
};
struct uint4 {
  unsigned x, y, z, w;
};
struct dim3 {
  unsigned x, y, z;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline int64_t min(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max(int64_t a, int64_t b) { return a > b ? a : b; }

inline float __int_as_float(int x) {
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}
inline float __uint_as_float(unsigned x) {
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}
inline unsigned __float_as_uint(float f) {
  unsigned x;
  std::memcpy(&x, &f, 4);
  return x;
}

// f16 through the same round-to-nearest-even rules as the hardware conversion.
struct __half {
  uint16_t bits;
};
inline __half __ushort_as_half(unsigned short b) { return __half{b}; }
inline unsigned short __half_as_ushort(__half h) { return h.bits; }
inline float __half2float(__half h) {
  const int exp = (h.bits >> 10) & 0x1f, mant = h.bits & 0x3ff;
  const float sign = (h.bits & 0x8000) ? -1.f : 1.f;
  if (exp == 0) return sign * std::ldexp(static_cast<float>(mant), -24);
  if (exp == 0x1f) return mant ? NAN : sign * INFINITY;
  return sign * std::ldexp(1.f + mant / 1024.f, exp - 15);
}
inline __half __float2half_rn(float f) {
  const uint32_t u = __float_as_uint(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const int exp = static_cast<int>((u >> 23) & 0xffu);
  uint32_t mant = u & 0x7fffffu;
  if (exp == 0xff) return __half{static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u))};
  const int e = exp - 127 + 15;
  if (e >= 0x1f) return __half{static_cast<uint16_t>(sign | 0x7c00u)};
  if (e <= 0) {
    if (e < -10) return __half{static_cast<uint16_t>(sign)};
    mant |= 0x800000u;
    const int shift = 14 - e;
    const uint32_t half = 1u << (shift - 1), rest = mant & ((1u << shift) - 1);
    uint32_t h = mant >> shift;
    if (rest > half || (rest == half && (h & 1u))) ++h;
    return __half{static_cast<uint16_t>(sign | h)};
  }
  uint32_t h = (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return __half{static_cast<uint16_t>(sign | h)};
}

template <class T>
inline T __ldg(const T* p) {
  return *p;
}
inline int atomicMin(int* a, int v) {
  const int old = *a;
  if (v < old) *a = v;
  return old;
}
inline int atomicMax(int* a, int v) {
  const int old = *a;
  if (v > old) *a = v;
  return old;
}
// Fibers of one CTA never run concurrently and CTAs run one after another, so a plain add is atomic.
inline float atomicAdd(float* a, float v) {
  const float old = *a;
  *a = old + v;
  return old;
}

namespace splash {
namespace gpu {
namespace emu {

constexpr int kWarp = 32;
constexpr size_t kStackBytes = 256 * 1024;

struct CopyOp {
  uint32_t dst;
  const void* src;
  bool valid;
};

struct Fiber {
  ucontext_t entry;   // starts the fiber at fiber_main; used once
  sigjmp_buf resume;  // where it continues after its last yield
  std::vector<char> stack;
  bool started = false;
  bool done = false;
  int64_t syncs = 0;
  std::vector<std::vector<CopyOp>> groups;  // committed cp.async groups, oldest first
  std::vector<CopyOp> open;                 // issued, not yet committed
};

struct Cta {
  dim3 grid_dim;
  dim3 block_idx;
  int threads = 0;
  std::vector<uint8_t> smem;
  std::vector<Fiber> fibers;
  std::vector<uint64_t> slots;  // per-thread exchange words for warp collectives
  std::vector<uint32_t> frag;   // per-thread mma operands: 4 A, 2 B, 4 C words
  sigjmp_buf scheduler;         // where a yielding or finished fiber returns to
  int current = 0;
  const std::function<void()>* body = nullptr;
};

inline Cta*& cta() {
  static Cta* c = nullptr;
  return c;
}

inline void yield() {
  Cta* c = cta();
  Fiber& f = c->fibers[c->current];
  ++f.syncs;
  if (sigsetjmp(f.resume, 0) == 0) siglongjmp(c->scheduler, 1);
}

[[noreturn]] inline void fiber_main() {
  Cta* c = cta();
  (*c->body)();
  c->fibers[c->current].done = true;
  siglongjmp(c->scheduler, 1);  // a fiber never returns: its entry context has no link
}

inline unsigned thread_index() { return static_cast<unsigned>(cta()->current); }
inline uint8_t* smem_base() { return cta()->smem.data(); }

// Prepares `f` to start at fiber_main on `stack`. A function of its own: getcontext in a loop makes
// GCC warn that the loop variable "might be clobbered" (-Wclobbered, an error under ASan builds),
// although no context ever resumes here.
inline void init_fiber(Fiber& f, std::vector<char>& stack) {
  if (stack.empty()) stack.resize(kStackBytes);
  getcontext(&f.entry);
  f.entry.uc_stack.ss_sp = stack.data();
  f.entry.uc_stack.ss_size = stack.size();
  f.entry.uc_link = nullptr;
  makecontext(&f.entry, fiber_main, 0);
}

// Runs fiber `f` of `c` until it yields or finishes. A function of its own for the same reason as
// init_fiber: the caller's loop variables stay out of the sigsetjmp frame.
inline void run_fiber(Cta& c, Fiber& f) {
  if (sigsetjmp(c.scheduler, 0) != 0) return;
  if (!f.started) {
    f.started = true;
    setcontext(&f.entry);
  }
  siglongjmp(f.resume, 1);
}

// Runs body() as every thread of every CTA of `grid`, one CTA after another. Throws on a divergent
// barrier (threads of a CTA passing different numbers of barriers and collectives).
inline void launch(dim3 grid, int threads, size_t smem_bytes, const std::function<void()>& body) {
  static std::vector<std::vector<char>> stacks;
  if (static_cast<int>(stacks.size()) < threads) stacks.resize(static_cast<size_t>(threads));
  for (unsigned by = 0; by < grid.y; ++by) {
    for (unsigned bx = 0; bx < grid.x; ++bx) {
      Cta c;
      c.grid_dim = grid;
      c.block_idx = dim3(bx, by, 0);
      c.threads = threads;
      c.smem.resize(smem_bytes, 0xff);  // fresh: as assign, which GCC 12 -O3 flags (-Wnonnull) for 0 bytes
      c.fibers.resize(static_cast<size_t>(threads));
      c.slots.assign(static_cast<size_t>(threads), 0);
      c.frag.assign(static_cast<size_t>(threads) * 10, 0);
      c.body = &body;
      cta() = &c;
      for (int t = 0; t < threads; ++t) {
        init_fiber(c.fibers[static_cast<size_t>(t)], stacks[static_cast<size_t>(t)]);
      }
      bool alive = true;
      while (alive) {
        alive = false;
        for (int t = 0; t < threads; ++t) {
          Fiber& f = c.fibers[static_cast<size_t>(t)];
          if (f.done) continue;
          c.current = t;
          run_fiber(c, f);
          alive = alive || !f.done;
        }
      }
      for (int t = 1; t < threads; ++t) {
        if (c.fibers[static_cast<size_t>(t)].syncs != c.fibers[0].syncs) {
          cta() = nullptr;
          throw std::runtime_error("divergent barrier in CTA (" + std::to_string(bx) + ", " + std::to_string(by) +
                                   "): thread 0 passed " + std::to_string(c.fibers[0].syncs) + " barriers, thread " +
                                   std::to_string(t) + " passed " + std::to_string(c.fibers[static_cast<size_t>(t)].syncs));
        }
      }
      cta() = nullptr;
    }
  }
}

// ---- warp collectives (all threads of the CTA call them together: yields bracket the exchange) ----

template <class T>
inline T exchange(T value, int src_lane_xor, int width) {
  static_assert(sizeof(T) <= 8, "one word per thread");
  Cta* c = cta();
  const int tid = c->current;
  uint64_t w = 0;
  std::memcpy(&w, &value, sizeof(T));
  c->slots[static_cast<size_t>(tid)] = w;
  yield();
  const int lane = tid % kWarp;
  const int partner = (lane ^ src_lane_xor) % kWarp;
  const int base = tid - lane;
  (void)width;
  T out;
  std::memcpy(&out, &c->slots[static_cast<size_t>(base + partner)], sizeof(T));
  yield();
  return out;
}

inline bool any_in_warp(bool pred) {
  Cta* c = cta();
  const int tid = c->current;
  c->slots[static_cast<size_t>(tid)] = pred ? 1 : 0;
  yield();
  bool any = false;
  const int base = tid - tid % kWarp;
  for (int l = 0; l < kWarp; ++l) any = any || c->slots[static_cast<size_t>(base + l)] != 0;
  yield();
  return any;
}

// ---- cp.async ------------------------------------------------------------------------------------------

inline void cp_async(uint32_t dst, const void* src, bool valid) {
  Cta* c = cta();
  c->fibers[static_cast<size_t>(c->current)].open.push_back(CopyOp{dst, src, valid});
}
inline void cp_commit() {
  Cta* c = cta();
  Fiber& f = c->fibers[static_cast<size_t>(c->current)];
  f.groups.push_back(std::move(f.open));
  f.open.clear();
}
inline void cp_wait(size_t keep) {
  Cta* c = cta();
  Fiber& f = c->fibers[static_cast<size_t>(c->current)];
  while (f.groups.size() > keep) {
    for (const CopyOp& op : f.groups.front()) {
      if (op.valid) {
        std::memcpy(c->smem.data() + op.dst, op.src, 16);
      } else {
        std::memset(c->smem.data() + op.dst, 0, 16);
      }
    }
    f.groups.erase(f.groups.begin());
  }
}

// ---- ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16 ------------------------------------------------
// Lanes 8i..8i+7 give the addresses of rows 0..7 of matrix i. Without .trans lane L gets, in register
// i, elements (row L/4, cols 2(L%4), 2(L%4)+1) of matrix i; with .trans, (rows 2(L%4), 2(L%4)+1, col L/4).
inline void ldmatrix(uint32_t (&r)[4], uint32_t addr, bool trans) {
  Cta* c = cta();
  const int tid = c->current;
  c->slots[static_cast<size_t>(tid)] = addr;
  yield();
  const int lane = tid % kWarp, base = tid - lane;
  auto elem = [&](int matrix, int row, int col) -> uint32_t {
    const uint32_t row_addr = static_cast<uint32_t>(c->slots[static_cast<size_t>(base + matrix * 8 + row)]);
    uint16_t v;
    std::memcpy(&v, c->smem.data() + row_addr + 2 * col, 2);
    return v;
  };
  for (int i = 0; i < 4; ++i) {
    uint32_t lo, hi;
    if (!trans) {
      lo = elem(i, lane / 4, 2 * (lane % 4));
      hi = elem(i, lane / 4, 2 * (lane % 4) + 1);
    } else {
      lo = elem(i, 2 * (lane % 4), lane / 4);
      hi = elem(i, 2 * (lane % 4) + 1, lane / 4);
    }
    r[i] = lo | (hi << 16);
  }
  yield();
}

// ---- mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.f32 ---------------------------------------------
// g = lane / 4, t = lane % 4; each 32-bit register holds two elements, the lower-indexed in the low half.
//   A 16x16: reg0 (row g, k 2t..2t+1), reg1 (row g+8, k 2t..), reg2 (row g, k 2t+8..), reg3 (row g+8, k 2t+8..)
//   B 16x8:  reg0 (k 2t..2t+1, col g), reg1 (k 2t+8.., col g)
//   C/D:     c0, c1 (row g, cols 2t, 2t+1), c2, c3 (row g+8, cols 2t, 2t+1)
template <float (*ToFloat)(uint32_t)>
inline void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  Cta* c = cta();
  const int tid = c->current;
  uint32_t* mine = c->frag.data() + static_cast<size_t>(tid) * 10;
  for (int i = 0; i < 4; ++i) mine[i] = a[i];
  mine[4] = b0;
  mine[5] = b1;
  yield();
  const int lane = tid % kWarp, base = tid - lane;
  auto half_of = [](uint32_t reg, int upper) { return upper ? reg >> 16 : reg & 0xffffu; };
  auto A = [&](int row, int k) {
    const int owner = (row % 8) * 4 + (k % 8) / 2;
    const int reg = (row / 8) + 2 * (k / 8);
    return ToFloat(half_of(c->frag[static_cast<size_t>(base + owner) * 10 + reg], k % 2));
  };
  auto B = [&](int k, int col) {
    const int owner = col * 4 + (k % 8) / 2;
    const int reg = 4 + k / 8;
    return ToFloat(half_of(c->frag[static_cast<size_t>(base + owner) * 10 + reg], k % 2));
  };
  const int g = lane / 4, t = lane % 4;
  const int rows[4] = {g, g, g + 8, g + 8};
  const int cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
  float out[4];
  for (int e = 0; e < 4; ++e) {
    float acc = d[e];
    for (int k = 0; k < 16; ++k) acc += A(rows[e], k) * B(k, cols[e]);
    out[e] = acc;
  }
  yield();
  for (int e = 0; e < 4; ++e) d[e] = out[e];
}

}  // namespace emu
}  // namespace gpu
}  // namespace splash

#define threadIdx (dim3(splash::gpu::emu::thread_index(), 0, 0))
#define blockIdx (splash::gpu::emu::cta()->block_idx)
#define gridDim (splash::gpu::emu::cta()->grid_dim)
#define __syncthreads() splash::gpu::emu::yield()
