// Backward pass from the forward's residuals (out, logsumexp): di = rowsum(out·dout), then either
//   split:  a dq pass over the dq schedule (tasks = batch, head, q-block; like the forward) and a
//           dk/dv pass over the dkv schedule (tasks = batch, kv head, kv-block, looping the group's
//           query heads), or
//   fused:  the dk/dv pass alone, which also adds each (q-block, kv-block) contribution to dq.
// Every output element is owned by one task except the fused dq, whose contributions are added in
// ascending kv-block order through a per-(batch, head, q-block) turn counter, so every result is
// bitwise reproducible and independent of the thread count.
//
// The dq pass works on transposed tiles (kv rows x q columns) like the forward, so K and V are read
// in place and only Qᵀ / dOᵀ are packed per task; the dk/dv pass works on [q rows x kv columns] tiles
// with Kᵀ / Vᵀ packed once per task and Q / dO read in place.
//
// With bf16 inputs on a CPU with avx512_bf16, the products of exact inputs, S = Q·Kᵀ and dP = dO·Vᵀ,
// run on bf16 pairs (products of bf16 values are exact in f32, so only the summation order changes).
// The products with P or dS stay f32: nothing computed here is rounded to bf16.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>
#include <thread>
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

constexpr float kInf = std::numeric_limits<float>::infinity();

// Shape facts every backward pass needs.
struct Common {
  const AttentionParams& p;
  const TileOps& ops;
  bool segment_skip;
  bool trim;  // partial tiles leave out their sub-blocks without an allowed pair (tile_spans.h)
  int64_t group;
  int64_t d_pad, dv_pad;
  const float* di;  // [batch, heads, q_seq]
  bool bf16_scores;           // S on bf16 pairs: q and k are bf16 and the CPU has the dot products
  bool bf16_dp;               // dP on bf16 pairs: dout and v are bf16 and likewise
  int64_t d_words, dv_words;  // bf16 pairs per q / k row and per dout / v row
  const RunOptions& options;  // for the cancel flag, polled at the start of every task
};

const int32_t* batch_segments(const int32_t* ids, int64_t b, int64_t seq) { return ids ? ids + b * seq : nullptr; }

// lse of rows [q0, q0 + nq) with -inf (no allowed key) turned into +inf, which makes p = exp(s - lse)
// exactly 0; di of the same rows. Entries up to `padded` get +inf / 0.
void load_row_stats(const Common& c, int64_t b, int64_t h, int64_t q0, int64_t nq, int64_t padded, float* lse,
                    float* di) {
  load_row_values(c.p.lse, b, h, q0, nq, lse);
  const float* src = c.di + (b * c.p.heads + h) * c.p.q_seq + q0;
  for (int64_t i = 0; i < nq; ++i) {
    if (lse[i] == -kInf) lse[i] = kInf;
    di[i] = src[i];
  }
  for (int64_t i = nq; i < padded; ++i) {
    lse[i] = kInf;
    di[i] = 0.0f;
  }
}

// ---- di = rowsum(out · dout) ------------------------------------------------------------------

std::vector<float> row_deltas(const AttentionParams& p, const TileOps& ops, int threads) {
  constexpr int64_t kRows = 256;
  const int64_t chunks = (p.q_seq + kRows - 1) / kRows;
  const int64_t dv_pad = round_up(p.head_dim_v, ops.vec);
  std::vector<float> di(static_cast<size_t>(p.batch * p.heads * p.q_seq));
  parallel_for(p.batch * p.heads * chunks, threads, [&](int64_t t) {
    const int64_t bh = t / chunks, r0 = (t % chunks) * kRows;
    const int64_t b = bh / p.heads, h = bh % p.heads;
    ScratchCarver measure;
    measure.take<float>(dv_pad);
    measure.take<float>(dv_pad);
    ScratchCarver cut(thread_scratch(measure.used()));
    float* out_row = cut.take<float>(dv_pad);
    float* dout_row = cut.take<float>(dv_pad);
    for (int64_t r = r0; r < std::min(r0 + kRows, p.q_seq); ++r) {
      int64_t ld = 0;
      const float* o = b_operand(p.out, ops, b, h, r, 1, p.head_dim_v, out_row, &ld);
      const float* g = b_operand(p.dout, ops, b, h, r, 1, p.head_dim_v, dout_row, &ld);
      di[static_cast<size_t>(bh * p.q_seq + r)] = ops.dot(o, g, p.head_dim_v);
    }
  });
  return di;
}

