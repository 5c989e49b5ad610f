#include "validation/metrics.hpp"

#include "reference/numerics/numerics.hpp"
#include "reference/parallel.hpp"
#include "reference/status.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <mutex>

namespace dsv4::validation {

namespace {

// Kind of a value for the non-finite placement rule.
enum Kind : int { finite = 0, nan = 1, pinf = 2, ninf = 3 };

Kind kind_of(float x) {
  if (num::is_finite(x)) return finite;
  if (num::is_nan(x)) return nan;
  return num::sign_bit(x) ? ninf : pinf;
}

// Keep the larger value; on a tie keep the earlier position.
void keep_max(double v, const Position& at, double& best, Position& best_at) {
  if (!best_at.valid() || v > best || (v == best && at < best_at)) {
    best = v;
    best_at = at;
  }
}

void keep_first(const Position& at, Position& first) {
  if (!first.valid() || at < first) first = at;
}

// Distance of a bitwise mismatch used to pick the worst one: ulp distance between two
// finite values, 2^32-1 when either side is not finite.
std::uint32_t mismatch_distance(std::uint32_t g, std::uint32_t w) {
  const float gf = num::from_bits(g), wf = num::from_bits(w);
  return (kind_of(gf) == finite && kind_of(wf) == finite) ? num::ulp_distance(gf, wf) : 0xffffffffu;
}

std::string hexbits(std::uint32_t u) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "0x%08x (%.9g)", u, static_cast<double>(num::from_bits(u)));
  return buf;
}

std::string fmt(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

// One element of a float comparison. W is float or double.
template <class W>
float round_want(W w, Grid grid) {
  if (grid == Grid::f32) return static_cast<float>(w);
  return round_to_bf16(static_cast<double>(w));
}

template <class W>
void visit(FloatMetrics& m, const Position& at, float g, W w, Tolerance tol, Grid grid) {
  const float wf = round_want(w, grid);
  const Kind kg = kind_of(g), kw = kind_of(wf);
  const std::uint32_t gb = num::bits(g), wb = num::bits(wf);
  ++m.elements;
  if (kg != finite) ++m.nonfinite_got;
  const bool equal = (kg == nan && kw == nan) || gb == wb;
  if (!equal) {
    ++m.mismatches;
    if (!m.first_mismatch.valid() || at < m.first_mismatch) {
      m.first_mismatch = at;
      m.first_got_bits = gb;
      m.first_want_bits = wb;
    }
  }
  if (kg != kw) {
    ++m.nonfinite_mismatches;
    keep_first(at, m.first_nonfinite_mismatch);
  }
  if (kg == finite && kw == finite) {
    const std::uint32_t ulp = num::ulp_distance(g, wf) >> (grid == Grid::bf16 ? 16 : 0);
    ++m.ulp_hist[static_cast<std::size_t>(ulp_bin(ulp))];
    m.max_ulp = std::max(m.max_ulp, ulp);
    const double wd = static_cast<double>(w);
    const double d = std::fabs(static_cast<double>(g) - wd);
    keep_max(d, at, m.max_abs, m.max_abs_at);
    if (wd != 0.0) keep_max(d / std::fabs(wd), at, m.max_rel, m.max_rel_at);
    if (d > tol.atol + tol.rtol * std::fabs(wd)) {
      ++m.tol_violations;
      keep_first(at, m.first_tol_violation);
    }
  }
  if (!equal) {
    const std::uint32_t dist = mismatch_distance(gb, wb);
    const std::uint32_t held = m.worst_mismatch.valid() ? mismatch_distance(m.worst_got_bits, m.worst_want_bits) : 0;
    if (!m.worst_mismatch.valid() || dist > held || (dist == held && at < m.worst_mismatch)) {
      m.worst_mismatch = at;
      m.worst_got_bits = gb;
      m.worst_want_bits = wb;
    }
  }
}

template <class W>
FloatMetrics compare_impl(std::int64_t step, std::span<const float> got, std::span<const W> want, std::size_t row_len,
                          Tolerance tol, Grid grid) {
  if (got.size() != want.size())
    raise(Errc::bad_input, "compare: got has " + std::to_string(got.size()) + " elements, want " +
                               std::to_string(want.size()));
  if (row_len == 0 || got.size() % row_len != 0)
    raise(Errc::bad_input, "compare: " + std::to_string(got.size()) + " elements are not a multiple of the row length " +
                               std::to_string(row_len));
  const std::size_t rows = got.size() / row_len;
  std::vector<double> cosines(rows, 1.0);
  std::vector<FloatMetrics> partials;
  std::mutex mu;
  parallel_for(
      rows,
      [&](std::size_t r0, std::size_t r1) {
        FloatMetrics m;
        for (std::size_t r = r0; r < r1; ++r) {
          double dot = 0.0, ng = 0.0, nw = 0.0;
          for (std::size_t c = 0; c < row_len; ++c) {
            const std::size_t i = r * row_len + c;
            const float g = got[i];
            const W w = want[i];
            visit(m, Position{step, static_cast<std::int64_t>(i)}, g, w, tol, grid);
            if (num::is_finite(g) && num::is_finite(round_want(w, grid))) {
              const double gd = g, wd = static_cast<double>(w);
              dot += gd * wd;
              ng += gd * gd;
              nw += wd * wd;
            }
          }
          double cosv;
          if (ng == 0.0 && nw == 0.0) cosv = 1.0;
          else if (ng == 0.0 || nw == 0.0) cosv = 0.0;
          else cosv = std::clamp(dot / (std::sqrt(ng) * std::sqrt(nw)), -1.0, 1.0);
          cosines[r] = cosv;
        }
        std::lock_guard<std::mutex> lock(mu);
        partials.push_back(m);
      },
      64);
  FloatMetrics out;
  for (const auto& p : partials) out.merge(p);
  out.rows = 0;
  out.cos_sum = 0.0;
  out.cos_min = 1.0;
  out.cos_min_at = {};
  out.cos_hist = {};
  for (std::size_t r = 0; r < rows; ++r) {
    const double c = cosines[r];
    ++out.rows;
    out.cos_sum += c;
    ++out.cos_hist[static_cast<std::size_t>(cos_bin(c))];
    if (r == 0 || c < out.cos_min) {
      out.cos_min = c;
      out.cos_min_at = Position{step, static_cast<std::int64_t>(r)};
    }
  }
  return out;
}

}  // namespace

