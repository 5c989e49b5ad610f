#include "sim/cost/params.hpp"

#include "reference/status.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace dsv4::sim {

double param_number(const nlohmann::json& params, const std::string& key, double fallback, bool required) {
  if (!params.is_object() || !params.contains(key)) {
    if (required) raise(Errc::bad_input, "bench params lack the key '" + key + "'");
    return fallback;
  }
  const auto& v = params.at(key);
  if (v.is_number()) return v.get<double>();
  if (v.is_boolean()) return v.get<bool>() ? 1.0 : 0.0;
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size()) return d;
  }
  raise(Errc::bad_input, "bench params key '" + key + "' is not a number: " + v.dump());
}

std::string param_string(const nlohmann::json& params, const std::string& key) {
  if (!params.is_object() || !params.contains(key)) return {};
  const auto& v = params.at(key);
  return v.is_string() ? v.get<std::string>() : v.dump();
}

double dtype_bytes(const std::string& dtype, double fallback, const std::string& what) {
  std::string d = dtype;
  std::transform(d.begin(), d.end(), d.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (d.empty()) return fallback;
  if (d == "fp32" || d == "float32" || d == "float" || d == "f32") return 4;
  if (d == "bf16" || d == "bfloat16" || d == "fp16" || d == "float16" || d == "half" || d == "f16") return 2;
  if (d == "fp8" || d == "e4m3" || d == "fp8_e4m3") return 1;
  raise(Errc::bad_input, "unknown dtype '" + dtype + "' for " + what + " (supported: fp32, bf16, fp16, fp8)");
}

}  // namespace dsv4::sim
