// The tile operations on AArch64 Advanced SIMD (NEON): 4-lane f32 FMA. NEON is part of the AArch64
// baseline, so this file needs no target pragma; tile_ops() still hands its table out only when the
// CPU reports Advanced SIMD. Compiles to a null table on every other architecture.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "tile_ops.h"

#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))

#include "simd_neon.h"
#include "tile_kernels.h"

namespace splash {
namespace cpu {

const TileOps* neon_tile_ops() {
  static const TileOps ops = make_tile_ops<Neon>("neon");
  return &ops;
}

}  // namespace cpu
}  // namespace splash

#else  // not AArch64 with a GCC-compatible compiler

namespace splash {
namespace cpu {
const TileOps* neon_tile_ops() { return nullptr; }
}  // namespace cpu
}  // namespace splash

#endif
