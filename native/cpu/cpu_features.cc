// Run-time CPU feature detection with cpuid and xgetbv. A feature counts only when the CPU has it and
// the OS has enabled the register state it needs (XCR0), otherwise using it would fault.
#include "splash/cpu_features.h"

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define SPLASH_X86 1
#endif

namespace splash {

#ifdef SPLASH_X86
namespace {

bool bit(unsigned reg, int n) { return ((reg >> n) & 1u) != 0; }

// XCR0: which register files the OS saves on context switch. Only valid when cpuid reports OSXSAVE.
uint64_t read_xcr0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

}  // namespace
#endif

CpuFeatures detect_cpu_features() {
  CpuFeatures f{};
#ifdef SPLASH_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  f.sse42 = bit(c, 20);
  const bool osxsave = bit(c, 27);
  const uint64_t xcr0 = osxsave ? read_xcr0() : 0;
  const bool ymm_state = (xcr0 & 0x6) == 0x6;     // SSE + AVX state
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;   // plus opmask, ZMM_Hi256, Hi16_ZMM
  const bool tile_state = (xcr0 & 0x60000) == 0x60000;  // XTILECFG + XTILEDATA
  f.avx = bit(c, 28) && ymm_state;
  f.fma = bit(c, 12) && ymm_state;
  f.f16c = bit(c, 29) && ymm_state;

  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    const unsigned max_subleaf = a;
    f.avx2 = bit(b, 5) && ymm_state;
    f.avx512f = bit(b, 16) && zmm_state;
    f.avx512bw = bit(b, 30) && zmm_state;
    f.avx512vl = bit(b, 31) && zmm_state;
    f.avx512vnni = bit(c, 11) && zmm_state;
    f.avx512fp16 = bit(d, 23) && zmm_state;
    // Linux also requires a per-process arch_prctl opt-in before the first AMX instruction; the
    // kernels that use AMX must request it. Here we only report that the hardware and OS support it.
    f.amx_bf16 = bit(d, 22) && bit(d, 24) && tile_state;
    if (max_subleaf >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) {
      f.avx512bf16 = bit(a, 5) && zmm_state;
    }
  }
#endif
  return f;
}

}  // namespace splash
