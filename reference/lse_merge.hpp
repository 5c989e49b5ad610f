// LSE merge (DESIGN §3.2): split-KV combine, two-way / dual-scope merge, attention sink.
//
// Numerics contract
// -----------------
// A state is (v[D], lse) with a NATURAL-LOG lse in fp32 and v in fp32 or bf16. For one
// output row (token t, head h) with inputs i = 0 .. n-1 (index order):
//   l_i   = lse_i, except that under LsePolicy::fa2_empty an lse of +inf reads as -inf
//   m     = max_i l_i                      (NaN-propagating; order-free)
//   m = -inf (every input empty, or n = 0):  v = +0, lse = -inf, whatever the sink.
//   w_i   = exp(l_i - m)                   (an empty input has w_i = 0)
//   W     = ((w_0 + w_1) + w_2) + ...      (sequential in i, from 0)
//   s_i   = w_i / W
//   v[d]  = fma(s_{n-1}, v_{n-1}[d], ... fma(s_0, v_0[d], -0) ...)  sequential in i, per
//           element, SKIPPING every input with w_i = 0: an empty (or underflowed) input
//           contributes nothing whatever its v holds (an empty split may leave v unwritten).
//           The accumulator starts at -0 so that one input merges to itself bit for bit.
//   lse   = m + log(W)
// With m finite, W >= 1 (the input at the max has weight exactly 1), so the weight sum
// can never be 0: the explicit all-empty guard above is what keeps 0/0 and log(0) out.
// Sink σ (one fp32 logit per head, applied once after the merge, on non-empty rows):
//   v'    = v / (1 + exp(σ - lse))
//   lse'  = lse                           (default: the returned lse excludes the sink)
//   lse'  = hi + log1p(exp(lo - hi)), hi = max(lse, σ), lo = min(lse, σ)
//           (lse_includes_sink; equal to lse + log1p(exp(σ - lse)) when σ <= lse, and
//           free of overflow when σ is far above lse)
// Invalid lse: NaN (any policy), or +inf under the default `strict` policy, makes the
// whole row NaN (m or a weight is NaN) and is reported by a MergeDiagnostic.
// Every NaN stored (v or lse) is the canonical quiet NaN 0x7fc00000 (bf16 0x7fc0), so
// CPU and GPU outputs compare bit for bit even where the hardware's NaN payloads differ.
// v is rounded to the output dtype (= v_dtype, round to nearest even) once, at the end.
//
// Schedule: none to emulate. Every output element is computed in the order above, and
// the row's scalars (max, weights, W, s_i, lse) are single values however the GPU spreads
// their computation over lanes (max_nan is order-free; W is summed in input order by
// every lane), so merge_reference gives the kernels' bits by construction.
//
// Layouts (row-major, contiguous):
//   dense (split_offsets == nullptr):  v_partial [splits][tokens][heads][D],
//     lse_partial [splits][tokens][heads]; token t merges partials 0 .. n_t - 1 with
//     n_t = num_splits[t] (or `splits` when num_splits is nullptr).
//   packed (split_offsets != nullptr, varlen split-KV): v_partial [splits][heads][D],
//     lse_partial [splits][heads] where `splits` is the total number of partial rows;
//     token t merges rows split_offsets[t] .. split_offsets[t + 1] - 1.
//   outputs: v_out [tokens][heads][D] (v_dtype), lse_out [tokens][heads] fp32.
// At most kMergeMaxSplits inputs per token.
#pragma once

#include "reference/numerics/numerics.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace dsv4 {

enum class VDtype { f32, bf16 };
enum class LsePolicy {
  strict,     ///< NaN or +inf lse is invalid: the row becomes NaN and is reported
  fa2_empty,  ///< +inf lse means an empty input (FlashAttention-2 convention); NaN is invalid
};

const char* to_string(VDtype t);
const char* to_string(LsePolicy p);
/// Parse "f32"/"fp32"/"float32" or "bf16"/"bfloat16"; throws Error(bad_input) otherwise.
VDtype parse_vdtype(const std::string& s);
/// Parse "strict" or "fa2_empty"; throws Error(bad_input) otherwise.
LsePolicy parse_lse_policy(const std::string& s);
inline std::size_t vdtype_bytes(VDtype t) { return t == VDtype::f32 ? 4 : 2; }

