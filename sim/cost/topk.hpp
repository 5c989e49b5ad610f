// Cost model of the indexer top-k decode kernel (DESIGN §3.3, gpu/topk.cu): grid (rows,
// blocks_per_row), 1024-thread blocks, one per SM. Up to 8 blocks per row form a cluster that
// selects the row in one launch; more blocks write per-chunk candidates to the workspace and a
// second launch (one block per row) merges the bp x K candidates.
#pragma once

#include "sim/cost/model.hpp"

#include <nlohmann/json.hpp>

namespace dsv4::sim {

struct TopkShape {
  double rows = 0;            ///< batch x next_n
  double cols = 0;            ///< valid columns per row (the kernel reads all of them)
  double k = 0;               ///< K
  double elem_bytes = 4;      ///< logits dtype bytes (fp32 4, bf16/fp16 2)
  double blocks_per_row = 1;  ///< CTAs per row
};

/// From bench params {rows, cols, k, dtype, blocks_per_row}; extra keys ignored.
TopkShape topk_shape(const nlohmann::json& params);

/// Item sweeps of one block over `items` (a chunk of logits, or the merge's bp x K candidates),
/// in 8192-item stream tiles beyond the block's fixed select chain: 0 for one resident 16384
/// tile (its items are part of the chain); one read of a longer chunk of logits (filtered into
/// the shared list) plus 1 tile's worth for its sample and the select over the list; candidates
/// of up to two tiles about 2 reads (three sweeps, two from L2), longer ones as a chunk.
double topk_block_sweeps(double items, bool logits);

/// bytes = rows*cols*elem + rows*K*4 (+ 2 * rows*bp*K*8 workspace when bp > 8).
/// Stage 1: rows*bp blocks, 1 per SM, 1 unit (the select chain: radix passes, barriers; 1.4
/// in a cluster of 2-8; times 0.9 for bf16 / fp16 rows, two passes instead of three) +
/// topk_block_sweeps(chunk) aux units. When bp > 8 a second launch
/// (launches = 2) of rows merge blocks, 1 unit + topk_block_sweeps(bp*K) aux units each.
KernelWork topk_work(const TopkShape& s);

/// Per-unit default: about 11.3 us per select chain and 1.06 us per stream tile (calibrate's fit
/// of the H100 run results/h100-2026-11-22-r15, after NOTES_topk.md round 12).
KernelConstants topk_default_constants(const GpuSpec& gpu);

}  // namespace dsv4::sim
