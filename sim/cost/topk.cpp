#include "sim/cost/topk.hpp"

#include "reference/status.hpp"
#include "sim/cost/params.hpp"

#include <algorithm>
#include <cmath>

namespace dsv4::sim {

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
  w.cta_units = std::ceil(s.cols / bp);
  if (bp > 1) {
    w.bytes += 2.0 * s.rows * bp * s.k * 8.0;  // aux (index, value) pairs written then read
    w.cta_units += bp * s.k;
  }
  w.ctas = s.rows * bp;
  return w;
}

KernelConstants topk_default_constants(const GpuSpec& gpu) {
  return spec_constants(gpu, 312.0 / 196608.0, 1,
                        "312 us / 196,608 columns (published B200 single-block point, topk-notes); "
                        "1 CTA per SM (radix histograms fill shared memory)");
}

}  // namespace dsv4::sim
