// See output_pages.h.
#include "output_pages.h"

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace splash {
namespace cpu {

void advise_huge_pages(const TensorRef& t, int64_t batch, int64_t heads, int64_t seq, int64_t dim) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (t.ptr == nullptr || batch <= 0 || heads <= 0 || seq <= 0 || dim <= 0) return;
  const int64_t elements = (batch - 1) * t.batch_stride + (heads - 1) * t.head_stride + (seq - 1) * t.seq_stride +
                           (dim - 1) * t.dim_stride + 1;
  const int64_t bytes = elements * (t.dtype == DType::F32 ? 4 : 2);
  if (bytes < kMinHugeOutputBytes) return;
  constexpr uintptr_t kHuge = uintptr_t{1} << 21;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t.ptr);
  const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t last = (begin + static_cast<uintptr_t>(bytes)) & ~(kHuge - 1);
  if (last <= first) return;
  // The range lies inside the buffer; a failure (no THP, a mapping that refuses it) changes nothing.
  (void)madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#else
  (void)t;
  (void)batch;
  (void)heads;
  (void)seq;
  (void)dim;
#endif
}

}  // namespace cpu
}  // namespace splash
