// Branch-free forms of the compressor's scalar math (reference/compress.hpp,
// compress_math::weights / step / fold), for the kernels in gpu/compress.cu.
//
// The reference functions branch on the data (NaN, which operand is the max, the range of
// exp's argument, scale2's exponent range). On a GPU those branches diverge inside a warp
// and serialise the two elements a thread reduces, so a step costs several times its
// arithmetic. Here every case is computed and the result chosen with selects; each function
// returns the reference's bits for every input (same operations on the selected path;
// x * 1.0f is exact), except that on the device a NaN max carries the hardware's payload
// (max_nan below; outputs are canonicalised). Host + device, so the equality can be checked
// on the CPU, and on the device under num::same_bits.
#pragma once

#include "reference/compress.hpp"
#include "reference/numerics/numerics.hpp"

namespace dsv4::gpu::compress_fast {

/// num::exp(x) for x <= 0 or NaN (the only arguments weights_at passes), same bits, fewer
/// instructions: the same operations as num::exp on its path, without the cases that need
/// x > 0 (overflow to inf, the big-exponent split of scale2), and the integer n read from
/// the bits of the rounding sum (t = magic + n exactly, |n| <= 150) instead of converted.
DSV4_HD float exp_nonpos(float x) {
  using namespace num::detail;
  constexpr float magic = 12582912.0f;                  // num::round_int's 1.5 * 2^23
  constexpr float kInRange = -103.972084045410156f;     // below it e^x < 2^-150
  const bool in_range = x >= kInRange;                  // false for NaN too
  const float xc = in_range ? x : 0.0f;                 // keeps the discarded path finite
  const float t = xc * kLog2e + magic;                  // two roundings, as round_int(xc * kLog2e)
  const float n = t - magic;
  const float r_hi = num::fma(-n, kLn2Hi, xc);
  const float c = -n * kLn2Lo;
  const float r = r_hi + c;
  const float r_lo = (r_hi - r) + c;
  const float p =
      num::fma(num::fma(num::fma(num::fma(num::fma(kExpP5, r, kExpP4), r, kExpP3), r, kExpP2), r, kExpP1), r, kExpP0);
  const float y = 1.0f + (r + num::fma(r * r, p, r_lo));
  const int ni = static_cast<int>(num::bits(t) - num::bits(magic));  // == static_cast<int>(n), in [-150, 0]
  const bool tiny = ni < -126;
  const float e = (y * num::pow2i(tiny ? ni + 64 : ni)) * num::pow2i(tiny ? -64 : 0);
#if defined(__CUDA_ARCH__)
  // The same choice as below, in PTX selects: nvcc compiles the C++ form to a branch around
  // the rare case, a convergence region per exp that kept a group's exps from interleaving.
  float out;
  asm("{\n\t.reg .pred p_in, p_nan;\n\t.reg .f32 z;\n\t"
      "setp.nan.f32 p_nan, %1, %1;\n\t"
      "selp.f32 z, %3, 0f00000000, p_nan;\n\t"
      "setp.ge.f32 p_in, %1, %4;\n\t"
      "selp.f32 %0, %2, z, p_in;\n\t}"
      : "=f"(out)
      : "f"(x), "f"(e), "f"(num::qnan()), "f"(kInRange));
  return out;
#else
  return in_range ? e : (x == x ? 0.0f : num::qnan());
#endif
}

/// num::max_nan(a, b): the same value, and NaN when either is NaN. From sm_80 on it is one
/// instruction (PTX max.NaN.f32, which orders -0 below +0) whose NaN is the hardware's own
/// (0x7fffffff, not num::qnan()): only the running max carries it, and every stored output
/// is canonicalised (compress_math::finish), so the kernels' bits do not change. num::max_nan's
/// selects compile to a branchy sequence on the device, and a group's running maxima are a
/// chain of them.
DSV4_HD float max_nan(float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  float r;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
#else
  return num::max_nan(a, b);
#endif
}

/// The weights of compress_math::weights(m, s, ...) given its n = max_nan(m, s): split off so
/// that a run of steps can compute its running maxima first (a short chain) and then the
/// exps of all its steps independently of each other. The exp argument is <= 0 or NaN
/// (min - max of m and s). Where n is NaN, same is NaN, s > m is false and the exp of
/// s - n is NaN, so no separate NaN case is needed; n == -inf only when m = s = -inf.
DSV4_HD void weights_at(float m, float s, float n, float& cm, float& cs) {
  const bool n_ninf = n == num::neg_inf();
  const float same = num::is_finite(n) ? 1.0f : (n_ninf ? 0.0f : num::qnan());
  const bool s_max = s > m;  // false when either is NaN
  const float e = exp_nonpos((s_max ? m : s) - n);
  cm = s_max ? e : same;
  cs = s_max ? same : (n_ninf ? 0.0f : e);
}

/// compress_math::weights(m, s, n, cm, cs), same bits, one exp, without branches.
DSV4_HD void weights(float m, float s, float& n, float& cm, float& cs) {
  n = max_nan(m, s);
  weights_at(m, s, n, cm, cs);
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