std::string format_position(const Position& p, std::span<const std::size_t> step_shape) {
  if (!p.valid()) return "-";
  std::string s = "step " + std::to_string(p.step) + " [";
  std::vector<std::size_t> idx(step_shape.size());
  auto flat = static_cast<std::size_t>(p.flat);
  for (std::size_t d = step_shape.size(); d-- > 0;) {
    if (d == 0) {  // the leading axis is not bounded: it takes the rest
      idx[0] = flat;
      break;
    }
    const std::size_t n = std::max<std::size_t>(step_shape[d], 1);
    idx[d] = flat % n;
    flat /= n;
  }
  if (step_shape.empty()) idx.push_back(flat);
  for (std::size_t d = 0; d < idx.size(); ++d) s += (d ? ", " : "") + std::to_string(idx[d]);
  return s + "]";
}

int ulp_bin(std::uint32_t ulp) {
  if (ulp <= 2) return static_cast<int>(ulp);
  if (ulp <= 4) return 3;
  if (ulp <= 8) return 4;
  return 5;
}

int cos_bin(double cosine) {
  const double d = 1.0 - cosine;
  if (!(d > 0.0)) return 0;
  const double edges[] = {1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2};
  for (int i = 0; i < 6; ++i)
    if (d <= edges[i]) return i + 1;
  return 7;
}

