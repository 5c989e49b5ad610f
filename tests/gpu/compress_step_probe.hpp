// The probe both step-math tests use (tests/gpu/test_compress_step.cpp on the CPU,
// tests/gpu/test_compress.cu on the device): the nine values weights / step / fold give for
// an (m, s) pair, from compress_math (the reference) or gpu::compress_fast (the kernels'
// branch-free forms), and the special values whose pairs every run checks.
#pragma once

#include "gpu/compress_step.hpp"
#include "reference/compress.hpp"

#include <vector>

namespace dsv4::test {

/// n, cm, cs of weights(m, s); m, l, a after step({m, 1.5, -0.25}, s, 0.75); m, l, a after
/// fold({m, 2, 3}, {s, 0.5, -1.25}). kFast: gpu::compress_fast, else compress_math.
template <bool kFast>
DSV4_HD void step_probe(float m, float s, float out[9]) {
  compress_math::Acc x{m, 1.5f, -0.25f}, y{m, 2.0f, 3.0f};
  const compress_math::Acc z{s, 0.5f, -1.25f};
  if constexpr (kFast) {
    gpu::compress_fast::weights(m, s, out[0], out[1], out[2]);
    gpu::compress_fast::step(x, s, 0.75f);
    gpu::compress_fast::fold(y, z);
  } else {
    compress_math::weights(m, s, out[0], out[1], out[2]);
    compress_math::step(x, s, 0.75f);
    compress_math::fold(y, z);
  }
  out[3] = x.m, out[4] = x.l, out[5] = x.a, out[6] = y.m, out[7] = y.l, out[8] = y.a;
}

/// Zeros, infinities, NaNs with payloads, exp's range edges, subnormals, the float range.
inline std::vector<float> step_probe_specials() {
  return {0.0f, -0.0f, num::inf(), num::neg_inf(), num::qnan(), num::from_bits(0x7fa0beefu),
          num::from_bits(0xffc00001u), 1.0f, -1.0f, 88.7f, -88.7f, 103.9f, -103.98f, 104.0f, -104.0f,
          1e-40f, -1e-40f, 3.4e38f, -3.4e38f, 0.5f, 2.0f};
}

}  // namespace dsv4::test
