// Synthetic traces (`dsv4lab synth`): indexer logits from per-layer beta distributions with a
// controlled step-to-step top-k overlap, realistic merge and compressor groups, and optional
// planted special values at recorded positions. Same options (seed included) -> same bytes.
#pragma once

#include "traces/trace.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dsv4::trace {

/// Model preset. Logit distributions: V4-Pro "moderate" is the published fit; the V4-Flash
/// and V3.2 parameters are dsv4lab's choice (documented in traces/SCHEMA.md § synth).
struct SynthPreset {
  std::string name;   ///< "v4-flash", "v4-pro", "v3.2"
  std::string model;  ///< root attribute `model`
  int k = 0;
  int compress_ratio = 1;
  double mean = 0, stddev = 1, clip_low = -1, clip_high = 1;  ///< beta rescaled to [clip_low, clip_high]
  std::vector<double> hit_rates;  ///< per-layer targets |prev ∩ cur| / K, cycled over layers
  bool has_compressor = true;     ///< V3.2 has no KV compressor
};

const std::vector<SynthPreset>& synth_presets();
const SynthPreset& synth_preset(const std::string& name);  ///< throws bad_input listing the names

/// One compressor group to generate: name, head dim, compress ratio.
struct SynthCompressor {
  std::string name;
  int head_dim = 512;
  int compress_ratio = 4;
};

struct SynthOptions {
  std::string preset = "v4-flash";
  int layers = 2;
  int steps = 4;
  std::uint64_t batch = 4;
  int next_n = 1;
  std::uint64_t seed = 0;
  std::optional<std::int64_t> seq_len;   ///< fixed initial length; else the production mix
  std::int64_t max_seq_len = 131072;     ///< mix lengths above this are dropped
  DType logit_dtype = DType::f32;
  std::optional<double> hit_rate;        ///< overrides the preset's per-layer targets
  bool indexer = true, merge = true, compressor = true;
  bool write_topk = true;                ///< store the exact top-k as the captured `topk`
  int merge_heads = 16;                  ///< heads per GPU
  int merge_head_dim = 512;
  int max_splits = 8;                    ///< split-KV group: splits = ceil(len / 16384) capped here
  std::vector<SynthCompressor> compressors{{"csa", 512, 4}, {"hca", 512, 128}, {"idx", 128, 4}};
  DType kv_dtype = DType::bf16, state_dtype = DType::f32, out_dtype = DType::bf16;
  std::vector<std::string> plant;        ///< subset of nan-lse, inf-lse, neg-inf-score, ties
  std::string notes;
  WriteOptions write;
};

/// Parses "nan-lse,inf-lse,..." (throws bad_input naming the unknown entry).
std::vector<std::string> parse_plants(const std::string& list);
/// Parses "csa:512:4,hca:512:128" (throws bad_input).
std::vector<SynthCompressor> parse_compressors(const std::string& list);

struct SynthLayerStats {
  std::string group;
  double target_hit_rate = 0;
  double noise_scale = 0;        ///< c found by bisection
  double achieved_hit_rate = 0;  ///< mean over steps >= 1 and rows with N_r > K
  std::uint64_t cols = 0;
};

struct SynthSummary {
  std::string path;
  std::vector<SynthLayerStats> layers;
  std::vector<std::string> groups;  ///< every group path written
};

/// Writes the trace. Throws dsv4::Error (bad_input for bad options, io on write failure).
SynthSummary synth_trace(const std::string& path, const SynthOptions& opts);

/// The |a ∩ b| / k of two top-k index lists (entries -1 ignored).
double hit_rate(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b, int k);

}  // namespace dsv4::trace
