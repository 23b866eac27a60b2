// Chooses the tile-operation table for this CPU (see tile_ops.h).
#include "splash/cpu_features.h"
#include "splash/cpu_kernels.h"
#include "tile_ops.h"

namespace splash {
namespace cpu {

#if defined(__aarch64__)

namespace {

const CpuFeatures& arm_features() {
  static const CpuFeatures f = detect_cpu_features();
  return f;
}

}  // namespace

// AArch64 has two levels: portable C++ (0) and NEON (1 and up), plus the BFDOT products on NEON.
const TileOps& tile_ops(int max_isa, bool bf16_dots) {
  if (max_isa >= 1 && arm_features().neon) {
    if (bf16_dots && arm_features().arm_bf16) {
      if (const TileOps* t = neon_bf16_tile_ops()) return *t;
    }
    if (const TileOps* t = neon_tile_ops()) return *t;
  }
  return *generic_tile_ops();
}

#else  // x86 and the rest

namespace {

enum class Level { Generic = 0, Avx2 = 1, Avx512 = 2 };

Level cpu_level() {
  static const Level level = [] {
    const CpuFeatures f = detect_cpu_features();
    if (f.avx512f && f.avx512bw && f.avx512vl && f.avx2 && f.fma && f.f16c) return Level::Avx512;
    if (f.avx2 && f.fma && f.f16c) return Level::Avx2;
    return Level::Generic;
  }();
  return level;
}

bool cpu_has_bf16_dot() {
  static const bool has = detect_cpu_features().avx512bf16;
  return has;
}

}  // namespace

const TileOps& tile_ops(int max_isa, bool bf16_dots) {
  // A requested level can only lower the CPU's: a higher one would fault.
  const Level wanted = max_isa <= 0 ? Level::Generic : max_isa == 1 ? Level::Avx2 : Level::Avx512;
  const Level level = cpu_level() < wanted ? cpu_level() : wanted;
  if (level == Level::Avx512) {
    if (bf16_dots && cpu_has_bf16_dot()) {
      if (const TileOps* t = avx512_bf16_tile_ops()) return *t;
    }
    if (const TileOps* t = avx512_tile_ops()) return *t;
  }
  if (level >= Level::Avx2) {
    if (const TileOps* t = avx2_tile_ops()) return *t;
  }
  return *generic_tile_ops();
}

#endif

const char* kernel_isa(const RunOptions& options) { return tile_ops(options.max_isa, options.bf16_dots != 0).name; }

}  // namespace cpu
}  // namespace splash
