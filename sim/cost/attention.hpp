// Cost model of split-KV decode attention (MLA-style, one KV head) followed by the combine.
//
// A split plan lists CTA groups: `count` CTAs that each read `tokens` KV tokens over
// `segments` (request, split) pieces (each piece pays a fixed overhead: prologue, Q load,
// partial-output write), or exit early (segments = 0). The kernel time is a list-scheduling
// estimate over P = sm_count x ctas_per_sm slots:
//
//   w_i  = (tokens_i + segments_i * overhead) * bytes_per_token / rate,
//   rate = min(sm_cap / ctas_per_sm, bandwidth / min(n, P))   (bandwidth shared by busy slots),
//   T    = max(max_i w_i, W / P + [r > 0] (P - r) / P * W / n), W = sum w_i, r = n mod P,
//
// exact for n equal CTAs (ceil(n / P) waves) and for n <= P (the longest CTA), and the
// critical-path bound max w_i for mixed lengths. Requests with more than one split pay a
// combine (the LSE-merge model, DESIGN §3.2). O(groups), so 1e5 batches x every heuristic
// run in seconds.
#pragma once

#include "sim/cost/model.hpp"

#include <vector>

namespace dsv4::sim {

struct GpuSpec;

/// The decode attention being split (plain data; every field has a default with its source).
struct AttnModel {
  int q_heads = 64;             ///< query heads per KV head on one rank (DeepSeek MLA 128 heads, TP2)
  int q_heads_per_cta = 64;     ///< heads one CTA serves (FlashMLA tiles 64 query heads)
  double kv_bytes_per_token = 1152;  ///< MLA latent 512 + rope 64 dims, bf16 (PR #3379 benchmark)
  int d_v = 512;                ///< value width of a partial output (MLA latent)
  int page_size = 32;           ///< KV page (PR #3379 benchmark: page 32)
  int topk = 0;                 ///< sparse attention: attend min(L, topk) tokens; 0 = dense
  double split_overhead_tokens = 320;  ///< per-split fixed cost, tokens (FlashMLA: 5 blocks x 64)
  double exit_tokens = 32;      ///< cost of a CTA that exits early, tokens (estimate: one page read)
  int ctas_per_sm = 1;          ///< resident attention CTAs per SM (MLA decode fills shared memory)

  int head_groups() const { return (q_heads + q_heads_per_cta - 1) / q_heads_per_cta; }
};

struct CtaGroup {
  double count = 0;     ///< CTAs in the group
  double tokens = 0;    ///< KV tokens each reads
  double segments = 1;  ///< (request, split) pieces each processes; 0 = exits early
};

struct SplitPlan {
  std::vector<CtaGroup> groups;
  std::vector<int> splits;  ///< per request: partial outputs the combine reads (1 = none)
};

struct AttnTime {
  double total_us = 0;    ///< attention kernel + combine
  double kernel_us = 0;
  double combine_us = 0;
  double balance = 0;     ///< busy slot-time / (P x kernel makespan), in (0, 1]
  double mean_splits = 0; ///< mean of plan.splits
  int max_splits = 0;
};

/// Time of a plan on a GPU. `attn` holds the attention kernel's launch floor and bandwidth
/// (its per-unit field is unused); `merge` the combine's constants.
AttnTime attention_time(const GpuSpec& gpu, const AttnModel& m, const SplitPlan& plan,
                        const KernelConstants& attn, const KernelConstants& merge);

/// Default attention-kernel constants on a GPU (launch floor, copy bandwidth).
KernelConstants attention_default_constants(const GpuSpec& gpu);

}  // namespace dsv4::sim
