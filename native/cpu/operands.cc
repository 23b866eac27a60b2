// Tile loading, packing and storing (see operands.h).
#include "operands.h"

#include <cstring>
#include <vector>

#include "half.h"

namespace splash {
namespace cpu {

namespace {

int64_t element_size(DType d) { return d == DType::F32 ? 4 : 2; }

int64_t slab_offset(const TensorRef& t, int64_t b, int64_t h, int64_t row) {
  return b * t.batch_stride + h * t.head_stride + row * t.seq_stride;
}

const char* element_ptr(const TensorRef& t, int64_t offset) {
  return static_cast<const char*>(t.ptr) + offset * element_size(t.dtype);
}

char* element_ptr_mut(const TensorRef& t, int64_t offset) {
  return static_cast<char*>(t.ptr) + offset * element_size(t.dtype);
}

float load_element(const TensorRef& t, int64_t offset) {
  switch (t.dtype) {
    case DType::F32: return reinterpret_cast<const float*>(t.ptr)[offset];
    case DType::BF16: return bits_float(static_cast<uint32_t>(reinterpret_cast<const uint16_t*>(t.ptr)[offset]) << 16);
    case DType::F16: return f16_bits_to_f32(reinterpret_cast<const uint16_t*>(t.ptr)[offset]);
  }
  return 0.0f;
}

uint16_t load_bits(const TensorRef& t, int64_t offset) { return reinterpret_cast<const uint16_t*>(t.ptr)[offset]; }

void store_element(const TensorRef& t, int64_t offset, float x) {
  switch (t.dtype) {
    case DType::F32: reinterpret_cast<float*>(t.ptr)[offset] = x; break;
    case DType::BF16: reinterpret_cast<uint16_t*>(t.ptr)[offset] = f32_to_bf16_bits(x); break;
    case DType::F16: reinterpret_cast<uint16_t*>(t.ptr)[offset] = f32_to_f16_bits(x); break;
  }
}

// One row of `cols` values starting at element `offset`, as f32.
void gather_row(const TensorRef& t, const TileOps& ops, int64_t offset, int64_t cols, float* dst) {
  if (t.dim_stride == 1) {
    ops.to_f32(element_ptr(t, offset), t.dtype, cols, dst);
    return;
  }
  for (int64_t c = 0; c < cols; ++c) dst[c] = load_element(t, offset + c * t.dim_stride);
}

}  // namespace

AOperand a_operand(const TensorRef& t, const TileOps& ops, int64_t b, int64_t h, int64_t row0, int64_t rows,
                   int64_t cols, float* scratch) {
  const int64_t offset = slab_offset(t, b, h, row0);
  if (t.dtype == DType::F32) {
    const float* base = reinterpret_cast<const float*>(element_ptr(t, offset));
    if (t.dim_stride == 1) return AOperand{base, t.seq_stride, false};
    if (t.seq_stride == 1) return AOperand{base, t.dim_stride, true};
  }
  for (int64_t r = 0; r < rows; ++r) gather_row(t, ops, offset + r * t.seq_stride, cols, scratch + r * cols);
  return AOperand{scratch, cols, false};
}

const float* b_operand(const TensorRef& t, const TileOps& ops, int64_t b, int64_t h, int64_t row0, int64_t rows,
                       int64_t cols, float* scratch, int64_t* ld) {
  const int64_t offset = slab_offset(t, b, h, row0);
  if (t.dtype == DType::F32 && t.dim_stride == 1 && cols % ops.vec == 0) {
    *ld = t.seq_stride;
    return reinterpret_cast<const float*>(element_ptr(t, offset));
  }
  const int64_t padded = round_up(cols, ops.vec);
  for (int64_t r = 0; r < rows; ++r) {
    float* row = scratch + r * padded;
    gather_row(t, ops, offset + r * t.seq_stride, cols, row);
    for (int64_t c = cols; c < padded; ++c) row[c] = 0.0f;
  }
  *ld = padded;
  return scratch;
}

void pack_transposed(const TensorRef& t, const TileOps& ops, int64_t b, int64_t h, int64_t heads, int64_t row0,
                     int64_t rows, int64_t cols, float* dst, int64_t dst_ld) {
  for (int64_t g = 0; g < heads; ++g) {
    const int64_t offset = slab_offset(t, b, h + g, row0);
    float* head_dst = dst + g * rows;
    if (t.dtype == DType::F32 && t.seq_stride == 1) {
      // Seq-minor: each column of the tile is already contiguous.
      for (int64_t c = 0; c < cols; ++c) {
        std::memcpy(head_dst + c * dst_ld, element_ptr(t, offset + c * t.dim_stride), static_cast<size_t>(rows) * 4);
      }
      continue;
    }
    // Blocks of rows are converted first, then written out column by column in runs of kRun.
    constexpr int64_t kRun = 16;
    thread_local std::vector<float> rows_f32;
    rows_f32.resize(static_cast<size_t>(kRun * cols));
    for (int64_t r0 = 0; r0 < rows; r0 += kRun) {
      const int64_t n = rows - r0 < kRun ? rows - r0 : kRun;
      for (int64_t i = 0; i < n; ++i) gather_row(t, ops, offset + (r0 + i) * t.seq_stride, cols, &rows_f32[i * cols]);
      for (int64_t c = 0; c < cols; ++c) {
        float* out = head_dst + c * dst_ld + r0;
        for (int64_t i = 0; i < n; ++i) out[i] = rows_f32[i * cols + c];
      }
    }
  }
  for (int64_t c = 0; c < cols; ++c) {
    for (int64_t r = heads * rows; r < dst_ld; ++r) dst[c * dst_ld + r] = 0.0f;
  }
}

void store_rows(const TensorRef& t, const TileOps& ops, int64_t b, int64_t h, int64_t row0, int64_t rows,
                int64_t cols, const float* src, int64_t src_ld) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t offset = slab_offset(t, b, h, row0 + r);
    const float* row = src + r * src_ld;
    if (t.dim_stride == 1) {
      ops.from_f32(row, cols, t.dtype, element_ptr_mut(t, offset));
    } else {
      for (int64_t c = 0; c < cols; ++c) store_element(t, offset + c * t.dim_stride, row[c]);
    }
  }
}

