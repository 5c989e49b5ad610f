// Cost model of the indexer top-k decode kernel (DESIGN §3.3): grid (rows, blocks_per_row);
// each CTA scans ceil(cols / bp) (<= 16384) columns with a radix select; with bp > 1 a second
// merge kernel (one CTA per row) selects K of the bp x K candidates written to the aux scratch.
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

/// bytes = rows*cols*elem + rows*K*4 (+ 2 * rows*bp*K*8 aux when bp > 1).
/// Time per block is mostly a fixed serial chain (radix passes with barriers), so the serial
/// work is counted in block chains: stage 1 = select, rows*bp blocks at 1 per SM, 1 unit each;
/// when bp > 1, a second launch (launches = 2) of rows merge blocks, 1 unit each plus aux units
/// = bp*K candidates x sweeps (1 when they fit one 16384-item tile, 4 when streamed).
KernelWork topk_work(const TopkShape& s);

/// Per-unit default: about 12 us per block chain (NOTES_topk.md, H100: "about 15 us of launch
/// cost plus about 12 us for each block on the critical path"); no aux default (0).
KernelConstants topk_default_constants(const GpuSpec& gpu);

}  // namespace dsv4::sim
