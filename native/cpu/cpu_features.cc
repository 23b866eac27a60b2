// Run-time CPU feature detection. x86: cpuid and xgetbv; a feature counts only when the CPU has it and
// the OS has enabled the register state it needs (XCR0), otherwise using it would fault. AArch64: the
// features the kernel reports (Linux: the auxiliary vector; macOS: sysctl), which it only reports
// when user code may use them.
#include "splash/cpu_features.h"

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define SPLASH_X86 1
#endif

#if defined(__aarch64__)
#define SPLASH_ARM64 1
#if defined(__linux__)
#include <sys/auxv.h>
// Bit numbers of the Linux arm64 ABI, for C libraries whose headers predate them.
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1UL << 1)
#endif
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1UL << 14)
#endif
#elif defined(__APPLE__)
#include <sys/sysctl.h>
#endif
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
#ifdef SPLASH_ARM64
#if defined(__linux__)
  f.neon = (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0;
  f.arm_bf16 = f.neon && (getauxval(AT_HWCAP2) & HWCAP2_BF16) != 0;
#elif defined(__APPLE__)
  f.neon = true;  // every Apple arm64 CPU
  int bf16 = 0;
  size_t size = sizeof bf16;
  f.arm_bf16 = sysctlbyname("hw.optional.arm.FEAT_BF16", &bf16, &size, nullptr, 0) == 0 && bf16 != 0;
#else
  f.neon = true;  // part of the AArch64 baseline every general-purpose OS enables; bf16 unknown here
#endif
#endif
  return f;
}

}  // namespace splash
