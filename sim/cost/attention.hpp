// Cost model of split-KV decode attention (MLA-style, one KV head) followed by the combine.
//
// A split plan lists CTA groups: `count` CTAs that each read `tokens` KV tokens over
// `segments` (request, split) pieces (each piece pays a fixed overhead in tokens: Q load,
// partial-output write), or exit early (segments = 0). With b_i the bytes of CTA i,
//
//   busy  = min(working CTAs, SMs x ctas_per_sm),  cap = per-SM cap / ctas_per_sm,
//   rate  = min(bandwidth, busy x cap)             (DRAM shared by the busy slots),
//   fluid = sum_i b_i / rate,   share = rate / busy (what one CTA gets while all stream),
//   streaming = fluid + max(0, b_max - share x fluid) / cap,
//   kernel    = launch + streaming + waves(all CTAs) x cta_prologue_us.
//
// The longest CTA streams at its fair share while the batch saturates DRAM, then alone at one
// SM's cap: the cost of under-splitting long requests in a mixed batch (what TRT-LLM-gen's
// KV-split oversubscription addresses). Few busy SMs cannot saturate DRAM: what splitting
// buys. Per-CTA latency enters in waves through the prologue. Exact for n equal CTAs when
// n <= SMs and for one long CTA among few. More bytes never make it faster; more SMs never
// make it slower while the working CTAs fit on the SMs — past that, a long split's share of
// DRAM shrinks as more SMs compete, which the model keeps on purpose. Requests with more than
// one split pay a combine (the LSE-merge model, DESIGN §3.2). O(groups): 1e5 batches x every
// heuristic run in seconds.
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
  double cta_prologue_us = 1.0; ///< per-CTA latency not hidden by streaming (estimate: block table + Q
                                ///< load, two dependent DRAM round trips of ~0.5 us)
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
  double balance = 0;     ///< fluid time / streaming time, in (0, 1]: 1 = no critical-path tail
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