void load_row_values(const TensorRef& t, int64_t b, int64_t h, int64_t row0, int64_t rows, float* dst) {
  for (int64_t r = 0; r < rows; ++r) dst[r] = load_element(t, slab_offset(t, b, h, row0 + r));
}

void store_row_values(const TensorRef& t, int64_t b, int64_t h, int64_t row0, int64_t rows, const float* src) {
  for (int64_t r = 0; r < rows; ++r) store_element(t, slab_offset(t, b, h, row0 + r), src[r]);
}

void prefetch_rows(const TensorRef& t, int64_t b, int64_t h, int64_t row0, int64_t rows, int64_t cols) {
  if (t.dim_stride != 1) return;
  const int64_t bytes = cols * element_size(t.dtype);
  const int64_t stride = t.seq_stride * element_size(t.dtype);
  const char* row = element_ptr(t, slab_offset(t, b, h, row0));
  for (int64_t r = 0; r < rows; ++r, row += stride) {
    for (int64_t x = 0; x < bytes; x += 64) __builtin_prefetch(row + x, 0, 2);
  }
}

const uint32_t* pair_columns(const TensorRef& t, int64_t b, int64_t h, int64_t row0, int64_t rows, int64_t cols,
                             uint32_t* scratch, int64_t* ld) {
  const int64_t offset = slab_offset(t, b, h, row0);
  const char* base = element_ptr(t, offset);
  const bool word_rows = t.dim_stride == 1 && cols % 2 == 0 && t.seq_stride % 2 == 0 &&
                         reinterpret_cast<uintptr_t>(base) % 4 == 0;
  if (word_rows) {
    *ld = t.seq_stride / 2;
    return reinterpret_cast<const uint32_t*>(base);
  }
  const int64_t words = (cols + 1) / 2;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t row = offset + r * t.seq_stride;
    for (int64_t p = 0; p < words; ++p) {
      const uint32_t lo = load_bits(t, row + 2 * p * t.dim_stride);
      const uint32_t hi = 2 * p + 1 < cols ? load_bits(t, row + (2 * p + 1) * t.dim_stride) : 0u;
      scratch[r * words + p] = lo | (hi << 16);
    }
  }
  *ld = words;
  return scratch;
}

void pack_pairs_transposed(const TensorRef& t, int64_t b, int64_t h, int64_t heads, int64_t row0, int64_t rows,
                           int64_t cols, uint32_t* dst, int64_t dst_ld) {
  const int64_t words = (cols + 1) / 2;
  for (int64_t g = 0; g < heads; ++g) {
    const int64_t offset = slab_offset(t, b, h + g, row0);
    uint32_t* head_dst = dst + g * rows;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t row = offset + r * t.seq_stride;
      for (int64_t p = 0; p < words; ++p) {
        const uint32_t lo = load_bits(t, row + 2 * p * t.dim_stride);
        const uint32_t hi = 2 * p + 1 < cols ? load_bits(t, row + (2 * p + 1) * t.dim_stride) : 0u;
        head_dst[p * dst_ld + r] = lo | (hi << 16);
      }
    }
  }
  for (int64_t p = 0; p < words; ++p) {
    for (int64_t r = heads * rows; r < dst_ld; ++r) dst[p * dst_ld + r] = 0u;
  }
}

void pack_pairs_rows(const TensorRef& t, const TileOps& ops, int64_t b, int64_t h, int64_t row0, int64_t rows,
                     int64_t cols, uint32_t* dst, int64_t dst_ld) {
  const int64_t offset = slab_offset(t, b, h, row0);
  if (t.dim_stride == 1) {
    ops.pack_pairs_bf16(reinterpret_cast<const uint16_t*>(element_ptr(t, offset)), t.seq_stride, rows, cols, dst,
                        dst_ld);
    return;
  }
  for (int64_t r = 0; r < rows; r += 2) {
    uint32_t* out = dst + (r / 2) * dst_ld;
    for (int64_t c = 0; c < cols; ++c) {
      const uint32_t lo = load_bits(t, offset + r * t.seq_stride + c * t.dim_stride);
      const uint32_t hi = r + 1 < rows ? load_bits(t, offset + (r + 1) * t.seq_stride + c * t.dim_stride) : 0u;
      out[c] = lo | (hi << 16);
    }
    for (int64_t c = cols; c < dst_ld; ++c) out[c] = 0u;
  }
}

}  // namespace cpu
}  // namespace splash
