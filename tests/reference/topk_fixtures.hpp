// Top-k test problems shared by tests/reference/test_topk.cpp and tests/gpu/test_topk.cu:
// host-owned logits (any dtype, stored as raw bytes) plus seq_lens, and generators for the
// edge fixtures of the issue (ties, ±0 plateaus, ±inf, NaN, N_r around K, odd sizes).
#pragma once

#include "reference/topk.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace dsv4::test {

/// A self-contained top-k problem: storage + the TopkProblem view of it.
struct TopkCase {
  std::string name;
  LogitDtype dtype = LogitDtype::f32;
  std::int64_t rows = 0, cols = 0, row_stride = 0;
  int next_n = 1, compress_ratio = 1, k = 1;
  std::vector<std::uint8_t> logits;      // [rows, row_stride] elements of dtype
  std::vector<std::int32_t> seq_lens;   // [batch]

  TopkProblem problem() const {
    TopkProblem p;
    p.logits = logits.data();
    p.dtype = dtype;
    p.rows = rows;
    p.cols = cols;
    p.row_stride = row_stride;
    p.seq_lens = seq_lens.data();
    p.batch = static_cast<std::int64_t>(seq_lens.size());
    p.next_n = next_n;
    p.compress_ratio = compress_ratio;
    p.k = k;
    return p;
  }
  std::string describe() const {
    std::ostringstream s;
    s << name << " [dtype " << to_string(dtype) << ", rows " << rows << ", cols " << cols << ", stride " << row_stride
      << ", next_n " << next_n << ", ratio " << compress_ratio << ", k " << k << "]";
    return s.str();
  }
  /// Store fp32 value v at (row, col), rounded to the case's dtype (RNE).
  void set(std::int64_t row, std::int64_t col, float v) {
    const std::size_t at = static_cast<std::size_t>(row * row_stride + col);
    if (dtype == LogitDtype::f32) {
      std::memcpy(logits.data() + at * 4, &v, 4);
    } else {
      const std::uint16_t h = dtype == LogitDtype::bf16 ? num::float_to_bf16(v) : num::float_to_fp16(v);
      std::memcpy(logits.data() + at * 2, &h, 2);
    }
  }
  /// Store a raw bit pattern (fp32 bits, or the low 16 bits for bf16 / fp16).
  void set_bits(std::int64_t row, std::int64_t col, std::uint32_t u) {
    const std::size_t at = static_cast<std::size_t>(row * row_stride + col);
    if (dtype == LogitDtype::f32) {
      std::memcpy(logits.data() + at * 4, &u, 4);
    } else {
      const std::uint16_t h = static_cast<std::uint16_t>(u);
      std::memcpy(logits.data() + at * 2, &h, 2);
    }
  }
};

/// Allocates a case (values 0, seq_lens 0); columns between cols and the row stride hold
/// +inf, which would win every row if an implementation read past N_r.
inline TopkCase make_case(std::string name, LogitDtype dt, std::int64_t batch, int next_n, int ratio, int k,
                          std::int64_t cols, std::int64_t stride_pad = 0) {
  TopkCase c;
  c.name = std::move(name);
  c.dtype = dt;
  c.rows = batch * next_n;
  c.cols = cols;
  c.row_stride = cols + stride_pad;
  c.next_n = next_n;
  c.compress_ratio = ratio;
  c.k = k;
  c.logits.assign(static_cast<std::size_t>(c.rows * c.row_stride * element_bytes(dt)), 0);
  for (std::int64_t r = 0; r < c.rows; ++r)
    for (std::int64_t j = cols; j < c.row_stride; ++j) c.set(r, j, num::inf());
  c.seq_lens.assign(static_cast<std::size_t>(batch), 0);
  return c;
}

/// Fills every valid column with values drawn by `gen(rng)` (fp32, rounded to dtype).
template <class Gen>
void fill(TopkCase& c, std::mt19937_64& rng, Gen gen) {
  for (std::int64_t r = 0; r < c.rows; ++r)
    for (std::int64_t j = 0; j < c.cols; ++j) c.set(r, j, gen(rng));
}

/// Special values that exercise the total order: ±0, ±inf, NaNs of both signs and payloads,
/// subnormals, extremes.
inline std::vector<std::uint32_t> special_bits() {
  return {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00000u, 0x7f800001u,
          0xff800001u, 0x7fffffffu, 0xffffffffu, 0x00000001u, 0x80000001u, 0x7f7fffffu, 0xff7fffffu,
          0x3f800000u, 0xbf800000u, 0x00800000u, 0x80800000u};
}

/// Special 16-bit patterns for bf16 / fp16 (±0, ±inf, NaNs, subnormals, extremes).
inline std::vector<std::uint32_t> special_bits16(LogitDtype dt) {
  if (dt == LogitDtype::bf16)
    return {0x0000u, 0x8000u, 0x7f80u, 0xff80u, 0x7fc0u, 0xffc0u, 0x7f81u, 0xff81u, 0x0001u, 0x8001u, 0x7f7fu, 0xff7fu, 0x3f80u};
  return {0x0000u, 0x8000u, 0x7c00u, 0xfc00u, 0x7e00u, 0xfe00u, 0x7c01u, 0xfc01u, 0x0001u, 0x8001u, 0x7bffu, 0xfbffu, 0x3c00u};
}

