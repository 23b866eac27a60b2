// Output memory the kernels are about to write for the first time. A fresh result buffer is untouched
// memory: every 4 KiB page of it faults on its first write, which on our CI machines (a hypervisor)
// costs 12 us, 48 ms for a 16 MiB output; with transparent huge pages over the buffer's interior the
// same first writes took 0.13-0.22 us per 4 KiB. Only large outputs get the advice: glibc serves
// those from fresh mappings on every call, while smaller ones come back from its reused heap, where
// the advice bought nothing measurable.
#pragma once

#include "splash/params.h"

namespace splash {
namespace cpu {

// Advises huge pages for the 2 MiB-aligned interior of the elements of t the kernels write (its
// [batch, heads, seq, dim] extent). Only a hint: a no-op off Linux, below kMinHugeOutputBytes, or where
// the kernel declines; results never depend on it.
constexpr int64_t kMinHugeOutputBytes = int64_t{16} << 20;
void advise_huge_pages(const TensorRef& t, int64_t batch, int64_t heads, int64_t seq, int64_t dim);

}  // namespace cpu
}  // namespace splash
