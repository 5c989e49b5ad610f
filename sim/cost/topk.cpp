#include "sim/cost/topk.hpp"

#include "reference/status.hpp"
#include "sim/cost/params.hpp"

#include <algorithm>
#include <cmath>

namespace dsv4::sim {

namespace {
constexpr int kTopkBlocksPerSm = 1;             // gpu/topk.cu: __launch_bounds__(1024), one block per SM
constexpr double kTopkTileItems = 16384;        // gpu/topk.cuh kTopkTile: items one block holds in registers
constexpr double kTopkStreamedSweeps = 4;       // NOTES_topk.md: a streamed merge re-reads in each of 4 sweeps
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

KernelWork topk_work(const TopkShape& s) {
  const double bp = std::max(1.0, s.blocks_per_row);
  KernelWork w;
  w.bytes = s.rows * s.cols * s.elem_bytes + s.rows * s.k * 4.0;
  w.cta_units = 1;  // one block's serial chain (radix passes + barriers), whatever its chunk
  w.ctas = s.rows * bp;
  // Select: rows x bp blocks of 1024 threads, one resident per SM (64 registers x 1024
  // threads fill the register file; gpu/topk.cu, NOTES_topk.md "two blocks per SM" rejected).
  w.n_stages = 1;
  w.stages[0] = {s.rows * bp, kTopkBlocksPerSm, 1.0, 0.0};
  if (bp > 1) {
    w.bytes += 2.0 * s.rows * bp * s.k * 8.0;  // aux (index, value) pairs written then read
    // Merge: a second launch of rows blocks; each a fixed block chain plus its bp x K
    // candidates, swept once when they fit one 16384-item tile, else streamed from L2 in
    // each of the 4 radix sweeps (NOTES_topk.md).
    const double cands = bp * s.k;
    const double sweeps = cands <= kTopkTileItems ? 1.0 : kTopkStreamedSweeps;
    w.launches = 2;
    w.n_stages = 2;
    w.stages[1] = {s.rows, kTopkBlocksPerSm, 1.0, cands * sweeps};
  }
  return w;
}

KernelConstants topk_default_constants(const GpuSpec& gpu) {
  return spec_constants(gpu, 12.0, kTopkBlocksPerSm,
                        "12 us per block chain (select or merge block on the critical path; H100 "
                        "measurements in gpu/bench/NOTES_topk.md); merge candidate sweeps uncosted "
                        "until calibrated; 1 CTA per SM (1024-thread blocks)");
}

}  // namespace dsv4::sim
