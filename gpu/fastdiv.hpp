// Division of 32-bit unsigned values by a divisor fixed for a launch: a multiply-high, an add
// and two shifts (Granlund & Montgomery, "Division by invariant integers using
// multiplication", 1994, fig. 4.1), with the constants made once on the host. Exact for every
// x < 2^32 and 1 <= d < 2^32 (tests/gpu/test_fastdiv.cpp). A runtime 64-bit division is a
// long software sequence on the GPU, and a 32-bit one still a dozen dependent instructions.
#pragma once

#include "reference/numerics/core.hpp"

#include <cstdint>

namespace dsv4::gpu {

struct FastDiv {
  std::uint32_t mul = 1;
  int sh1 = 0, sh2 = 0;
};

/// Constants for the divisor d >= 1.
inline FastDiv make_fastdiv(std::uint32_t d) {
  int l = 0;
  while ((std::uint64_t{1} << l) < d) ++l;  // l = ceil(log2 d)
  FastDiv f;
  f.mul = static_cast<std::uint32_t>(((std::uint64_t{1} << 32) * ((std::uint64_t{1} << l) - d)) / d + 1);
  f.sh1 = l < 1 ? l : 1;
  f.sh2 = l > 1 ? l - 1 : 0;
  return f;
}

/// x / d for the d of make_fastdiv.
DSV4_HD std::uint32_t fastdiv(std::uint32_t x, const FastDiv& f) {
#if DSV4_DEVICE_PASS
  const std::uint32_t t = __umulhi(x, f.mul);
#else
  const std::uint32_t t = static_cast<std::uint32_t>((static_cast<std::uint64_t>(x) * f.mul) >> 32);
#endif
  return (t + ((x - t) >> f.sh1)) >> f.sh2;
}

}  // namespace dsv4::gpu
