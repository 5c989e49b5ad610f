// A merge problem that owns its buffers, shared by the CPU and GPU merge tests.
#pragma once

#include "reference/lse_merge.hpp"
#include "reference/numerics/numerics.hpp"

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace dsv4::test {

struct OwnedMerge {
  std::vector<float> v32;
  std::vector<std::uint16_t> v16;
  std::vector<float> lse, sink;
  std::vector<std::int32_t> num_splits, offsets;
  MergeProblem p;
  bool packed = false;

  /// Zeroed inputs for `splits` partials of [tokens][heads][D] (packed: [splits][heads][D]).
  void alloc(VDtype dt, std::int64_t splits, std::int64_t tokens, std::int64_t heads, std::int64_t D, bool pk = false) {
    p.v_dtype = dt;
    p.splits = splits;
    p.tokens = tokens;
    p.heads = heads;
    p.D = D;
    packed = pk;
    const std::int64_t rows = splits * (pk ? 1 : tokens) * heads;
    if (dt == VDtype::f32) v32.assign(rows * D, 0.0f); else v16.assign(rows * D, 0);
    lse.assign(rows, 0.0f);
  }
  std::int64_t v_count() const {
    return static_cast<std::int64_t>(p.v_dtype == VDtype::f32 ? v32.size() : v16.size());
  }
  void set_v(std::int64_t idx, float x) {
    if (p.v_dtype == VDtype::f32) v32[idx] = x; else v16[idx] = num::float_to_bf16(x);
  }
  float get_v(std::int64_t idx) const {
    return p.v_dtype == VDtype::f32 ? v32[idx] : num::bf16_to_float(v16[idx]);
  }
  /// The problem with its pointers set to the owned buffers.
  const MergeProblem& bind() {
    p.v_partial = p.v_dtype == VDtype::f32 ? static_cast<const void*>(v32.data()) : static_cast<const void*>(v16.data());
    p.lse_partial = lse.data();
    p.sink = sink.empty() ? nullptr : sink.data();
    p.num_splits = num_splits.empty() ? nullptr : num_splits.data();
    p.split_offsets = offsets.empty() ? nullptr : offsets.data();
    return p;
  }
  std::string describe() const {
    std::ostringstream s;
    s << to_string(p.v_dtype) << " splits " << p.splits << " tokens " << p.tokens << " heads " << p.heads << " D " << p.D
      << (packed ? " packed" : (num_splits.empty() ? " dense" : " ragged")) << " policy " << to_string(p.policy)
      << " sink " << (sink.empty() ? "none" : "yes") << (p.lse_includes_sink ? " (in lse)" : "");
    return s.str();
  }
};

}  // namespace dsv4::test
