// Helpers shared by the CPU tests: seeds (printed on failure, replayable), ulp checks.
#pragma once

#include "reference/numerics/numerics.hpp"

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

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

/// A fresh folder under the system temp dir, removed with everything in it at scope exit.
/// tmp("x.h5") is a path inside it.
struct TempDir {
  std::filesystem::path dir;
  explicit TempDir(const std::string& tag) {
    dir = std::filesystem::temp_directory_path() / ("dsv4lab-test-" + tag + "-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string operator()(const std::string& name) const { return (dir / name).string(); }
};

/// The whole content of a file.
inline std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace dsv4::test
