#include "validation/numerics_check.hpp"

#include "reference/numerics/numerics.hpp"
#include "reference/parallel.hpp"

#include <cmath>
#include <mutex>

namespace dsv4::validation {

namespace {
template <class F, class G>
FunctionAccuracy measure(const char* name, std::uint32_t stride, F f, G ref) {
  FunctionAccuracy a;
  a.name = name;
  const std::uint64_t count = ((1ull << 32) + stride - 1) / stride;
  a.inputs = count;
  std::mutex mu;
  parallel_for(count, [&](std::size_t b, std::size_t e) {
    std::uint32_t worst = 0, at = 0;
    for (std::size_t k = b; k < e; ++k) {
      const auto u = static_cast<std::uint32_t>(k * stride);
      const float x = num::from_bits(u);
      const std::uint32_t d = num::ulp_distance(f(x), static_cast<float>(ref(static_cast<double>(x))));
      if (d > worst) { worst = d; at = u; }
    }
    std::lock_guard<std::mutex> lock(mu);
    if (worst > a.max_ulp) { a.max_ulp = worst; a.worst_input_bits = at; }
  });
  return a;
}
}  // namespace

std::vector<FunctionAccuracy> numerics_accuracy(std::uint32_t stride) {
  return {
      measure("exp", stride, [](float x) { return num::exp(x); }, [](double x) { return std::exp(x); }),
      measure("exp2", stride, [](float x) { return num::exp2(x); }, [](double x) { return std::exp2(x); }),
      measure("log", stride, [](float x) { return num::log(x); }, [](double x) { return std::log(x); }),
      measure("log2", stride, [](float x) { return num::log2(x); }, [](double x) { return std::log2(x); }),
      measure("log1p", stride, [](float x) { return num::log1p(x); }, [](double x) { return std::log1p(x); }),
  };
}

}  // namespace dsv4::validation