// ---- dq pass (split backward) ---------------------------------------------------------------

struct DqScratch {
  float* qt;            // Qᵀ [head_dim][nq_pad]
  uint32_t* qt_pairs;   // or its bf16 pairs [d_words][nq_pad]
  float* dot;           // dOᵀ [head_dim_v][nq_pad]
  uint32_t* dot_pairs;  // or its bf16 pairs [dv_words][nq_pad]
  float* lse;           // [nq_pad]
  float* di;            // [nq_pad]
  float* st;            // scores / probabilities [tile_kv][nq_pad]
  float* dpt;           // dP, then dS [tile_kv][nq_pad]
  uint8_t* mask;        // [tile_kv][nq_pad]
  float* k_tile;        // [tile_kv][d_pad]
  uint32_t* k_pairs;    // K's bf16 pairs when they cannot be read in place [tile_kv][d_words]
  float* v_tile;        // [tile_kv][head_dim_v]
  uint32_t* v_pairs;    // [tile_kv][dv_words]
  float* dq;            // [tile_q][d_pad]
  SpanRun* kv_runs;     // kv rows and the q columns their S and dP are needed for
  SpanRun* q_runs;      // q rows and the kv rows their dQ sums over
};

DqScratch carve_dq(const Common& c, int64_t tile_q, int64_t tile_kv, int64_t nq_pad, ScratchCarver& k) {
  DqScratch s{};
  if (c.bf16_scores) {
    s.qt_pairs = k.take<uint32_t>(c.d_words * nq_pad);
    s.k_pairs = k.take<uint32_t>(tile_kv * c.d_words);
  } else {
    s.qt = k.take<float>(c.p.head_dim * nq_pad);
  }
  if (c.bf16_dp) {
    s.dot_pairs = k.take<uint32_t>(c.dv_words * nq_pad);
    s.v_pairs = k.take<uint32_t>(tile_kv * c.dv_words);
  } else {
    s.dot = k.take<float>(c.p.head_dim_v * nq_pad);
    s.v_tile = k.take<float>(tile_kv * c.p.head_dim_v);
  }
  s.lse = k.take<float>(nq_pad);
  s.di = k.take<float>(nq_pad);
  s.st = k.take<float>(tile_kv * nq_pad);
  s.dpt = k.take<float>(tile_kv * nq_pad);
  s.mask = k.take<uint8_t>(tile_kv * nq_pad);
  s.k_tile = k.take<float>(tile_kv * c.d_pad);
  s.dq = k.take<float>(tile_q * c.d_pad);
  s.kv_runs = k.take<SpanRun>(span_groups(tile_kv));
  s.q_runs = k.take<SpanRun>(span_groups(nq_pad));
  return s;
}

// Qᵀ and dOᵀ of the q-block, f32 or bf16 pairs as the products read them.
void pack_q_block(const Common& c, const DqScratch& s, int64_t b, int64_t h, int64_t q0, int64_t nq, int64_t nq_pad) {
  const AttentionParams& p = c.p;
  if (c.bf16_scores) {
    pack_pairs_transposed(p.q, b, h, 1, q0, nq, p.head_dim, s.qt_pairs, nq_pad);
  } else {
    pack_transposed(p.q, c.ops, b, h, 1, q0, nq, p.head_dim, s.qt, nq_pad);
  }
  if (c.bf16_dp) {
    pack_pairs_transposed(p.dout, b, h, 1, q0, nq, p.head_dim_v, s.dot_pairs, nq_pad);
  } else {
    pack_transposed(p.dout, c.ops, b, h, 1, q0, nq, p.head_dim_v, s.dot, nq_pad);
  }
}

