#include "sim/cost/attention.hpp"

#include "sim/cost/lse_merge.hpp"
#include "sim/gpu_specs.hpp"

#include <algorithm>
#include <cmath>

namespace dsv4::sim {

AttnTime attention_time(const GpuSpec& gpu, const AttnModel& m, const SplitPlan& plan,
                        const KernelConstants& attn, const KernelConstants& merge) {
  AttnTime t;
  const int cps = std::max(1, m.ctas_per_sm);
  const double P = static_cast<double>(std::max(1, gpu.sm_count)) * cps;
  const double slot_cap = gpu.sm_bandwidth_cap_GBps / cps;
  double n_all = 0, n_work = 0, bytes = 0, bmax = 0;
  for (const auto& g : plan.groups) {
    if (g.count <= 0) continue;
    n_all += g.count;
    if (g.segments <= 0) continue;  // exits after its prologue
    const double b = (g.tokens + g.segments * m.split_overhead_tokens) * m.kv_bytes_per_token;
    n_work += g.count;
    bytes += g.count * b;
    bmax = std::max(bmax, b);
  }
  if (n_all > 0) {
    // GB/s -> bytes per us: x 1e3.
    const double rate = std::min(attn.bandwidth_GBps, std::min(n_work, P) * slot_cap);
    const double fluid = n_work > 0 ? bytes / (rate * 1e3) : 0.0;
    const double share = n_work > 0 ? rate / std::min(n_work, P) : 0.0;
    const double streaming = fluid + std::max(0.0, bmax - share * 1e3 * fluid) / (slot_cap * 1e3);
    t.kernel_us = attn.launch_us + streaming + waves(n_all, gpu.sm_count, cps) * m.cta_prologue_us;
    t.balance = streaming > 0 ? fluid / streaming : 1.0;
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
