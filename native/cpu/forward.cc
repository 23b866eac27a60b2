// Forward pass: for each (batch, head, q-block) task, an online softmax over the kv-blocks of the
// q-block's schedule row, one compute sub-block (block_kv_compute keys) at a time.
//
// Scores are computed transposed, st = K·Qᵀ (kv rows x q columns): K is then read in place as the
// broadcast operand, Qᵀ is packed once per task, and the per-query softmax statistics become plain
// vector operations down the columns. The output accumulates acc += P·V with P read transposed in
// place. With bf16 inputs on a CPU with avx512_bf16 both products run on bf16 pairs (P rounded to
// bf16, as GPU flash attention does), everything else stays f32.
//
// When q-blocks are short (decoding: a few queries against a long cache), a task takes several query
// heads of one kv head side by side as its columns, so that each K and V tile is read once for all of
// them instead of once per head. Every column's arithmetic is unchanged, so results are too.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "mask_eval.h"
#include "operands.h"
#include "output_pages.h"
#include "scratch.h"
#include "segments.h"
#include "splash/cpu_kernels.h"
#include "thread_pool.h"
#include "tile_ops.h"
#include "tile_spans.h"
#include "work_split.h"

namespace splash {
namespace cpu {

namespace {

// The most query columns a task with several heads may have: the default block's.
constexpr int64_t kMaxPackedColumns = 128;

struct ForwardPlan {
  const AttentionParams& p;
  const TileOps& ops;
  const ScheduleView& sv;
  int64_t block_q, block_kv, block_kc;  // block_kc: compute sub-block of keys
  int64_t tile_q, tile_kc;              // the most rows a tile really has (blocks may exceed the sequence)
  int64_t group;                        // query heads per kv head
  int64_t heads_per_task;               // query heads of one kv head a task runs side by side
  int64_t nq_pad, dv_pad;
  int64_t d_words;                      // bf16 pairs per q / k row
  bool bf16_dots;
  bool trim;  // partial tiles leave out their sub-blocks without an allowed pair (tile_spans.h)
  SegmentSkip skip;
};

struct ForwardScratch {
  float* qt;           // Qᵀ [head_dim][nq_pad]
  uint32_t* qt_pairs;  // or its bf16 pairs [d_words][nq_pad]
  float* st;           // scores, then probabilities [tile_kc][nq_pad]
  uint8_t* mask;       // [tile_kc][nq_pad]
  float* k_tile;       // K converted when it cannot be read in place [tile_kc][head_dim]
  uint32_t* k_pairs;   // [tile_kc][d_words]
  float* v_tile;       // V [tile_kc][dv_pad]
  uint32_t* v_pairs;   // [tile_kc / 2][dv_pad]
  uint32_t* p_pairs;   // [tile_kc / 2][nq_pad]
  float* acc;          // [heads_per_task * tile_q][dv_pad]
  float *m, *l, *any, *alpha;  // [nq_pad] per query
  float* lse;          // [heads_per_task * tile_q]
  SpanRun* kv_runs;    // kv rows and the q columns their scores are needed for
  SpanRun* q_runs;     // q rows and the kv rows their values are summed over
};

ForwardScratch carve(const ForwardPlan& f, ScratchCarver& c) {
  const int64_t d = f.p.head_dim, kc = f.tile_kc, kc_pairs = (kc + 1) / 2;
  ForwardScratch s{};
  if (f.bf16_dots) {
    s.qt_pairs = c.take<uint32_t>(f.d_words * f.nq_pad);
    s.k_pairs = c.take<uint32_t>(kc * f.d_words);
    s.v_pairs = c.take<uint32_t>(kc_pairs * f.dv_pad);
    s.p_pairs = c.take<uint32_t>(kc_pairs * f.nq_pad);
  } else {
    s.qt = c.take<float>(d * f.nq_pad);
    s.k_tile = c.take<float>(kc * d);
    s.v_tile = c.take<float>(kc * f.dv_pad);
  }
  s.st = c.take<float>(kc * f.nq_pad);
  s.mask = c.take<uint8_t>(kc * f.nq_pad);
  s.acc = c.take<float>(f.heads_per_task * f.tile_q * f.dv_pad);
  s.m = c.take<float>(f.nq_pad);
  s.l = c.take<float>(f.nq_pad);
  s.any = c.take<float>(f.nq_pad);
  s.alpha = c.take<float>(f.nq_pad);
  s.lse = c.take<float>(f.heads_per_task * f.tile_q);
  s.kv_runs = c.take<SpanRun>(span_groups(kc));
  s.q_runs = c.take<SpanRun>(span_groups(f.nq_pad));
  return s;
}

// st[kv rows][q columns] = K[k0, k0 + nk) · Qᵀ over runs of kv rows and their q columns (one run
// {0, nk, 0, nq_pad} for the whole tile); the rest of st keeps stale values, which the softmax masks.
void scores(const ForwardPlan& f, const ForwardScratch& s, int64_t b, int64_t kvh, int64_t k0, int64_t nk,
            const SpanRun* runs, int64_t count) {
  const AttentionParams& p = f.p;
  if (f.bf16_dots) {
    int64_t ldk = 0;
    const uint32_t* k = pair_columns(p.k, b, kvh, k0, nk, p.head_dim, s.k_pairs, &ldk);
    for (const SpanRun* r = runs; r < runs + count; ++r) {
      f.ops.gemm_bf16_nn(r->count, r->hi - r->lo, f.d_words, k + r->first * ldk, ldk, s.qt_pairs + r->lo, f.nq_pad,
                         s.st + r->first * f.nq_pad + r->lo, f.nq_pad, false);
    }
    return;
  }
  const AOperand k = a_operand(p.k, f.ops, b, kvh, k0, nk, p.head_dim, s.k_tile);
  const GemmFn gemm = k.transposed ? f.ops.gemm_tn : f.ops.gemm_nn;
  for (const SpanRun* r = runs; r < runs + count; ++r) {
    const float* a = k.transposed ? k.ptr + r->first : k.ptr + r->first * k.ld;
    gemm(r->count, r->hi - r->lo, p.head_dim, a, k.ld, s.qt + r->lo, f.nq_pad, s.st + r->first * f.nq_pad + r->lo,
         f.nq_pad, false);
  }
}

// acc[q rows][dv_pad] += P · V[k0, k0 + nk) over runs of q rows and their kv rows (one run {0, nq, 0, nk}
// for the whole tile), P read from st.
void accumulate_values(const ForwardPlan& f, const ForwardScratch& s, int64_t b, int64_t kvh, int64_t k0, int64_t nk,
                       const SpanRun* runs, int64_t count) {
  const AttentionParams& p = f.p;
  if (f.bf16_dots) {
    f.ops.pack_pairs_f32(s.st, f.nq_pad, nk, f.nq_pad, s.p_pairs, f.nq_pad);
    pack_pairs_rows(p.v, f.ops, b, kvh, k0, nk, p.head_dim_v, s.v_pairs, f.dv_pad);
    for (const SpanRun* r = runs; r < runs + count; ++r) {
      const int64_t pair0 = r->lo / 2;  // lo is 0 or a multiple of kSpan: even
      f.ops.gemm_bf16_tn(r->count, f.dv_pad, (r->hi + 1) / 2 - pair0, s.p_pairs + pair0 * f.nq_pad + r->first,
                         f.nq_pad, s.v_pairs + pair0 * f.dv_pad, f.dv_pad, s.acc + r->first * f.dv_pad, f.dv_pad,
                         true);
    }
    return;
  }
  int64_t ldv = 0;
  const float* v = b_operand(p.v, f.ops, b, kvh, k0, nk, p.head_dim_v, s.v_tile, &ldv);
  for (const SpanRun* r = runs; r < runs + count; ++r) {
    f.ops.gemm_tn(r->count, f.dv_pad, r->hi - r->lo, s.st + r->lo * f.nq_pad + r->first, f.nq_pad, v + r->lo * ldv,
                  ldv, s.acc + r->first * f.dv_pad, f.dv_pad, true);
  }
}

void forward_task(const ForwardPlan& f, const QBlockTask& task) {
  const AttentionParams& p = f.p;
  const ScheduleView& sv = f.sv;
  const int64_t b = task.batch, h = task.head, qb = task.q_block;
  const int64_t q0 = qb * f.block_q;
  const int64_t nq = std::min(f.block_q, p.q_seq - q0);  // rows per head
  const int64_t heads = f.heads_per_task;
  const int64_t cols = heads * nq;  // query columns: head h + g's row i is column g * nq + i
  const int64_t kvh = h / f.group;
  const int32_t schedule = sv.head_schedule[sv.heads == 1 ? 0 : h];
  const int64_t row = static_cast<int64_t>(schedule) * sv.rows_per_schedule + qb;
  const int32_t* seg_q = p.segment_ids_q ? p.segment_ids_q + b * p.q_seq : nullptr;
  const int32_t* seg_kv = p.segment_ids_kv ? p.segment_ids_kv + b * p.kv_seq : nullptr;

  ScratchCarver measure;
  carve(f, measure);
  ScratchCarver cut(thread_scratch(measure.used()));
  const ForwardScratch s = carve(f, cut);

  if (f.bf16_dots) {
    pack_pairs_transposed(p.q, b, h, heads, q0, nq, p.head_dim, s.qt_pairs, f.nq_pad);
  } else {
    pack_transposed(p.q, f.ops, b, h, heads, q0, nq, p.head_dim, s.qt, f.nq_pad);
  }
  // A sink enters as a first "key" with logit s_h and no value: m = s_h, l = exp(s_h - m) = 1, acc = 0.
  const auto sink_of = [&](int64_t col) {
    return p.sinks != nullptr ? p.sinks[h + std::min(col / nq, heads - 1)] : -std::numeric_limits<float>::infinity();
  };
  for (int64_t i = 0; i < f.nq_pad; ++i) {
    s.m[i] = sink_of(i);
    s.l[i] = p.sinks != nullptr ? 1.0f : 0.0f;
    s.any[i] = 0.0f;
  }
  for (int64_t i = 0; i < cols * f.dv_pad; ++i) s.acc[i] = 0.0f;

  bool first = true;
  for (int64_t e = sv.row_ptr[row]; e < sv.row_ptr[row + 1]; ++e) {
    const int64_t kb = sv.col_idx[e];
    if (f.skip.disjoint(b, qb, kb)) continue;
    const int64_t kv_end = std::min((kb + 1) * f.block_kv, p.kv_seq);
    for (int64_t k0 = kb * f.block_kv; k0 < kv_end; k0 += f.block_kc) {
      const int64_t nk = std::min(f.block_kc, kv_end - k0);
      // The next tile's keys and values stream in while this one is computed.
      int64_t next = k0 + f.block_kc;
      if (next >= kv_end && e + 1 < sv.row_ptr[row + 1]) next = sv.col_idx[e + 1] * f.block_kv;
      if (next < p.kv_seq) {
        const int64_t n = std::min(f.block_kc, p.kv_seq - next);
        prefetch_rows(p.k, b, kvh, next, n, p.head_dim);
        prefetch_rows(p.v, b, kvh, next, n, p.head_dim_v);
      }
      const TileRegion tile{schedule, e, qb, kb, q0, nq, k0, nk};
      const bool masked = build_tile_mask(sv, tile, seg_q, seg_kv, /*kv_major=*/true, s.mask, f.nq_pad);
      if (masked) {
        // The heads side by side share the mask: copy the first head's columns to the others.
        for (int64_t j = 0; j < nk; ++j) {
          uint8_t* row = s.mask + j * f.nq_pad;
          for (int64_t g = 1; g < heads; ++g) std::memcpy(row + g * nq, row, static_cast<size_t>(nq));
        }
      }
      // Partial tiles compute only the sub-blocks that hold allowed pairs; others the whole tile.
      const RunCounts runs = product_runs(masked && f.trim ? s.mask : nullptr, f.nq_pad, nk, cols, s.kv_runs, s.q_runs);
      scores(f, s, b, kvh, k0, nk, s.kv_runs, runs.rows);
      if (!masked) {
        for (int64_t i = 0; i < cols; ++i) s.any[i] = 1.0f;
      }
      f.ops.softmax_step(SoftmaxStep{s.st, f.nq_pad, nk, f.nq_pad, masked ? s.mask : nullptr, f.nq_pad, p.mask_value,
                                     p.soft_cap, logit_scale(p), s.m, s.l, s.any, s.alpha});
      // Nothing is accumulated before the first tile, so its rescale (by 0) can be skipped.
      if (!first) f.ops.scale_rows(s.acc, f.dv_pad, cols, f.dv_pad, s.alpha);
      first = false;
      accumulate_values(f, s, b, kvh, k0, nk, s.q_runs, runs.cols);
    }
  }

  // Normalise. A query that saw no allowed key gets out = 0 and logsumexp = its sink (-inf without).
  for (int64_t i = 0; i < cols; ++i) {
    float* out = s.acc + i * f.dv_pad;
    if (s.any[i] == 0.0f) {
      for (int64_t c = 0; c < p.head_dim_v; ++c) out[c] = 0.0f;
      s.lse[i] = sink_of(i);
      continue;
    }
    const float inv = 1.0f / s.l[i];
    for (int64_t c = 0; c < p.head_dim_v; ++c) out[c] *= inv;
    s.lse[i] = s.m[i] + std::log(s.l[i]);
  }
  for (int64_t g = 0; g < heads; ++g) {
    store_rows(p.out, f.ops, b, h + g, q0, nq, p.head_dim_v, s.acc + g * nq * f.dv_pad, f.dv_pad);
    if (p.save_lse && p.lse.ptr != nullptr) store_row_values(p.lse, b, h + g, q0, nq, s.lse + g * nq);
  }
}

}  // namespace

int64_t forward_heads_per_task(const AttentionParams& p, const RunOptions& options) {
  if (options.pack_heads == 0) return 1;
  // Only while the heads' columns fit one ordinary tile and every thread keeps two tasks.
  const int64_t tile_q = std::min<int64_t>(p.fwd.block_q, p.q_seq);
  return heads_per_task_for(p, p.fwd, tile_q, kMaxPackedColumns, 2 * int64_t{call_threads(p, options)});
}

void forward_with(const AttentionParams& p, const RunOptions& options) {
  const TileOps& ops = tile_ops(options.max_isa, options.bf16_dots != 0);
  const ScheduleView& sv = p.fwd;
  const int64_t block_kv = sv.block_kv;
  const int64_t kc = p.block_kv_compute > 0 && p.block_kv_compute < block_kv ? p.block_kv_compute : block_kv;
  const bool bf16_dots = ops.gemm_bf16_nn != nullptr && p.q.dtype == DType::BF16 && p.k.dtype == DType::BF16 &&
                         p.v.dtype == DType::BF16;
  const int64_t tile_q = std::min<int64_t>(sv.block_q, p.q_seq);
  const int64_t heads_per_task = forward_heads_per_task(p, options);
  const ForwardPlan f{p,
                      ops,
                      sv,
                      sv.block_q,
                      block_kv,
                      kc,
                      tile_q,
                      std::min(kc, p.kv_seq),
                      p.heads / p.kv_heads,
                      heads_per_task,
                      round_up(heads_per_task * tile_q, ops.vec),
                      round_up(p.head_dim_v, ops.vec),
                      (p.head_dim + 1) / 2,
                      bf16_dots,
                      trims_tiles(p, options),
                      SegmentSkip(p, sv.block_q, block_kv, options.segment_skip != 0)};
  const std::vector<QBlockTask> tasks = q_block_tasks(p, sv, heads_per_task);
  advise_huge_pages(p.out, p.batch, p.heads, p.q_seq, p.head_dim_v);
  parallel_for(static_cast<int64_t>(tasks.size()), call_threads(p, options),
               [&](int64_t t) {
                 stop_if_cancelled(options);
                 forward_task(f, tasks[static_cast<size_t>(t)]);
               });
}

}  // namespace cpu
}  // namespace splash