inline constexpr std::int64_t kMergeMaxSplits = 256;  ///< inputs per token
inline constexpr std::int64_t kMergeMaxD = 1024;      ///< D: a multiple of 8 in [8, 1024]

struct MergeProblem {
  const void* v_partial = nullptr;          ///< dense [splits][tokens][heads][D] or packed [splits][heads][D], v_dtype
  VDtype v_dtype = VDtype::f32;             ///< dtype of v_partial and of the merged v
  const float* lse_partial = nullptr;       ///< dense [splits][tokens][heads] or packed [splits][heads], natural log
  std::int64_t splits = 0;                  ///< partials per token (dense) or total partial rows (packed)
  std::int64_t tokens = 0;
  std::int64_t heads = 0;
  std::int64_t D = 0;                       ///< head dim: multiple of 8, <= 1024
  const std::int32_t* num_splits = nullptr; ///< [tokens], 0 <= n_t <= splits, may be nullptr = all (dense only)
  const float* sink = nullptr;              ///< [heads] sink logits, may be nullptr = no sink
  LsePolicy policy = LsePolicy::strict;
  bool lse_includes_sink = false;           ///< returned lse includes the sink (default: excludes it)
  std::vector<std::string> scope_names;     ///< [splits] names of the inputs when they are scopes, empty for split-KV
  const std::int32_t* split_offsets = nullptr; ///< [tokens + 1] packed layout, non-decreasing, may be nullptr
};

/// One non-finite output row, as `diagnose` prints it.
struct MergeDiagnostic {
  std::int64_t token = 0, head = 0;
  int input = -1;           ///< index of the responsible input (within the token's inputs), -1 = none / the sink
  std::string scope;        ///< scope name, "split i", or "sink"
  float value = 0.0f;       ///< the non-finite output value (first non-finite v element, else the lse)
  std::string op;           ///< "inf - inf", "nan input", "+inf input", "-inf input", "overflow"
  std::string cause;        ///< one sentence naming what was wrong and where
  std::string avoided_by;   ///< e.g. "--policy fa2_empty"; "" if nothing avoids it
};

/// Throw Error(bad_input) naming the first problem (shapes, null pointers, num_splits
/// out of range, offsets not monotone, scope_names size), or Error(unsupported) for a
/// valid request outside what the op supports (D, splits per token); the message lists
/// what is supported.
void merge_validate(const MergeProblem& p);
/// The "supported: ..." sentence of the unsupported errors (CPU and GPU).
std::string merge_supported();

/// Float64 textbook merge (same special-value rules, no rounding to fp32; an input is
/// skipped only when its lse is empty). v_out [tokens][heads][D], lse_out [tokens][heads].
void merge_oracle(const MergeProblem& p, double* v_out, double* lse_out);

/// Bit-exact reference of the GPU kernel. v_out [tokens][heads][D] in p.v_dtype
/// (float or bf16 bits as uint16), lse_out [tokens][heads] (may be nullptr). When diags
/// is not nullptr it receives one record per non-finite output row, in (token, head) order.
void merge_reference(const MergeProblem& p, void* v_out, float* lse_out, std::vector<MergeDiagnostic>* diags);

/// Dual-scope decode: merge scopes "swa" and "compressed" (stacked as
/// v [2][tokens][heads][D], lse [2][tokens][heads]), then apply the sink (may be nullptr).
MergeProblem dual_scope_problem(const void* v, VDtype v_dtype, const float* lse, std::int64_t tokens,
                                std::int64_t heads, std::int64_t D, const float* sink,
                                LsePolicy policy = LsePolicy::strict, bool lse_includes_sink = false);

/// Sink alone on states (v [tokens][heads][D], lse [tokens][heads]): a one-input merge
/// (which is the identity, bit for bit) followed by the sink.
MergeProblem sink_problem(const void* v, VDtype v_dtype, const float* lse, std::int64_t tokens,
                          std::int64_t heads, std::int64_t D, const float* sink,
                          LsePolicy policy = LsePolicy::strict, bool lse_includes_sink = false);