// Sᵀ = K·Qᵀ into s.st and dPᵀ = V·dOᵀ into s.dpt for keys [k0, k0 + nk), over runs of kv rows and their
// q columns (the rest keeps stale values, which grad_step masks). k (ldk) is K as f32 rows, which the
// f32 path reads.
void dq_products(const Common& c, const DqScratch& s, int64_t b, int64_t kvh, int64_t k0, int64_t nk, int64_t nq_pad,
                 const float* k, int64_t ldk, const SpanRun* runs, int64_t count) {
  const AttentionParams& p = c.p;
  const TileOps& ops = c.ops;
  if (c.bf16_scores) {
    int64_t ldkp = 0;
    const uint32_t* kp = pair_columns(p.k, b, kvh, k0, nk, p.head_dim, s.k_pairs, &ldkp);
    for (const SpanRun* r = runs; r < runs + count; ++r) {
      ops.gemm_bf16_nn(r->count, r->hi - r->lo, c.d_words, kp + r->first * ldkp, ldkp, s.qt_pairs + r->lo, nq_pad,
                       s.st + r->first * nq_pad + r->lo, nq_pad, false);
    }
  } else {
    for (const SpanRun* r = runs; r < runs + count; ++r) {
      ops.gemm_nn(r->count, r->hi - r->lo, p.head_dim, k + r->first * ldk, ldk, s.qt + r->lo, nq_pad,
                  s.st + r->first * nq_pad + r->lo, nq_pad, false);
    }
  }
  if (c.bf16_dp) {
    int64_t ldvp = 0;
    const uint32_t* vp = pair_columns(p.v, b, kvh, k0, nk, p.head_dim_v, s.v_pairs, &ldvp);
    for (const SpanRun* r = runs; r < runs + count; ++r) {
      ops.gemm_bf16_nn(r->count, r->hi - r->lo, c.dv_words, vp + r->first * ldvp, ldvp, s.dot_pairs + r->lo, nq_pad,
                       s.dpt + r->first * nq_pad + r->lo, nq_pad, false);
    }
  } else {
    const AOperand v = a_operand(p.v, ops, b, kvh, k0, nk, p.head_dim_v, s.v_tile);
    const GemmFn gemm = v.transposed ? ops.gemm_tn : ops.gemm_nn;
    for (const SpanRun* r = runs; r < runs + count; ++r) {
      const float* a = v.transposed ? v.ptr + r->first : v.ptr + r->first * v.ld;
      gemm(r->count, r->hi - r->lo, p.head_dim_v, a, v.ld, s.dot + r->lo, nq_pad, s.dpt + r->first * nq_pad + r->lo,
           nq_pad, false);
    }
  }
}

void dq_pass(const Common& c, int threads) {
  const AttentionParams& p = c.p;
  const TileOps& ops = c.ops;
  const ScheduleView& sv = p.dq_sched;
  const int64_t block_q = sv.block_q, block_kv = sv.block_kv;
  // Scratch is sized by the largest tile that really occurs (a block may exceed the sequence).
  const int64_t tile_q = std::min(block_q, p.q_seq), tile_kv = std::min(block_kv, p.kv_seq);
  const int64_t nq_pad = round_up(tile_q, ops.vec);
  const SegmentSkip skip(p, block_q, block_kv, c.segment_skip);
  const std::vector<QBlockTask> tasks = q_block_tasks(p, sv);

  parallel_for(static_cast<int64_t>(tasks.size()), threads, [&](int64_t t) {
    stop_if_cancelled(c.options);
    const QBlockTask& task = tasks[static_cast<size_t>(t)];
    const int64_t b = task.batch, h = task.head, qb = task.q_block;
    const int64_t q0 = qb * block_q, nq = std::min(block_q, p.q_seq - q0);
    const int64_t kvh = h / c.group;
    const int32_t schedule = sv.head_schedule[sv.heads == 1 ? 0 : h];
    const int64_t row = static_cast<int64_t>(schedule) * sv.rows_per_schedule + qb;
    const int32_t* seg_q = batch_segments(p.segment_ids_q, b, p.q_seq);
    const int32_t* seg_kv = batch_segments(p.segment_ids_kv, b, p.kv_seq);

    ScratchCarver measure;
    carve_dq(c, tile_q, tile_kv, nq_pad, measure);
    ScratchCarver cut(thread_scratch(measure.used()));
    const DqScratch s = carve_dq(c, tile_q, tile_kv, nq_pad, cut);

    pack_q_block(c, s, b, h, q0, nq, nq_pad);
    load_row_stats(c, b, h, q0, nq, nq_pad, s.lse, s.di);
    std::fill(s.dq, s.dq + nq * c.d_pad, 0.0f);

    for (int64_t e = sv.row_ptr[row]; e < sv.row_ptr[row + 1]; ++e) {
      const int64_t kb = sv.col_idx[e];
      if (skip.disjoint(b, qb, kb)) continue;
      const int64_t k0 = kb * block_kv, nk = std::min(block_kv, p.kv_seq - k0);
      int64_t ldk = 0;
      const float* k = b_operand(p.k, ops, b, kvh, k0, nk, p.head_dim, s.k_tile, &ldk);
      const TileRegion tile{schedule, e, qb, kb, q0, nq, k0, nk};
      const bool masked = build_tile_mask(sv, tile, seg_q, seg_kv, /*kv_major=*/true, s.mask, nq_pad);
      const RunCounts runs = product_runs(masked && c.trim ? s.mask : nullptr, nq_pad, nk, nq, s.kv_runs, s.q_runs);
      dq_products(c, s, b, kvh, k0, nk, nq_pad, k, ldk, s.kv_runs, runs.rows);
      ops.grad_step(GradStep{s.st, s.dpt, nq_pad, nk, nq_pad, /*transposed=*/true, masked ? s.mask : nullptr, nq_pad,
                             p.mask_value, p.soft_cap, logit_scale(p), s.lse, s.di});
      for (const SpanRun* r = s.q_runs; r < s.q_runs + runs.cols; ++r) {  // dQ += dS·K
        ops.gemm_tn(r->count, c.d_pad, r->hi - r->lo, s.dpt + r->lo * nq_pad + r->first, nq_pad, k + r->lo * ldk, ldk,
                    s.dq + r->first * c.d_pad, c.d_pad, true);
      }
    }
    store_rows(p.dq, ops, b, h, q0, nq, p.head_dim, s.dq, c.d_pad);
  });
}

