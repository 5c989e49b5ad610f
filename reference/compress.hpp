// Online-softmax KV compressor (DESIGN §3.1): the float64 oracle, the bit-exact float32
// reference of the CUDA kernels (gpu/compress.cuh), and the scalar math both share.
//
// Numerics contract
// - Store first: state_kv[p] = cast_state(kv), state_score[p] = cast_state(f32(score) +
//   ape[p mod CR]) (one rounding to the state dtype). Candidates are always the rounded
//   state values, so a prefill and token-by-token decode give the same bits.
// - Window k (emitted in the step whose tokens complete it) reduces, per output element d,
//   its candidates in this order: CR = 128: positions 128k .. 128k+127, column d;
//   CR = 4: when k >= 1 positions 4k-4 .. 4k-1 with column d (the "A" half), then
//   positions 4k .. 4k+3 with column HD + d (the "B" half).
// - Recurrence from (m, l, a) = (-inf, 0, 0): n = max(m, s); c = exp(m - n);
//   t = exp(s - n); l = fma(l, c, t); a = fma(a, c, v * t); m = n. exp(-inf - -inf) is
//   defined as 0, so a -inf score has weight 0 (its value still enters as v * 0, so a NaN
//   or infinite value makes the element NaN). max propagates NaN (a NaN score or a +inf
//   score makes the element NaN).
// - NRW = 4 (CR = 128 only): partition w reduces positions [32w, 32w+32) of the window;
//   partition 0 folds 1, 2, 3 in order: n = max(m0, mw); c1 = exp(m0 - n);
//   c2 = exp(mw - n); l0 = fma(l0, c1, lw * c2); a0 = fma(a0, c1, aw * c2).
// - Output o = a / l rounded to the output dtype. An element with no finite score
//   (m = -inf at the end) outputs +0 and is reported as empty.
// - A NaN produced by arithmetic (stored score, output) is the canonical quiet NaN
//   0x7fc00000 (bf16 0x7fc0), so NaN outputs also compare bit for bit; kv values are
//   stored without arithmetic (their bits are kept, rounded to bf16 when the state is).
// - The softmax is per element over positions, never across the head dimension.
#pragma once

#include "reference/numerics/numerics.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dsv4 {

/// Storage format of the compressor's kv/score input, state and output.
enum class Dtype : int { f32 = 0, bf16 = 1 };
const char* to_string(Dtype d);
std::size_t size_of(Dtype d);

/// One compressor configuration (a model layer's compressor).
struct CompressConfig {
  int head_dim = 512;              ///< HD: 128 or 512
  int compress_ratio = 128;        ///< CR: 4 (overlapping windows) or 128
  int tokens_per_step = 1;         ///< NN: new tokens per request in a decode step, 1..8
  Dtype kv_dtype = Dtype::bf16;    ///< dtype of kv_score (the input rows)
  Dtype state_dtype = Dtype::f32;  ///< dtype of state_kv and state_score
  Dtype out_dtype = Dtype::bf16;   ///< dtype of the compressed output rows
  int warps = 1;                   ///< NRW: 1, or 4 (CR = 128 only): partitions of a window
  int page_size = 128;             ///< positions per state page; a multiple of CR

  /// SD, the width of a state row: 2 * HD when CR = 4, else HD.
  int state_dim() const { return compress_ratio == 4 ? 2 * head_dim : head_dim; }
  /// The parallel schedule the reference reproduces (printed in reports).
  num::Schedule schedule() const;
  /// "HD=512 CR=128 NN=4 kv=bf16 state=f32 out=bf16 NRW=4 page=128"
  std::string to_string() const;
};

/// Supported values (the reference supports every combination of these; the GPU table in
/// gpu/compress.cuh lists its own).
inline constexpr int kCompressHeadDims[] = {128, 512};
inline constexpr int kCompressRatios[] = {4, 128};
inline constexpr int kCompressMaxTokensPerStep = 8;

