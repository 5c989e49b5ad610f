// Reading the "params" object of a bench result (gpu/bench/bench_util.cuh) tolerantly:
// numbers may be JSON numbers or numeric strings; unknown keys are ignored.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace dsv4::sim {

/// params[key] as a number; `fallback` when absent; throws bad_input when present but not numeric
/// or when absent and `required`.
double param_number(const nlohmann::json& params, const std::string& key, double fallback, bool required = false);

/// params[key] as a string ("" when absent).
std::string param_string(const nlohmann::json& params, const std::string& key);

/// Bytes of one element of a dtype name: fp32/float32/float 4; bf16/bfloat16/fp16/float16/half 2;
/// fp8/e4m3 1. Throws bad_input naming `what` for anything else. Empty -> `fallback`.
double dtype_bytes(const std::string& dtype, double fallback, const std::string& what);

}  // namespace dsv4::sim
