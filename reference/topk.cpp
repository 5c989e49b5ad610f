#include "reference/topk.hpp"

#include "reference/parallel.hpp"
#include "reference/status.hpp"

#include <algorithm>
#include <array>
#include <numeric>
#include <string>
#include <vector>

namespace dsv4 {

namespace {

std::string row_context(const TopkProblem& p, std::int64_t row) {
  const std::int64_t b = row / p.next_n;
  return "topk: row " + std::to_string(row) + " (request " + std::to_string(b) + ", seq_lens[" +
         std::to_string(b) + "] = " + std::to_string(p.seq_lens[b]) + ", next_n " + std::to_string(p.next_n) +
         ", compress_ratio " + std::to_string(p.compress_ratio) + ")";
}

void validate_shape(const TopkProblem& p) {
  auto bad = [](const std::string& m) { raise(Errc::bad_input, "topk: " + m); };
  if (p.dtype != LogitDtype::f32 && p.dtype != LogitDtype::bf16 && p.dtype != LogitDtype::f16)
    bad("dtype must be f32, bf16 or f16");
  if (p.k < 1 || p.k > kTopkMaxK)
    bad("k = " + std::to_string(p.k) + " is outside [1, " + std::to_string(kTopkMaxK) + "]");
  if (p.rows < 0) bad("rows = " + std::to_string(p.rows) + " is negative");
  if (p.cols < 0) bad("cols = " + std::to_string(p.cols) + " is negative");
  if (p.row_stride < p.cols)
    bad("row_stride = " + std::to_string(p.row_stride) + " is smaller than cols = " + std::to_string(p.cols));
  if (p.next_n < 1) bad("next_n = " + std::to_string(p.next_n) + " must be >= 1");
  if (p.compress_ratio < 1) bad("compress_ratio = " + std::to_string(p.compress_ratio) + " must be >= 1");
  if (p.batch < 0) bad("batch = " + std::to_string(p.batch) + " is negative");
  if (p.rows == 0) return;
  if (!p.logits) bad("logits is a null pointer");
  if (!p.seq_lens) bad("seq_lens is a null pointer");
  const std::int64_t need = (p.rows + p.next_n - 1) / p.next_n;
  if (p.batch < need)
    bad("seq_lens too short: batch = " + std::to_string(p.batch) + " entries, but rows = " + std::to_string(p.rows) +
        " with next_n = " + std::to_string(p.next_n) + " need " + std::to_string(need));
}

std::int64_t checked_length(const TopkProblem& p, std::int64_t row) {
  const std::int64_t n = topk_row_length_unchecked(p.seq_lens[row / p.next_n], row, p.next_n, p.compress_ratio);
  if (n < 0) raise(Errc::bad_input, row_context(p, row) + ": row length N_r = " + std::to_string(n) + " is negative");
  if (n > p.cols)
    raise(Errc::bad_input, row_context(p, row) + ": row length N_r = " + std::to_string(n) + " exceeds cols = " +
                               std::to_string(p.cols));
  return n;
}

/// Writes 0 .. n-1 then -1 up to k (the N_r <= K case).
void write_all(std::int64_t n, int k, std::int32_t* out) {
  for (int i = 0; i < k; ++i) out[i] = i < n ? i : -1;
}

// ---- oracle -------------------------------------------------------------------------------

float load_value(const TopkProblem& p, const void* row, std::int64_t i) {
  switch (p.dtype) {
    case LogitDtype::f32: return static_cast<const float*>(row)[i];
    case LogitDtype::bf16: return num::bf16_to_float(static_cast<const std::uint16_t*>(row)[i]);
    case LogitDtype::f16: return num::fp16_to_float(static_cast<const std::uint16_t*>(row)[i]);
  }
  return 0.0f;
}

/// The total order written from its definition with float comparisons (independent of topk_key).
bool ranks_before(float va, std::int64_t a, float vb, std::int64_t b) {
  const bool na = num::is_nan(va), nb = num::is_nan(vb);
  if (na != nb) return nb;  // a number ranks above any NaN
  if (na) return a < b;     // NaNs: one class
  if (va != vb) return va > vb;
  const bool sa = num::sign_bit(va), sb = num::sign_bit(vb);
  if (sa != sb) return sb;  // equal values with different signs: +0 above -0
  return a < b;
}

// ---- reference ----------------------------------------------------------------------------

/// The K-th largest key T of a row, and how many elements equal to T are taken (the first
/// ones in index order).
struct Threshold {
  std::uint32_t key;
  std::int64_t take_equal;
};

template <LogitDtype D>
void reference_row(const void* row, std::int64_t n, int k, std::int32_t* out, std::vector<std::uint32_t>& cand) {
  if (n <= k) {
    write_all(n, k, out);
    return;
  }
  // Pass 1: histogram of the top 11 bits over the row.
  std::array<std::uint32_t, 2048> hist{};
  for (std::int64_t i = 0; i < n; ++i) ++hist[topk_load_key<D>(row, i) >> 21];
  std::int64_t remaining = k;  // elements still to take among those matching the prefix
  std::uint32_t bin = 2048;
  while (true) {
    --bin;
    if (hist[bin] >= remaining) break;
    remaining -= hist[bin];
  }
  // Pass 2: gather the keys of the threshold bin, refine on bits 20..10 then 9..0.
  // Branch free: the bin's size is known, so write every key and advance on a match
  // (one spare slot takes the last non-matching write).
  cand.resize(static_cast<std::size_t>(hist[bin]) + 1);
  std::size_t c = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint32_t key = topk_load_key<D>(row, i);
    cand[c] = key;
    c += (key >> 21) == bin;
  }
  cand.resize(c);
  std::uint32_t prefix = bin << 21;
  for (const auto [shift, width] : {std::array<int, 2>{10, 11}, std::array<int, 2>{0, 10}}) {
    const std::uint32_t mask = (1u << width) - 1u;
    hist.fill(0);
    const std::uint32_t high = ~((mask << shift) | ((1u << shift) - 1u));
    for (const std::uint32_t key : cand)
      if ((key & high) == prefix) ++hist[(key >> shift) & mask];
    std::uint32_t d = mask + 1;
    while (true) {
      --d;
      if (hist[d] >= remaining) break;
      remaining -= hist[d];
    }
    prefix |= d << shift;
  }
  const Threshold t{prefix, remaining};
  // Pass 3: compaction in column order: every key above T, the first take_equal keys equal to T.
  std::int64_t pos = 0, equal = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint32_t key = topk_load_key<D>(row, i);
    if (key > t.key || (key == t.key && equal++ < t.take_equal)) out[pos++] = static_cast<std::int32_t>(i);
  }
  if (pos != k) raise(Errc::internal, "topk_reference: selected " + std::to_string(pos) + " of k = " + std::to_string(k));
}