/// Paged compressor state of a batch. Position p of request b lives in block
/// block_table[b * max_blocks + p / page_size], slot p % page_size. Host memory for the
/// reference and oracle, device memory for the kernels. Requests may share pages they only
/// read (a common prefix), never a page that a call writes.
struct CompressState {
  void* state_kv = nullptr;                  ///< [num_blocks, page_size, SD] state_dtype
  void* state_score = nullptr;               ///< [num_blocks, page_size, SD] state_dtype
  const std::int32_t* block_table = nullptr; ///< [batch, max_blocks] block ids
  std::int64_t num_blocks = 0;               ///< blocks in state_kv / state_score
  int max_blocks = 0;                        ///< row stride of block_table (pages per request)
};

/// Inputs of one call: a decode step (NN tokens per request) or a prefill chunk
/// (cu_seq_lens gives each request's token count).
struct CompressStep {
  int batch = 0;                              ///< requests
  const void* kv_score = nullptr;             ///< [tokens, 2 * SD] kv_dtype: kv columns, then score columns
  std::int64_t tokens = 0;                    ///< rows of kv_score
  const std::int32_t* cu_seq_lens = nullptr;  ///< [batch + 1] prefill: request b owns rows
                                              ///< cu_seq_lens[b] .. cu_seq_lens[b+1]-1;
                                              ///< nullptr for decode (rows b*NN .. b*NN+NN-1)
  const float* ape = nullptr;                 ///< [CR, SD] fp32 learned positional bias
  const std::int32_t* kv_len = nullptr;       ///< [batch] each request's length after this call
  const std::int32_t* out_offsets = nullptr;  ///< [batch + 1] request b's windows go to rows
                                              ///< out_offsets[b], out_offsets[b] + 1, ...
  std::int64_t out_rows = 0;                  ///< rows of the output ([out_rows, HD])
};

/// An emitted window in which some output elements had no finite score (output 0).
struct CompressEmptyWindow {
  int request = 0;
  std::int64_t window = 0;   ///< window index k within the request
  std::int64_t out_row = 0;  ///< its output row
  int empty_elements = 0;    ///< elements (of HD) with no finite score
};

/// What a call did.
struct CompressReport {
  std::int64_t windows = 0;                ///< windows emitted (output rows written)
  std::vector<CompressEmptyWindow> empty;  ///< windows with empty elements, in output-row order
  num::Schedule schedule;                  ///< the variant whose bits were reproduced
};

/// Number of windows request b emits when its length goes from kv_len - n to kv_len.
inline std::int64_t compress_windows(int compress_ratio, std::int64_t kv_len, std::int64_t n) {
  return kv_len / compress_ratio - (kv_len - n) / compress_ratio;
}

/// Dense output offsets [batch + 1] for a step (out_offsets[batch] = total windows).
/// cu_seq_lens = nullptr means a decode step of config.tokens_per_step tokens each.
std::vector<std::int32_t> compress_output_offsets(const CompressConfig& config, int batch,
                                                  const std::int32_t* kv_len,
                                                  const std::int32_t* cu_seq_lens = nullptr);

/// Throws dsv4::Error (bad_input / unsupported) naming the parameter at fault: config
/// outside the supported set, page size not a multiple of CR, null pointers, kv_len < the
/// request's token count, token rows out of range, a page beyond max_blocks or a block id
/// outside [0, num_blocks), output rows that overlap or exceed out_rows.
void compress_validate(const CompressConfig& config, const CompressStep& step, const CompressState& state);

/// Bit-exact reference of a decode step (step.cu_seq_lens must be nullptr). Stores the
/// step's tokens into `state`, writes the emitted windows to out ([out_rows, HD],
/// out_dtype) and, when `empty` is not nullptr, empty[row * HD + d] = 1 for elements with
/// no finite score (0 otherwise) on the rows it writes. Nothing else is written.
CompressReport compress_decode_reference(const CompressConfig& config, const CompressStep& step,
                                         const CompressState& state, void* out,
                                         std::uint8_t* empty = nullptr);

/// Bit-exact reference of a prefill chunk (step.cu_seq_lens required; tokens_per_step is
/// ignored). Same stores and windows as decoding the chunk token by token.
CompressReport compress_prefill_reference(const CompressConfig& config, const CompressStep& step,
                                          const CompressState& state, void* out,
                                          std::uint8_t* empty = nullptr);

/// Float64 oracle of the same call (decode when step.cu_seq_lens is nullptr, else
/// prefill): performs the same stores (the state is part of the definition), then each
/// emitted window's softmax over its candidates in float64, schedule-free. out is
/// [out_rows, HD] double; elements with no finite score are 0.
CompressReport compress_oracle(const CompressConfig& config, const CompressStep& step,
                               const CompressState& state, double* out);