void FloatMetrics::merge(const FloatMetrics& o) {
  elements += o.elements;
  rows += o.rows;
  mismatches += o.mismatches;
  if (o.first_mismatch.valid() && (!first_mismatch.valid() || o.first_mismatch < first_mismatch)) {
    first_mismatch = o.first_mismatch;
    first_got_bits = o.first_got_bits;
    first_want_bits = o.first_want_bits;
  }
  if (o.worst_mismatch.valid()) {
    const std::uint32_t mine = worst_mismatch.valid() ? mismatch_distance(worst_got_bits, worst_want_bits) : 0;
    const std::uint32_t theirs = mismatch_distance(o.worst_got_bits, o.worst_want_bits);
    if (!worst_mismatch.valid() || theirs > mine || (theirs == mine && o.worst_mismatch < worst_mismatch)) {
      worst_mismatch = o.worst_mismatch;
      worst_got_bits = o.worst_got_bits;
      worst_want_bits = o.worst_want_bits;
    }
  }
  max_ulp = std::max(max_ulp, o.max_ulp);
  for (std::size_t i = 0; i < ulp_hist.size(); ++i) ulp_hist[i] += o.ulp_hist[i];
  if (o.max_abs_at.valid()) keep_max(o.max_abs, o.max_abs_at, max_abs, max_abs_at);
  if (o.max_rel_at.valid()) keep_max(o.max_rel, o.max_rel_at, max_rel, max_rel_at);
  nonfinite_got += o.nonfinite_got;
  nonfinite_mismatches += o.nonfinite_mismatches;
  if (o.first_nonfinite_mismatch.valid()) keep_first(o.first_nonfinite_mismatch, first_nonfinite_mismatch);
  tol_violations += o.tol_violations;
  if (o.first_tol_violation.valid()) keep_first(o.first_tol_violation, first_tol_violation);
  if (o.rows > 0 && (o.cos_min < cos_min || (o.cos_min == cos_min && o.cos_min_at.valid() &&
                                            (!cos_min_at.valid() || o.cos_min_at < cos_min_at)))) {
    cos_min = o.cos_min;
    cos_min_at = o.cos_min_at;
  }
  cos_sum += o.cos_sum;
  for (std::size_t i = 0; i < cos_hist.size(); ++i) cos_hist[i] += o.cos_hist[i];
}

Tolerance default_tolerance(std::string_view dtype) {
  if (dtype == "bfloat16" || dtype == "bf16") return {1e-5, 1.6e-2};
  if (dtype == "float16" || dtype == "fp16") return {1e-5, 1e-3};
  return {1e-5, 1.3e-6};
}

FloatMetrics compare_float(std::int64_t step, std::span<const float> got, std::span<const float> want,
                           std::size_t row_len, Tolerance tol, Grid grid) {
  return compare_impl<float>(step, got, want, row_len, tol, grid);
}

FloatMetrics compare_float(std::int64_t step, std::span<const float> got, std::span<const double> want,
                           std::size_t row_len, Tolerance tol, Grid grid) {
  return compare_impl<double>(step, got, want, row_len, tol, grid);
}

Grid grid_of(std::string_view dtype) { return (dtype == "bfloat16" || dtype == "bf16") ? Grid::bf16 : Grid::f32; }

float round_to_bf16(double x) {
  // Round to float with round-to-odd (truncate, then set the last bit when inexact): a
  // float keeps 24 bits, more than bf16's 8 + 2, so rounding that to bf16 (nearest even)
  // is the correctly rounded bf16 of x.
  if (std::isnan(x)) return num::qnan();
  float f = static_cast<float>(x);
  if (num::is_inf(f) && !std::isinf(x)) f = x > 0 ? std::numeric_limits<float>::max() : -std::numeric_limits<float>::max();
  if (static_cast<double>(f) != x && num::is_finite(f)) {
    if (std::fabs(static_cast<double>(f)) > std::fabs(x)) f = num::from_bits(num::bits(f) - 1u);  // toward zero
    f = num::from_bits(num::bits(f) | 1u);
  }
  return num::bf16_to_float(num::float_to_bf16(f));
}

FloatRule float_rule_vs_reference() { return FloatRule{}; }

FloatRule float_rule_tolerance(std::string_view dtype) {
  FloatRule r;
  r.bitwise = false;
  r.tol = default_tolerance(dtype);
  return r;
}