// ---- fused dq: ordered accumulation ---------------------------------------------------------

// Where the fused pass sums dq: the output itself when it is f32 with contiguous rows, else an f32
// buffer converted into the output at the end.
class DqSum {
 public:
  DqSum(const Common& c, int threads) : c_(c), threads_(threads) {
    const AttentionParams& p = c.p;
    in_place_ = p.dq.dtype == DType::F32 && p.dq.dim_stride == 1;
    if (!in_place_) {
      buffer_.assign(static_cast<size_t>(p.batch * p.heads * p.q_seq * p.head_dim), 0.0f);
      return;
    }
    parallel_for(p.batch * p.heads, threads_, [&](int64_t bh) {
      for (int64_t r = 0; r < p.q_seq; ++r) {
        float* dst = row(bh / p.heads, bh % p.heads, r);
        std::fill(dst, dst + p.head_dim, 0.0f);
      }
    });
  }

  float* row(int64_t b, int64_t h, int64_t q) {
    const AttentionParams& p = c_.p;
    if (!in_place_) return buffer_.data() + ((b * p.heads + h) * p.q_seq + q) * p.head_dim;
    return static_cast<float*>(p.dq.ptr) + b * p.dq.batch_stride + h * p.dq.head_stride + q * p.dq.seq_stride;
  }

  // Converts the f32 buffer into the output (nothing to do when summing in place).
  void finish() {
    if (in_place_) return;
    const AttentionParams& p = c_.p;
    parallel_for(p.batch * p.heads, threads_, [&](int64_t bh) {
      const int64_t b = bh / p.heads, h = bh % p.heads;
      store_rows(p.dq, c_.ops, b, h, 0, p.q_seq, p.head_dim, row(b, h, 0), p.head_dim);
    });
  }

 private:
  const Common& c_;
  int threads_;
  bool in_place_ = false;
  std::vector<float> buffer_;
};

// Turn order of the fused dq additions: rank[e] (per batch when segment skipping makes the visited
// set batch-dependent) counts the earlier kv-blocks of the same schedule that visit entry e's q-block.
struct DqTurns {
  std::vector<int32_t> rank;                    // [rank_batches][nnz]
  int64_t rank_batches = 1;
  std::unique_ptr<std::atomic<int32_t>[]> next;  // [batch][heads][q_blocks]: rank whose turn it is
  std::atomic<bool> abort{false};

  DqTurns(const AttentionParams& p, const ScheduleView& sv, const SegmentSkip& skip) {
    rank_batches = skip.active() ? p.batch : 1;
    rank.assign(static_cast<size_t>(rank_batches * sv.nnz), -1);
    std::vector<int32_t> seen(static_cast<size_t>(sv.q_blocks));
    for (int64_t b = 0; b < rank_batches; ++b) {
      for (int64_t s = 0; s < sv.num_schedules; ++s) {
        std::fill(seen.begin(), seen.end(), 0);
        for (int64_t kb = 0; kb < sv.rows_per_schedule; ++kb) {
          const int64_t row = s * sv.rows_per_schedule + kb;
          for (int64_t e = sv.row_ptr[row]; e < sv.row_ptr[row + 1]; ++e) {
            const int64_t qb = sv.col_idx[e];
            if (skip.disjoint(b, qb, kb)) continue;
            rank[static_cast<size_t>(b * sv.nnz + e)] = seen[static_cast<size_t>(qb)]++;
          }
        }
      }
    }
    const int64_t counters = p.batch * p.heads * sv.q_blocks;
    next.reset(new std::atomic<int32_t>[static_cast<size_t>(counters)]);
    for (int64_t i = 0; i < counters; ++i) next[i].store(0, std::memory_order_relaxed);
  }

