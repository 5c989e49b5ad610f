// Cost model of the LSE merge / split-KV combine (DESIGN §3.2): for each (token, head) row,
// read `splits` partial (v[D], lse) states, write one. Assumed layout: one warp per row,
// 4 rows per CTA; each lane folds D/32 elements sequentially over the splits.
#pragma once

#include "sim/cost/model.hpp"

#include <nlohmann/json.hpp>

namespace dsv4::sim {

struct LseMergeShape {
  double tokens = 0;
  double heads = 0;
  double D = 0;             ///< value width
  double splits = 2;        ///< partial states per row
  double elem_bytes = 4;    ///< dtype of v (partials and output)
};

/// From bench params {tokens, heads, D, splits, dtype}; extra keys ignored.
LseMergeShape lse_merge_shape(const nlohmann::json& params);

/// rows = tokens*heads; bytes = rows*(splits*(D*elem + 4) + D*elem + 4);
/// ctas = ceil(rows / 4); units = splits * ceil(D / 32) (per-lane sequential steps).
KernelWork lse_merge_work(const LseMergeShape& s);

/// Per-unit default 0: the merge is bandwidth-bound (published fused merge on H100 reaches
/// ~2.4 TB/s, merge-and-splits-notes); calibrate fits the real value.
KernelConstants lse_merge_default_constants(const GpuSpec& gpu);

}  // namespace dsv4::sim