std::vector<std::string> evaluate(const FloatRule& rule, const FloatMetrics& m,
                                  std::span<const std::size_t> step_shape) {
  std::vector<std::string> why;
  if (m.nonfinite_mismatches > 0)
    why.push_back(std::to_string(m.nonfinite_mismatches) + " non-finite placement mismatches (first at " +
                  format_position(m.first_nonfinite_mismatch, step_shape) + ")");
  if (rule.bitwise) {
    if (m.mismatches > 0)
      why.push_back(std::to_string(m.mismatches) + " bitwise mismatches (first at " +
                    format_position(m.first_mismatch, step_shape) + ": got " + hexbits(m.first_got_bits) + ", want " +
                    hexbits(m.first_want_bits) + "; worst at " + format_position(m.worst_mismatch, step_shape) +
                    ": got " + hexbits(m.worst_got_bits) + ", want " + hexbits(m.worst_want_bits) + ")");
    return why;
  }
  if (m.tol_violations > 0)
    why.push_back(std::to_string(m.tol_violations) + " elements outside atol " + fmt(rule.tol.atol) + " + rtol " +
                  fmt(rule.tol.rtol) + " (first at " + format_position(m.first_tol_violation, step_shape) +
                  "; max |d| " + fmt(m.max_abs) + " at " + format_position(m.max_abs_at, step_shape) + ")");
  if (m.rows > 0 && m.cos_min < rule.cos_min) {
    std::vector<std::size_t> rows_shape(step_shape.begin(), step_shape.end());
    if (!rows_shape.empty()) rows_shape.pop_back();
    why.push_back("row cosine " + fmt(m.cos_min) + " < " + fmt(rule.cos_min) + " at " +
                  format_position(m.cos_min_at, rows_shape));
  }
  if (m.rows > 0 && m.cos_mean() < rule.cos_mean)
    why.push_back("mean row cosine " + fmt(m.cos_mean()) + " < " + fmt(rule.cos_mean));
  return why;
}

// ---------------------------------------------------------------------------------------

std::uint32_t topk_order_key(float x) {
  const std::uint32_t u = num::bits(x);
  if (num::is_nan(x)) return 0u;
  return (u >> 31) ? ~u : (u | 0x80000000u);
}

void TopkMetrics::merge(const TopkMetrics& o) {
  tie_checked = rows == 0 ? o.tie_checked : (tie_checked && (o.rows == 0 || o.tie_checked));
  rows += o.rows;
  exact_rows += o.exact_rows;
  set_rows += o.set_rows;
  tie_rows += o.tie_rows;
  invalid_rows += o.invalid_rows;
  recall_min = std::min(recall_min, o.recall_min);
  recall_sum += o.recall_sum;
  if (o.first_exact_fail.valid()) keep_first(o.first_exact_fail, first_exact_fail);
  if (o.first_set_fail.valid()) keep_first(o.first_set_fail, first_set_fail);
  if (o.first_tie_fail.valid() && (!first_tie_fail.valid() || o.first_tie_fail < first_tie_fail)) {
    first_tie_fail = o.first_tie_fail;
    first_tie_detail = o.first_tie_detail;
  }
  if (o.first_invalid.valid() && (!first_invalid.valid() || o.first_invalid < first_invalid)) {
    first_invalid = o.first_invalid;
    first_invalid_detail = o.first_invalid_detail;
  }
}

