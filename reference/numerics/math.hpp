// Transcendental functions built only from correctly rounded binary32 operations
// (+ - * /, fma) and exact bit manipulation, so that the host reference and the device
// kernels produce identical bits (DESIGN §2). No libm call, no hardware approximation.
//
// Accuracy against the correctly rounded result (max ulp distance, every one of the
// 2^32 inputs, subnormals included; tests/reference/test_numerics.cpp, label `long`):
//   exp    <= 1 ulp    exp2   <= 1 ulp
//   log    <= 1 ulp    log2   <= 1 ulp    log1p  <= 1 ulp
// (measured 2026-11-21: exp 1, exp2 1, log 1, log2 1, log1p 1; see the closing note of
// the foundation issue for the exhaustive run).
//
// Special values follow C99 Annex F: exp(-inf) = 0, exp(+inf) = +inf, log(0) = -inf,
// log(x<0) = NaN, log1p(-1) = -inf, NaN in -> the canonical quiet NaN out.
#pragma once

#include "core.hpp"

namespace dsv4::num {

namespace detail {

// Minimax polynomial coefficients, fitted for dsv4lab (Lawson iteration on Chebyshev
// nodes, relative error of the final result), rounded to binary32.
// exp(r) = 1 + r + r^2 * P(r), |r| <= ln2/2.
constexpr float kExpP0 = 5.0000000e-01f, kExpP1 = 1.6666666e-01f, kExpP2 = 4.1666295e-02f,
                kExpP3 = 8.3334967e-03f, kExpP4 = 1.3944649e-03f, kExpP5 = 1.9790353e-04f;
// 2^f = 1 + f * Q(f), |f| <= 1/2.
constexpr float kExp2Q0 = 6.9314718e-01f, kExp2Q1 = 2.4022651e-01f, kExp2Q2 = 5.5504102e-02f,
                kExp2Q3 = 9.6180383e-03f, kExp2Q4 = 1.3333935e-03f, kExp2Q5 = 1.5466756e-04f,
                kExp2Q6 = 1.5196157e-05f;
// log(1+f) = 2 atanh(s), s = f/(2+f): 2 atanh(s) = 2s + s z T(z), z = s^2.
constexpr float kLogT0 = 0.6666667f, kLogT1 = 0.39999995f, kLogT2 = 0.2857211f,
                kLogT3 = 0.22176237f, kLogT4 = 0.19583459f;

constexpr float kLn2Hi = 6.93145751953125e-01f;   // 16 significant bits: n*hi is exact
constexpr float kLn2Lo = 1.42860682030941723e-06f; // ln2 - kLn2Hi
constexpr float kLog2e = 1.44269502162933349609e+00f;
constexpr float kLog2eLo = 1.925963033500011079e-08f; // log2(e) - kLog2e

/// log(1+f) as hi + lo for f in [sqrt(1/2) - 1, sqrt(2) - 1].
/// Uses log(1+f) = f - hf + s (hf + z T(z)), hf = f^2 / 2 (exact rearrangement of 2 atanh(s)).
DSV4_HD void log1p_core(float f, float& hi, float& lo) {
  const float s = f / (2.0f + f);
  const float z = s * s;
  const float t = fma(fma(fma(fma(kLogT4, z, kLogT3), z, kLogT2), z, kLogT1), z, kLogT0);
  const float hf = 0.5f * f * f;
  const float corr = s * fma(z, t, hf);  // s (hf + z T)
  hi = f - hf;
  lo = ((f - hi) - hf) + corr;
}

/// Split a positive finite x into 2^e * (1 + f) with 1 + f in [sqrt(1/2), sqrt(2)).
DSV4_HD void reduce_log(float x, int& e, float& f) {
  std::uint32_t u = bits(x);
  e = 0;
  if (u < 0x00800000u) {  // subnormal: scale into the normal range (exact)
    x *= pow2i(25);
    u = bits(x);
    e = -25;
  }
  std::uint32_t mant = u & 0x007fffffu;
  e += static_cast<int>(u >> 23) - 127;
  if (mant > 0x3504f3u) {  // mantissa above sqrt(2): use the half-size binade
    mant |= 0x3f000000u;   // m in [sqrt(2)/2, 1)
    e += 1;
  } else {
    mant |= 0x3f800000u;   // m in [1, sqrt(2)]
  }
  f = from_bits(mant) - 1.0f;  // exact (Sterbenz)
}

/// e * ln2 + (hi + lo), with e * kLn2Hi exact and the rounding error of the leading sum kept.
DSV4_HD float join_log(int e, float hi, float lo) {
  const float fe = static_cast<float>(e);
  const float a = fe * kLn2Hi;     // exact
  const float s = a + hi;
  const float err = (a - s) + hi;  // exact when e != 0 (|a| >= |hi|); 0 when e == 0
  return s + (err + fma(fe, kLn2Lo, lo));
}

}  // namespace detail

/// e^x, <= 1 ulp. Branch-free (every case computed, the result chosen by selects), so the
/// lanes of a warp never diverge on the argument's range.
DSV4_HD float exp(float x) {
  using namespace detail;
  const bool high = x > 88.72283935546875f;     // e^x > FLT_MAX (rounds to inf)
  const bool low = x < -103.972084045410156f;   // e^x < 2^-150: rounds to 0
  const bool nan = is_nan(x);
  const float xc = (high || low || nan) ? 0.0f : x;  // keeps the discarded path finite
  const float n = round_int(xc * kLog2e);
  const float r_hi = fma(-n, kLn2Hi, xc);       // exact: n*kLn2Hi has <= 24 bits
  const float c = -n * kLn2Lo;
  const float r = r_hi + c;
  const float r_lo = (r_hi - r) + c;            // |r_hi| >= |c| (or r_hi == 0)
  const float p = fma(fma(fma(fma(fma(kExpP5, r, kExpP4), r, kExpP3), r, kExpP2), r, kExpP1), r, kExpP0);
  const float y = 1.0f + (r + fma(r * r, p, r_lo));
  // scale2(y, n) without branches: (y * 2^n1) * 2^n2, n2 = 0 in the normal range (exact * 1).
  const int ni = static_cast<int>(n);
  const bool big = ni > 127, tiny = ni < -126;
  const int n1 = big ? 64 : (tiny ? ni + 64 : ni);
  const int n2 = big ? ni - 64 : (tiny ? -64 : 0);
  const float e = (y * pow2i(n1)) * pow2i(n2);
  return nan ? qnan() : (high ? inf() : (low ? 0.0f : e));
}

/// 2^x, <= 1 ulp.
DSV4_HD float exp2(float x) {
  using namespace detail;
  if (is_nan(x)) return qnan();
  if (x >= 128.0f) return inf();
  if (x <= -150.0f) return 0.0f;                   // 2^-150 ties to even (0)
  const float n = round_int(x);
  const float f = x - n;                            // exact, |f| <= 1/2
  const float q = fma(fma(fma(fma(fma(fma(kExp2Q6, f, kExp2Q5), f, kExp2Q4), f, kExp2Q3), f, kExp2Q2), f, kExp2Q1), f, kExp2Q0);
  const float y = fma(f, q, 1.0f);
  return scale2(y, static_cast<int>(n));
}

/// Natural logarithm, <= 1 ulp.
DSV4_HD float log(float x) {
  using namespace detail;
  if (is_nan(x)) return qnan();
  if (x == 0.0f) return neg_inf();
  if (x < 0.0f) return qnan();
  if (is_inf(x)) return x;
  int e;
  float f, hi, lo;
  reduce_log(x, e, f);
  log1p_core(f, hi, lo);
  return join_log(e, hi, lo);
}

/// Base-2 logarithm, <= 1 ulp.
DSV4_HD float log2(float x) {
  using namespace detail;
  if (is_nan(x)) return qnan();
  if (x == 0.0f) return neg_inf();
  if (x < 0.0f) return qnan();
  if (is_inf(x)) return x;
  int e;
  float f, hi, lo;
  reduce_log(x, e, f);
  log1p_core(f, hi, lo);
  // (hi + lo) * log2(e) with the product's rounding error kept.
  const float p = hi * kLog2e;
  const float p_err = fma(hi, kLog2e, -p);
  const float tail = p_err + fma(hi, kLog2eLo, lo * kLog2e);
  const float fe = static_cast<float>(e);
  const float s = fe + p;
  const float err = (fe - s) + p;                   // exact when e != 0; 0 when e == 0
  return s + (err + tail);
}

/// log(1 + x), <= 1 ulp.
DSV4_HD float log1p(float x) {
  using namespace detail;
  if (is_nan(x)) return qnan();
  if (x == -1.0f) return neg_inf();
  if (x < -1.0f) return qnan();
  if (is_inf(x) || x == 0.0f) return x;  // keeps the sign of zero
  float hi, lo;
  if (x >= -0.29289321881345248f && x <= 0.41421356237309503f) {
    log1p_core(x, hi, lo);  // f = x exactly: no reduction error
    return hi + lo;
  }
  // u = 1 + x rounded; c = (1 + x) - u exactly (x is far from -1 here), carried to the end.
  const float u = 1.0f + x;
  const float c = (x > 1.0f) ? (x - u) + 1.0f : (1.0f - u) + x;
  int e;
  float f;
  reduce_log(u, e, f);
  log1p_core(f, hi, lo);
  return join_log(e, hi, lo + c / u);
}

}  // namespace dsv4::num
