// Calibration of the cost-model constants from measured bench JSON (schema "dsv4lab-bench",
// gpu/bench/bench_util.cuh). Per kernel (op/impl on one device) it fits
//   t = launches * launch_us + bytes / bandwidth + serial units * cta_us_per_unit [+ aux units * aux_us_per_unit]
// (sim/cost/model.hpp) by non-negative least squares on relative error (the form is linear in
// launch_us, 1/bandwidth, cta_us_per_unit and aux_us_per_unit; ops without launch stages have
// serial units = waves(ctas, SMs, ctas_per_sm) * units with ctas_per_sm chosen from
// {1, 2, 4, 8, 16} by fit loss; ops with stages carry their kernels' occupancy, ctas_per_sm 0),
// holds out a deterministic share of the points and reports MAPE and the worst case.
#pragma once

#include "sim/cost/model.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace dsv4::sim {

/// One measured result of a bench JSON file.
struct BenchPoint {
  std::string file;
  std::string device;       ///< device.name
  int sm_count = 0;         ///< device.sm_count
  double copy_GBps = 0;     ///< device.copy_bandwidth_GBps
  std::string op, impl;
  nlohmann::json params;
  double median_us = 0;
  double bytes = 0;         ///< the bench's own byte count (reported next to the model's)
};

/// Parse a bench document; `name` is used in messages. Throws bad_input naming the file and
/// the result index at fault.
std::vector<BenchPoint> parse_bench_json(const nlohmann::json& doc, const std::string& name);
std::vector<BenchPoint> read_bench_file(const std::string& path);

struct CalibrateOptions {
  double holdout_share = 0.25;  ///< share of each kernel's points held out (every k-th in params order)
  double goal_mape = 0.15;      ///< reported: does the held-out MAPE meet it
};

struct FitPoint {
  nlohmann::json params;
  double measured_us = 0;
  double predicted_us = 0;
  bool holdout = false;
  double rel_error() const { return measured_us > 0 ? (predicted_us - measured_us) / measured_us : 0.0; }
};

struct KernelFit {
  std::string kernel;  ///< "op/impl"
  std::string op, impl, device;
  int sm_count = 0;
  double copy_GBps = 0;
  KernelConstants constants;
  std::vector<FitPoint> points;  ///< in params order
  int n_fit = 0, n_holdout = 0;
  double mape_fit = 0, mape_holdout = 0;  ///< mean |rel error| (holdout 0 when none held out)
  double model_over_bench_bytes = 0;      ///< mean ratio of the model's bytes to the bench's (0: bench gave none)
};

struct CalibrateResult {
  std::vector<KernelFit> kernels;     ///< sorted by device, kernel
  std::vector<std::string> skipped;   ///< "op/impl: reason" for results without a cost model
};

/// Fit every kernel found in `points`.
CalibrateResult calibrate(const std::vector<BenchPoint>& points, const CalibrateOptions& opts);

/// Schema "dsv4lab-calibration" v1 (load_constants in sim/predict.hpp reads it back).
nlohmann::json calibrate_json(const CalibrateResult& r, const CalibrateOptions& opts,
                              const std::vector<std::string>& inputs);
std::string calibrate_table(const CalibrateResult& r, const CalibrateOptions& opts);

/// Weighted non-negative least squares for at most 4 unknowns: minimise sum_i (A_i x - b_i)^2
/// with x >= 0, by enumerating active sets. Returns x (size = columns) and the loss.
std::vector<double> nnls_small(const std::vector<std::vector<double>>& A, const std::vector<double>& b, double* loss);

}  // namespace dsv4::sim