  // Waits until it is entry e's turn on (b, h, q-block), runs add(), and passes the turn on. The
  // turn holder is a task with a lower index, already claimed and running, so this cannot deadlock.
  template <class Add>
  void in_turn(const AttentionParams& p, const ScheduleView& sv, int64_t b, int64_t h, int64_t qb, int64_t e, Add add) {
    const int32_t my_rank = rank[static_cast<size_t>((rank_batches == 1 ? 0 : b) * sv.nnz + e)];
    std::atomic<int32_t>& turn = next[(b * p.heads + h) * sv.q_blocks + qb];
    while (turn.load(std::memory_order_acquire) != my_rank) {
      if (abort.load(std::memory_order_relaxed)) {
        throw std::runtime_error("fused backward stopped by an earlier failure");
      }
      std::this_thread::yield();
    }
    add();
    turn.store(my_rank + 1, std::memory_order_release);
  }
};

// ---- dk/dv pass (and fused dq) ----------------------------------------------------------------

struct DkvScratch {
  float* kt;            // Kᵀ per compute sub-block [subs][head_dim][nk_pad]
  uint32_t* kt_pairs;   // or its bf16 pairs [subs][d_words][nk_pad]
  float* vt;            // Vᵀ per compute sub-block [subs][head_dim_v][nk_pad]
  uint32_t* vt_pairs;   // or its bf16 pairs [subs][dv_words][nk_pad]
  float* k_rows;        // K rows for the fused dq [tile_kv][d_pad]
  float* q_tile;        // [tile_q][d_pad]
  uint32_t* q_pairs;    // Q's bf16 pairs when they cannot be read in place [tile_q][d_words]
  float* do_tile;       // [tile_q][dv_pad]
  uint32_t* do_pairs;   // [tile_q][dv_words]
  float* s;             // scores / probabilities [tile_q][nk_pad]
  float* dp;            // dP, then dS [tile_q][nk_pad]
  uint8_t* mask;        // [tile_q][nk_pad]
  float* lse;           // [tile_q]
  float* di;            // [tile_q]
  float* dk;            // [tile_kv][d_pad]
  float* dv;            // [tile_kv][dv_pad]
  float* dq;            // fused: this entry's dq contribution [tile_q][d_pad]
  SpanRun* q_runs;      // q rows and the kv columns their S, dP (and fused dQ) are needed for
  SpanRun* kv_runs;     // kv columns and the q rows their dK and dV sum over
};

struct DkvShape {
  int64_t block_q, block_kv, block_kc;  // as scheduled
  int64_t tile_q, tile_kv;              // the most rows a block really has
  int64_t subs, nk_pad;                 // compute sub-blocks per block; padded sub-block width
  int64_t kt_size, vt_size;             // elements (floats or pairs) per sub-block of packed Kᵀ / Vᵀ
};

DkvScratch carve_dkv(const Common& c, const DkvShape& g, bool fused, ScratchCarver& k) {
  DkvScratch s{};
  if (c.bf16_scores) {
    s.kt_pairs = k.take<uint32_t>(g.subs * g.kt_size);
    s.q_pairs = k.take<uint32_t>(g.tile_q * c.d_words);
  } else {
    s.kt = k.take<float>(g.subs * g.kt_size);
  }
  if (c.bf16_dp) {
    s.vt_pairs = k.take<uint32_t>(g.subs * g.vt_size);
    s.do_pairs = k.take<uint32_t>(g.tile_q * c.dv_words);
  } else {
    s.vt = k.take<float>(g.subs * g.vt_size);
  }
  if (fused) s.k_rows = k.take<float>(g.tile_kv * c.d_pad);
  s.q_tile = k.take<float>(g.tile_q * c.d_pad);
  s.do_tile = k.take<float>(g.tile_q * c.dv_pad);
  s.s = k.take<float>(g.tile_q * g.nk_pad);
  s.dp = k.take<float>(g.tile_q * g.nk_pad);
  s.mask = k.take<uint8_t>(g.tile_q * g.nk_pad);
  s.lse = k.take<float>(g.tile_q);
  s.di = k.take<float>(g.tile_q);
  s.dk = k.take<float>(g.tile_kv * c.d_pad);
  s.dv = k.take<float>(g.tile_kv * c.dv_pad);
  if (fused) s.dq = k.take<float>(g.tile_q * c.d_pad);
  s.q_runs = k.take<SpanRun>(span_groups(g.tile_q));
  s.kv_runs = k.take<SpanRun>(span_groups(g.nk_pad));
  return s;
}

