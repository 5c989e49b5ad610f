// LSE merge: validation, float64 oracle, bit-exact reference and diagnostics.
#include "reference/lse_merge.hpp"

#include "reference/parallel.hpp"
#include "reference/status.hpp"

#include <cmath>
#include <cstdio>
#include <limits>

namespace dsv4 {

namespace mm = merge_math;

const char* to_string(VDtype t) {
  switch (t) {
    case VDtype::f32: return "f32";
    case VDtype::bf16: return "bf16";
  }
  return "?";
}

const char* to_string(LsePolicy p) {
  switch (p) {
    case LsePolicy::strict: return "strict";
    case LsePolicy::fa2_empty: return "fa2_empty";
  }
  return "?";
}

VDtype parse_vdtype(const std::string& s) {
  if (s == "f32" || s == "fp32" || s == "float32") return VDtype::f32;
  if (s == "bf16" || s == "bfloat16") return VDtype::bf16;
  raise(Errc::bad_input, "v dtype '" + s + "' is not one of f32, bf16");
}

LsePolicy parse_lse_policy(const std::string& s) {
  if (s == "strict") return LsePolicy::strict;
  if (s == "fa2_empty") return LsePolicy::fa2_empty;
  raise(Errc::bad_input, "lse policy '" + s + "' is not one of strict, fa2_empty");
}

std::string merge_supported() {
  return "supported: v dtype f32 or bf16, D a multiple of 8 from 8 to " + std::to_string(kMergeMaxD) +
         ", 0 to " + std::to_string(kMergeMaxSplits) +
         " inputs per token, lse policy strict or fa2_empty";
}

namespace {

std::string who(std::int64_t t) { return "token " + std::to_string(t); }

bool packed(const MergeProblem& p) { return p.split_offsets != nullptr; }

float load_v(const void* base, VDtype t, std::int64_t idx) {
  if (t == VDtype::f32) return static_cast<const float*>(base)[idx];
  return num::bf16_to_float(static_cast<const std::uint16_t*>(base)[idx]);
}

void store_v(void* base, VDtype t, std::int64_t idx, float x) {
  x = mm::canon(x);
  if (t == VDtype::f32) static_cast<float*>(base)[idx] = x;
  else static_cast<std::uint16_t*>(base)[idx] = num::float_to_bf16(x);
}

std::string scope_of(const MergeProblem& p, int i) {
  if (!p.scope_names.empty() && i >= 0 && i < static_cast<int>(p.scope_names.size())) return p.scope_names[i];
  return "split " + std::to_string(i);
}

std::string fmt(float x) {
  char b[48];
  std::snprintf(b, sizeof b, "%.9g", static_cast<double>(x));
  return b;
}

}  // namespace

void merge_validate(const MergeProblem& p) {
  const std::string op = "lse merge: ";
  if (p.v_dtype != VDtype::f32 && p.v_dtype != VDtype::bf16)
    raise(Errc::unsupported, op + "v_dtype " + std::to_string(static_cast<int>(p.v_dtype)) + " is unknown; " + merge_supported());
  if (p.policy != LsePolicy::strict && p.policy != LsePolicy::fa2_empty)
    raise(Errc::bad_input, op + "policy " + std::to_string(static_cast<int>(p.policy)) + " is unknown (strict, fa2_empty)");
  if (p.splits < 0) raise(Errc::bad_input, op + "splits = " + std::to_string(p.splits) + " is negative");
  if (p.tokens < 0) raise(Errc::bad_input, op + "tokens = " + std::to_string(p.tokens) + " is negative");
  if (p.heads < 0) raise(Errc::bad_input, op + "heads = " + std::to_string(p.heads) + " is negative");
  if (p.D < 1) raise(Errc::bad_input, op + "D = " + std::to_string(p.D) + " must be positive");
  if (p.D % 8 != 0 || p.D > kMergeMaxD)
    raise(Errc::unsupported, op + "D = " + std::to_string(p.D) + " is not supported; " + merge_supported());
  const double elems = static_cast<double>(p.splits) * static_cast<double>(packed(p) ? 1 : p.tokens) *
                       static_cast<double>(p.heads) * static_cast<double>(p.D);
  if (elems > 4.0e18) raise(Errc::bad_input, op + "splits x tokens x heads x D overflows 64-bit indexing");
  const std::int64_t in_rows = p.splits * (packed(p) ? 1 : p.tokens) * p.heads;
  if (in_rows > 0 && !p.v_partial) raise(Errc::bad_input, op + "v_partial is null");
  if (in_rows > 0 && !p.lse_partial) raise(Errc::bad_input, op + "lse_partial is null");
  if (!p.scope_names.empty()) {
    if (packed(p)) raise(Errc::bad_input, op + "scope_names is only meaningful in the dense layout (split_offsets is set)");
    if (static_cast<std::int64_t>(p.scope_names.size()) != p.splits)
      raise(Errc::bad_input, op + "scope_names has " + std::to_string(p.scope_names.size()) +
                                 " names for splits = " + std::to_string(p.splits));
  }
  if (p.num_splits && p.split_offsets)
    raise(Errc::bad_input, op + "num_splits and split_offsets are both set (use one)");
  if (p.split_offsets) {
    if (p.split_offsets[0] < 0)
      raise(Errc::bad_input, op + "split_offsets[0] = " + std::to_string(p.split_offsets[0]) + " is negative");
    for (std::int64_t t = 0; t < p.tokens; ++t) {
      const std::int64_t a = p.split_offsets[t], b = p.split_offsets[t + 1];
      if (b < a)
        raise(Errc::bad_input, op + "split_offsets is not monotone: split_offsets[" + std::to_string(t + 1) + "] = " +
                                   std::to_string(b) + " < split_offsets[" + std::to_string(t) + "] = " + std::to_string(a));
      if (b > p.splits)
        raise(Errc::bad_input, op + "split_offsets[" + std::to_string(t + 1) + "] = " + std::to_string(b) +
                                   " exceeds splits = " + std::to_string(p.splits) + " (rows of v_partial)");
      if (b - a > kMergeMaxSplits)
        raise(Errc::unsupported, op + who(t) + " has " + std::to_string(b - a) + " inputs; " + merge_supported());
    }
  } else if (p.num_splits) {
    for (std::int64_t t = 0; t < p.tokens; ++t) {
      const std::int64_t n = p.num_splits[t];
      if (n < 0 || n > p.splits)
        raise(Errc::bad_input, op + "num_splits[" + std::to_string(t) + "] = " + std::to_string(n) +
                                   " is outside [0, splits = " + std::to_string(p.splits) + "]");
      if (n > kMergeMaxSplits)
        raise(Errc::unsupported, op + who(t) + " has num_splits = " + std::to_string(n) + "; " + merge_supported());
    }
  } else if (p.splits > kMergeMaxSplits && p.tokens > 0) {
    raise(Errc::unsupported, op + "splits = " + std::to_string(p.splits) + " inputs per token; " + merge_supported());
  }
}

// ---- oracle ------------------------------------------------------------------------------

void merge_oracle(const MergeProblem& p, double* v_out, double* lse_out) {
  merge_validate(p);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double ninf = -std::numeric_limits<double>::infinity();
  const std::int64_t D = p.D;
  parallel_for(static_cast<std::size_t>(p.tokens * p.heads), [&](std::size_t b, std::size_t e) {
    std::vector<double> acc(D), l, w;
    for (std::size_t row = b; row < e; ++row) {
      const std::int64_t t = static_cast<std::int64_t>(row) / p.heads, h = static_cast<std::int64_t>(row) % p.heads;
      const mm::RowInputs r = mm::row_inputs(t, h, p.splits, p.tokens, p.heads, p.num_splits, p.split_offsets);
      l.assign(r.n, 0.0);
      bool invalid = false;
      double m = ninf;
      for (int i = 0; i < r.n; ++i) {
        double x = p.lse_partial[r.first + i * r.step];
        if (std::isinf(x) && x > 0 && p.policy == LsePolicy::fa2_empty) x = ninf;
        if (std::isnan(x) || (std::isinf(x) && x > 0)) invalid = true;
        l[i] = x;
        if (x > m) m = x;
      }
      double* vo = v_out + static_cast<std::int64_t>(row) * D;
      if (invalid) {
        for (std::int64_t d = 0; d < D; ++d) vo[d] = nan;
        if (lse_out) lse_out[row] = nan;
        continue;
      }
      if (m == ninf) {
        for (std::int64_t d = 0; d < D; ++d) vo[d] = 0.0;
        if (lse_out) lse_out[row] = ninf;
        continue;
      }
      w.assign(r.n, 0.0);
      double W = 0;
      for (int i = 0; i < r.n; ++i) W += (w[i] = std::exp(l[i] - m));
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int i = 0; i < r.n; ++i) {
        if (l[i] == ninf) continue;
        const double s = w[i] / W;
        const std::int64_t base = (r.first + i * r.step) * D;
        for (std::int64_t d = 0; d < D; ++d) acc[d] += s * static_cast<double>(load_v(p.v_partial, p.v_dtype, base + d));
      }
      double lse = m + std::log(W);
      if (p.sink) {
        const double sg = p.sink[h];
        const double div = 1.0 + std::exp(sg - lse);
        for (std::int64_t d = 0; d < D; ++d) acc[d] /= div;
        if (p.lse_includes_sink) {
          const double hi = std::max(lse, sg), lo = std::min(lse, sg);
          lse = std::isnan(sg) ? nan : (std::isinf(hi) ? hi : hi + std::log1p(std::exp(lo - hi)));
        }
      }
      for (std::int64_t d = 0; d < D; ++d) vo[d] = acc[d];
      if (lse_out) lse_out[row] = lse;
    }
  }, 16);
}

