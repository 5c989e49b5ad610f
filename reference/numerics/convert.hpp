// bf16 and fp16 <-> fp32 conversions, round to nearest even, built from integer bit
// operations only (identical on host and device). A NaN stays a NaN (quiet, sign kept);
// fp16 overflow rounds to ±inf, fp16 underflow rounds through the subnormals to ±0.
#pragma once

#include "core.hpp"

namespace dsv4::num {

/// bf16 bit pattern -> float (exact).
DSV4_HD float bf16_to_float(std::uint16_t h) { return from_bits(static_cast<std::uint32_t>(h) << 16); }

/// float -> bf16 bit pattern, round to nearest even; NaN -> quiet NaN with the same sign.
DSV4_HD std::uint16_t float_to_bf16(float x) {
  const std::uint32_t u = bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);
  const std::uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>((u + rounding) >> 16);
}

/// fp16 bit pattern -> float (exact, subnormals included).
DSV4_HD float fp16_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  const std::uint32_t man = h & 0x3ffu;
  if (exp == 0x1fu) return from_bits(sign | 0x7f800000u | (man << 13));  // inf / NaN
  if (exp == 0) {
    // ±0 or subnormal: man * 2^-24, exact in float.
    const float mag = static_cast<float>(man) * pow2i(-24);
    return sign ? -mag : mag;
  }
  return from_bits(sign | ((exp + 112u) << 23) | (man << 13));
}

/// float -> fp16 bit pattern, round to nearest even; NaN -> quiet NaN with the same sign.
DSV4_HD std::uint16_t float_to_fp16(float x) {
  const std::uint32_t u = bits(x);
  const std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  const std::uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
  if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65520: inf
  if (a < 0x38800000u) {
    // Result is an fp16 subnormal or zero: shift the 24-bit significand right so that
    // one unit is 2^-24, rounding to nearest even on the shifted-out bits.
    if (a < 0x33000000u) return sign;  // < 2^-25 (exactly 2^-25 ties to even 0)
    const std::uint32_t e = a >> 23;             // 102 .. 112
    const std::uint32_t m = (a & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126u - e;        // 14 .. 24
    const std::uint32_t q = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1u);
    const std::uint32_t half = 1u << (shift - 1u);
    const std::uint32_t r = q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
    return static_cast<std::uint16_t>(sign | r);
  }
  // Normal: rebias the exponent and round the 13 dropped bits to nearest even.
  const std::uint32_t rebased = a - (112u << 23);
  const std::uint32_t rounded = rebased + 0xfffu + ((rebased >> 13) & 1u);
  return static_cast<std::uint16_t>(sign | (rounded >> 13));
}

/// Round a float to bf16 precision and back (the value a bf16 store keeps).
DSV4_HD float round_bf16(float x) { return bf16_to_float(float_to_bf16(x)); }
/// Round a float to fp16 precision and back.
DSV4_HD float round_fp16(float x) { return fp16_to_float(float_to_fp16(x)); }

}  // namespace dsv4::num