template <LogitDtype D>
void reference_rows(const TopkProblem& p, const std::vector<std::int64_t>& lens, std::int32_t* out) {
  const std::size_t esize = static_cast<std::size_t>(element_bytes(D));
  parallel_for(static_cast<std::size_t>(p.rows), [&](std::size_t begin, std::size_t end) {
    std::vector<std::uint32_t> cand;
    for (std::size_t r = begin; r < end; ++r) {
      const void* row = static_cast<const char*>(p.logits) + r * static_cast<std::size_t>(p.row_stride) * esize;
      reference_row<D>(row, lens[r], p.k, out + r * static_cast<std::size_t>(p.k), cand);
    }
  });
}

std::vector<std::int64_t> validated_lengths(const TopkProblem& p) {
  validate_shape(p);
  std::vector<std::int64_t> lens(static_cast<std::size_t>(p.rows));
  for (std::int64_t r = 0; r < p.rows; ++r) lens[static_cast<std::size_t>(r)] = checked_length(p, r);
  return lens;
}

}  // namespace

void topk_validate(const TopkProblem& p) { (void)validated_lengths(p); }

std::int64_t topk_row_length(const TopkProblem& p, std::int64_t row) {
  validate_shape(p);
  if (row < 0 || row >= p.rows)
    raise(Errc::bad_input, "topk: row " + std::to_string(row) + " is outside [0, rows = " + std::to_string(p.rows) + ")");
  return checked_length(p, row);
}

void topk_oracle(const TopkProblem& p, std::int32_t* out) {
  const auto lens = validated_lengths(p);
  if (p.rows > 0 && !out) raise(Errc::bad_input, "topk: out is a null pointer");
  const std::size_t esize = static_cast<std::size_t>(element_bytes(p.dtype));
  for (std::int64_t r = 0; r < p.rows; ++r) {
    const void* row = static_cast<const char*>(p.logits) + static_cast<std::size_t>(r * p.row_stride) * esize;
    std::int32_t* o = out + r * p.k;
    const std::int64_t n = lens[static_cast<std::size_t>(r)];
    if (n <= p.k) {
      write_all(n, p.k, o);
      continue;
    }
    std::vector<float> v(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = load_value(p, row, i);
    std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](std::int64_t a, std::int64_t b) {
      return ranks_before(v[static_cast<std::size_t>(a)], a, v[static_cast<std::size_t>(b)], b);
    });
    idx.resize(static_cast<std::size_t>(p.k));
    std::sort(idx.begin(), idx.end());
    for (int i = 0; i < p.k; ++i) o[i] = static_cast<std::int32_t>(idx[static_cast<std::size_t>(i)]);
  }
}

void topk_reference(const TopkProblem& p, std::int32_t* out) {
  const auto lens = validated_lengths(p);
  if (p.rows > 0 && !out) raise(Errc::bad_input, "topk: out is a null pointer");
  switch (p.dtype) {
    case LogitDtype::f32: reference_rows<LogitDtype::f32>(p, lens, out); break;
    case LogitDtype::bf16: reference_rows<LogitDtype::bf16>(p, lens, out); break;
    case LogitDtype::f16: reference_rows<LogitDtype::f16>(p, lens, out); break;
  }
}

}  // namespace dsv4
