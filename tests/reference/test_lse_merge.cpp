// LSE merge reference: oracle agreement (cosine, error bounds tied to the inputs, LSE gaps
// of ±80 and ±200), the special-value matrix with outputs and diagnostics derived from the
// rules of DESIGN §3.2, exact hand-derived cases, layout invariances, and bad input.
#define BOOST_TEST_MODULE reference_lse_merge
#include <boost/test/unit_test.hpp>

#include "reference/lse_merge.hpp"
#include "reference/status.hpp"
#include "test_util.hpp"
#include "reference/lse_merge_fixtures.hpp"

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

using namespace dsv4;
using num::bits;
using num::from_bits;

namespace {

using Owned = test::OwnedMerge;

struct Out {
  std::vector<float> v;        // as floats (bf16 widened)
  std::vector<std::uint32_t> vbits;  // stored bit patterns (f32 bits or bf16 bits)
  std::vector<float> lse;
  std::vector<MergeDiagnostic> diags;
};

Out run_reference(const MergeProblem& p) {
  Out o;
  const std::size_t n = static_cast<std::size_t>(p.tokens * p.heads * p.D);
  o.lse.assign(p.tokens * p.heads, 0.0f);
  if (p.v_dtype == VDtype::f32) {
    std::vector<float> v(n, 1234.5f);
    merge_reference(p, v.data(), o.lse.data(), &o.diags);
    for (float x : v) { o.v.push_back(x); o.vbits.push_back(bits(x)); }
  } else {
    std::vector<std::uint16_t> v(n, 0x1234);
    merge_reference(p, v.data(), o.lse.data(), &o.diags);
    for (auto x : v) { o.v.push_back(num::bf16_to_float(x)); o.vbits.push_back(x); }
  }
  return o;
}

std::string describe(const MergeDiagnostic& g) {
  return "{token " + std::to_string(g.token) + ", head " + std::to_string(g.head) + ", input " + std::to_string(g.input) +
         ", scope '" + g.scope + "', op '" + g.op + "', value " + test::hex(g.value) + ", avoided_by '" + g.avoided_by +
         "', cause '" + g.cause + "'}";
}

float round_to(VDtype dt, float x) { return dt == VDtype::bf16 ? num::round_bf16(x) : x; }

// ---------------------------------------------------------------------------------------------
// Oracle vs reference on random inputs.

struct RandomSpec {
  VDtype dt;
  std::int64_t splits, tokens, heads, D;
  double gap;      // 0: lse uniform in [-10, 10]; else inputs alternate +gap / -gap around [-5, 5]
  int sink_mode;   // 0 none, 1 near the lse, 2 far above (+100), 3 far below
  bool ragged;
  bool includes;
};

Owned random_problem(const RandomSpec& s, std::mt19937_64& rng) {
  Owned o;
  o.alloc(s.dt, s.splits, s.tokens, s.heads, s.D);
  std::uniform_real_distribution<float> uv(-1.0f, 1.0f), ul(-5.0f, 5.0f), ul10(-10.0f, 10.0f);
  for (std::size_t i = 0; i < (s.dt == VDtype::f32 ? o.v32.size() : o.v16.size()); ++i) o.set_v(i, uv(rng) * 3.0f);
  const std::int64_t per = s.tokens * s.heads;
  for (std::int64_t i = 0; i < s.splits; ++i)
    for (std::int64_t r = 0; r < per; ++r) {
      float l = s.gap == 0 ? ul10(rng) : ul(rng) + static_cast<float>((i % 2 ? -s.gap : s.gap) * ((r % 3) ? 1 : -1));
      o.lse[i * per + r] = l;
    }
  if (s.sink_mode) {
    o.sink.resize(s.heads);
    for (auto& x : o.sink) x = s.sink_mode == 1 ? ul(rng) : (s.sink_mode == 2 ? 100.0f + ul(rng) : -100.0f + ul(rng));
  }
  if (s.ragged) {
    o.num_splits.resize(s.tokens);
    std::uniform_int_distribution<int> un(0, static_cast<int>(s.splits));
    for (auto& n : o.num_splits) n = un(rng);
  }
  o.p.lse_includes_sink = s.includes;
  o.bind();
  return o;
}

}  // namespace

