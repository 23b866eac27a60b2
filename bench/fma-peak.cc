// Measures this machine's peak single-precision FMA throughput, the ceiling the CPU benchmark
// reports its "% of peak" against. JavaScript cannot issue vector FMAs, so bench/peak.ts compiles
// this file on first use:  g++ -O2 -march=native -pthread -std=c++17 fma-peak.cc -o fma-peak
//
//   fma-peak [--threads N] [--seconds S] [--trials T]
//
// Each thread runs chains of independent FMAs (acc = acc * a + b) on as many accumulators as the ISA
// has registers to spare, so the loop is bound by FMA throughput, not latency: 16 zmm accumulators
// for AVX-512, 12 ymm for AVX2 (FMA latency 4-5 cycles x 2 pipes needs >= 10 in flight), 24 q
// registers for AArch64 NEON (latency 4 x up to 4 pipes on Neoverse V1 / V2 needs >= 16), 8 scalars
// where none exists. Every vector variant the compiler was allowed to emit (-march=native) is
// measured with one thread per CPU in this process's affinity set (AVX-512 and AVX2 give the same
// peak on CPUs that split 512-bit FMAs, twice as much on those with two 512-bit FMA units); the best
// trial of each is reported, and the largest of those is the peak. The best variant is also run on
// one thread. Output: one JSON object on stdout.

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#if defined(__AVX512F__) || defined(__AVX2__) || defined(__FMA__)
#include <immintrin.h>
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#endif

namespace {

// Multiplier and addend keep every accumulator converging to b / (1 - a): no overflow, no denormals.
constexpr float kMul = 0.999999f;
constexpr float kAdd = 1e-7f;

volatile float g_sink = 0.f;  // results are stored here so the loops cannot be optimised away

struct Variant {
  const char* isa;
  int lanes;         // floats per vector
  int accumulators;  // independent FMA chains per thread
  void (*kernel)(long iterations);
};

// The accumulators are named variables, not an array: an array may be kept in memory, and then
// the loop measures store-to-load forwarding instead of the FMA units.
#define SPLASH_FMA4(OP, x, y, z, w) \
  x = OP(x, a, b);                  \
  y = OP(y, a, b);                  \
  z = OP(z, a, b);                  \
  w = OP(w, a, b)

#if defined(__AVX512F__)
void kernel_avx512(long iterations) {
  const __m512 a = _mm512_set1_ps(kMul);
  const __m512 b = _mm512_set1_ps(kAdd);
  __m512 r0 = _mm512_set1_ps(0.01f), r1 = _mm512_set1_ps(0.02f), r2 = _mm512_set1_ps(0.03f), r3 = _mm512_set1_ps(0.04f);
  __m512 r4 = _mm512_set1_ps(0.05f), r5 = _mm512_set1_ps(0.06f), r6 = _mm512_set1_ps(0.07f), r7 = _mm512_set1_ps(0.08f);
  __m512 r8 = _mm512_set1_ps(0.09f), r9 = _mm512_set1_ps(0.10f), r10 = _mm512_set1_ps(0.11f), r11 = _mm512_set1_ps(0.12f);
  __m512 r12 = _mm512_set1_ps(0.13f), r13 = _mm512_set1_ps(0.14f), r14 = _mm512_set1_ps(0.15f), r15 = _mm512_set1_ps(0.16f);
  for (long it = 0; it < iterations; ++it) {
    SPLASH_FMA4(_mm512_fmadd_ps, r0, r1, r2, r3);
    SPLASH_FMA4(_mm512_fmadd_ps, r4, r5, r6, r7);
    SPLASH_FMA4(_mm512_fmadd_ps, r8, r9, r10, r11);
    SPLASH_FMA4(_mm512_fmadd_ps, r12, r13, r14, r15);
  }
  const __m512 s = _mm512_add_ps(
      _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(r0, r1), _mm512_add_ps(r2, r3)),
                    _mm512_add_ps(_mm512_add_ps(r4, r5), _mm512_add_ps(r6, r7))),
      _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(r8, r9), _mm512_add_ps(r10, r11)),
                    _mm512_add_ps(_mm512_add_ps(r12, r13), _mm512_add_ps(r14, r15))));
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);
  float total = 0.f;
  for (float x : lanes) total += x;
  g_sink = g_sink + total;
}
#endif

