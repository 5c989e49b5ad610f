// Emulation of the parallel schedules our kernels use, so a CPU reference can combine
// partial results in exactly the order the GPU does.
//
// xor-butterfly: at each stage (offset W/2, W/4, ..., 1) lane i replaces its value by
// op(v[i], v[i ^ offset]). After log2(W) stages every lane holds the same value.
// This is what __shfl_xor_sync (CUDA, W = 32) and __shfl_xor (HIP, W = 64) loops give.
#pragma once

#include "core.hpp"

#include <span>
#include <string>
#include <vector>

namespace dsv4::num {

/// How per-thread or per-warp partials of one row are combined.
enum class MergeOrder {
  sequential,     ///< one thread folds its elements left to right
  xor_butterfly,  ///< lanes of a warp combined by an xor butterfly (see above)
  warp0_in_order, ///< per-warp partials folded by warp 0 in warp order 1, 2, ...
};

inline const char* to_string(MergeOrder m) {
  switch (m) {
    case MergeOrder::sequential: return "sequential";
    case MergeOrder::xor_butterfly: return "xor_butterfly";
    case MergeOrder::warp0_in_order: return "warp0_in_order";
  }
  return "?";
}

/// The parallel schedule a reference re-creates. Printed in every report so that a
/// reader knows which kernel variant's bits the reference reproduces.
struct Schedule {
  int warp_width = 32;    ///< 32 (NVIDIA) or 64 (AMD wave64)
  int threads = 32;       ///< threads per block cooperating on one row / window
  int vector_width = 1;   ///< contiguous elements one thread owns per load
  int warps_per_row = 1;  ///< warps whose partials are merged for one row
  MergeOrder merge = MergeOrder::sequential;
  const char* variant = "";  ///< kernel variant name (static string)

  std::string to_string() const {
    return std::string("variant=") + (variant[0] ? variant : "-") +
           " warp_width=" + std::to_string(warp_width) + " threads=" + std::to_string(threads) +
           " vector_width=" + std::to_string(vector_width) +
           " warps_per_row=" + std::to_string(warps_per_row) +
           " merge=" + num::to_string(merge);
  }
};

/// Emulate an xor butterfly over `lanes` (size = warp width, a power of two) in place.
/// Returns lane 0's final value.
template <class T, class Op>
T xor_butterfly(std::span<T> lanes, Op op) {
  const std::size_t w = lanes.size();
  std::vector<T> next(w);
  for (std::size_t offset = w / 2; offset >= 1; offset /= 2) {
    for (std::size_t i = 0; i < w; ++i) next[i] = op(lanes[i], lanes[i ^ offset]);
    for (std::size_t i = 0; i < w; ++i) lanes[i] = next[i];
  }
  return lanes[0];
}

template <class T>
T butterfly_sum(std::span<T> lanes) {
  return xor_butterfly(lanes, [](T a, T b) { return a + b; });
}

template <class T>
T butterfly_max(std::span<T> lanes) {
  return xor_butterfly(lanes, [](T a, T b) { return max_nan(a, b); });
}

}  // namespace dsv4::num
