#include "sim/cost/model.hpp"

#include "sim/gpu_specs.hpp"

#include <algorithm>
#include <cmath>

namespace dsv4::sim {

double waves(double ctas, int sm_count, int ctas_per_sm) {
  if (ctas <= 0) return 0;
  const double slots = static_cast<double>(std::max(1, sm_count)) * std::max(1, ctas_per_sm);
  return std::ceil(ctas / slots);
}

double kernel_time_us(const KernelConstants& c, const KernelWork& w, int sm_count) {
  // bytes / (GB/s) = bytes / (bw * 1e9) s = bytes / (bw * 1e3) us.
  const double mem = c.bandwidth_GBps > 0 ? w.bytes / (c.bandwidth_GBps * 1e3) : 0.0;
  double aux = 0;
  const double serial = serial_units(w, sm_count, c.ctas_per_sm, &aux);
  return c.launch_us * w.launches + mem + serial * c.cta_us_per_unit + aux * c.aux_us_per_unit;
}

double serial_units(const KernelWork& w, int sm_count, int ctas_per_sm, double* aux) {
  if (aux) *aux = 0;
  if (w.n_stages <= 0) return waves(w.ctas, sm_count, ctas_per_sm) * w.cta_units;
  double u = 0;
  for (int i = 0; i < w.n_stages && i < 2; ++i) {
    const auto& st = w.stages[i];
    const double wv = waves(st.ctas, sm_count, st.ctas_per_sm);
    u += wv * st.units;
    if (aux) *aux += wv * st.aux_units;
  }
  return u;
}

KernelConstants spec_constants(const GpuSpec& gpu, double cta_us_per_unit, int ctas_per_sm,
                               const std::string& unit_source) {
  KernelConstants c;
  c.launch_us = gpu.launch_us;
  c.bandwidth_GBps = gpu.copy_bandwidth_GBps;
  c.cta_us_per_unit = cta_us_per_unit;
  c.ctas_per_sm = ctas_per_sm;
  c.source = "defaults: " + gpu.key + " launch_us (" + gpu.sources.at("launch_us") + "), bandwidth = copy (" +
             gpu.sources.at("copy_bandwidth_GBps") + "), per-unit: " + unit_source;
  return c;
}

}  // namespace dsv4::sim