namespace {

struct RowResult {
  bool exact = false, set = false, tie = false, valid = true;
  double recall = 1.0;
  std::string tie_detail, invalid_detail;
};

std::string value_text(float v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.9g (0x%08x)", static_cast<double>(v), num::bits(v));
  return buf;
}

RowResult compare_topk_row(std::span<const std::int32_t> g, std::span<const std::int32_t> w, std::size_t k,
                           const TopkLogits* logits, std::size_t row) {
  RowResult res;
  res.exact = std::equal(g.begin(), g.end(), w.begin());
  std::vector<std::int32_t> gs, ws;
  gs.reserve(k);
  ws.reserve(k);
  for (auto x : g)
    if (x != -1) gs.push_back(x);
  for (auto x : w)
    if (x != -1) ws.push_back(x);
  std::sort(gs.begin(), gs.end());
  std::sort(ws.begin(), ws.end());
  // Validity: no duplicates, in range, the right number of entries.
  const std::int64_t n = logits ? logits->valid_len[row] : -1;
  const std::size_t expected = logits ? static_cast<std::size_t>(std::min<std::int64_t>(n, static_cast<std::int64_t>(k)))
                                      : ws.size();
  if (std::adjacent_find(gs.begin(), gs.end()) != gs.end()) {
    res.valid = false;
    res.invalid_detail = "duplicate index " + std::to_string(*std::adjacent_find(gs.begin(), gs.end()));
  } else if (!gs.empty() && (gs.front() < 0 || (n >= 0 && gs.back() >= n))) {
    res.valid = false;
    res.invalid_detail = "index " + std::to_string(gs.front() < 0 ? gs.front() : gs.back()) + " outside [0, " +
                         (n >= 0 ? std::to_string(n) : std::string("N")) + ")";
  } else if (gs.size() != expected) {
    res.valid = false;
    res.invalid_detail = std::to_string(gs.size()) + " entries, expected " + std::to_string(expected);
  }
  res.set = res.valid && gs == ws;
  std::vector<std::int32_t> common;
  std::set_intersection(gs.begin(), gs.end(), ws.begin(), ws.end(), std::back_inserter(common));
  res.recall = ws.empty() ? 1.0 : static_cast<double>(common.size()) / static_cast<double>(ws.size());
  if (!logits) {
    res.tie = res.set;
    return res;
  }
  if (!res.valid) {
    res.tie = false;
    res.tie_detail = res.invalid_detail;
    return res;
  }
  if (res.set || n <= static_cast<std::int64_t>(k)) {
    res.tie = res.set;
    if (!res.tie) res.tie_detail = "row has N = " + std::to_string(n) + " <= K: every column must be selected";
    return res;
  }
  const float* vals = logits->values.data() + row * logits->row_stride;
  auto key = [&](std::int32_t c) { return topk_order_key(vals[c]); };
  std::uint32_t kth = 0xffffffffu;
  for (auto c : ws) kth = std::min(kth, key(c));
  res.tie = true;
  for (auto c : gs) {
    if (key(c) < kth) {
      res.tie = false;
      res.tie_detail = "column " + std::to_string(c) + " value " + value_text(vals[c]) +
                       " ranks below the K-th value";
      return res;
    }
  }
  for (auto c : ws) {
    if (key(c) > kth && !std::binary_search(gs.begin(), gs.end(), c)) {
      res.tie = false;
      res.tie_detail = "column " + std::to_string(c) + " value " + value_text(vals[c]) +
                       " ranks above the K-th value but is missing";
      return res;
    }
  }
  return res;
}

}  // namespace