// ---- reference -----------------------------------------------------------------------------

namespace {

/// Diagnostic of one output row whose stored v or lse is not finite (v_row: the stored
/// row as floats, lse: the stored lse).
MergeDiagnostic diagnose_row(const MergeProblem& p, std::int64_t t, std::int64_t h, const std::vector<float>& v_row,
                             float lse) {
  MergeDiagnostic g;
  g.token = t;
  g.head = h;
  const std::string where = " (token " + std::to_string(t) + ", head " + std::to_string(h) + ")";
  const mm::RowInputs r = mm::row_inputs(t, h, p.splits, p.tokens, p.heads, p.num_splits, p.split_offsets);
  auto in_lse = [&](int i) { return p.lse_partial[r.first + i * r.step]; };
  auto set_input = [&](int i) {
    g.input = i;
    g.scope = scope_of(p, i);
  };
  // 1. An invalid input lse poisons the whole row.
  for (int i = 0; i < r.n; ++i) {
    if (num::is_nan(in_lse(i))) {
      set_input(i);
      g.value = num::qnan();
      g.op = "nan input";
      g.cause = "lse of " + g.scope + where + " is NaN, so the max and every weight are NaN";
      return g;
    }
  }
  if (p.policy == LsePolicy::strict) {
    for (int i = 0; i < r.n; ++i) {
      if (in_lse(i) == num::inf()) {
        set_input(i);
        g.value = num::qnan();
        g.op = "inf - inf";
        g.cause = "lse of " + g.scope + where + " is +inf, so its weight exp(lse - max) is exp(inf - inf) = NaN" +
                  " (FlashAttention-2 writes +inf for an empty row)";
        g.avoided_by = "--policy fa2_empty";
        return g;
      }
    }
  }
  const mm::RowWeights rw = mm::row_weights(p.lse_partial, r, p.policy);
  // 2. The first non-finite v element: which contributing input holds a non-finite value there.
  std::int64_t d_bad = -1;
  for (std::int64_t d = 0; d < p.D; ++d) {
    if (!num::is_finite(v_row[d])) {
      d_bad = d;
      break;
    }
  }
  if (d_bad >= 0) {
    const std::int64_t d = d_bad;
    g.value = v_row[d];
    const std::string el = "v[" + std::to_string(d) + "]";
    int first_nan = -1, first_pos = -1, first_neg = -1;
    for (int i = 0; i < r.n; ++i) {
      if (mm::weight(mm::effective_lse(in_lse(i), p.policy), rw.m) == 0.0f) continue;  // skipped input
      const float x = load_v(p.v_partial, p.v_dtype, (r.first + i * r.step) * p.D + d);
      if (num::is_nan(x) && first_nan < 0) first_nan = i;
      if (x == num::inf() && first_pos < 0) first_pos = i;
      if (x == num::neg_inf() && first_neg < 0) first_neg = i;
    }
    if (first_nan >= 0) {
      set_input(first_nan);
      g.op = "nan input";
      g.cause = el + " of " + g.scope + where + " is NaN";
    } else if (first_pos >= 0 && first_neg >= 0) {
      set_input(std::min(first_pos, first_neg));
      g.op = "inf - inf";
      g.cause = el + " is +inf in " + scope_of(p, first_pos) + " and -inf in " + scope_of(p, first_neg) + where +
                ": their weighted sum is inf - inf";
    } else if (first_pos >= 0 || first_neg >= 0) {
      const int i = first_pos >= 0 ? first_pos : first_neg;
      set_input(i);
      g.op = first_pos >= 0 ? "+inf input" : "-inf input";
      g.cause = el + " of " + g.scope + where + " is " + (first_pos >= 0 ? "+inf" : "-inf");
    } else if (p.sink && num::is_nan(p.sink[h])) {
      g.scope = "sink";
      g.op = "nan input";
      g.cause = "the sink logit of head " + std::to_string(h) + " is NaN";
    } else {
      g.op = "overflow";
      g.scope = "merge";
      g.cause = "the weighted sum of " + el + where + " of finite inputs overflows " +
                std::string(p.v_dtype == VDtype::bf16 ? "bf16" : "fp32");
    }
    return g;
  }
  // 3. v is finite but the lse is NaN or +inf.
  g.value = lse;
  if (p.sink && p.lse_includes_sink && p.sink[h] == num::inf()) {
    g.scope = "sink";
    g.op = "+inf input";
    g.cause = "the sink logit of head " + std::to_string(h) + " is +inf and the returned lse includes the sink";
    g.avoided_by = "returning the lse without the sink (the default)";
  } else if (p.sink && p.lse_includes_sink && num::is_nan(p.sink[h])) {
    g.scope = "sink";
    g.op = "nan input";
    g.cause = "the sink logit of head " + std::to_string(h) + " is NaN";
  } else {
    g.scope = "merge";
    g.op = "overflow";
    g.cause = "the merged lse " + fmt(lse) + where + " overflows fp32 (max lse " + fmt(rw.m) + ")";
  }
  return g;
}

}  // namespace