#if defined(__AVX2__) && defined(__FMA__)
void kernel_avx2(long iterations) {
  const __m256 a = _mm256_set1_ps(kMul);
  const __m256 b = _mm256_set1_ps(kAdd);
  __m256 r0 = _mm256_set1_ps(0.01f), r1 = _mm256_set1_ps(0.02f), r2 = _mm256_set1_ps(0.03f), r3 = _mm256_set1_ps(0.04f);
  __m256 r4 = _mm256_set1_ps(0.05f), r5 = _mm256_set1_ps(0.06f), r6 = _mm256_set1_ps(0.07f), r7 = _mm256_set1_ps(0.08f);
  __m256 r8 = _mm256_set1_ps(0.09f), r9 = _mm256_set1_ps(0.10f), r10 = _mm256_set1_ps(0.11f), r11 = _mm256_set1_ps(0.12f);
  for (long it = 0; it < iterations; ++it) {
    SPLASH_FMA4(_mm256_fmadd_ps, r0, r1, r2, r3);
    SPLASH_FMA4(_mm256_fmadd_ps, r4, r5, r6, r7);
    SPLASH_FMA4(_mm256_fmadd_ps, r8, r9, r10, r11);
  }
  const __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(r0, r1), _mm256_add_ps(r2, r3)),
                                 _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(r4, r5), _mm256_add_ps(r6, r7)),
                                               _mm256_add_ps(_mm256_add_ps(r8, r9), _mm256_add_ps(r10, r11))));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  float total = 0.f;
  for (float x : lanes) total += x;
  g_sink = g_sink + total;
}
#endif

#if defined(__aarch64__) && defined(__ARM_NEON)
// vfmaq_f32(x, a, b) = x + a·b: each chain grows by 1e-7 a step, far from overflow for any trial length.
void kernel_neon(long iterations) {
  const float32x4_t a = vdupq_n_f32(kMul);
  const float32x4_t b = vdupq_n_f32(kAdd);
  float32x4_t r0 = vdupq_n_f32(0.01f), r1 = vdupq_n_f32(0.02f), r2 = vdupq_n_f32(0.03f), r3 = vdupq_n_f32(0.04f);
  float32x4_t r4 = vdupq_n_f32(0.05f), r5 = vdupq_n_f32(0.06f), r6 = vdupq_n_f32(0.07f), r7 = vdupq_n_f32(0.08f);
  float32x4_t r8 = vdupq_n_f32(0.09f), r9 = vdupq_n_f32(0.10f), r10 = vdupq_n_f32(0.11f), r11 = vdupq_n_f32(0.12f);
  float32x4_t r12 = vdupq_n_f32(0.13f), r13 = vdupq_n_f32(0.14f), r14 = vdupq_n_f32(0.15f), r15 = vdupq_n_f32(0.16f);
  float32x4_t r16 = vdupq_n_f32(0.17f), r17 = vdupq_n_f32(0.18f), r18 = vdupq_n_f32(0.19f), r19 = vdupq_n_f32(0.20f);
  float32x4_t r20 = vdupq_n_f32(0.21f), r21 = vdupq_n_f32(0.22f), r22 = vdupq_n_f32(0.23f), r23 = vdupq_n_f32(0.24f);
  for (long it = 0; it < iterations; ++it) {
    SPLASH_FMA4(vfmaq_f32, r0, r1, r2, r3);
    SPLASH_FMA4(vfmaq_f32, r4, r5, r6, r7);
    SPLASH_FMA4(vfmaq_f32, r8, r9, r10, r11);
    SPLASH_FMA4(vfmaq_f32, r12, r13, r14, r15);
    SPLASH_FMA4(vfmaq_f32, r16, r17, r18, r19);
    SPLASH_FMA4(vfmaq_f32, r20, r21, r22, r23);
  }
  const float32x4_t s0 = vaddq_f32(vaddq_f32(vaddq_f32(r0, r1), vaddq_f32(r2, r3)), vaddq_f32(vaddq_f32(r4, r5), vaddq_f32(r6, r7)));
  const float32x4_t s1 = vaddq_f32(vaddq_f32(vaddq_f32(r8, r9), vaddq_f32(r10, r11)), vaddq_f32(vaddq_f32(r12, r13), vaddq_f32(r14, r15)));
  const float32x4_t s2 = vaddq_f32(vaddq_f32(vaddq_f32(r16, r17), vaddq_f32(r18, r19)), vaddq_f32(vaddq_f32(r20, r21), vaddq_f32(r22, r23)));
  g_sink = g_sink + vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), s2));
}
#endif