/// Host-owned paged state for tests, tools and replay: `blocks_per_request` pages per
/// request, request b's pages placed by `block_ids` (default: b * blocks_per_request + i).
class CompressStateBuffer {
 public:
  CompressStateBuffer(const CompressConfig& config, int batch, int blocks_per_request,
                      std::vector<std::int32_t> block_ids = {});
  CompressState view();
  std::vector<unsigned char>& kv_bytes() { return kv_; }
  std::vector<unsigned char>& score_bytes() { return score_; }
  std::vector<std::int32_t>& block_table() { return table_; }
  std::int64_t num_blocks() const { return num_blocks_; }
  int max_blocks() const { return max_blocks_; }

 private:
  std::vector<unsigned char> kv_, score_;
  std::vector<std::int32_t> table_;
  std::int64_t num_blocks_ = 0;
  int max_blocks_ = 0;
};

// ---------------------------------------------------------------------------------------
// Scalar math shared by the reference and the kernels (host + device, identical bits).
namespace compress_math {

/// Online-softmax accumulator of one output element.
struct Acc {
  float m, l, a;
};

DSV4_HD Acc acc_init() { return {num::neg_inf(), 0.0f, 0.0f}; }

/// n = max(m, s) and the rescale weights cm = exp(m - n), cs = exp(s - n), with
/// exp(-inf - -inf) = 0. One of the two differences is always n - n, whose exp is 1 for
/// a finite n (num::exp(0) == 1 exactly), 0 for n = -inf (the definition) and NaN for
/// n = +inf or NaN (exp(NaN)); only the other one needs an exp. This equals the literal
/// formula bit for bit (tests/reference/test_compress.cpp checks it).
DSV4_HD void weights(float m, float s, float& n, float& cm, float& cs) {
  n = num::max_nan(m, s);
  const float same = num::is_finite(n) ? 1.0f : (n == num::neg_inf() ? 0.0f : num::qnan());
  if (num::is_nan(n)) {
    cm = cs = num::qnan();
  } else if (s > m) {  // n = s: cs = exp(0)
    cm = num::exp(m - n);  // m = -inf gives exp(-inf) = 0
    cs = same;
  } else {  // n = m (or s == m)
    cm = same;
    cs = (s == num::neg_inf() && n == num::neg_inf()) ? 0.0f : num::exp(s - n);
  }
}

/// One candidate (score s, value v): the recurrence of DESIGN §3.1.
DSV4_HD void step(Acc& x, float s, float v) {
  float n, c, t;
  weights(x.m, s, n, c, t);
  x.l = num::fma(x.l, c, t);
  x.a = num::fma(x.a, c, v * t);
  x.m = n;
}

/// Fold partition partial y into x (NRW = 4, partition 0 folding 1, 2, 3 in order).
DSV4_HD void fold(Acc& x, const Acc& y) {
  float n, c1, c2;
  weights(x.m, y.m, n, c1, c2);
  x.l = num::fma(x.l, c1, y.l * c2);
  x.a = num::fma(x.a, c1, y.a * c2);
  x.m = n;
}

/// True when the element saw no finite score (it outputs 0).
DSV4_HD bool is_empty(const Acc& x) { return x.m == num::neg_inf(); }

/// NaN results of arithmetic are stored as the canonical quiet NaN (0x7fc00000): CPUs keep
/// an input NaN's payload, GPUs return their own default NaN, so only a fixed NaN compares
/// bit for bit.
DSV4_HD float canonical(float x) { return num::is_nan(x) ? num::qnan() : x; }

/// The float32 output value before rounding to the output dtype.
DSV4_HD float finish(const Acc& x) { return is_empty(x) ? 0.0f : canonical(x.a / x.l); }

/// Round a float to the state / output dtype (value kept in float).
DSV4_HD float round_to(Dtype d, float x) { return d == Dtype::bf16 ? num::round_bf16(x) : x; }

/// The stored score: f32(score) + ape, rounded once to the state dtype.
DSV4_HD float stored_score(Dtype state, float score, float ape) { return round_to(state, canonical(score + ape)); }

}  // namespace compress_math

}  // namespace dsv4
