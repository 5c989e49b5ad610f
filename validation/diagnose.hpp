// NaN / inf diagnosis (`dsv4lab diagnose`): every non-finite output row of the trace's
// merge groups (v holds a NaN or ±inf, or lse is NaN or +inf), with its origin from the
// merge reference's diagnostic records, and every non-finite compressor output element.
// An empty merge row (v = 0, lse = -inf) is not a finding. Findings are in trace order:
// group (as the trace lists them), step, then token, head.
#pragma once

#include "reference/lse_merge.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace dsv4::validation {

struct Finding {
  std::string group;  ///< "/merge/attn"
  std::int64_t step = 0;
  std::int64_t token = 0;  ///< merge: token; compressor: output row of the step
  std::int64_t head = 0;   ///< merge: head; compressor: element d
  std::string scope;       ///< input scope ("swa", "split 3", "sink"), compressor: "window k of request b"
  float value = 0.0f;      ///< the non-finite value
  std::string op;
  std::string cause;
  std::string avoided_by;
};

struct DiagnoseOptions {
  LsePolicy policy = LsePolicy::strict;
  bool lse_includes_sink = false;
  std::int64_t max_steps = -1;  ///< -1 = all
};

/// Scan a trace. Throws dsv4::Error (io / bad_input) for a bad trace.
std::vector<Finding> diagnose_trace(const std::string& trace_path, const DiagnoseOptions& opt = {});

/// {"findings": [{"group", "step", "token", "head", "scope", "value", "op", "cause", "avoided_by"}, ...]}
/// (value as a string: "nan", "inf", "-inf", or the number).
nlohmann::ordered_json findings_json(const std::vector<Finding>& f);

/// A human-readable table.
std::string findings_text(const std::vector<Finding>& f);

}  // namespace dsv4::validation
