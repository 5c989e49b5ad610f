// dsv4lab numerics core: the scalar building blocks shared by host references and
// device kernels. Everything here is a correctly rounded IEEE-754 binary32 operation
// (+ - * /, sqrt, fma, exact bit manipulation), so host and device give the same bits
// as long as the build rules of DESIGN §2 hold (no contraction, no fast math, no FTZ).
#pragma once

#include <cstdint>
#include <cstring>
#include <cmath>
#include <limits>

#if defined(__HIPCC__)
#include <hip/hip_runtime.h>  // __host__, __device__, __forceinline__ under hipcc
#endif

#if defined(__CUDACC__) || defined(__HIPCC__)
#define DSV4_HD __host__ __device__ __forceinline__
#else
#define DSV4_HD inline
#endif

// True inside the device pass of nvcc / hipcc.
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
#define DSV4_DEVICE_PASS 1
#else
#define DSV4_DEVICE_PASS 0
#endif

namespace dsv4::num {

DSV4_HD std::uint32_t bits(float x) {
#if DSV4_DEVICE_PASS
  return __float_as_uint(x);
#else
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}

DSV4_HD float from_bits(std::uint32_t u) {
#if DSV4_DEVICE_PASS
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

/// Fused multiply-add a*b + c with a single rounding (round to nearest even).
DSV4_HD float fma(float a, float b, float c) {
#if DSV4_DEVICE_PASS
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

DSV4_HD bool is_nan(float x) { return (bits(x) & 0x7fffffffu) > 0x7f800000u; }
DSV4_HD bool is_inf(float x) { return (bits(x) & 0x7fffffffu) == 0x7f800000u; }
DSV4_HD bool is_finite(float x) { return (bits(x) & 0x7f800000u) != 0x7f800000u; }
DSV4_HD bool sign_bit(float x) { return (bits(x) >> 31) != 0; }

DSV4_HD float inf() { return from_bits(0x7f800000u); }
DSV4_HD float neg_inf() { return from_bits(0xff800000u); }
DSV4_HD float qnan() { return from_bits(0x7fc00000u); }

/// Bit pattern with every NaN mapped to the canonical quiet NaN 0x7fc00000.
/// The numerics contract is bit-exact except for NaN payloads and NaN signs: IEEE 754
/// leaves them to the hardware (x86 propagates an input payload or makes 0xffc00000,
/// NVIDIA GPUs make 0x7fffffff), so all NaNs compare equal in every parity check.
DSV4_HD std::uint32_t canonical_bits(float x) {
  const std::uint32_t u = bits(x);
  return (u & 0x7fffffffu) > 0x7f800000u ? 0x7fc00000u : u;
}

/// Bit equality under the contract above: same bits, or both NaN.
DSV4_HD bool same_bits(float a, float b) { return canonical_bits(a) == canonical_bits(b); }

/// The same for a bf16 / fp16 pattern: NaN patterns (any payload) compare equal.
DSV4_HD bool same_bits_bf16(std::uint16_t a, std::uint16_t b) {
  const bool na = (a & 0x7fffu) > 0x7f80u, nb = (b & 0x7fffu) > 0x7f80u;
  return (na && nb) || a == b;
}
DSV4_HD bool same_bits_fp16(std::uint16_t a, std::uint16_t b) {
  const bool na = (a & 0x7fffu) > 0x7c00u, nb = (b & 0x7fffu) > 0x7c00u;
  return (na && nb) || a == b;
}

/// 2^n as a float for n in [-126, 127] (exact, built from bits).
DSV4_HD float pow2i(int n) { return from_bits(static_cast<std::uint32_t>(n + 127) << 23); }

/// x * 2^n with a single rounding, for |x| in [0.5, 2) and n in [-190, 191]: the
/// first product is exact (stays normal), only the second one rounds.
DSV4_HD float scale2(float x, int n) {
  if (n > 127) return (x * pow2i(64)) * pow2i(n - 64);
  if (n < -126) return (x * pow2i(n + 64)) * pow2i(-64);
  return x * pow2i(n);
}

/// Round to the nearest integer (ties to even) for |x| < 2^22, by the magic-number trick.
DSV4_HD float round_int(float x) {
  const float magic = 12582912.0f;  // 1.5 * 2^23
  return (x + magic) - magic;
}

/// max that propagates NaN (either operand NaN gives NaN); max(-0, +0) = +0.
DSV4_HD float max_nan(float a, float b) {
  const float mx = (a == b) ? (sign_bit(a) ? b : a) : (a > b ? a : b);  // branch-free (selects)
  return (is_nan(a) || is_nan(b)) ? qnan() : mx;
}

/// Distance in units in the last place between two floats (0 when bit-equal or
/// both NaN; ±0 count as equal; a NaN against a number gives UINT32_MAX).
DSV4_HD std::uint32_t ulp_distance(float a, float b) {
  if (is_nan(a) || is_nan(b)) return (is_nan(a) && is_nan(b)) ? 0u : 0xffffffffu;
  auto key = [](float x) -> std::int64_t {
    const std::uint32_t u = bits(x);
    return (u >> 31) ? -static_cast<std::int64_t>(u & 0x7fffffffu)
                     : static_cast<std::int64_t>(u);
  };
  const std::int64_t d = key(a) - key(b);
  return static_cast<std::uint32_t>(d < 0 ? -d : d);
}

}  // namespace dsv4::num
