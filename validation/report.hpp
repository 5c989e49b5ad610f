// Parity report (DESIGN §5): the data model a replay fills, and the writer of the report
// folder: report.json (schema "dsv4lab-report", version 1; keys in a fixed order, no
// wall-clock time, so the same inputs give byte-identical files), report.md, plot_*.png
// drawn by validation/plots.py and a self-contained report.html with the plots embedded.
#pragma once

#include "validation/metrics.hpp"
#include "validation/provenance.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace dsv4::validation {

using ojson = nlohmann::ordered_json;

inline constexpr const char* kReportSchema = "dsv4lab-report";
inline constexpr int kReportVersion = 1;

/// One comparison of one dataset of a group, e.g. topk: reference vs oracle.
struct Comparison {
  std::string dataset;  ///< "topk", "v", "lse", "out", ...
  std::string got;      ///< "reference", "gpu", "captured"
  std::string want;     ///< "oracle", "reference"
  std::string kind;     ///< "float" or "topk"
  ojson rule;           ///< the pass rule applied
  ojson metrics;        ///< totals over all steps
  ojson per_step;       ///< array of {step, pass, ...}
  std::vector<std::string> failures;  ///< empty = pass
  std::string note;     ///< e.g. which rows the oracle covered

  std::string name() const { return dataset + ": " + got + " vs " + want; }
  bool pass() const { return failures.empty(); }
};

/// Accumulates a float comparison step by step.
class FloatComparison {
 public:
  FloatComparison(std::string dataset, std::string got, std::string want, FloatRule rule,
                  std::vector<std::size_t> step_shape, Grid grid = Grid::f32);
  void add(std::int64_t step, std::span<const float> got, std::span<const float> want);
  void add(std::int64_t step, std::span<const float> got, std::span<const double> want);
  const FloatMetrics& total() const { return total_; }
  Comparison finish(std::string note = {}) const;

 private:
  void record(std::int64_t step, const FloatMetrics& m);
  Comparison c_;
  FloatRule rule_;
  std::vector<std::size_t> shape_;
  Grid grid_ = Grid::f32;
  FloatMetrics total_;
  bool any_ = false;
};

/// Accumulates a top-k comparison step by step.
class TopkComparison {
 public:
  TopkComparison(std::string dataset, std::string got, std::string want, TopkRule rule);
  void add(std::int64_t step, std::span<const std::int32_t> got, std::span<const std::int32_t> want,
           std::size_t rows, std::size_t k, const TopkLogits* logits, std::span<const std::int64_t> row_ids = {});
  const TopkMetrics& total() const { return total_; }
  Comparison finish(std::string note = {}) const;

 private:
  Comparison c_;
  TopkRule rule_;
  TopkMetrics total_;
  bool any_ = false;
};

ojson to_json(const FloatMetrics& m, std::span<const std::size_t> step_shape);
ojson to_json(const TopkMetrics& m);
ojson to_json(const FloatRule& r);
ojson to_json(const TopkRule& r);
ojson to_json(const Provenance& p);

struct GroupReport {
  std::string group;  ///< trace group, e.g. "/indexer/L02"
  std::string op;     ///< "topk", "merge", "compress"
  std::int64_t steps = 0;
  ojson config = ojson::object();  ///< the group's configuration (attributes, shapes)
  std::string schedule;            ///< reference schedule, printed
  std::vector<Comparison> comparisons;
  ojson timing = nullptr;  ///< {"predicted_us": ..., "measured_us": ...} when known
  std::vector<std::string> notes;

  bool pass() const;
};

struct Report {
  Provenance provenance;
  std::string device = "cpu";  ///< where the kernels ran: "cpu" (reference only) or "cuda"
  ojson options = ojson::object();  ///< replay options that shape the result
  std::vector<GroupReport> groups;
  ojson simulation = nullptr;  ///< simulator output when it ran
  std::vector<std::string> notes;

  bool pass() const;
  /// "group: comparison: reason" for every failed rule.
  std::vector<std::string> failures() const;
};

ojson to_json(const Report& r);
std::string to_markdown(const Report& r);
/// A short plain-text table: one line per comparison (group, comparison, result, metrics,
/// time), then the overall result.
std::string summary_table(const Report& r);

struct WriteOptions {
  bool plots = true;   ///< run validation/plots.py
  std::string python;  ///< interpreter; empty: plot_python()
  std::string plots_script;  ///< empty: $DSV4LAB_PLOTS, else the source tree's validation/plots.py
};

struct WriteResult {
  std::filesystem::path json, markdown, html;
  std::vector<std::filesystem::path> plots;
  std::string plot_note;  ///< why plots are missing, if they are
};

/// Write the report folder (created if missing). Throws dsv4::Error io on failure.
/// The Python that draws plots: $DSV4LAB_PYTHON, else the first of the build's configured
/// Python, /usr/bin/python3 and python3 that can import matplotlib.
std::string plot_python();

WriteResult write_report(const Report& r, const std::filesystem::path& dir, const WriteOptions& opt = {});

/// Base64 (RFC 4648, with padding).
std::string base64(std::string_view bytes);

}  // namespace dsv4::validation