// Kᵀ and Vᵀ of every compute sub-block of the kv-block [k_start, k_start + nkb), f32 or bf16 pairs
// as the products read them.
void pack_kv_block(const Common& c, const DkvShape& g, const DkvScratch& s, int64_t b, int64_t kvh, int64_t k_start,
                   int64_t nkb) {
  const AttentionParams& p = c.p;
  for (int64_t sub = 0; sub * g.block_kc < nkb; ++sub) {
    const int64_t k0 = k_start + sub * g.block_kc, nk = std::min(g.block_kc, k_start + nkb - k0);
    if (c.bf16_scores) {
      pack_pairs_transposed(p.k, b, kvh, 1, k0, nk, p.head_dim, s.kt_pairs + sub * g.kt_size, g.nk_pad);
    } else {
      pack_transposed(p.k, c.ops, b, kvh, 1, k0, nk, p.head_dim, s.kt + sub * g.kt_size, g.nk_pad);
    }
    if (c.bf16_dp) {
      pack_pairs_transposed(p.v, b, kvh, 1, k0, nk, p.head_dim_v, s.vt_pairs + sub * g.vt_size, g.nk_pad);
    } else {
      pack_transposed(p.v, c.ops, b, kvh, 1, k0, nk, p.head_dim_v, s.vt + sub * g.vt_size, g.nk_pad);
    }
  }
}

// A q-block's rows of Q and dO as the products read them: f32 rows always (dK += dSᵀ·Q,
// dV += Pᵀ·dO), bf16 pairs too where S / dP run on them.
struct QRows {
  const float* q;
  int64_t ldq;
  const float* dout;
  int64_t ldo;
  const uint32_t* q_pairs;
  int64_t ldqp;
  const uint32_t* do_pairs;
  int64_t ldop;
};

QRows q_rows(const Common& c, const DkvScratch& s, int64_t b, int64_t h, int64_t q0, int64_t nq) {
  const AttentionParams& p = c.p;
  QRows r{};
  r.q = b_operand(p.q, c.ops, b, h, q0, nq, p.head_dim, s.q_tile, &r.ldq);
  r.dout = b_operand(p.dout, c.ops, b, h, q0, nq, p.head_dim_v, s.do_tile, &r.ldo);
  if (c.bf16_scores) r.q_pairs = pair_columns(p.q, b, h, q0, nq, p.head_dim, s.q_pairs, &r.ldqp);
  if (c.bf16_dp) r.do_pairs = pair_columns(p.dout, b, h, q0, nq, p.head_dim_v, s.do_pairs, &r.ldop);
  return r;
}

// S = Q·Kᵀ into s.s and dP = dO·Vᵀ into s.dp for compute sub-block `sub` ([nq][nk_pad]), over runs of q
// rows and their kv columns (the rest keeps stale values, which grad_step masks).
void dkv_products(const Common& c, const DkvShape& g, const DkvScratch& s, const QRows& r, int64_t sub,
                  const SpanRun* runs, int64_t count) {
  const AttentionParams& p = c.p;
  const TileOps& ops = c.ops;
  for (const SpanRun* u = runs; u < runs + count; ++u) {
    const int64_t n = u->hi - u->lo, at = u->first * g.nk_pad + u->lo;
    if (c.bf16_scores) {
      ops.gemm_bf16_nn(u->count, n, c.d_words, r.q_pairs + u->first * r.ldqp, r.ldqp,
                       s.kt_pairs + sub * g.kt_size + u->lo, g.nk_pad, s.s + at, g.nk_pad, false);
    } else {
      ops.gemm_nn(u->count, n, p.head_dim, r.q + u->first * r.ldq, r.ldq, s.kt + sub * g.kt_size + u->lo, g.nk_pad,
                  s.s + at, g.nk_pad, false);
    }
    if (c.bf16_dp) {
      ops.gemm_bf16_nn(u->count, n, c.dv_words, r.do_pairs + u->first * r.ldop, r.ldop,
                       s.vt_pairs + sub * g.vt_size + u->lo, g.nk_pad, s.dp + at, g.nk_pad, false);
    } else {
      ops.gemm_nn(u->count, n, p.head_dim_v, r.dout + u->first * r.ldo, r.ldo, s.vt + sub * g.vt_size + u->lo,
                  g.nk_pad, s.dp + at, g.nk_pad, false);
    }
  }
}