/// The random fixture generator used by both suites. `kind` selects the value
/// distribution: 0 uniform, 1 few distinct values (ties), 2 zero plateau with mixed ±0,
/// 3 specials sprinkled over normal values, 4 all-NaN / all-equal rows mixed.
inline void fill_kind(TopkCase& c, std::mt19937_64& rng, int kind) {
  std::uniform_real_distribution<float> uni(-4.0f, 4.0f);
  std::uniform_int_distribution<int> pick(0, 1 << 30);
  const auto specials = c.dtype == LogitDtype::f32 ? special_bits() : special_bits16(c.dtype);
  for (std::int64_t r = 0; r < c.rows; ++r) {
    const int row_kind = kind == 4 ? pick(rng) % 4 : kind;
    for (std::int64_t j = 0; j < c.cols; ++j) {
      switch (row_kind) {
        case 0: c.set(r, j, uni(rng)); break;
        case 1: c.set(r, j, static_cast<float>(pick(rng) % 5) - 2.0f); break;
        case 2: {
          const int q = pick(rng) % 8;
          c.set(r, j, q < 3 ? 0.0f : q < 6 ? -0.0f : q == 6 ? uni(rng) : -1.0f);
          break;
        }
        case 3:
          if (pick(rng) % 6 == 0) c.set_bits(r, j, specials[static_cast<std::size_t>(pick(rng)) % specials.size()]);
          else c.set(r, j, uni(rng));
          break;
        default:
          if (r % 2 == 0) c.set_bits(r, j, c.dtype == LogitDtype::f32 ? 0xffc00000u : (c.dtype == LogitDtype::bf16 ? 0xffc0u : 0xfe00u));
          else c.set(r, j, 1.5f);
      }
    }
  }
}

/// seq_lens for which row lengths spread over [0, cols]: each request gets a random length
/// (biased towards K - 1, K, K + 1 and cols).
inline void random_seq_lens(TopkCase& c, std::mt19937_64& rng) {
  const std::int64_t lo = c.next_n - 1;  // smallest seq_len with N_r >= 0 for every row
  const std::int64_t hi = c.cols * c.compress_ratio;  // last row: N = floor(seq_len / ratio) <= cols
  std::uniform_int_distribution<std::int64_t> any(lo, std::max(lo, hi));
  for (auto& s : c.seq_lens) {
    const int mode = static_cast<int>(rng() % 6);
    std::int64_t v = any(rng);
    const std::int64_t near_k = static_cast<std::int64_t>(c.k) * c.compress_ratio + static_cast<std::int64_t>(rng() % 3) - 1 + c.next_n - 1;
    if (mode == 0) v = hi;
    if (mode == 1) v = near_k;
    s = static_cast<std::int32_t>(std::clamp(v, lo, std::max(lo, hi)));
  }
}

/// Sets the columns at and beyond each row's N_r to +inf (they must be ignored: an
/// implementation reading them would select them first). Call after seq_lens are set.
inline void poison_tail(TopkCase& c) {
  for (std::int64_t r = 0; r < c.rows; ++r) {
    const std::int64_t n = topk_row_length_unchecked(c.seq_lens[static_cast<std::size_t>(r / c.next_n)], r, c.next_n, c.compress_ratio);
    for (std::int64_t j = std::max<std::int64_t>(n, 0); j < c.cols; ++j) c.set(r, j, num::inf());
  }
}

/// Properties every output row must have whatever the values: min(N_r, K) entries, strictly
/// ascending, in [0, N_r), then -1 padding. Returns "" or a description of the first violation.
inline std::string check_shape(const TopkCase& c, const std::vector<std::int32_t>& out) {
  const TopkProblem p = c.problem();
  for (std::int64_t r = 0; r < c.rows; ++r) {
    const std::int64_t n = topk_row_length(p, r);
    const std::int64_t m = std::min<std::int64_t>(n, c.k);
    for (int i = 0; i < c.k; ++i) {
      const std::int32_t v = out[static_cast<std::size_t>(r * c.k + i)];
      const bool ok = i < m ? (v >= 0 && v < n && (i == 0 || v > out[static_cast<std::size_t>(r * c.k + i - 1)])) : v == -1;
      if (!ok) return "row " + std::to_string(r) + " slot " + std::to_string(i) + " holds " + std::to_string(v);
    }
  }
  return "";
}

/// First differing position of two output arrays, "" when equal.
inline std::string first_diff(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b, int k) {
  if (a.size() != b.size()) return "sizes differ";
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i])
      return "row " + std::to_string(i / static_cast<std::size_t>(k)) + " slot " + std::to_string(i % static_cast<std::size_t>(k)) +
             ": " + std::to_string(a[i]) + " vs " + std::to_string(b[i]);
  return "";
}

}  // namespace dsv4::test