void merge_reference(const MergeProblem& p, void* v_out, float* lse_out, std::vector<MergeDiagnostic>* diags) {
  merge_validate(p);
  const std::int64_t D = p.D, rows = p.tokens * p.heads;
  std::vector<std::uint8_t> bad(diags ? static_cast<std::size_t>(rows) : 0, 0);
  std::vector<float> lse_rows(diags ? static_cast<std::size_t>(rows) : 0);
  parallel_for(static_cast<std::size_t>(rows), [&](std::size_t b, std::size_t e) {
    std::vector<float> acc(D);
    for (std::size_t row = b; row < e; ++row) {
      const std::int64_t t = static_cast<std::int64_t>(row) / p.heads, h = static_cast<std::int64_t>(row) % p.heads;
      const mm::RowInputs r = mm::row_inputs(t, h, p.splits, p.tokens, p.heads, p.num_splits, p.split_offsets);
      const mm::RowWeights rw = mm::row_weights(p.lse_partial, r, p.policy);
      const std::int64_t out = static_cast<std::int64_t>(row) * D;
      float lse = num::neg_inf();
      if (rw.empty) {
        for (std::int64_t d = 0; d < D; ++d) store_v(v_out, p.v_dtype, out + d, 0.0f);
      } else {
        // Inputs outer, elements inner: each element still sees the inputs in index order.
        std::fill(acc.begin(), acc.end(), -0.0f);
        for (int i = 0; i < r.n; ++i) {
          const float w = mm::weight(mm::effective_lse(p.lse_partial[r.first + i * r.step], p.policy), rw.m);
          if (w == 0.0f) continue;
          const float s = w / rw.W;
          const std::int64_t base = (r.first + i * r.step) * D;
          for (std::int64_t d = 0; d < D; ++d) acc[d] = num::fma(s, load_v(p.v_partial, p.v_dtype, base + d), acc[d]);
        }
        lse = rw.lse;
        if (p.sink) {
          const float div = mm::sink_divisor(p.sink[h], rw.lse);
          for (std::int64_t d = 0; d < D; ++d) acc[d] = acc[d] / div;
          if (p.lse_includes_sink) lse = mm::lse_with_sink(rw.lse, p.sink[h]);
        }
        for (std::int64_t d = 0; d < D; ++d) store_v(v_out, p.v_dtype, out + d, acc[d]);
      }
      lse = mm::canon(lse);
      if (lse_out) lse_out[row] = lse;
      if (diags) {
        lse_rows[row] = lse;
        bool nonfinite = num::is_nan(lse) || lse == num::inf();
        for (std::int64_t d = 0; d < D && !nonfinite; ++d) nonfinite = !num::is_finite(load_v(v_out, p.v_dtype, out + d));
        bad[row] = nonfinite;
      }
    }
  }, 16);
  if (!diags) return;
  std::vector<float> v_row(D);
  for (std::int64_t row = 0; row < rows; ++row) {
    if (!bad[row]) continue;
    const std::int64_t out = row * D;
    for (std::int64_t d = 0; d < D; ++d) v_row[d] = load_v(v_out, p.v_dtype, out + d);
    diags->push_back(diagnose_row(p, row / p.heads, row % p.heads, v_row, lse_rows[row]));
  }
}

MergeProblem dual_scope_problem(const void* v, VDtype v_dtype, const float* lse, std::int64_t tokens,
                                std::int64_t heads, std::int64_t D, const float* sink, LsePolicy policy,
                                bool lse_includes_sink) {
  MergeProblem p;
  p.v_partial = v;
  p.v_dtype = v_dtype;
  p.lse_partial = lse;
  p.splits = 2;
  p.tokens = tokens;
  p.heads = heads;
  p.D = D;
  p.sink = sink;
  p.policy = policy;
  p.lse_includes_sink = lse_includes_sink;
  p.scope_names = {"swa", "compressed"};
  return p;
}

MergeProblem sink_problem(const void* v, VDtype v_dtype, const float* lse, std::int64_t tokens, std::int64_t heads,
                          std::int64_t D, const float* sink, LsePolicy policy, bool lse_includes_sink) {
  MergeProblem p = dual_scope_problem(v, v_dtype, lse, tokens, heads, D, sink, policy, lse_includes_sink);
  p.splits = 1;
  p.scope_names = {"state"};
  return p;
}

}  // namespace dsv4