BOOST_AUTO_TEST_CASE(oracle_agreement_random) {
  const std::uint64_t seed = test::seed(4001);
  std::mt19937_64 rng(seed);
  const std::vector<RandomSpec> specs = {
      {VDtype::f32, 2, 7, 65, 64, 0, 0, false, false},   {VDtype::f32, 2, 5, 3, 512, 80, 1, false, true},
      {VDtype::f32, 3, 7, 5, 128, 200, 1, false, false}, {VDtype::f32, 8, 4, 9, 72, 0, 2, true, true},
      {VDtype::f32, 32, 3, 5, 128, 80, 3, true, false},  {VDtype::f32, 256, 2, 3, 8, 0, 1, false, true},
      {VDtype::f32, 7, 6, 4, 1024, 200, 0, true, false}, {VDtype::bf16, 2, 7, 65, 64, 0, 1, false, false},
      {VDtype::bf16, 3, 5, 3, 512, 80, 0, false, false}, {VDtype::bf16, 32, 4, 6, 128, 200, 2, true, true},
      {VDtype::bf16, 1, 7, 7, 8, 0, 1, false, true},
  };
  for (int rep = 0; rep < test::seed_count(2); ++rep) {
    for (std::size_t si = 0; si < specs.size(); ++si) {
      const RandomSpec& s = specs[si];
      Owned o = random_problem(s, rng);
      const MergeProblem& p = o.p;
      const Out ref = run_reference(p);
      std::vector<double> ov(p.tokens * p.heads * p.D), ol(p.tokens * p.heads);
      merge_oracle(p, ov.data(), ol.data());
      BOOST_TEST_INFO("seed " << seed << " rep " << rep << " spec " << si << " dtype " << to_string(s.dt) << " splits "
                              << s.splits << " D " << s.D << " gap " << s.gap);
      BOOST_REQUIRE(ref.diags.empty());
      double min_cos = 1.0, worst_ratio = 0.0, worst_lse_ratio = 0.0;
      for (std::int64_t row = 0; row < p.tokens * p.heads; ++row) {
        const std::int64_t t = row / p.heads;
        const int n = p.num_splits ? p.num_splits[t] : static_cast<int>(p.splits);
        if (n == 0) {
          BOOST_REQUIRE(num::is_inf(ref.lse[row]) && ref.lse[row] < 0);
          for (std::int64_t d = 0; d < p.D; ++d) BOOST_REQUIRE_EQUAL(ref.vbits[row * p.D + d], 0u);
          continue;
        }
        // Per-element error bound tied to the inputs: (2n + 16) ulp of sum_i s_i |v_i[d]|.
        double m = -INFINITY;
        for (int i = 0; i < n; ++i) m = std::max(m, static_cast<double>(p.lse_partial[i * p.tokens * p.heads + row]));
        double W = 0;
        for (int i = 0; i < n; ++i) W += std::exp(p.lse_partial[i * p.tokens * p.heads + row] - m);
        double div = 1.0;
        if (p.sink) div = 1.0 + std::exp(p.sink[row % p.heads] - (m + std::log(W)));
        double dot = 0, na = 0, nb = 0;
        for (std::int64_t d = 0; d < p.D; ++d) {
          double mag = 0;
          for (int i = 0; i < n; ++i)
            mag += std::exp(p.lse_partial[i * p.tokens * p.heads + row] - m) / W *
                   std::fabs(o.get_v((i * p.tokens * p.heads + row) * p.D + d));
          mag /= div;
          const double a = ref.v[row * p.D + d], b = ov[row * p.D + d];
          double bound = (2.0 * n + 16.0) * std::ldexp(mag, -23) + 1e-37;
          if (s.dt == VDtype::bf16) bound += std::ldexp(std::fabs(b), -8);
          const double err = std::fabs(a - b);
          worst_ratio = std::max(worst_ratio, err / bound);
          if (err > bound)
            BOOST_FAIL("row " << row << " d " << d << ": reference " << test::hex(ref.v[row * p.D + d]) << " oracle "
                              << b << " |err| " << err << " > bound " << bound);
          dot += a * b;
          na += a * a;
          nb += b * b;
        }
        if (na > 0 && nb > 0) min_cos = std::min(min_cos, dot / std::sqrt(na * nb));
        const double lse_bound = std::ldexp(2.0 * std::fabs(ol[row]) + 2.0 * n + 8.0, -23);
        const double lse_err = std::fabs(ref.lse[row] - ol[row]);
        worst_lse_ratio = std::max(worst_lse_ratio, lse_err / lse_bound);
        if (lse_err > lse_bound)
          BOOST_FAIL("row " << row << ": lse reference " << test::hex(ref.lse[row]) << " oracle " << ol[row] << " |err| "
                            << lse_err << " > " << lse_bound);
      }
      const double cos_min_required = s.dt == VDtype::f32 ? 0.9999999 : 0.9999;
      BOOST_CHECK_MESSAGE(min_cos >= cos_min_required, "min cosine " << min_cos << " < " << cos_min_required);
      BOOST_TEST_MESSAGE("spec " << si << ": min cosine " << min_cos << ", worst err/bound v " << worst_ratio
                                 << ", lse " << worst_lse_ratio);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Special-value matrix. Classes of an input lse: F finite, E -inf, P +inf, N NaN.
// Finite lse of input i: 1.5, -150, -300: exp(-151.5) and exp(-301.5) underflow to 0 in
// fp32 (exp(x) = 0 for x < -103.97), so a row's merge is exactly its first finite input:
// v = v_j (weight 1, fma(1, v, -0) = v), lse = lse_j + log(1) = lse_j.
// v_i[d] = (i + 1) * (d - 3.5) / 2 for d >= 1, v_i[0] = +0 (i even) or -0 (i odd).

namespace {

enum Cls { F, E, P, N };
const char* cls_name[] = {"finite", "-inf", "+inf", "NaN"};
constexpr float kFiniteLse[3] = {1.5f, -150.0f, -300.0f};

float v_value(int i, int d) {
  if (d == 0) return (i % 2) ? -0.0f : 0.0f;
  return static_cast<float>(i + 1) * (static_cast<float>(d) - 3.5f) * 0.5f;
}

float lse_value(Cls c, int i) {
  switch (c) {
    case F: return kFiniteLse[i];
    case E: return num::neg_inf();
    case P: return num::inf();
    case N: return i % 2 ? from_bits(0xffc00001u) : num::qnan();  // negative NaN with a payload too
  }
  return 0;
}

enum SinkKind { sink_none, sink_finite, sink_pinf, sink_ninf, sink_nan };
const char* sink_name[] = {"none", "1.5", "+inf", "-inf", "NaN"};

struct Expected {
  bool nan_row = false;   // every v element and the lse are NaN
  std::vector<float> v;   // otherwise: the v row
  float lse = 0;
  bool has_diag = false;
  MergeDiagnostic diag;
};

/// The expected row of one case, derived from the rules of DESIGN §3.2 (not from the code).
Expected expected_row(const std::vector<Cls>& cls, LsePolicy pol, SinkKind sk, bool includes, VDtype dt,
                      const std::vector<std::string>& names, std::int64_t t, std::int64_t h) {
  Expected x;
  const int n = static_cast<int>(cls.size());
  auto scope = [&](int i) { return names.empty() ? "split " + std::to_string(i) : names[i]; };
  x.diag.token = t;
  x.diag.head = h;
  // Invalid inputs: a NaN lse (any policy), else a +inf lse under strict.
  for (int i = 0; i < n && !x.has_diag; ++i)
    if (cls[i] == N) {
      x.nan_row = x.has_diag = true;
      x.diag.input = i;
      x.diag.scope = scope(i);
      x.diag.op = "nan input";
      x.diag.value = num::qnan();
    }
  if (pol == LsePolicy::strict)
    for (int i = 0; i < n && !x.has_diag; ++i)
      if (cls[i] == P) {
        x.nan_row = x.has_diag = true;
        x.diag.input = i;
        x.diag.scope = scope(i);
        x.diag.op = "inf - inf";
        x.diag.value = num::qnan();
        x.diag.avoided_by = "--policy fa2_empty";
      }
  if (x.nan_row) return x;
  int j = -1;  // first finite input (E and, under fa2_empty, P are empty)
  for (int i = 0; i < n && j < 0; ++i)
    if (cls[i] == F) j = i;
  if (j < 0) {  // all empty: (0, -inf) whatever the sink, no finding
    x.v.assign(8, 0.0f);
    x.lse = num::neg_inf();
    return x;
  }
  for (int d = 0; d < 8; ++d) x.v.push_back(round_to(dt, v_value(j, d)));
  x.lse = kFiniteLse[j];
  switch (sk) {
    case sink_none:
    case sink_ninf: break;  // 1 + exp(-inf) = 1: v unchanged; logaddexp(lse, -inf) = lse
    case sink_finite:
      if (j == 0) {  // σ = lse: divisor 1 + exp(0) = 2 (exact); lse' = 1.5 + log1p(1) = 1.5 + ln 2
        for (float& e : x.v) e = e / 2.0f;
        if (includes) x.lse = 1.5f + from_bits(0x3f317218u);  // ln 2 correctly rounded
      } else {  // σ - lse >= 151.5: exp overflows, divisor +inf, v -> ±0; lse' = σ + log1p(0) = σ
        for (float& e : x.v) e = std::signbit(e) ? -0.0f : 0.0f;
        if (includes) x.lse = 1.5f;
      }
      break;
    case sink_pinf:
      for (float& e : x.v) e = std::signbit(e) ? -0.0f : 0.0f;  // v / inf
      if (includes) {
        x.lse = num::inf();
        x.has_diag = true;
        x.diag.input = -1;
        x.diag.scope = "sink";
        x.diag.op = "+inf input";
        x.diag.value = num::inf();
        x.diag.avoided_by = "returning the lse without the sink (the default)";
      }
      break;
    case sink_nan:
      x.v.assign(8, num::qnan());
      if (includes) x.lse = num::qnan();
      x.has_diag = true;
      x.diag.input = -1;
      x.diag.scope = "sink";
      x.diag.op = "nan input";
      x.diag.value = num::qnan();
      break;
  }
  return x;
}

std::uint32_t stored_bits(VDtype dt, float x) {
  if (num::is_nan(x)) return dt == VDtype::f32 ? 0x7fc00000u : 0x7fc0u;
  return dt == VDtype::f32 ? bits(x) : num::float_to_bf16(x);
}

}  // namespace

BOOST_AUTO_TEST_CASE(special_value_matrix) {
  // Precondition of the derivations above (the numerics core's exp/log1p at these points).
  BOOST_REQUIRE_EQUAL(num::exp(-151.5f), 0.0f);
  BOOST_REQUIRE(num::exp(151.5f) == num::inf());
  BOOST_REQUIRE_EQUAL(bits(num::log1p(1.0f)), 0x3f317218u);
  int cases = 0;
  for (VDtype dt : {VDtype::f32, VDtype::bf16})
    for (int n : {2, 3})
      for (LsePolicy pol : {LsePolicy::strict, LsePolicy::fa2_empty})
        for (SinkKind sk : {sink_none, sink_finite, sink_pinf, sink_ninf, sink_nan})
          for (bool includes : {false, true}) {
            if (sk == sink_none && includes) continue;
            int combos = 1;
            for (int i = 0; i < n; ++i) combos *= 4;
            const std::int64_t heads = 2, D = 8;
            Owned o;
            o.alloc(dt, n, combos, heads, D);
            std::vector<std::vector<Cls>> cls(combos, std::vector<Cls>(n));
            for (int t = 0; t < combos; ++t) {
              int c = t;
              for (int i = 0; i < n; ++i, c /= 4) cls[t][i] = static_cast<Cls>(c % 4);
              for (int h = 0; h < heads; ++h)
                for (int i = 0; i < n; ++i) {
                  const std::int64_t in = (static_cast<std::int64_t>(i) * combos + t) * heads + h;
                  o.lse[in] = lse_value(cls[t][i], i);
                  for (int d = 0; d < D; ++d) o.set_v(in * D + d, v_value(i, d));
                }
            }
            if (sk != sink_none) {
              const float s[] = {0, 1.5f, num::inf(), num::neg_inf(), num::qnan()};
              o.sink.assign(heads, s[sk]);
            }
            o.p.policy = pol;
            o.p.lse_includes_sink = includes;
            if (n == 2) o.p.scope_names = {"swa", "compressed"};
            const MergeProblem& p = o.bind();
            const Out out = run_reference(p);
            std::size_t next_diag = 0;
            for (int t = 0; t < combos; ++t)
              for (int h = 0; h < heads; ++h) {
                ++cases;
                std::string what = std::string(to_string(dt)) + " policy " + to_string(pol) + " sink " + sink_name[sk] +
                                   (includes ? " (lse includes it)" : "") + " inputs";
                for (Cls c : cls[t]) what += std::string(" ") + cls_name[c];
                BOOST_TEST_INFO("case: " << what << " (token " << t << ", head " << h << ")");
                const Expected x = expected_row(cls[t], pol, sk, includes, dt, p.scope_names, t, h);
                const std::int64_t row = static_cast<std::int64_t>(t) * heads + h;
                for (int d = 0; d < D; ++d) {
                  const std::uint32_t want = x.nan_row ? stored_bits(dt, num::qnan()) : stored_bits(dt, x.v[d]);
                  BOOST_CHECK_MESSAGE(out.vbits[row * D + d] == want,
                                      "v[" << d << "] = 0x" << std::hex << out.vbits[row * D + d] << ", expected 0x" << want);
                }
                const float want_lse = x.nan_row ? num::qnan() : x.lse;
                BOOST_CHECK_MESSAGE(bits(out.lse[row]) == stored_bits(VDtype::f32, want_lse),
                                    "lse " << test::hex(out.lse[row]) << ", expected " << test::hex(want_lse));
                if (x.has_diag) {
                  BOOST_REQUIRE_MESSAGE(next_diag < out.diags.size(), "missing diagnostic");
                  const MergeDiagnostic& g = out.diags[next_diag++];
                  const MergeDiagnostic& w = x.diag;
                  BOOST_CHECK_MESSAGE(g.token == w.token && g.head == w.head && g.input == w.input && g.scope == w.scope &&
                                          g.op == w.op && g.avoided_by == w.avoided_by &&
                                          stored_bits(VDtype::f32, g.value) == stored_bits(VDtype::f32, w.value) &&
                                          !g.cause.empty(),
                                      "diagnostic " << describe(g) << ", expected " << describe(w));
                } else if (next_diag < out.diags.size()) {
                  const MergeDiagnostic& g = out.diags[next_diag];
                  BOOST_CHECK_MESSAGE(!(g.token == t && g.head == h), "unexpected diagnostic " << describe(g));
                  if (g.token == t && g.head == h) ++next_diag;
                }
              }
            BOOST_CHECK_MESSAGE(next_diag == out.diags.size(), "extra diagnostics: " << out.diags.size() - next_diag);
          }
  BOOST_TEST_MESSAGE("special-value matrix: " << cases << " rows");
}

// Non-finite v with finite lse: the diagnostic names the input and the operation.
BOOST_AUTO_TEST_CASE(nonfinite_v_diagnostics) {
  Owned o;
  o.alloc(VDtype::f32, 3, 4, 1, 8);
  for (int i = 0; i < 3; ++i)
    for (int t = 0; t < 4; ++t) {
      o.lse[i * 4 + t] = 0.0f;
      for (int d = 0; d < 8; ++d) o.v32[(i * 4 + t) * 8 + d] = 1.0f;
    }
  o.v32[(1 * 4 + 0) * 8 + 5] = num::qnan();                                   // token 0: NaN in split 1, d 5
  o.v32[(2 * 4 + 1) * 8 + 2] = num::inf();                                    // token 1: +inf in split 2
  o.v32[(0 * 4 + 2) * 8 + 3] = num::inf();                                    // token 2: +inf in split 0 ...
  o.v32[(2 * 4 + 2) * 8 + 3] = num::neg_inf();                                // ... and -inf in split 2
  o.v32[(0 * 4 + 3) * 8 + 0] = num::qnan();                                   // token 3: NaN in an empty split:
  o.lse[0 * 4 + 3] = num::neg_inf();                                          // skipped, no finding
  const Out out = run_reference(o.bind());
  BOOST_REQUIRE_EQUAL(out.diags.size(), 3u);
  BOOST_CHECK(out.diags[0].token == 0 && out.diags[0].input == 1 && out.diags[0].op == "nan input" &&
              out.diags[0].scope == "split 1");
  BOOST_CHECK(out.diags[1].token == 1 && out.diags[1].input == 2 && out.diags[1].op == "+inf input" &&
              out.diags[1].value == num::inf());
  BOOST_CHECK(out.diags[2].token == 2 && out.diags[2].input == 0 && out.diags[2].op == "inf - inf" &&
              num::is_nan(out.diags[2].value));
  for (const auto& g : out.diags) BOOST_TEST_MESSAGE(describe(g));
  for (int d = 0; d < 8; ++d) BOOST_CHECK_EQUAL(out.v[3 * 8 + d], 1.0f);  // two equal inputs of 1: exactly 1
  // Overflow of finite inputs: 0.75 * FLT_MAX + 0.75 * FLT_MAX... weights 1/2 each of
  // FLT_MAX stay finite; use a sink-free two-input row of FLT_MAX and FLT_MAX: finite.
  Owned big;
  big.alloc(VDtype::f32, 2, 1, 1, 8);
  for (float& x : big.v32) x = 3.0e38f;
  const Out ob = run_reference(big.bind());
  BOOST_CHECK(ob.diags.empty());
  for (float x : ob.v) BOOST_CHECK_EQUAL(x, 3.0e38f);  // 0.5 * 3e38 + 0.5 * 3e38 exact
}

// ---------------------------------------------------------------------------------------------
// Exact hand-derived cases.

BOOST_AUTO_TEST_CASE(exact_cases) {
  // Two inputs with equal lse 0: weights 1, W = 2, scales 1/2 (exact): v = a/2 + b/2, lse = ln 2.
  for (VDtype dt : {VDtype::f32, VDtype::bf16}) {
    Owned o;
    o.alloc(dt, 2, 1, 1, 16);
    for (int d = 0; d < 16; ++d) {
      o.set_v(d, static_cast<float>(d) - 7.0f);
      o.set_v(16 + d, 0.25f * static_cast<float>(d));
    }
    const Out out = run_reference(o.bind());
    for (int d = 0; d < 16; ++d) BOOST_CHECK_EQUAL(out.v[d], (static_cast<float>(d) - 7.0f) / 2 + 0.125f * static_cast<float>(d));
    BOOST_CHECK_EQUAL(bits(out.lse[0]), 0x3f317218u);
  }
  // One input merges to itself bit for bit (incl. -0 and subnormals), lse unchanged.
  std::mt19937_64 rng(test::seed(4002));
  Owned o;
  o.alloc(VDtype::f32, 1, 5, 3, 64);
  std::uniform_int_distribution<std::uint32_t> u;
  for (float& x : o.v32) {
    x = from_bits(u(rng));
    if (!num::is_finite(x)) x = -0.0f;
  }
  o.v32[3] = from_bits(0x00000001u);
  o.v32[4] = -0.0f;
  for (float& l : o.lse) l = from_bits(u(rng) & 0x7f7fffffu) * (u(rng) % 2 ? -1.0f : 1.0f);
  const Out out = run_reference(o.bind());
  for (std::size_t i = 0; i < o.v32.size(); ++i) BOOST_REQUIRE_EQUAL(out.vbits[i], bits(o.v32[i]));
  for (std::size_t r = 0; r < o.lse.size(); ++r) BOOST_REQUIRE_EQUAL(bits(out.lse[r]), bits(o.lse[r]));
  // sink_problem: a one-input merge then the sink. σ = lse: v / 2, lse unchanged (excluded).
  std::vector<float> v(8, 3.0f), lse(1, 0.25f), sink(1, 0.25f), vo(8), lo(1);
  merge_reference(sink_problem(v.data(), VDtype::f32, lse.data(), 1, 1, 8, sink.data()), vo.data(), lo.data(), nullptr);
  for (float x : vo) BOOST_CHECK_EQUAL(x, 1.5f);
  BOOST_CHECK_EQUAL(lo[0], 0.25f);
}

// ---------------------------------------------------------------------------------------------
// Layout invariances: same bits.

BOOST_AUTO_TEST_CASE(layout_invariance) {
  const std::uint64_t seed = test::seed(4003);
  std::mt19937_64 rng(seed);
  BOOST_TEST_INFO("seed " << seed);
  for (VDtype dt : {VDtype::f32, VDtype::bf16}) {
    const std::int64_t S = 9, T = 7, H = 5, D = 24;
    Owned ragged = random_problem({dt, S, T, H, D, 0, 1, true, true}, rng);
    // Dense without num_splits, the tokens' missing partials set to lse -inf (and v NaN:
    // an empty input contributes nothing, whatever its v holds).
    Owned padded = ragged;
    padded.num_splits.clear();
    for (std::int64_t t = 0; t < T; ++t)
      for (std::int64_t i = ragged.num_splits[t]; i < S; ++i)
        for (std::int64_t h = 0; h < H; ++h) {
          const std::int64_t in = (i * T + t) * H + h;
          padded.lse[in] = num::neg_inf();
          for (std::int64_t d = 0; d < D; ++d) padded.set_v(in * D + d, num::qnan());
        }
    // Packed (varlen) layout of the same partials.
    Owned pk;
    std::int64_t total = 0;
    for (auto n : ragged.num_splits) total += n;
    pk.alloc(dt, total, T, H, D, true);
    pk.sink = ragged.sink;
    pk.p.lse_includes_sink = true;
    pk.offsets.push_back(0);
    std::int64_t row = 0;
    for (std::int64_t t = 0; t < T; ++t) {
      for (std::int64_t i = 0; i < ragged.num_splits[t]; ++i, ++row)
        for (std::int64_t h = 0; h < H; ++h) {
          const std::int64_t src = (i * T + t) * H + h, dst = row * H + h;
          pk.lse[dst] = ragged.lse[src];
          for (std::int64_t d = 0; d < D; ++d) pk.set_v(dst * D + d, ragged.get_v(src * D + d));
        }
      pk.offsets.push_back(static_cast<std::int32_t>(row));
    }
    const Out a = run_reference(ragged.bind()), b = run_reference(padded.bind()), c = run_reference(pk.bind());
    BOOST_CHECK(a.vbits == b.vbits);
    BOOST_CHECK(a.vbits == c.vbits);
    for (std::size_t r = 0; r < a.lse.size(); ++r) {
      BOOST_CHECK_EQUAL(bits(a.lse[r]), bits(b.lse[r]));
      BOOST_CHECK_EQUAL(bits(a.lse[r]), bits(c.lse[r]));
    }
  }
  // Dual-scope helper = the same two-input problem with scope names.
  Owned two = random_problem({VDtype::f32, 2, 3, 4, 64, 80, 1, false, false}, rng);
  const MergeProblem dual = dual_scope_problem(two.v32.data(), VDtype::f32, two.lse.data(), 3, 4, 64, two.sink.data());
  BOOST_CHECK(run_reference(dual).vbits == run_reference(two.bind()).vbits);
  BOOST_CHECK(dual.scope_names == (std::vector<std::string>{"swa", "compressed"}));
}

// ---------------------------------------------------------------------------------------------
// Bad input.

namespace {

void expect_error(const MergeProblem& p, Errc code, const std::vector<std::string>& needles) {
  try {
    merge_validate(p);
    BOOST_ERROR("no error; expected one containing '" << needles.front() << "'");
  } catch (const Error& e) {
    const std::string msg = e.what();
    BOOST_CHECK_MESSAGE(e.code() == code, "code " << to_string(e.code()) << " for: " << msg);
    for (const auto& n : needles) BOOST_CHECK_MESSAGE(msg.find(n) != std::string::npos, "'" << n << "' not in: " << msg);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(bad_input) {
  Owned o;
  o.alloc(VDtype::f32, 3, 4, 2, 64);
  o.bind();
  merge_validate(o.p);  // valid as a baseline
  auto with = [&](auto edit) {
    MergeProblem p = o.p;
    edit(p);
    return p;
  };
  expect_error(with([](MergeProblem& p) { p.D = 100; }), Errc::unsupported, {"D = 100", "multiple of 8", "1024"});
  expect_error(with([](MergeProblem& p) { p.D = 2048; }), Errc::unsupported, {"D = 2048", "supported:"});
  expect_error(with([](MergeProblem& p) { p.D = 0; }), Errc::bad_input, {"D = 0"});
  expect_error(with([](MergeProblem& p) { p.tokens = -1; }), Errc::bad_input, {"tokens = -1"});
  expect_error(with([](MergeProblem& p) { p.heads = -2; }), Errc::bad_input, {"heads = -2"});
  expect_error(with([](MergeProblem& p) { p.v_partial = nullptr; }), Errc::bad_input, {"v_partial"});
  expect_error(with([](MergeProblem& p) { p.lse_partial = nullptr; }), Errc::bad_input, {"lse_partial"});
  expect_error(with([](MergeProblem& p) { p.scope_names = {"swa", "compressed"}; }), Errc::bad_input,
               {"scope_names has 2 names", "splits = 3"});
  expect_error(with([](MergeProblem& p) { p.v_dtype = static_cast<VDtype>(7); }), Errc::unsupported, {"v_dtype", "supported:"});
  expect_error(with([](MergeProblem& p) { p.policy = static_cast<LsePolicy>(9); }), Errc::bad_input, {"policy"});
  std::vector<std::int32_t> ns = {1, 3, 4, 0};
  expect_error(with([&](MergeProblem& p) { p.num_splits = ns.data(); }), Errc::bad_input, {"num_splits[2] = 4", "splits = 3"});
  ns[2] = -1;
  expect_error(with([&](MergeProblem& p) { p.num_splits = ns.data(); }), Errc::bad_input, {"num_splits[2] = -1"});
  std::vector<std::int32_t> off = {0, 2, 1, 3, 3};
  expect_error(with([&](MergeProblem& p) { p.split_offsets = off.data(); }), Errc::bad_input,
               {"not monotone", "split_offsets[2] = 1", "split_offsets[1] = 2"});
  off = {0, 1, 2, 3, 5};
  expect_error(with([&](MergeProblem& p) { p.split_offsets = off.data(); }), Errc::bad_input,
               {"split_offsets[4] = 5", "exceeds splits = 3"});
  off = {0, 1, 2, 3, 3};
  ns = {1, 1, 1, 1};
  expect_error(with([&](MergeProblem& p) { p.split_offsets = off.data(); p.num_splits = ns.data(); }), Errc::bad_input,
               {"both set"});
  // More than 256 inputs for a token.
  Owned many;
  many.alloc(VDtype::bf16, 300, 2, 1, 8);
  expect_error(many.bind(), Errc::unsupported, {"splits = 300", "256"});
  many.num_splits = {256, 257};
  expect_error(many.bind(), Errc::unsupported, {"token 1", "257", "256"});
  many.num_splits = {256, 3};
  merge_validate(many.bind());  // ragged counts within 256: fine
  // The reference refuses what the validation refuses.
  std::vector<float> vo(4 * 2 * 64), lo(8);
  BOOST_CHECK_THROW(merge_reference(with([](MergeProblem& p) { p.D = 12; }), vo.data(), lo.data(), nullptr), Error);
  BOOST_CHECK_EQUAL(parse_lse_policy("fa2_empty") == LsePolicy::fa2_empty, true);
  BOOST_CHECK_THROW(parse_lse_policy("lenient"), Error);
  BOOST_CHECK(parse_vdtype("bfloat16") == VDtype::bf16);
  BOOST_CHECK_THROW(parse_vdtype("fp8"), Error);
}
