// What-if simulation of split heuristics (DESIGN §7): for each batch size, sample batches of
// KV lengths from a distribution, let every heuristic plan the split-KV decode attention, and
// predict its time (attention kernel + combine) with the cost model. Reports, per heuristic and
// batch size, the mean / p50 / p99 time, splits chosen, SM balance, how often it was the fastest,
// and the best heuristic. Deterministic: same config and seed, same bytes of output.
#pragma once

#include "sim/cost/attention.hpp"
#include "sim/distribution.hpp"
#include "sim/gpu_specs.hpp"
#include "sim/heuristics.hpp"
#include "sim/predict.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dsv4::sim {

/// --sweep param=lo:hi:step.
struct Sweep {
  std::string param;
  double lo = 0, hi = 0, step = 1;
  std::vector<double> values() const;  ///< lo, lo+step, ... <= hi (at most 1000)
};

/// Parse "param=lo:hi:step" (step > 0, lo <= hi, param in sweep_params()). Throws bad_input.
Sweep parse_sweep(const std::string& text);

/// A parameter --sweep can vary: name, help.
struct SweepParam {
  std::string name;
  std::string help;
};
const std::vector<SweepParam>& sweep_params();

struct SimConfig {
  std::string gpu = "h100";                 ///< GPU key (gpu_specs)
  std::vector<int> batches{16, 64, 256};    ///< batch sizes
  std::vector<std::string> heuristics;      ///< names; empty = all
  std::uint64_t seed = 1;                   ///< sampling seed
  int samples = 1000;                       ///< batches sampled per batch size (and sweep value)
  AttnModel model;                          ///< the attention being split
  SplitKnobs knobs;                         ///< heuristic parameters
  std::optional<Sweep> sweep;               ///< vary one parameter
  ConstantsTable constants;                 ///< calibrated "attention", "lse_merge" constants (optional)
};

struct SimRow {
  double sweep_value = 0;  ///< value of the swept parameter (0 without --sweep)
  int batch = 0;
  std::string heuristic;
  double mean_us = 0, p50_us = 0, p99_us = 0;
  double mean_combine_us = 0;
  double mean_splits = 0;  ///< mean over batches of the mean splits per request
  int max_splits = 0;
  double balance = 0;      ///< mean SM balance
  double wins = 0;         ///< share of batches where it was the fastest (ties: first in order)
  double regret = 0;       ///< mean of time / fastest time - 1
};

struct SimBest {
  double sweep_value = 0;
  int batch = 0;
  std::string heuristic;
  double mean_us = 0;
};

struct SimResult {
  std::vector<SimRow> rows;
  std::vector<SimBest> best;
};

SimResult simulate(const SimConfig& cfg, const Distribution& dist);

/// JSON document: schema "dsv4lab-simulate" v1, the resolved config (incl. GPU spec with sources
/// and seed), rows and best choices. No timestamps.
nlohmann::json simulate_json(const SimConfig& cfg, const Distribution& dist, const SimResult& r);

/// Human-readable table.
std::string simulate_table(const SimConfig& cfg, const Distribution& dist, const SimResult& r);

/// GPU spec as JSON (with the provenance of each figure).
nlohmann::json gpu_json(const GpuSpec& g);

}  // namespace dsv4::sim
