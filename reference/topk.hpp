// Indexer top-k (DESIGN §3.3): the K best of the first N_r logits of every row, as column
// indices in ascending column order.
//
// Numerics contract
// - Row length: row r belongs to request b = r / next_n and has
//   N_r = floor((seq_lens[b] - next_n + (r mod next_n) + 1) / compress_ratio) valid columns;
//   N_r < 0 or N_r > cols is bad input. Columns >= N_r are never read.
// - N_r <= K: the output is 0, 1, ..., N_r - 1, then -1 up to K.
// - Otherwise the K best columns under one total order: larger value first; bf16 / fp16
//   logits are compared after their exact upcast to fp32; +0 ranks above -0; every NaN
//   (any sign, any payload) ranks below -inf and all NaNs form one class; between equal
//   bit patterns (and between NaNs) the smaller column index ranks first.
// - Output int32 [rows, K], the selected columns in ascending column order.
// - No arithmetic happens, so the result is exact: oracle, reference and GPU kernel return
//   the same array. The order is encoded once, by topk_key() below, which the kernel uses too.
#pragma once

#include "reference/numerics/numerics.hpp"

#include <cstdint>

namespace dsv4 {

/// Element type of the logits.
enum class LogitDtype { f32, bf16, f16 };

inline const char* to_string(LogitDtype d) {
  switch (d) {
    case LogitDtype::f32: return "f32";
    case LogitDtype::bf16: return "bf16";
    case LogitDtype::f16: return "f16";
  }
  return "?";
}

/// Bytes of one logit.
inline int element_bytes(LogitDtype d) { return d == LogitDtype::f32 ? 4 : 2; }

/// Largest K the op supports (V3.2 uses 2048, V4-Pro 1024, V4-Flash 512).
inline constexpr int kTopkMaxK = 2048;

/// One top-k problem, laid out as the trace stores it (host pointers for the CPU code).
struct TopkProblem {
  const void* logits = nullptr;         ///< [rows, row_stride] elements of `dtype`; the first cols used
  LogitDtype dtype = LogitDtype::f32;   ///< element type of logits
  std::int64_t rows = 0;                ///< batch * next_n (fewer allowed: the first rows)
  std::int64_t cols = 0;                ///< columns present per row (>= every N_r)
  std::int64_t row_stride = 0;          ///< elements between row starts, >= cols
  const std::int32_t* seq_lens = nullptr;  ///< [batch] uncompressed sequence lengths
  std::int64_t batch = 0;               ///< entries of seq_lens; batch * next_n >= rows
  int next_n = 1;                       ///< query tokens per request (rows per request), >= 1
  int compress_ratio = 1;               ///< tokens per compressed position, >= 1
  int k = 0;                            ///< selected columns per row, 1 ..  kTopkMaxK
};

/// Sort key of a logit's fp32 bit pattern: a larger key ranks first; equal keys are
/// ordered by column index. NaN -> 0; otherwise the sign-magnitude order mapped to an
/// unsigned order (negative: ~u, non-negative: u | 2^31), so -inf -> 0x007fffff > 0 and
/// -0 -> 0x7fffffff < +0 -> 0x80000000.
DSV4_HD std::uint32_t topk_key(std::uint32_t u) {
  // Branch free (random signs would defeat a branch predictor): flip all bits of a
  // negative pattern, only the sign bit of a non-negative one; NaN masks to 0.
  const std::uint32_t flip = static_cast<std::uint32_t>(static_cast<std::int32_t>(u) >> 31) | 0x80000000u;
  const std::uint32_t not_nan = static_cast<std::uint32_t>((u & 0x7fffffffu) <= 0x7f800000u);
  return (u ^ flip) & (0u - not_nan);
}

/// Key of element `i` of a row of dtype D (bf16 / fp16 upcast exactly first).
template <LogitDtype D>
DSV4_HD std::uint32_t topk_load_key(const void* row, std::int64_t i) {
  if constexpr (D == LogitDtype::f32) {
    return topk_key(num::bits(static_cast<const float*>(row)[i]));
  } else if constexpr (D == LogitDtype::bf16) {
    return topk_key(static_cast<std::uint32_t>(static_cast<const std::uint16_t*>(row)[i]) << 16);
  } else {
    return topk_key(num::bits(num::fp16_to_float(static_cast<const std::uint16_t*>(row)[i])));
  }
}

/// N_r of `row` without validation (may be negative or exceed cols): floor division.
DSV4_HD std::int64_t topk_row_length_unchecked(std::int64_t seq_len, std::int64_t row, int next_n,
                                              int compress_ratio) {
  const std::int64_t num = seq_len - next_n + (row % next_n) + 1;
  const std::int64_t q = num / compress_ratio;
  return (num % compress_ratio != 0 && num < 0) ? q - 1 : q;
}

/// Throws dsv4::Error(bad_input) naming the parameter or row at fault: null pointers,
/// k outside [1, kTopkMaxK], row_stride < cols, next_n or compress_ratio < 1, seq_lens
/// shorter than the rows need, and any row whose N_r is < 0 or > cols.
void topk_validate(const TopkProblem& p);

/// N_r of `row` (validated: throws bad_input when row is out of range or N_r is not in [0, cols]).
std::int64_t topk_row_length(const TopkProblem& p, std::int64_t row);

/// The plainest correct implementation: per row, sort the N_r columns by the total order,
/// keep the first K, sort them by column. out: [rows, k]. Validates first.
void topk_oracle(const TopkProblem& p, std::int32_t* out);

/// The fast CPU implementation (radix threshold search on the 32-bit keys, then one
/// index-order compaction; parallel over rows). Same array as topk_oracle. out: [rows, k].
void topk_reference(const TopkProblem& p, std::int32_t* out);

}  // namespace dsv4
