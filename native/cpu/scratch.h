// Per-thread scratch memory for kernel tasks: one growing, 64-byte aligned buffer per OS thread,
// reused by every task the thread runs, carved into tiles with ScratchCarver.
#pragma once

#include <cstddef>
#include <cstdint>

namespace splash {
namespace cpu {

// At least `bytes` of 64-byte aligned memory owned by the calling thread; valid until its next call.
// Throws std::bad_alloc when the memory cannot be had.
void* thread_scratch(size_t bytes);

// Hands out consecutive 64-byte aligned pieces of one region. Measure first with a carver over a
// null base (it only adds up sizes), then carve the real region in the same order.
class ScratchCarver {
 public:
  explicit ScratchCarver(void* base = nullptr) : base_(static_cast<char*>(base)) {}

  template <class T>
  T* take(int64_t count) {
    T* p = reinterpret_cast<T*>(base_ == nullptr ? nullptr : base_ + used_);
    used_ += (static_cast<size_t>(count) * sizeof(T) + 63) & ~static_cast<size_t>(63);
    return p;
  }

  size_t used() const { return used_; }

 private:
  char* base_;
  size_t used_ = 0;
};

}  // namespace cpu
}  // namespace splash
