// The portable tile operations: plain C++ the compiler vectorises for whatever the build targets.
// Used on CPUs without AVX2 + FMA and on non-x86 machines.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "simd_scalar.h"
#include "tile_kernels.h"
#include "tile_ops.h"

namespace splash {
namespace cpu {

const TileOps* generic_tile_ops() {
  static const TileOps ops = make_tile_ops<Scalar>("generic");
  return &ops;
}

}  // namespace cpu
}  // namespace splash
