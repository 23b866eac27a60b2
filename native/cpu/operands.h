// Tiles of the tensors in the forms the tile operations read: f32 row-major tiles (in place whenever
// the tensor already is one), transposed tiles, bf16 pair tiles for the dot-product path, and the
// way back from f32 accumulators into the output tensors' dtype and strides.
//
// A tensor is addressed as [batch, head, seq, dim] through its TensorRef strides, so head-dim-minor,
// seq-minor and broadcast (MQA) layouts all go through the same code.
#pragma once

#include <cstdint>

#include "splash/params.h"
#include "tile_ops.h"

namespace splash {
namespace cpu {

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Rows [row0, row0 + rows) x columns [0, cols) of slab (b, h) as the A operand of a gemm (read one
// element at a time): A(i, p) = ptr[i * ld + p], or ptr[p * ld + i] when transposed.
struct AOperand {
  const float* ptr;
  int64_t ld;
  bool transposed;
};

// In place for f32 tensors with a unit stride on either axis; otherwise converted into scratch
// (rows x cols floats, row-major).
AOperand a_operand(const TensorRef& t, const TileOps& ops, int64_t b, int64_t h, int64_t row0, int64_t rows,
                   int64_t cols, float* scratch);

// The same tile as a B operand (row-major, vector loads along columns; also usable as a row-major A
// operand): in place for f32 tensors with unit column stride and cols a multiple of the vector width;
// otherwise in scratch (rows x round_up(cols, vec) floats) with zero pad columns. Sets *ld.
const float* b_operand(const TensorRef& t, const TileOps& ops, int64_t b, int64_t h, int64_t row0, int64_t rows,
                       int64_t cols, float* scratch, int64_t* ld);

// dst[c * dst_ld + g * rows + r] = tile of head h + g [r][c] for g < heads, r < rows, c < cols: the tiles of
// `heads` consecutive heads side by side (grouped-query heads packed into one task); entries from
// heads * rows to dst_ld are zero.
void pack_transposed(const TensorRef& t, const TileOps& ops, int64_t b, int64_t h, int64_t heads, int64_t row0,
                     int64_t rows, int64_t cols, float* dst, int64_t dst_ld);

// Writes src rows (f32, src_ld) into the tensor rows [row0, row0 + rows), converted to its dtype.
void store_rows(const TensorRef& t, const TileOps& ops, int64_t b, int64_t h, int64_t row0, int64_t rows,
                int64_t cols, const float* src, int64_t src_ld);

// Reads one f32 value per row from a [batch, head, seq] tensor (the logsumexp).
void load_row_values(const TensorRef& t, int64_t b, int64_t h, int64_t row0, int64_t rows, float* dst);
void store_row_values(const TensorRef& t, int64_t b, int64_t h, int64_t row0, int64_t rows, const float* src);

// Asks the cache hierarchy for the rows of a tile that will be read soon (a hint; reads nothing).
void prefetch_rows(const TensorRef& t, int64_t b, int64_t h, int64_t row0, int64_t rows, int64_t cols);

// ---- bf16 pairs (tensor dtype BF16 only) -------------------------------------------------------

// Words of 2 consecutive columns per row: word p of row r = (tile[r][2p], tile[r][2p+1]) (0 past the
// last column). In place when the rows already are such words; otherwise packed into scratch
// (rows x ceil(cols/2) words). Sets *ld (in words).
const uint32_t* pair_columns(const TensorRef& t, int64_t b, int64_t h, int64_t row0, int64_t rows, int64_t cols,
                             uint32_t* scratch, int64_t* ld);

// Transposed words: dst[p * dst_ld + g * rows + r] = (tile[r][2p], tile[r][2p+1]) of head h + g, for
// `heads` heads side by side as pack_transposed; entries from heads * rows to dst_ld are zero.
void pack_pairs_transposed(const TensorRef& t, int64_t b, int64_t h, int64_t heads, int64_t row0, int64_t rows,
                           int64_t cols, uint32_t* dst, int64_t dst_ld);

// Words of 2 consecutive rows: dst[p * dst_ld + c] = (tile[2p][c], tile[2p+1][c]) (0 past the last
// row), columns [cols, dst_ld) zero. `ops` must have pack_pairs_bf16.
void pack_pairs_rows(const TensorRef& t, const TileOps& ops, int64_t b, int64_t h, int64_t row0, int64_t rows,
                     int64_t cols, uint32_t* dst, int64_t dst_ld);

}  // namespace cpu
}  // namespace splash
