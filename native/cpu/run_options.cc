// RunOptions from the environment (see splash/cpu_kernels.h).
#include <cstdlib>
#include <cstring>

#include "splash/cpu_kernels.h"

namespace splash {
namespace cpu {

namespace {

bool is(const char* value, const char* expected) { return value != nullptr && std::strcmp(value, expected) == 0; }

}  // namespace

RunOptions options_from_environment() {
  RunOptions o{};
  if (const char* env = std::getenv("SPLASH_NUM_THREADS")) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n > 0) o.threads = static_cast<int32_t>(n < 1024 ? n : 1024);
  }
  // Each architecture knows its own names; any other value means the best this CPU has.
  const char* isa = std::getenv("SPLASH_CPU_ISA");
#if defined(__aarch64__)
  o.max_isa = is(isa, "generic") ? 0 : is(isa, "neon") ? 1 : 2;
#else
  o.max_isa = is(isa, "generic") ? 0 : is(isa, "avx2") ? 1 : 2;
#endif
  o.bf16_dots = is(std::getenv("SPLASH_CPU_BF16"), "0") ? 0 : 1;
  o.segment_skip = is(std::getenv("SPLASH_SEGMENT_SKIP"), "0") ? 0 : 1;
  o.trim_tiles = is(std::getenv("SPLASH_TRIM_TILES"), "0") ? 0 : 1;
  o.pack_heads = is(std::getenv("SPLASH_PACK_HEADS"), "0") ? 0 : 1;
  return o;
}

void forward(const AttentionParams& p) { forward_with(p, options_from_environment()); }

void backward(const AttentionParams& p) { backward_with(p, options_from_environment()); }

}  // namespace cpu
}  // namespace splash
