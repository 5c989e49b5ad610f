#include "sim/cost/attention.hpp"

#include "sim/cost/lse_merge.hpp"
#include "sim/gpu_specs.hpp"

#include <algorithm>
#include <cmath>

namespace dsv4::sim {

AttnTime attention_time(const GpuSpec& gpu, const AttnModel& m, const SplitPlan& plan,
                        const KernelConstants& attn, const KernelConstants& merge) {
  AttnTime t;
  const double P = static_cast<double>(std::max(1, gpu.sm_count)) * std::max(1, m.ctas_per_sm);
  double n = 0;
  for (const auto& g : plan.groups) n += g.count;
  if (n > 0) {
    const double busy = std::min(n, P);
    const double rate_GBps = std::min(gpu.sm_bandwidth_cap_GBps / std::max(1, m.ctas_per_sm),
                                      attn.bandwidth_GBps / busy);
    const double us_per_token = m.kv_bytes_per_token / (rate_GBps * 1e3);
    double W = 0, wmax = 0;
    for (const auto& g : plan.groups) {
      if (g.count <= 0) continue;
      const double tokens = g.segments > 0 ? g.tokens + g.segments * m.split_overhead_tokens : m.exit_tokens;
      const double w = tokens * us_per_token;
      W += g.count * w;
      wmax = std::max(wmax, w);
    }
    const double r = std::fmod(n, P);
    const double tail = r > 0 ? (P - r) / P * (W / n) : 0.0;
    const double makespan = std::max(wmax, W / P + tail);
    t.kernel_us = attn.launch_us + makespan;
    t.balance = makespan > 0 ? W / (P * makespan) : 0.0;
  }
  double split_rows = 0, split_sum = 0, all_sum = 0;
  for (int s : plan.splits) {
    all_sum += s;
    t.max_splits = std::max(t.max_splits, s);
    if (s > 1) {
      split_rows += 1;
      split_sum += s;
    }
  }
  t.mean_splits = plan.splits.empty() ? 0.0 : all_sum / static_cast<double>(plan.splits.size());
  if (split_rows > 0) {
    LseMergeShape c;
    c.tokens = split_rows;
    c.heads = m.q_heads;
    c.D = m.d_v;
    c.splits = split_sum / split_rows;
    c.elem_bytes = 4;  // fp32 partials
    t.combine_us = kernel_time_us(merge, lse_merge_work(c), gpu.sm_count);
  }
  t.total_us = t.kernel_us + t.combine_us;
  return t;
}

KernelConstants attention_default_constants(const GpuSpec& gpu) {
  return spec_constants(gpu, 0.0, 1, "unused (the split model streams tokens at the slot rate)");
}

}  // namespace dsv4::sim
