// Byte buffers of the compressor tests (CPU and GPU): element i of a f32 or bf16 array.
#pragma once

#include "reference/compress.hpp"
#include "reference/numerics/numerics.hpp"

#include <cstdint>
#include <cstring>
#include <vector>

namespace dsv4::test {

using Bytes = std::vector<unsigned char>;

/// Store x as element i of v (rounded to bf16 when d is bf16).
inline void put(Bytes& v, Dtype d, std::int64_t i, float x) {
  if (d == Dtype::bf16) {
    const std::uint16_t h = num::float_to_bf16(x);
    std::memcpy(v.data() + i * 2, &h, 2);
  } else {
    std::memcpy(v.data() + i * 4, &x, 4);
  }
}

/// Element i of v as a float.
inline float get(const Bytes& v, Dtype d, std::int64_t i) {
  if (d == Dtype::bf16) {
    std::uint16_t h;
    std::memcpy(&h, v.data() + i * 2, 2);
    return num::bf16_to_float(h);
  }
  float x;
  std::memcpy(&x, v.data() + i * 4, 4);
  return x;
}

}  // namespace dsv4::test
