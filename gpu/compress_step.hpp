// Branch-free forms of the compressor's scalar math (reference/compress.hpp,
// compress_math::weights / step / fold and num::exp), for the kernels in gpu/compress.cu.
//
// The reference functions branch on the data (NaN, which operand is the max, the range of
// exp's argument, scale2's exponent range). On a GPU those branches diverge inside a warp
// and serialise the two elements a thread reduces, so a step costs several times its
// arithmetic. Here every case is computed and the result chosen with selects; each function
// returns the reference's bits for every input (same operations on the selected path;
// x * 1.0f is exact). Host + device, so the equality can be checked on the CPU.
#pragma once

#include "reference/compress.hpp"
#include "reference/numerics/numerics.hpp"

namespace dsv4::gpu::compress_fast {

/// num::exp(x), same bits, without branches.
DSV4_HD float exp(float x) {
  using namespace num::detail;
  const bool high = x > 88.72283935546875f;     // e^x rounds to +inf
  const bool low = x < -103.972084045410156f;   // e^x rounds to 0
  const bool nan = num::is_nan(x);
  const float xc = (high || low || nan) ? 0.0f : x;  // keeps the discarded path finite
  const float n = num::round_int(xc * kLog2e);
  const float r_hi = num::fma(-n, kLn2Hi, xc);
  const float c = -n * kLn2Lo;
  const float r = r_hi + c;
  const float r_lo = (r_hi - r) + c;
  const float p =
      num::fma(num::fma(num::fma(num::fma(num::fma(kExpP5, r, kExpP4), r, kExpP3), r, kExpP2), r, kExpP1), r, kExpP0);
  const float y = 1.0f + (r + num::fma(r * r, p, r_lo));
  // num::scale2(y, ni) for ni in [-150, 128]: (y * 2^n1) * 2^n2 with n2 = 0 in the normal
  // range (one rounding, then an exact * 1).
  const int ni = static_cast<int>(n);
  const bool big = ni > 127, tiny = ni < -126;
  const int n1 = big ? 64 : (tiny ? ni + 64 : ni);
  const int n2 = big ? ni - 64 : (tiny ? -64 : 0);
  const float e = (y * num::pow2i(n1)) * num::pow2i(n2);
  return nan ? num::qnan() : (high ? num::inf() : (low ? 0.0f : e));
}

/// num::max_nan(a, b), same bits, without branches.
DSV4_HD float max_nan(float a, float b) {
  const float mx = (a == b) ? (num::sign_bit(a) ? b : a) : (a > b ? a : b);
  return (num::is_nan(a) || num::is_nan(b)) ? num::qnan() : mx;
}

/// compress_math::weights(m, s, n, cm, cs), same bits, one exp, without branches.
DSV4_HD void weights(float m, float s, float& n, float& cm, float& cs) {
  n = max_nan(m, s);
  const float ninf = num::neg_inf();
  const float same = num::is_finite(n) ? 1.0f : (n == ninf ? 0.0f : num::qnan());
  const bool s_max = s > m;  // false when either is NaN
  const float e = exp(s_max ? m - n : s - n);
  const bool nan = num::is_nan(n);
  cm = nan ? num::qnan() : (s_max ? e : same);
  cs = nan ? num::qnan() : (s_max ? same : ((s == ninf && n == ninf) ? 0.0f : e));
}

/// compress_math::step, same bits.
DSV4_HD void step(compress_math::Acc& x, float s, float v) {
  float n, c, t;
  weights(x.m, s, n, c, t);
  x.l = num::fma(x.l, c, t);
  x.a = num::fma(x.a, c, v * t);
  x.m = n;
}

/// compress_math::fold, same bits.
DSV4_HD void fold(compress_math::Acc& x, const compress_math::Acc& y) {
  float n, c1, c2;
  weights(x.m, y.m, n, c1, c2);
  x.l = num::fma(x.l, c1, y.l * c2);
  x.a = num::fma(x.a, c1, y.a * c2);
  x.m = n;
}

}  // namespace dsv4::gpu::compress_fast