/// Shared scalar math of the kernel and the reference (host + device).
namespace merge_math {

/// lse as the merge reads it under `policy`.
DSV4_HD float effective_lse(float lse, LsePolicy policy) {
  return (policy == LsePolicy::fa2_empty && lse == num::inf()) ? num::neg_inf() : lse;
}

/// Canonical NaN (so stored NaNs have one bit pattern on every device).
DSV4_HD float canon(float x) { return num::is_nan(x) ? num::qnan() : x; }

/// Divisor 1 + exp(σ - lse) of the sink.
DSV4_HD float sink_divisor(float sink, float lse) { return 1.0f + num::exp(sink - lse); }

/// lse including the sink: logaddexp(lse, σ) = hi + log1p(exp(lo - hi)).
DSV4_HD float lse_with_sink(float lse, float sink) {
  if (num::is_nan(lse) || num::is_nan(sink)) return num::qnan();
  const float hi = lse > sink ? lse : sink;
  const float lo = lse > sink ? sink : lse;
  if (hi == num::inf()) return hi;  // lo - hi would be NaN for lo = +inf; e^{+inf} dominates
  return hi + num::log1p(num::exp(lo - hi));
}

/// Index step between consecutive inputs of one row, and the index of input 0, in units
/// of (row of lse_partial) = the [.., heads] element; v index = that * D.
struct RowInputs {
  std::int64_t first = 0;  ///< lse index of input 0
  std::int64_t step = 0;   ///< lse index distance between inputs i and i + 1
  int n = 0;               ///< number of inputs
};

/// Inputs of row (t, h); out-of-range counts are clamped to [0, min(splits, max)] so a
/// kernel never reads out of bounds (merge_validate rejects them on the host).
DSV4_HD RowInputs row_inputs(std::int64_t t, std::int64_t h, std::int64_t splits, std::int64_t tokens,
                             std::int64_t heads, const std::int32_t* num_splits,
                             const std::int32_t* split_offsets) {
  RowInputs r;
  std::int64_t n;
  if (split_offsets) {
    std::int64_t a = split_offsets[t], b = split_offsets[t + 1];
    a = a < 0 ? 0 : (a > splits ? splits : a);
    b = b < a ? a : (b > splits ? splits : b);
    r.first = a * heads + h;
    r.step = heads;
    n = b - a;
  } else {
    n = num_splits ? num_splits[t] : splits;
    n = n < 0 ? 0 : (n > splits ? splits : n);
    r.first = t * heads + h;
    r.step = tokens * heads;
  }
  r.n = static_cast<int>(n > kMergeMaxSplits ? kMergeMaxSplits : n);
  return r;
}

/// Per-row quantities every thread of a row computes (the same bits everywhere).
struct RowWeights {
  float m = 0.0f;      ///< max effective lse (NaN when an input is invalid)
  float W = 0.0f;      ///< sequential sum of the weights
  float lse = 0.0f;    ///< m + log(W), before the sink
  bool empty = true;   ///< m = -inf (or no inputs): the row is (0, -inf)
};

/// max_i of the effective lse (NaN-propagating; -inf when the row has no input).
DSV4_HD float row_max(const float* lse_partial, const RowInputs& r, LsePolicy policy) {
  float m = num::neg_inf();
  for (int i = 0; i < r.n; ++i) m = num::max_nan(m, effective_lse(lse_partial[r.first + i * r.step], policy));
  return m;
}

/// m, W and lse of a row. (The kernel runs the same W loop inline, keeping its first
/// weights in registers; the sums are the same operations in the same order.)
DSV4_HD RowWeights row_weights(const float* lse_partial, const RowInputs& r, LsePolicy policy) {
  RowWeights rw;
  const float m = row_max(lse_partial, r, policy);
  rw.m = m;
  if (m == num::neg_inf()) return rw;  // all empty: skip exp(-inf - -inf) and log(0)
  rw.empty = false;
  float W = 0.0f;
  for (int i = 0; i < r.n; ++i) W += num::exp(effective_lse(lse_partial[r.first + i * r.step], policy) - m);
  rw.W = W;
  rw.lse = m + num::log(W);
  return rw;
}

/// Weight of one input, w_i = exp(l_i - m): 0 for an empty input, NaN when the row is invalid.
DSV4_HD float weight(float lse_eff, float m) { return num::exp(lse_eff - m); }

}  // namespace merge_math

}  // namespace dsv4
