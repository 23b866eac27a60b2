// Per-thread scratch buffers (see scratch.h).
#include "scratch.h"

#include <cstdlib>
#include <new>

namespace splash {
namespace cpu {

namespace {

struct ThreadBuffer {
  void* data = nullptr;
  size_t size = 0;
  ~ThreadBuffer() { std::free(data); }
};

thread_local ThreadBuffer tls_buffer;

}  // namespace

void* thread_scratch(size_t bytes) {
  ThreadBuffer& buf = tls_buffer;
  if (bytes > buf.size) {
    // Grow geometrically so a thread settles on one allocation after its first few tasks.
    size_t size = buf.size * 2 > bytes ? buf.size * 2 : bytes;
    size = (size + 63) & ~static_cast<size_t>(63);
    void* fresh = std::aligned_alloc(64, size);
    if (fresh == nullptr) throw std::bad_alloc();
    std::free(buf.data);
    buf.data = fresh;
    buf.size = size;
  }
  return buf.data;
}

}  // namespace cpu
}  // namespace splash
