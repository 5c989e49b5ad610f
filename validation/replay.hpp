// Replay engine (`dsv4lab replay`): for every group and step of a trace, run the oracle,
// the bit-exact reference and (when a GPU is present and allowed) the CUDA kernel, and
// compare: reference vs oracle, gpu vs reference, captured output vs reference and vs
// oracle. Memory is bounded by one step of one group; rows run in parallel on the CPU.
//
// Pass rules (DESIGN §5), overridable through ReplayOptions:
//   gpu vs reference            float: bitwise (NaN == NaN); top-k: exact arrays
//   reference vs oracle         float: tolerance by dtype + row cosine; top-k: exact arrays
//   captured vs reference/oracle float: tolerance + cosine; top-k: tie-aware (upstream
//                               kernels break ties nondeterministically)
// Non-finite values must sit in the same places under every rule.
//
// Top-k oracle coverage: the sorting oracle is O(N log N) per row, so by default it runs on
// `oracle_rows` rows per step (whole requests spread evenly over the batch); -1 runs it on
// every row. The reference and the GPU are always checked on every row.
#pragma once

#include "reference/lse_merge.hpp"
#include "validation/metrics.hpp"
#include "validation/report.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dsv4::validation {

struct ReplayOptions {
  std::string device = "auto";       ///< auto (GPU when present), cpu, cuda
  std::vector<std::string> ops;      ///< subset of indexer, merge, compressor; empty = all
  std::string save_outputs;          ///< HDF5 file for the computed outputs; empty = none
  std::int64_t oracle_rows = 4;      ///< top-k rows per step the oracle covers; -1 = all
  LsePolicy policy = LsePolicy::strict;
  bool lse_includes_sink = false;
  int compress_warps = 1;            ///< NRW of the compressor reference (1, or 4 for CR = 128)
  std::optional<double> atol, rtol;  ///< override the dtype tolerances of tolerance rules
  std::optional<double> cos_min, cos_mean;
  TopkCheck topk_captured = TopkCheck::tie;  ///< rule for captured top-k
  double recall_min = 1.0;           ///< for topk_captured = recall
  std::int64_t max_steps = -1;       ///< replay only the first steps of each group; -1 = all
  bool measure = false;              ///< time GPU kernels (measured times vary run to run)
  std::string gpu_model = "h100";    ///< GPU of the cost-model predictions; empty = none
  bool progress = true;              ///< progress lines on stderr
};

/// Names accepted by ReplayOptions::ops (with aliases topk, lse_merge, compress).
std::string canonical_op(const std::string& op);

/// Replay `trace_path`. Fills the report (provenance except `command`, which the caller
/// sets). Throws dsv4::Error: bad_input / io for a bad trace or options, device for GPU
/// failures. Parity failures do not throw: they are in the report (Report::pass()).
Report replay_trace(const std::string& trace_path, const ReplayOptions& opt);

}  // namespace dsv4::validation
