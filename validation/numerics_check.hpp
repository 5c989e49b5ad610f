// Accuracy of the numerics core against float64 on a deterministic sample, used by
// `dsv4lab demo` and reports (the exhaustive numbers come from the `long` test).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsv4::validation {

struct FunctionAccuracy {
  std::string name;
  std::uint64_t inputs = 0;
  std::uint32_t max_ulp = 0;
  std::uint32_t worst_input_bits = 0;
};

/// Max ulp error of exp, exp2, log, log2, log1p over every `stride`-th bit pattern.
std::vector<FunctionAccuracy> numerics_accuracy(std::uint32_t stride = 4099);

}  // namespace dsv4::validation