void dkv_pass(const Common& c, int threads, bool fused) {
  const AttentionParams& p = c.p;
  const TileOps& ops = c.ops;
  const ScheduleView& sv = p.dkv_sched;
  DkvShape g{};
  g.block_q = sv.block_q;
  g.block_kv = sv.block_kv;
  g.block_kc = p.block_kv_dkv_compute > 0 && p.block_kv_dkv_compute < g.block_kv ? p.block_kv_dkv_compute : g.block_kv;
  g.tile_q = std::min(g.block_q, p.q_seq);
  g.tile_kv = std::min(g.block_kv, p.kv_seq);
  g.subs = (g.tile_kv + g.block_kc - 1) / g.block_kc;
  g.nk_pad = round_up(std::min(g.block_kc, g.tile_kv), ops.vec);
  g.kt_size = (c.bf16_scores ? c.d_words : p.head_dim) * g.nk_pad;
  g.vt_size = (c.bf16_dp ? c.dv_words : p.head_dim_v) * g.nk_pad;
  const SegmentSkip skip(p, g.block_q, g.block_kv, c.segment_skip);
  std::unique_ptr<DqTurns> turns;
  std::unique_ptr<DqSum> dq_sum;
  if (fused) {
    turns.reset(new DqTurns(p, sv, skip));
    dq_sum.reset(new DqSum(c, threads));
  }

  // Tasks in (batch, kv head, kv-block) order: ascending kv-blocks within a kv head is what makes
  // the fused dq turn order safe.
  const int64_t kv_blocks = sv.rows_per_schedule;
  parallel_for(p.batch * p.kv_heads * kv_blocks, threads, [&](int64_t t) {
    try {
      stop_if_cancelled(c.options);
      const int64_t b = t / (p.kv_heads * kv_blocks);
      const int64_t kvh = (t / kv_blocks) % p.kv_heads;
      const int64_t kb = t % kv_blocks;
      const int64_t k_start = kb * g.block_kv, nkb = std::min(g.block_kv, p.kv_seq - k_start);
      const int32_t* seg_q = batch_segments(p.segment_ids_q, b, p.q_seq);
      const int32_t* seg_kv = batch_segments(p.segment_ids_kv, b, p.kv_seq);

      ScratchCarver measure;
      carve_dkv(c, g, fused, measure);
      ScratchCarver cut(thread_scratch(measure.used()));
      const DkvScratch s = carve_dkv(c, g, fused, cut);

      pack_kv_block(c, g, s, b, kvh, k_start, nkb);
      int64_t ldk = 0;
      const float* k_rows = fused ? b_operand(p.k, ops, b, kvh, k_start, nkb, p.head_dim, s.k_rows, &ldk) : nullptr;
      std::fill(s.dk, s.dk + nkb * c.d_pad, 0.0f);
      std::fill(s.dv, s.dv + nkb * c.dv_pad, 0.0f);

      for (int64_t h = kvh * c.group; h < (kvh + 1) * c.group; ++h) {
        const int32_t schedule = sv.head_schedule[sv.heads == 1 ? 0 : h];
        const int64_t row = static_cast<int64_t>(schedule) * sv.rows_per_schedule + kb;
        for (int64_t e = sv.row_ptr[row]; e < sv.row_ptr[row + 1]; ++e) {
          const int64_t qb = sv.col_idx[e];
          if (skip.disjoint(b, qb, kb)) continue;
          const int64_t q0 = qb * g.block_q, nq = std::min(g.block_q, p.q_seq - q0);
          const QRows r = q_rows(c, s, b, h, q0, nq);
          load_row_stats(c, b, h, q0, nq, nq, s.lse, s.di);
          if (fused) std::fill(s.dq, s.dq + nq * c.d_pad, 0.0f);

          for (int64_t sub = 0; sub * g.block_kc < nkb; ++sub) {
            const int64_t k0 = k_start + sub * g.block_kc, nk = std::min(g.block_kc, k_start + nkb - k0);
            const TileRegion tile{schedule, e, qb, kb, q0, nq, k0, nk};
            const bool masked = build_tile_mask(sv, tile, seg_q, seg_kv, /*kv_major=*/false, s.mask, g.nk_pad);
            const RunCounts runs =
                product_runs(masked && c.trim ? s.mask : nullptr, g.nk_pad, nq, nk, s.q_runs, s.kv_runs);
            dkv_products(c, g, s, r, sub, s.q_runs, runs.rows);
            ops.grad_step(GradStep{s.s, s.dp, g.nk_pad, nq, g.nk_pad, /*transposed=*/false,
                                   masked ? s.mask : nullptr, g.nk_pad, p.mask_value, p.soft_cap, logit_scale(p), s.lse, s.di});
            const int64_t kr = k0 - k_start;  // the sub-block's first row in dk / dv
            // dV += Pᵀ·dO and dK += dSᵀ·Q for this sub-block's rows
            for (const SpanRun* u = s.kv_runs; u < s.kv_runs + runs.cols; ++u) {
              const int64_t m = u->hi - u->lo, at = u->lo * g.nk_pad + u->first;
              ops.gemm_tn(u->count, c.dv_pad, m, s.s + at, g.nk_pad, r.dout + u->lo * r.ldo, r.ldo,
                          s.dv + (kr + u->first) * c.dv_pad, c.dv_pad, true);
              ops.gemm_tn(u->count, c.d_pad, m, s.dp + at, g.nk_pad, r.q + u->lo * r.ldq, r.ldq,
                          s.dk + (kr + u->first) * c.d_pad, c.d_pad, true);
            }
            if (fused) {  // dQ += dS·K, over kv columns below nk only (padding columns hold no dS)
              for (const SpanRun* u = s.q_runs; u < s.q_runs + runs.rows; ++u) {
                const int64_t hi = std::min(u->hi, nk);
                ops.gemm_nn(u->count, c.d_pad, hi - u->lo, s.dp + u->first * g.nk_pad + u->lo, g.nk_pad,
                            k_rows + (kr + u->lo) * ldk, ldk, s.dq + u->first * c.d_pad, c.d_pad, true);
              }
            }
          }
          if (fused) {
            turns->in_turn(p, sv, b, h, qb, e, [&] {
              for (int64_t i = 0; i < nq; ++i) {
                float* dst = dq_sum->row(b, h, q0 + i);
                const float* src = s.dq + i * c.d_pad;
                for (int64_t j = 0; j < p.head_dim; ++j) dst[j] += src[j];
              }
            });
          }
        }
      }
      store_rows(p.dk, ops, b, kvh, k_start, nkb, p.head_dim, s.dk, c.d_pad);
      store_rows(p.dv, ops, b, kvh, k_start, nkb, p.head_dim_v, s.dv, c.dv_pad);
    } catch (...) {
      if (turns) turns->abort.store(true);
      throw;
    }
  });
  if (fused) dq_sum->finish();
}

}  // namespace

