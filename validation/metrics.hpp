// Parity metrics (DESIGN §5): float outputs (bitwise, |Δ|, relative Δ, ulp histogram,
// per-row cosine in float64, non-finite placement) and top-k index outputs (exact array,
// set, recall, tie-aware equality), with the pass rules that judge them.
//
// Comparisons are accumulated step by step (memory bounded by one step) and report
// positions as (step, flat index inside the step); `format_position` unravels the flat
// index with the step's shape. Every result is deterministic: it does not depend on the
// thread count, and "first" / "worst" ties resolve to the earliest position.
//
// Conventions:
//  - got is the implementation under test, want the one it is judged against.
//  - Any NaN equals any NaN (payload and sign ignored): a CPU and a GPU legitimately
//    produce different NaN bits. ±inf and every other value compare by bits.
//  - Non-finite placement: a position where exactly one side is non-finite, or both are
//    but of a different kind (NaN, +inf, −inf), is a non-finite mismatch.
//  - |Δ|, relative Δ, ulp and cosine use only positions where both sides are finite.
//    Relative Δ is |got − want| / |want| over want ≠ 0 (where want = 0, |Δ| speaks).
//  - A float64 `want` (the oracle) is rounded to float for the bitwise / ulp checks and
//    used unrounded for |Δ|, relative Δ, cosine and the tolerance check.
//  - Cosine per row (the last axis): float64 sums; two all-zero rows have cosine 1, one
//    all-zero row against a non-zero row 0; clamped to [-1, 1].
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dsv4::validation {

/// A position in a replayed dataset: decode step and flat (row-major) index inside it.
struct Position {
  std::int64_t step = -1;  ///< -1: none recorded
  std::int64_t flat = -1;
  bool valid() const { return step >= 0; }
  friend bool operator<(const Position& a, const Position& b) {
    return a.step != b.step ? a.step < b.step : a.flat < b.flat;
  }
};

/// "step 3 [2, 17]" for a step shape {4, 32}; "-" for an invalid position. The leading
/// axis is not bounded (a shape {1, 32} formats flat 70 as [2, 6]).
std::string format_position(const Position& p, std::span<const std::size_t> step_shape);

/// Labels of the ulp histogram bins: 0, 1, 2, 3-4, 5-8, >8.
inline constexpr std::array<const char*, 6> kUlpBins{"0", "1", "2", "3-4", "5-8", ">8"};
/// Bin of an ulp distance (0..5).
int ulp_bin(std::uint32_t ulp);

/// Labels of the per-row cosine histogram, binned by 1 - cos.
inline constexpr std::array<const char*, 8> kCosBins{"exact", "<=1e-7", "<=1e-6", "<=1e-5",
                                                     "<=1e-4", "<=1e-3", "<=1e-2", ">1e-2"};
int cos_bin(double cosine);

/// Metrics of one float comparison (a step, or all steps of a dataset).
struct FloatMetrics {
  std::uint64_t elements = 0;
  std::uint64_t rows = 0;
  std::uint64_t mismatches = 0;  ///< bitwise (NaN == NaN)
  Position first_mismatch;
  std::uint32_t first_got_bits = 0, first_want_bits = 0;
  Position worst_mismatch;  ///< largest ulp distance (a non-finite mismatch counts as 2^32-1)
  std::uint32_t worst_got_bits = 0, worst_want_bits = 0;
  std::uint32_t max_ulp = 0;
  std::array<std::uint64_t, 6> ulp_hist{};  ///< over positions where both are finite
  double max_abs = 0.0;
  Position max_abs_at;
  double max_rel = 0.0;
  Position max_rel_at;
  std::uint64_t nonfinite_got = 0;        ///< non-finite values in got
  std::uint64_t nonfinite_mismatches = 0;
  Position first_nonfinite_mismatch;
  std::uint64_t tol_violations = 0;  ///< |Δ| > atol + rtol·|want| (finite pairs)
  Position first_tol_violation;
  double cos_min = 1.0;
  Position cos_min_at;  ///< step and row index (flat = row) of the smallest cosine
  double cos_sum = 0.0;  ///< sequential float64 sum of per-row cosines
  std::array<std::uint64_t, 8> cos_hist{};

  double cos_mean() const { return rows ? cos_sum / static_cast<double>(rows) : 1.0; }
  /// Fold `o` (a later step) into this; deterministic.
  void merge(const FloatMetrics& o);
};

/// Absolute and relative tolerance: |got − want| ≤ atol + rtol·|want|.
struct Tolerance {
  double atol = 0.0;
  double rtol = 0.0;
};

/// torch.testing defaults by output dtype ("float32", "bfloat16", "float16"; anything
/// else gets the float32 numbers).
Tolerance default_tolerance(std::string_view dtype);

/// Number grid of the compared output. With bf16 the values compared are bf16 numbers:
/// a float64 `want` is rounded straight to bf16 (correctly, no double rounding) for the
/// bitwise check, and ulp distances count bf16 ulps.
enum class Grid { f32, bf16 };
Grid grid_of(std::string_view dtype);  ///< bf16 for "bfloat16"/"bf16", else f32

/// Round a float64 to the nearest bf16 (ties to even), returned as a float.
float round_to_bf16(double x);

/// Compare one step of float outputs. `row_len` is the last axis (cosine rows); got and
/// want have the same length, a multiple of row_len. Rows are processed in parallel;
/// the result does not depend on the thread count.
FloatMetrics compare_float(std::int64_t step, std::span<const float> got, std::span<const float> want,
                           std::size_t row_len, Tolerance tol, Grid grid = Grid::f32);
FloatMetrics compare_float(std::int64_t step, std::span<const float> got, std::span<const double> want,
                           std::size_t row_len, Tolerance tol, Grid grid = Grid::f32);

/// Pass rule of a float comparison.
struct FloatRule {
  bool bitwise = true;  ///< zero bitwise mismatches (vs reference); else tolerance + cosine
  Tolerance tol;        ///< used when !bitwise
  double cos_min = 0.99;
  double cos_mean = 0.999;
  /// Non-finite values must sit in the same places: always required.
};

/// Default rules of DESIGN §5: vs reference bitwise; vs oracle / captured tolerance by
/// dtype + cosine ≥ 0.99 per row, mean ≥ 0.999.
FloatRule float_rule_vs_reference();
FloatRule float_rule_tolerance(std::string_view dtype);

/// Reasons the metrics fail the rule (empty = pass). Positions are formatted with
/// `step_shape`.
std::vector<std::string> evaluate(const FloatRule& rule, const FloatMetrics& m,
                                  std::span<const std::size_t> step_shape);

// ---------------------------------------------------------------------------------------
// Top-k

/// Sort key of the top-k total order (DESIGN §3.3) for an upcast value: larger key =
/// ranks higher; +0 above −0; every NaN below −inf (all NaNs share the lowest key).
std::uint32_t topk_order_key(float x);

/// Logits of one step, upcast to float, for the tie-aware check: row r, column c is
/// values[r * row_stride + c]; valid_len[r] = N_r (columns ≥ N_r are ignored).
struct TopkLogits {
  std::span<const float> values;
  std::size_t row_stride = 0;
  std::span<const std::int64_t> valid_len;
};

struct TopkMetrics {
  std::uint64_t rows = 0;
  std::uint64_t exact_rows = 0;    ///< arrays identical element by element
  std::uint64_t set_rows = 0;      ///< same set of indices (−1 padding ignored)
  std::uint64_t tie_rows = 0;      ///< equal up to the tie class at the K-th value
  bool tie_checked = false;        ///< logits were available for every step
  std::uint64_t invalid_rows = 0;  ///< duplicates, out of range, or wrong count of entries
  double recall_min = 1.0;
  double recall_sum = 0.0;  ///< sequential sum over rows
  Position first_exact_fail, first_set_fail, first_tie_fail, first_invalid;  ///< flat = row
  std::string first_tie_detail;  ///< why the first tie-aware failure failed
  std::string first_invalid_detail;

  double recall_mean() const { return rows ? recall_sum / static_cast<double>(rows) : 1.0; }
  void merge(const TopkMetrics& o);
};

/// Compare one step of top-k outputs, got and want int32 [rows, k] (−1 padding; got may
/// be in any order). With logits, rows are also checked tie-aware and for validity
/// against N_r; without, validity uses want's entry count and tie_rows = set_rows.
/// `row_ids` (optional, [rows]) names the trace row of each compared row (when a subset
/// of a step's rows is compared); positions then report those ids.
TopkMetrics compare_topk(std::int64_t step, std::span<const std::int32_t> got,
                         std::span<const std::int32_t> want, std::size_t rows, std::size_t k,
                         const TopkLogits* logits = nullptr, std::span<const std::int64_t> row_ids = {});

enum class TopkCheck { exact, set, tie, recall };
const char* to_string(TopkCheck c);
/// Parse "exact", "set", "tie" or "recall" (throws dsv4::Error bad_input naming `what`).
TopkCheck parse_topk_check(std::string_view s, std::string_view what);

struct TopkRule {
  TopkCheck check = TopkCheck::exact;
  double recall_min = 1.0;  ///< for TopkCheck::recall: every row's recall ≥ this
};

/// Reasons the metrics fail the rule (empty = pass). Invalid rows always fail.
std::vector<std::string> evaluate(const TopkRule& rule, const TopkMetrics& m);

}  // namespace dsv4::validation
