// Cost model of the indexer top-k decode kernel (DESIGN §3.3): grid (rows, blocks_per_row);
// each CTA scans ceil(cols / bp) columns with a radix select; with bp > 1 the last CTA of a
// row selects K of the bp x K candidates written to the aux scratch.
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

/// bytes = rows*cols*elem + rows*K*4 (+ 2 * rows*bp*K*8 aux when bp > 1);
/// ctas = rows*bp; units = columns per CTA (+ bp*K candidates merged when bp > 1).
KernelWork topk_work(const TopkShape& s);

/// Per-unit default: 312 us / 196,608 columns = 1.59e-3 us per column of a single-block row
/// (published B200 cliff point, 132 rows x 196,608 columns, one block per row; topk-notes).
KernelConstants topk_default_constants(const GpuSpec& gpu);

}  // namespace dsv4::sim
