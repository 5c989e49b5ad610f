#include "sim/cost/lse_merge.hpp"

#include "reference/status.hpp"
#include "sim/cost/params.hpp"

#include <cmath>

namespace dsv4::sim {

LseMergeShape lse_merge_shape(const nlohmann::json& p) {
  LseMergeShape s;
  s.tokens = param_number(p, "tokens", 0, true);
  s.heads = param_number(p, "heads", 0, true);
  s.D = param_number(p, "D", 0, true);
  s.splits = param_number(p, "splits", 2);
  s.elem_bytes = dtype_bytes(param_string(p, "dtype"), 4, "lse_merge params 'dtype'");
  if (s.tokens < 0 || s.heads < 0 || s.D < 0 || s.splits < 1)
    raise(Errc::bad_input, "lse_merge params: tokens, heads, D must be >= 0 and splits >= 1");
  return s;
}

KernelWork lse_merge_work(const LseMergeShape& s) {
  const double rows = s.tokens * s.heads;
  KernelWork w;
  w.bytes = rows * (s.splits * (s.D * s.elem_bytes + 4.0) + s.D * s.elem_bytes + 4.0);
  w.ctas = std::ceil(rows / 4.0);
  w.cta_units = s.splits * std::ceil(s.D / 32.0);
  return w;
}

KernelConstants lse_merge_default_constants(const GpuSpec& gpu) {
  return spec_constants(gpu, 0.0, 8,
                        "0 (bandwidth-bound; published fused merge ~2.4 TB/s on H100, merge-and-splits-notes); "
                        "8 CTAs of 4 warps per SM (register-light kernel, assumption)");
}

}  // namespace dsv4::sim
