// Helpers shared by the CPU tests: seeds (printed on failure, replayable), ulp checks.
#pragma once

#include "reference/numerics/numerics.hpp"

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>

namespace dsv4::test {

/// Seed for randomized tests: DSV4LAB_SEED replays one seed; otherwise `fallback`.
inline std::uint64_t seed(std::uint64_t fallback) {
  if (const char* s = std::getenv("DSV4LAB_SEED")) return std::strtoull(s, nullptr, 10);
  return fallback;
}

/// Number of seeds a sweep runs (DSV4LAB_SEEDS overrides, e.g. 1 under sanitizers).
inline int seed_count(int fallback) {
  if (const char* s = std::getenv("DSV4LAB_SEEDS")) return std::max(1, std::atoi(s));
  return fallback;
}

inline std::string hex(float x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%08x(%a)", num::bits(x), static_cast<double>(x));
  return buf;
}

}  // namespace dsv4::test