// Scalar fallback for machines without AVX2/FMA: std::fma compiles to a scalar FMA where one exists.
void kernel_scalar(long iterations) {
  const float a = kMul, b = kAdd;
  float r0 = 0.01f, r1 = 0.02f, r2 = 0.03f, r3 = 0.04f, r4 = 0.05f, r5 = 0.06f, r6 = 0.07f, r7 = 0.08f;
  auto fma = [](float x, float m, float c) { return std::fma(x, m, c); };
  for (long it = 0; it < iterations; ++it) {
    SPLASH_FMA4(fma, r0, r1, r2, r3);
    SPLASH_FMA4(fma, r4, r5, r6, r7);
  }
  g_sink = g_sink + (r0 + r1 + r2 + r3 + r4 + r5 + r6 + r7);
}

std::vector<Variant> variants() {
  std::vector<Variant> v;
#if defined(__AVX512F__)
  v.push_back({"avx512", 16, 16, kernel_avx512});
#endif
#if defined(__AVX2__) && defined(__FMA__)
  v.push_back({"avx2", 8, 12, kernel_avx2});
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
  v.push_back({"neon", 4, 24, kernel_neon});
#endif
  if (v.empty()) v.push_back({"scalar", 1, 8, kernel_scalar});
  return v;
}

int affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Runs `iterations` of the kernel on `threads` threads released together; returns the wall time.
double timed_run(const Variant& v, int threads, long iterations) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) {
      }
      v.kernel(iterations);
    });
  }
  while (ready.load() < threads) {
  }
  const double start = now_seconds();
  go.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();
  return now_seconds() - start;
}

struct Result {
  std::string isa;
  double best_gflops = 0, median_gflops = 0;
};

Result measure(const Variant& v, int threads, double seconds, int trials) {
  // Calibrate on one thread so each trial lasts about `seconds`.
  long iterations = 1 << 16;
  double t = timed_run(v, 1, iterations);
  while (t < 0.02) {
    iterations *= 4;
    t = timed_run(v, 1, iterations);
  }
  iterations = std::max(1L, static_cast<long>(static_cast<double>(iterations) * seconds / t));
  const double flops_per_thread = 2.0 * v.lanes * v.accumulators * static_cast<double>(iterations);
  timed_run(v, threads, iterations / 4 + 1);  // warm-up: lets every core reach its clock
  std::vector<double> gflops;
  for (int i = 0; i < trials; ++i) {
    gflops.push_back(flops_per_thread * threads / timed_run(v, threads, iterations) / 1e9);
  }
  std::sort(gflops.begin(), gflops.end());
  return {v.isa, gflops.back(), gflops[gflops.size() / 2]};
}

}  // namespace

int main(int argc, char** argv) {
  int threads = affinity_cpus();
  double seconds = 0.2;
  int trials = 3;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (!std::strcmp(argv[i], "--threads") && has_value) {
      threads = std::max(1, std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--seconds") && has_value) {
      seconds = std::max(0.01, std::atof(argv[++i]));
    } else if (!std::strcmp(argv[i], "--trials") && has_value) {
      trials = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: %s [--threads N] [--seconds S] [--trials T]\n", argv[0]);
      return 2;
    }
  }

  const std::vector<Variant> all = variants();
  std::vector<Result> results;
  for (const Variant& v : all) results.push_back(measure(v, threads, seconds, trials));
  const auto best = std::max_element(results.begin(), results.end(),
                                     [](const Result& a, const Result& b) { return a.best_gflops < b.best_gflops; });
  const Variant* best_variant = nullptr;
  for (const Variant& v : all) {
    if (best->isa == v.isa) best_variant = &v;
  }
  const Result single = measure(*best_variant, 1, seconds, trials);

  std::printf("{\"threads\":%d,\"seconds\":%g,\"trials\":%d,\"isa\":\"%s\",\"gflops\":%.2f,"
              "\"medianGflops\":%.2f,\"singleThreadGflops\":%.2f,\"variants\":[",
              threads, seconds, trials, best->isa.c_str(), best->best_gflops, best->median_gflops,
              single.best_gflops);
  for (size_t i = 0; i < results.size(); ++i) {
    std::printf("%s{\"isa\":\"%s\",\"gflops\":%.2f,\"medianGflops\":%.2f}", i ? "," : "", results[i].isa.c_str(),
                results[i].best_gflops, results[i].median_gflops);
  }
  std::printf("]}\n");
  return 0;
}
