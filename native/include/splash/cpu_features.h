// What the CPU we run on can execute, detected at run time (the binary itself targets baseline x86-64
// or baseline AArch64, so prebuilt addons run on older CPUs and pick faster kernels where the hardware
// allows).
#pragma once

namespace splash {

struct CpuFeatures {
  bool sse42;
  bool avx;
  bool avx2;
  bool fma;
  bool f16c;
  bool avx512f;
  bool avx512bw;
  bool avx512vl;
  bool avx512vnni;
  bool avx512bf16;
  bool avx512fp16;
  bool amx_bf16;   // AMX tiles usable (CPU support and OS-enabled tile state)
  bool neon;       // AArch64 Advanced SIMD
  bool arm_bf16;   // AArch64 FEAT_BF16 (BFDOT, BFMMLA)
};

// Instruction sets usable by this process: the CPU reports them AND the OS saves their registers
// (x86), or the kernel reports them in the auxiliary vector (AArch64). The other architecture's
// fields are false.
CpuFeatures detect_cpu_features();

}  // namespace splash