void backward_with(const AttentionParams& p, const RunOptions& options) {
  const TileOps& ops = tile_ops(options.max_isa, options.bf16_dots != 0);
  const int threads = call_threads(p, options);
  stop_if_cancelled(options);
  advise_huge_pages(p.dq, p.batch, p.heads, p.q_seq, p.head_dim);
  advise_huge_pages(p.dk, p.batch, p.kv_heads, p.kv_seq, p.head_dim);
  advise_huge_pages(p.dv, p.batch, p.kv_heads, p.kv_seq, p.head_dim_v);
  const std::vector<float> di = row_deltas(p, ops, threads);
  const bool dots = ops.gemm_bf16_nn != nullptr;
  const Common c{p,
                 ops,
                 options.segment_skip != 0,
                 trims_tiles(p, options),
                 p.heads / p.kv_heads,
                 round_up(p.head_dim, ops.vec),
                 round_up(p.head_dim_v, ops.vec),
                 di.data(),
                 dots && p.q.dtype == DType::BF16 && p.k.dtype == DType::BF16,
                 dots && p.dout.dtype == DType::BF16 && p.v.dtype == DType::BF16,
                 (p.head_dim + 1) / 2,
                 (p.head_dim_v + 1) / 2,
                 options};
  if (!p.fused_bwd) dq_pass(c, threads);
  dkv_pass(c, threads, p.fused_bwd != 0);
}

}  // namespace cpu
}  // namespace splash
