// Branch-free forms of the compressor's scalar math (reference/compress.hpp,
// compress_math::weights / step / fold), for the kernels in gpu/compress.cu. num::exp and
// num::max_nan are branch-free themselves (reference/numerics).
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

/// compress_math::weights(m, s, n, cm, cs), same bits, one exp, without branches.
DSV4_HD void weights(float m, float s, float& n, float& cm, float& cs) {
  n = num::max_nan(m, s);
  const float ninf = num::neg_inf();
  const float same = num::is_finite(n) ? 1.0f : (n == ninf ? 0.0f : num::qnan());
  const bool s_max = s > m;  // false when either is NaN
  const float e = num::exp(s_max ? m - n : s - n);
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
