#include "sim/cost/topk.hpp"

#include "reference/status.hpp"
#include "sim/cost/params.hpp"

#include <algorithm>
#include <cmath>

namespace dsv4::sim {

namespace {
constexpr int kTopkBlocksPerSm = 1;        // gpu/topk.cu: 1024-thread blocks, 64 registers: one per SM
constexpr double kTopkTileItems = 16384;   // gpu/topk.cuh kTopkTile: items one block holds in registers
constexpr double kTopkStreamItems = 8192;  // gpu/topk.cu kStreamTile: items of one filtered tile
constexpr double kTopkClusterBlocks = 8;   // port::kMaxClusterBlocks: a split up to 8 is one launch
// Fitted shares (least squares over the 64 H100 points of results/h100-2026-11-21-r6, NOTES_topk.md
// round 7): a cluster's select chain costs about 1.4 single-block chains (its bins cross the
// cluster every pass, behind cluster barriers); the three sweeps of a merge's two tiles of
// candidates, two of them from L2, cost about two filter reads. A filtered chunk costs its read
// plus about 1 stream tile for its sample and its select over the short list (round 10: the
// guessed floor, no prune on most rows, and the list held 4 or 8 items per thread; 6 before,
// with the prunes. Refitted on results/h100-2026-11-22-r12: held-out MAPE 4.4% at 1, 4.5% at 2,
// 4.8% at 3. A merge over more than two tiles of candidates, bp > 8, still prunes, but no bench
// shape has one). Checked again on results/h100-2026-11-22-r14 (the cluster's scans in 32
// bits): held-out MAPE 4.8% with these shares; a cluster chain of 1.3 gives 5.0%, 1.5 6.6%.
// bf16 and fp16 rows select in two radix passes, not three (round 12): their chain is 0.9 of
// an f32 one (results/h100-2026-11-22-r15: held-out MAPE 6.3% with one chain for every dtype,
// 4.6% with 0.9, 5.1% with 0.85, 6.5% with 0.8; the cluster share stays 1.4, 1.5 gives 5.8%).
constexpr double kTopkClusterChain = 1.4;
constexpr double kTopk16BitChain = 0.9;
constexpr double kTopkTwoTileSweeps = 2.0;
constexpr double kTopkListTiles = 1.0;
}  // namespace

TopkShape topk_shape(const nlohmann::json& p) {
  TopkShape s;
  s.rows = param_number(p, "rows", 0, true);
  s.cols = param_number(p, "cols", 0, true);
  s.k = param_number(p, "k", 0, true);
  s.elem_bytes = dtype_bytes(param_string(p, "dtype"), 4, "topk params 'dtype'");
  s.blocks_per_row = std::max(1.0, param_number(p, "blocks_per_row", 1));
  if (s.rows < 0 || s.cols < 0 || s.k < 0) raise(Errc::bad_input, "topk params: rows, cols, k must be >= 0");
  return s;
}

double topk_block_sweeps(double items, bool logits) {
  if (items <= kTopkTileItems) return 0.0;
  const double tiles = std::ceil(items / kTopkStreamItems);
  return !logits && items <= 2 * kTopkTileItems ? kTopkTwoTileSweeps * tiles : tiles + kTopkListTiles;
}

KernelWork topk_work(const TopkShape& s) {
  const double bp = std::max(1.0, s.blocks_per_row);
  KernelWork w;
  w.bytes = s.rows * s.cols * s.elem_bytes + s.rows * s.k * 4.0;
  w.cta_units = 1;
  w.ctas = s.rows * bp;
  w.n_stages = 1;
  const double chain = (bp > 1 && bp <= kTopkClusterBlocks ? kTopkClusterChain : 1.0) *
                       (s.elem_bytes == 2 ? kTopk16BitChain : 1.0);
  w.stages[0] = {s.rows * bp, kTopkBlocksPerSm, chain, topk_block_sweeps(std::ceil(s.cols / bp), true)};
  if (bp > kTopkClusterBlocks) {
    w.bytes += 2.0 * s.rows * bp * s.k * 8.0;  // workspace (key, column) pairs written then read
    w.launches = 2;
    w.n_stages = 2;
    w.stages[1] = {s.rows, kTopkBlocksPerSm, 1.0, topk_block_sweeps(bp * s.k, false)};
  }
  return w;
}

KernelConstants topk_default_constants(const GpuSpec& gpu) {
  KernelConstants c = spec_constants(gpu, 11.3, kTopkBlocksPerSm,
                                     "11.3 us per select chain, 1.06 us per 8192-item stream tile (calibrate's fit "
                                     "of the H100 run gpu/bench/results/h100-2026-11-22-r15); 1 CTA per SM "
                                     "(1024-thread blocks)");
  c.aux_us_per_unit = 1.06;
  return c;
}

}  // namespace dsv4::sim