TopkMetrics compare_topk(std::int64_t step, std::span<const std::int32_t> got, std::span<const std::int32_t> want,
                         std::size_t rows, std::size_t k, const TopkLogits* logits,
                         std::span<const std::int64_t> row_ids) {
  if (!row_ids.empty() && row_ids.size() != rows)
    raise(Errc::bad_input, "compare_topk: row_ids has " + std::to_string(row_ids.size()) + " entries, need " +
                               std::to_string(rows));
  if (got.size() != rows * k || want.size() != rows * k)
    raise(Errc::bad_input, "compare_topk: expected " + std::to_string(rows) + " x " + std::to_string(k) +
                               " indices, got " + std::to_string(got.size()) + " and " + std::to_string(want.size()));
  if (logits && logits->valid_len.size() < rows)
    raise(Errc::bad_input, "compare_topk: valid_len has " + std::to_string(logits->valid_len.size()) + " rows, need " +
                               std::to_string(rows));
  if (logits && rows > 0) {
    for (std::size_t r = 0; r < rows; ++r) {
      const auto nr = logits->valid_len[r];
      if (nr < 0 || static_cast<std::size_t>(nr) > logits->row_stride ||
          (r * logits->row_stride + static_cast<std::size_t>(nr)) > logits->values.size())
        raise(Errc::bad_input, "compare_topk: row " + std::to_string(r) + " valid length " + std::to_string(nr) +
                                   " exceeds the logits");
    }
  }
  std::vector<RowResult> res(rows);
  parallel_for(
      rows,
      [&](std::size_t r0, std::size_t r1) {
        for (std::size_t r = r0; r < r1; ++r)
          res[r] = compare_topk_row(got.subspan(r * k, k), want.subspan(r * k, k), k, logits, r);
      },
      4);
  TopkMetrics m;
  m.tie_checked = logits != nullptr;
  for (std::size_t r = 0; r < rows; ++r) {
    const Position at{step, row_ids.empty() ? static_cast<std::int64_t>(r) : row_ids[r]};
    const auto& x = res[r];
    ++m.rows;
    m.exact_rows += x.exact;
    m.set_rows += x.set;
    m.tie_rows += x.tie;
    m.invalid_rows += !x.valid;
    m.recall_min = std::min(m.recall_min, x.recall);
    m.recall_sum += x.recall;
    if (!x.exact && !m.first_exact_fail.valid()) m.first_exact_fail = at;
    if (!x.set && !m.first_set_fail.valid()) m.first_set_fail = at;
    if (!x.tie && !m.first_tie_fail.valid()) {
      m.first_tie_fail = at;
      m.first_tie_detail = x.tie_detail;
    }
    if (!x.valid && !m.first_invalid.valid()) {
      m.first_invalid = at;
      m.first_invalid_detail = x.invalid_detail;
    }
  }
  return m;
}

const char* to_string(TopkCheck c) {
  switch (c) {
    case TopkCheck::exact: return "exact";
    case TopkCheck::set: return "set";
    case TopkCheck::tie: return "tie";
    case TopkCheck::recall: return "recall";
  }
  return "?";
}

TopkCheck parse_topk_check(std::string_view s, std::string_view what) {
  if (s == "exact") return TopkCheck::exact;
  if (s == "set") return TopkCheck::set;
  if (s == "tie") return TopkCheck::tie;
  if (s == "recall") return TopkCheck::recall;
  raise(Errc::bad_input, std::string(what) + ": unknown top-k check '" + std::string(s) +
                             "' (supported: exact, set, tie, recall)");
}

std::vector<std::string> evaluate(const TopkRule& rule, const TopkMetrics& m) {
  std::vector<std::string> why;
  auto row = [](const Position& p) { return "step " + std::to_string(p.step) + " row " + std::to_string(p.flat); };
  if (m.invalid_rows > 0)
    why.push_back(std::to_string(m.invalid_rows) + " invalid rows (first " + row(m.first_invalid) + ": " +
                  m.first_invalid_detail + ")");
  switch (rule.check) {
    case TopkCheck::exact:
      if (m.exact_rows != m.rows)
        why.push_back(std::to_string(m.rows - m.exact_rows) + " rows differ as arrays (first " +
                      row(m.first_exact_fail) + ")");
      break;
    case TopkCheck::set:
      if (m.set_rows != m.rows)
        why.push_back(std::to_string(m.rows - m.set_rows) + " rows select a different set (first " +
                      row(m.first_set_fail) + ")");
      break;
    case TopkCheck::tie:
      if (m.tie_rows != m.rows)
        why.push_back(std::to_string(m.rows - m.tie_rows) + " rows differ outside the tie class at the K-th value" +
                      (m.tie_checked ? "" : " (no logits: checked as sets)") + " (first " + row(m.first_tie_fail) +
                      (m.first_tie_detail.empty() ? "" : ": " + m.first_tie_detail) + ")");
      break;
    case TopkCheck::recall:
      if (m.recall_min < rule.recall_min)
        why.push_back("recall " + fmt(m.recall_min) + " < " + fmt(rule.recall_min));
      break;
  }
  return why;
}

}  // namespace dsv4::validation
