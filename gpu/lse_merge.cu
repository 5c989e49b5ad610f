#include "gpu/lse_merge.cuh"
#include "gpu/fastdiv.hpp"

#include <type_traits>

namespace dsv4::gpu {

namespace mm = merge_math;

namespace {

constexpr int kThreads = 256;     // threads per block
constexpr int kChunk = 8;         // elements of v per lane and slice
// Resident blocks per SM the grid is sized for: 3 (<= 80 registers) when every row has at
// most G inputs (one tile: the common case), 2 when tiles beyond the first must be
// recomputed inside the fold (their exp needs registers next to the accumulators).
constexpr int blocks_per_sm(bool tiles) { return tiles ? 2 : 3; }
constexpr int kDefaultSms = 132;  // H100 / H200, when MergeParams::sm_count is 0
constexpr int kWarp = port::kWarpSize;
constexpr int kWarpLog2 = kWarp == 64 ? 6 : 5;
constexpr int kMaxGroup = 32;     // lanes per row group at most (a slice of 32 chunks)
static_assert(kWarp == 32 || kWarp == 64, "warp of 32 or 64 lanes");
using Mask = std::conditional_t<kWarp == 64, unsigned long long, unsigned>;  // one bit per lane

// Floats of N loaded 32-bit words (fp32: one per word; bf16: two, element 2k in the low half
// of word k, little endian), and floats back to words rounded to T with NaN canonical.
template <VDtype T, int N>
__device__ __forceinline__ void widen_words(const unsigned (&w)[N], float* y) {
#pragma unroll
  for (int k = 0; k < N; ++k) {
    if constexpr (T == VDtype::f32) {
      y[k] = num::from_bits(w[k]);
    } else {
      y[2 * k] = num::bf16_to_float(static_cast<std::uint16_t>(w[k] & 0xffffu));
      y[2 * k + 1] = num::bf16_to_float(static_cast<std::uint16_t>(w[k] >> 16));
    }
  }
}
// A NaN is rare in a merge's output: one test over the N words' floats picks the plain
// conversion, and only a chunk that holds a NaN takes the canonicalising one.
template <VDtype T, int N>
__device__ __forceinline__ void pack_words(const float* y, unsigned (&w)[N]) {
  constexpr int E = T == VDtype::f32 ? N : 2 * N;
  bool nan = false;
#pragma unroll
  for (int e = 0; e < E; ++e) nan |= y[e] != y[e];
#pragma unroll
  for (int k = 0; k < N; ++k) {
    if constexpr (T == VDtype::f32)
      w[k] = num::bits(y[k]);
    else
      w[k] = port::bf16x2_rn(y[2 * k], y[2 * k + 1]);
  }
  if (nan) {  // one branch for the chunk: a select per word compiled to a branch per word
#pragma unroll
    for (int k = 0; k < N; ++k) {
      if constexpr (T == VDtype::f32)
        w[k] = num::bits(mm::canon(y[k]));
      else
        w[k] = port::bf16x2_canon(y[2 * k], y[2 * k + 1]);
    }
  }
}

// The 8 elements of v that chunk c of a row owns, as loaded (16-byte vectors) and widened
// to floats. fp32: elements 4c .. 4c+3 and D/2 + 4c .. D/2 + 4c+3, so that each of the two
// loads of a warp covers one contiguous span; bf16: elements 8c .. 8c+7. `row` is the
// index of the row's first element, half = D/2 (a multiple of 4: 16-byte aligned).
template <VDtype T>
struct Raw8;
// kBatch: inputs whose v loads are in flight together in one lane (64 bytes either way).
template <>
struct Raw8<VDtype::f32> {
  static constexpr int kBatch = 2;
  uint4 a, b;
};
template <>
struct Raw8<VDtype::bf16> {
  static constexpr int kBatch = 4;
  uint4 q;
};

template <VDtype T>
__device__ __forceinline__ void load8(const void* __restrict__ base, std::int64_t row, std::int64_t c,
                                      std::int64_t half, Raw8<T>& r) {
  if constexpr (T == VDtype::f32) {
    const float* p = static_cast<const float*>(base) + row + 4 * c;
    r.a = *reinterpret_cast<const uint4*>(p);
    r.b = *reinterpret_cast<const uint4*>(p + half);
  } else {
    r.q = *reinterpret_cast<const uint4*>(static_cast<const std::uint16_t*>(base) + row + 8 * c);
  }
}

template <VDtype T>
__device__ __forceinline__ void widen8(const Raw8<T>& r, float x[kChunk]) {
  if constexpr (T == VDtype::f32) {
    const unsigned w[8] = {r.a.x, r.a.y, r.a.z, r.a.w, r.b.x, r.b.y, r.b.z, r.b.w};
    widen_words<T>(w, x);
  } else {
    const unsigned w[4] = {r.q.x, r.q.y, r.q.z, r.q.w};
    widen_words<T>(w, x);
  }
}

// Store the chunk's 8 floats (NaN made canonical) rounded to the output dtype, at the
// positions load8 reads them from.
template <VDtype T>
__device__ __forceinline__ void store8(void* __restrict__ base, std::int64_t row, std::int64_t c, std::int64_t half,
                                       const float y[kChunk]) {
  if constexpr (T == VDtype::f32) {
    unsigned w[8];
    pack_words<T>(y, w);
    float* p = static_cast<float*>(base) + row + 4 * c;
    *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
    *reinterpret_cast<uint4*>(p + half) = make_uint4(w[4], w[5], w[6], w[7]);
  } else {
    unsigned w[4];
    pack_words<T>(y, w);
    *reinterpret_cast<uint4*>(static_cast<std::uint16_t*>(base) + row + 8 * c) = make_uint4(w[0], w[1], w[2], w[3]);
  }
}

// Work split. A row group of G lanes (G a power of two: D/8 rounded up when D/8 <= 32,
// else 32) merges one row; a warp holds kWarp / G row groups (consecutive rows) and a warp
// item is those rows. A row wider than 32 chunks is done in slices of 32 chunks, one after
// the other inside the item, so the row's scalars are computed once for all of them.
struct Geom {
  FastDiv by_heads;         // row / heads in 32 bits (small_index)
  int chunks = 0;           // D / 8
  int g_log2 = 0;           // log2 G
  int slices = 1;           // ceil(chunks / G) (1 .. 4)
  std::int64_t items = 0;   // warp items: ceil(rows / (kWarp / G))
  bool small_index = true;  // rows + kWarp and items + warps fit 32 bits
  // Launch constants the kernel reads from the parameter bank rather than keeping them
  // in registers (it is short of them).
  std::int64_t warps = 0;     // warps in the grid: the item stride
  std::int64_t lse_step = 0;  // lse index distance between inputs i and i + 1 (see merge_math::row_inputs)
  std::int64_t v_step = 0;    // the same for v: lse_step * D
  int half = 0;               // D / 2
  int dense_n = 0;            // inputs per row without num_splits / offsets: min(splits, kMergeMaxSplits)
  bool ragged = false;        // num_splits or split_offsets is set
};

// What one lane needs of its warp item (few registers: two items are live at a time).
struct Item {
  std::int64_t row = -1;   // output row (token * heads + head); -1: the lane has no row
  std::int64_t first = 0;  // lse index of input 0 (merge_math::RowInputs::first)
  int n = 0;               // inputs (0 without a row)
  float sink = 0.0f;       // sink logit of the row's head, when there is a sink
};

__device__ __forceinline__ Item decode(const MergeParams& p, const Geom& gm, std::int64_t wi, int grp) {
  Item it;
  if (wi >= gm.items) return it;
  const int per_warp_log2 = kWarpLog2 - gm.g_log2;
  std::int64_t row, t;
  if (gm.small_index) {  // 32-bit, division by multiplication (a 64-bit one is a long software sequence)
    const std::uint32_t row32 = (static_cast<std::uint32_t>(wi) << per_warp_log2) + static_cast<std::uint32_t>(grp);
    row = row32;
    t = fastdiv(row32, gm.by_heads);
  } else {
    row = (wi << per_warp_log2) + grp;
    t = row / p.heads;
  }
  if (row >= p.tokens * p.heads) return it;
  const std::int64_t h = row - t * p.heads;
  const mm::RowInputs r = mm::row_inputs(t, h, p.splits, p.tokens, p.heads, p.num_splits, p.split_offsets);
  it.row = row;
  it.first = r.first;
  it.n = r.n;
  if (p.sink) it.sink = p.sink[h];
  return it;
}

// Grid: at most the resident blocks (blocks_per_sm per SM); each warp walks warp items
// wi, wi + (warps in the grid), ... (the loop counts are the same in all lanes of a warp,
// so the shuffles below always see the full warp).
//
// Per item, lane j of a row group loads the lse of input j and computes its weight: the
// row max is a butterfly over the group (max_nan is commutative and associative, bits
// included), W = ((w_0 + w_1) + ...) is summed by every lane in input order from the
// group's weights (shuffles), s_j = w_j / W by lane j, then every lane folds its 8
// elements of each slice with s_i taken from lane i (shuffle) and the w_i != 0 skip from
// a ballot: the operations and their order are those of merge_reference, computed once
// per input per group instead of once per input per lane. Inputs beyond the first G
// (n > G) come in tiles of G whose lse and weight are loaded and computed again (same
// bits) when needed.
//
// Prefetch: the lse (first tile) of item k+1 is issued right after item k's weights; the
// first v batch of the next slice (of this row, or of item k+1) right after a slice's
// fold, before its stores. So a lane never starts a slice with an idle memory pipe, and
// the lse round trip leaves the critical path.
template <VDtype T, bool kTiles>
__global__ void __launch_bounds__(kThreads, blocks_per_sm(kTiles)) merge_kernel(MergeParams p, Geom gm) {
  constexpr int kBatch = Raw8<T>::kBatch;
  const int lane = static_cast<int>(port::lane_id());
  const int G = 1 << gm.g_log2;
  const int j = lane & (G - 1);  // lane within the row group = input of each tile it weighs
  const int base = lane - j;     // the group's first lane
  const int grp = lane >> gm.g_log2;
  const float ninf = num::neg_inf();
  auto lse_at = [&](const Item& it, int i) { return p.lse_partial[it.first + i * gm.lse_step]; };
  auto load_v = [&](const Item& it, int c, int i, Raw8<T>& x) {
    load8<T>(p.v_partial, it.first * p.D + i * gm.v_step, c, gm.half, x);
  };
  // The first batch of a slice (chunk c): inputs 0 .. kBatch - 1 of tile 0.
  Raw8<T> xb[kBatch];
  auto load_first = [&](const Item& it, int c) {
#pragma unroll
    for (int b = 0; b < kBatch; ++b)
      if (it.row >= 0 && c < gm.chunks && b < G && b < it.n) load_v(it, c, b, xb[b]);
  };

  std::int64_t wi = (static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x) >> kWarpLog2;
  Item cur = decode(p, gm, wi, grp);
  float lse_j = j < cur.n ? lse_at(cur, j) : ninf;  // raw lse of input j (tile 0)
  load_first(cur, j);
  for (; wi < gm.items; wi += gm.warps) {
    const Item nxt = decode(p, gm, wi + gm.warps, grp);  // issues its num_splits / offsets loads
    const int n = cur.n;
    const float l0 = lse_j;
    // Inputs of the busiest row of the warp: the trip count of the shuffle loops (the same
    // in every lane).
    const int nmax = gm.ragged ? port::warp_butterfly(n, [](int a, int b) { return a > b ? a : b; }) : gm.dense_n;
    // kTiles false: the host knows n <= G for every row.
    const int tiles = kTiles ? (nmax + G - 1) >> gm.g_log2 : (nmax > 0 ? 1 : 0);
    auto lse_eff = [&](int k) {  // effective lse of input kG + j (-inf past the row's inputs)
      const int i = (k << gm.g_log2) + j;
      return i < n ? mm::effective_lse(k == 0 ? l0 : lse_at(cur, i), p.policy) : ninf;
    };
    // Row max over the group: a butterfly over its first P lanes (P = the power of two
    // >= min(nmax, G): they hold every input of tile 0 and the other tiles' maxima), then
    // a broadcast from lane 0.
    float m = lse_eff(0);
    for (int k = 1; k < tiles; ++k) m = num::max_nan(m, lse_eff(k));
    int P = 1;
    while (P < nmax && P < G) P <<= 1;
    for (int off = P >> 1; off > 0; off >>= 1) m = num::max_nan(m, port::shfl_xor(m, off));
    if (P < G) m = port::shfl(m, base);
    const bool empty = m == ninf;  // all inputs empty (or none): (0, -inf)
    // W in input order. (An empty row computes NaN weights here; its result is replaced.)
    auto weight = [&](int k) { return ((k << gm.g_log2) + j) < n ? mm::weight(lse_eff(k), m) : 0.0f; };
    const float w0 = weight(0);
    float W = 0.0f;
    for (int k = 0; k < tiles; ++k) {
      const float wk = k == 0 ? w0 : weight(k);
      const int len = min(G, nmax - (k << gm.g_log2));
      for (int jj = 0; jj < len; ++jj) {
        const float x = port::shfl(wk, base + jj);
        if ((k << gm.g_log2) + jj < n) W += x;
      }
    }
    const float s0 = w0 / W;
    const Mask nz0 = static_cast<Mask>(port::ballot(w0 != 0.0f));
    // The next item's lse, now that this one's are consumed.
    lse_j = j < nxt.n ? lse_at(nxt, j) : ninf;
    // The row's lse (m + log W, only where it is stored or the sink needs it) and the sink
    // divisor, before the fold so that their temporaries never meet the accumulators.
    float lse = ninf, div = 1.0f;
    if (!empty) {
      const bool need_lse = (j == 0 && p.lse_out) || p.sink;
      const float row_lse = need_lse ? m + num::log(W) : 0.0f;
      lse = row_lse;
      if (p.sink) {
        div = mm::sink_divisor(cur.sink, row_lse);
        if (p.lse_includes_sink) lse = mm::lse_with_sink(row_lse, cur.sink);
      }
    }
    if (cur.row >= 0 && j == 0 && p.lse_out) p.lse_out[cur.row] = mm::canon(lse);
    for (int sl = 0; sl < gm.slices; ++sl) {
      const int c = (sl << gm.g_log2) + j;  // this lane's chunk of the slice
      const bool has_chunk = cur.row >= 0 && c < gm.chunks;
      // Fold: acc = fma(s_i, v_i, acc) for i = 0 .. n-1, skipping w_i == 0.
      float acc[kChunk];
#pragma unroll
      for (int e = 0; e < kChunk; ++e) acc[e] = -0.0f;
      for (int k = 0; k < tiles; ++k) {
        float sk = s0;
        Mask nz = nz0;
        if (k > 0) {
          const float wk = weight(k);
          sk = wk / W;
          nz = static_cast<Mask>(port::ballot(wk != 0.0f));
        }
        const int k0 = k << gm.g_log2;
        const int len = min(G, nmax - k0);
        for (int jj0 = 0; jj0 < len; jj0 += kBatch) {
          if (k > 0 || jj0 > 0) {
#pragma unroll
            for (int b = 0; b < kBatch; ++b)
              if (has_chunk && jj0 + b < len && k0 + jj0 + b < n) load_v(cur, c, k0 + jj0 + b, xb[b]);
          }
#pragma unroll
          for (int b = 0; b < kBatch; ++b) {
            const int jj = jj0 + b;
            if (jj >= len) break;
            const float s = port::shfl(sk, base + jj);
            if (k0 + jj < n && ((nz >> (base + jj)) & 1u)) {  // an empty or underflowed input contributes nothing
              float x[kChunk];
              widen8<T>(xb[b], x);
#pragma unroll
              for (int e = 0; e < kChunk; ++e) acc[e] = num::fma(s, x[e], acc[e]);
            }
          }
        }
      }
      if (empty) {
#pragma unroll
        for (int e = 0; e < kChunk; ++e) acc[e] = 0.0f;
      } else if (p.sink) {
#pragma unroll
        for (int e = 0; e < kChunk; ++e) acc[e] = acc[e] / div;
      }
      // The next slice's first v batch goes out before this slice's stores.
      if (sl + 1 < gm.slices) load_first(cur, c + G);
      else load_first(nxt, j);
      if (has_chunk) store8<T>(p.v_out, cur.row * p.D, c, gm.half, acc);
    }
    cur = nxt;
  }
}

// ---- Small rows: at most kSmallN inputs, 32-bit indices ----------------------------------
//
// The two-way (and one-way) merge is issue-bound in the generic kernel above: its loops
// over inputs, tiles and batches with runtime bounds cost more instructions than the
// arithmetic. When the host knows that no row has more than kSmallN inputs (every layout
// has n <= splits) and that every index fits 31 bits, this kernel runs straight-line code
// in two phases per block. The block owns kSmallItems consecutive (row, chunk) items.
// First one thread per row of the block computes the row's scalars (max, weights, W, the
// scales s_i, log W, the sink divisor; kSmallN exps and divisions, one log) into shared
// memory, once per row instead of once per chunk (without a sink, log W and the row's lse come
// after the barrier: no item needs them); then each thread merges its kSmallPer
// items with every load of them issued before any is used (for dense rows, the first
// kSmallEarly items' loads go out before the scalar phase, whose lse loads go first of all).
// The operations and their order are merge_reference's: m = max_nan over the inputs in order
// from -inf, W = (0 + w_0) + w_1, s_i = w_i / W, acc = fma(s_i, x_i, acc) in input order from
// -0 skipping w_i == 0, then the sink divisor and lse.
constexpr int kSmallN = 2;         // inputs per row at most
constexpr int kSmallPer = 2;       // items per thread
constexpr int kSmallItems = kThreads * kSmallPer;  // items per block
constexpr int kSmallBlocksPerSm = 4;
// Dense rows: items whose v loads go out before the scalar phase; the rest go after its
// barrier. At two-way 64 x 128 x 512 bf16 (H100), 1 of 2 measured 3-4% faster than 2 of 2
// (the scalar phase's lse loads wait behind fewer v loads) and than 0 (nothing in flight
// during the scalar phase).
constexpr int kSmallEarly = 1;

// One lane's chunk of one input: two 16-byte vectors, at elements c*V and D/2 + c*V of
// the row (V = 4 fp32 / 8 bf16), so that each load of a warp is one contiguous span.
// fp32: 8 elements; bf16: 16 elements (32 bytes either way; bf16 needs D % 16 == 0).
template <VDtype T>
struct Chunk;
template <>
struct Chunk<VDtype::f32> {
  using Elem = float;
  static constexpr int kVec = 4;  // elements per 16-byte vector
  uint4 a, b;
};
template <>
struct Chunk<VDtype::bf16> {
  using Elem = std::uint16_t;
  static constexpr int kVec = 8;
  uint4 a, b;
};
template <VDtype T>
constexpr int kChunkElems = 2 * Chunk<T>::kVec;

template <VDtype T>
__device__ __forceinline__ void load_chunk(const void* __restrict__ base, std::uint32_t at, std::uint32_t half,
                                           Chunk<T>& x) {
  // Element indices (< 2^31) widen into the 64-bit address; byte offsets could pass 2^32.
  const auto* p = static_cast<const typename Chunk<T>::Elem*>(base);
  x.a = *reinterpret_cast<const uint4*>(p + at);
  x.b = *reinterpret_cast<const uint4*>(p + (at + half));
}

template <VDtype T>
__device__ __forceinline__ void widen_chunk(const Chunk<T>& x, float y[kChunkElems<T>]) {
  const unsigned w[8] = {x.a.x, x.a.y, x.a.z, x.a.w, x.b.x, x.b.y, x.b.z, x.b.w};
  widen_words<T>(w, y);
}

// Store the chunk (NaN made canonical) rounded to the output dtype where load_chunk reads it.
template <VDtype T>
__device__ __forceinline__ void store_chunk(void* __restrict__ base, std::uint32_t at, std::uint32_t half,
                                            const float y[kChunkElems<T>]) {
  unsigned w[8];
  pack_words<T>(y, w);
  auto* p = static_cast<typename Chunk<T>::Elem*>(base);
  *reinterpret_cast<uint4*>(p + at) = make_uint4(w[0], w[1], w[2], w[3]);
  *reinterpret_cast<uint4*>(p + (at + half)) = make_uint4(w[4], w[5], w[6], w[7]);
}

// Launch constants of the small-row kernel (parameter bank, 32-bit).
struct SmallGeom {
  FastDiv by_chunks;           // item / (chunks per row)
  FastDiv by_heads;            // row / heads
  std::uint32_t chunks = 0;    // chunks per row: D / kChunkElems
  std::uint32_t items = 0;     // rows * chunks (< 2^31)
  std::uint32_t heads = 0;
  std::uint32_t lse_step = 0;  // lse index distance between inputs i and i + 1
  std::uint32_t D = 0, half = 0;
  int splits = 0;              // 0 .. kSmallN
};

// What the items of a row need from the scalar phase. code: bit i (i < kSmallN) when
// input i contributes (the row is not empty, i < n and w_i != 0), bit kEmpty when every input
// is empty.
struct RowScalars {
  float s[kSmallN];     // w_i / W of the contributing inputs
  float div;            // sink divisor (read only with a sink)
  std::uint32_t first;  // lse index of input 0
};
constexpr unsigned kEmpty = 1u << kSmallN;
static_assert(sizeof(RowScalars) == 16, "one 16-byte shared load per item");

// What the scalar phase reads of row `row`: its inputs, their lse (effective) and the
// sink. Split from small_row so that a block's lse loads go out before its v loads:
// With `use_loaded`, `loaded` holds the row's raw lse already loaded (a dense row's inputs);
// passed by value, so that they stay in registers (a pointer to them put them on the stack).
struct RowIn {
  float l[kSmallN];     // effective lse of input i, -inf for i >= n
  float sink;
  std::uint32_t first;  // lse index of input 0
  int n;
};

__device__ __forceinline__ RowIn small_row_in(const MergeParams& p, const SmallGeom& g, std::uint32_t row,
                                             const float (&loaded)[kSmallN], bool use_loaded) {
  RowIn in;
  in.first = row;  // dense: input i of the row is row + i * lse_step
  in.n = g.splits;
  in.sink = 0.0f;
  if (p.sink || p.num_splits || p.split_offsets) {
    const std::uint32_t t = fastdiv(row, g.by_heads);
    const std::uint32_t h = row - t * g.heads;
    if (p.num_splits || p.split_offsets) {
      const mm::RowInputs r = mm::row_inputs(t, h, g.splits, p.tokens, g.heads, p.num_splits, p.split_offsets);
      in.first = static_cast<std::uint32_t>(r.first);  // < 2^31: checked on the host
      in.n = r.n;
    }
    if (p.sink) in.sink = p.sink[h];
  }
#pragma unroll
  for (int i = 0; i < kSmallN; ++i) {
    const std::uint32_t at = in.first + static_cast<std::uint32_t>(i) * g.lse_step;
    in.l[i] = i < in.n ? mm::effective_lse(use_loaded ? loaded[i] : p.lse_partial[at], p.policy) : num::neg_inf();
  }
  return in;
}

// Row `row`'s scalars from what small_row_in read. With a sink (whose divisor needs it) the
// row's lse is written here when this block owns the row's first chunk; without one, m and W
// go to `mw` and small_row_lse writes it after the block barrier, off the path to it.
__device__ __forceinline__ unsigned small_row(const MergeParams& p, const RowIn& in, std::uint32_t row, bool owns_lse,
                                              RowScalars& rs, float2& mw) {
  const float ninf = num::neg_inf();
  float m = ninf;
#pragma unroll
  for (int i = 0; i < kSmallN; ++i)
    if (i < in.n) m = num::max_nan(m, in.l[i]);
  const bool empty = m == ninf;  // every input empty (or none): (0, -inf); its weights are NaN, unused
  float w[kSmallN];
  float W = 0.0f;
#pragma unroll
  for (int i = 0; i < kSmallN; ++i) {
    w[i] = mm::weight(in.l[i], m);
    if (i < in.n) W += w[i];
  }
  unsigned code = empty ? kEmpty : 0u;
#pragma unroll
  for (int i = 0; i < kSmallN; ++i) {
    const bool use = !empty && i < in.n && w[i] != 0.0f;  // an empty or underflowed input contributes nothing
    rs.s[i] = use ? w[i] / W : 0.0f;
    code |= use ? 1u << i : 0u;
  }
  rs.div = 1.0f;
  rs.first = in.first;
  mw = make_float2(m, W);
  if (p.sink) {
    float lse = ninf;
    if (!empty) {
      const float row_lse = m + num::log(W);
      rs.div = mm::sink_divisor(in.sink, row_lse);
      lse = p.lse_includes_sink ? mm::lse_with_sink(row_lse, in.sink) : row_lse;
    }
    if (owns_lse && p.lse_out) p.lse_out[row] = mm::canon(lse);
  }
  return code;
}

// A row's lse without a sink, from small_row's m and W: m + log W, or -inf for an empty row.
__device__ __forceinline__ void small_row_lse(const MergeParams& p, std::uint32_t row, unsigned code, float2 mw) {
  p.lse_out[row] = mm::canon((code & kEmpty) ? num::neg_inf() : mw.x + num::log(mw.y));
}

// One item: acc = fma(s_i, x_i, acc) over the contributing inputs in order from -0 (+0 for
// an empty row, which has none), then the sink divisor, stored. The dense two-input row,
// the common one, takes a straight path.
template <VDtype T>
__device__ __forceinline__ void merge_item(const Chunk<T> (&v)[kSmallN], const RowScalars& rs, unsigned code, bool sink,
                                           void* __restrict__ out, std::uint32_t at, std::uint32_t half) {
  constexpr int E = kChunkElems<T>;
  constexpr unsigned kAll = (1u << kSmallN) - 1u;
  float acc[E];
  const auto add = [&](int i) {
    float x[E];
    widen_chunk<T>(v[i], x);
#pragma unroll
    for (int e = 0; e < E; ++e) acc[e] = num::fma(rs.s[i], x[e], acc[e]);
  };
  if (code == kAll) {  // from the constant -0: the first fma is a multiply
#pragma unroll
    for (int e = 0; e < E; ++e) acc[e] = -0.0f;
#pragma unroll
    for (int i = 0; i < kSmallN; ++i) add(i);
  } else {
    const float zero = (code & kEmpty) ? 0.0f : -0.0f;
#pragma unroll
    for (int e = 0; e < E; ++e) acc[e] = zero;
#pragma unroll
    for (int i = 0; i < kSmallN; ++i)
      if ((code >> i) & 1u) add(i);
  }
  if (sink && !(code & kEmpty)) {
#pragma unroll
    for (int e = 0; e < E; ++e) acc[e] = acc[e] / rs.div;
  }
  store_chunk<T>(out, at, half, acc);
}

// Grid: ceil(items / kSmallItems) blocks; block b owns items [b * kSmallItems, ...) and
// thread t items b * kSmallItems + k * kThreads + t, k < kSmallPer. (Tried: each warp
// computing the scalars of its own rows, with no block barrier: 12% slower at two-way
// 64 x 128 x 512 bf16, every lane paying the scalar chain's instructions.)
//
// kBulk (dense rows; each item group k * kThreads .. of a block is whole rows): the v of item
// group k, every input, goes into shared memory by sm_90's copy engine, one copy per input
// and group on the group's barrier, all started by one thread right after the lse loads. No
// v load waits for the scalar phase or holds a register across it, and group 0 is merged and
// stored while group 1's bytes land. Where the copy engine is missing (HIP, before sm_90) the
// kBulk kernel loads through registers like the other. Taken for bf16 only (two-way
// 64 x 128 x 512 L2-hot: 8.6 -> 7.9 us); f32 was 2% slower with it at that shape, which is
// DRAM-bound (gpu/bench/NOTES_lse_merge.md, round 8).
template <VDtype T, bool kBulk>
__global__ void __launch_bounds__(kThreads, kSmallBlocksPerSm) merge_small_kernel(MergeParams p, SmallGeom g) {
  __shared__ RowScalars sh_row[kSmallItems];
  __shared__ unsigned sh_code[kSmallItems];
  __shared__ float2 sh_mw[kSmallItems];  // a row's max and W, for its lse after the barrier
  const std::uint32_t begin = blockIdx.x * static_cast<std::uint32_t>(kSmallItems);
  const std::uint32_t left = g.items - begin;
  const std::uint32_t end = begin + (left < kSmallItems ? left : kSmallItems);
  const std::uint32_t row0 = fastdiv(begin, g.by_chunks);
  const std::uint32_t rows = fastdiv(end - 1u, g.by_chunks) - row0 + 1u;  // <= kSmallItems
  const bool dense = kBulk || (!p.num_splits && !p.split_offsets);

  // Dense rows: the lse of each thread's first scalar row go out before the v loads, so the
  // scalar phase does not wait behind them.
  float first_lse[kSmallN];
  const bool early = dense && threadIdx.x < rows;
  if (early)
#pragma unroll
    for (int i = 0; i < kSmallN; ++i)
      if (i < g.splits) first_lse[i] = p.lse_partial[row0 + threadIdx.x + static_cast<std::uint32_t>(i) * g.lse_step];

#if DSV4_GPU_BULK
  constexpr bool bulk = kBulk;
  using Elem = typename Chunk<T>::Elem;
  constexpr int kItemBytes = kChunkElems<T> * static_cast<int>(sizeof(Elem));
  __shared__ alignas(16) unsigned char sh_v[bulk ? kSmallN : 1][bulk ? kSmallItems * kItemBytes : 16];
  __shared__ port::BulkBarrier sh_bar[kSmallPer];
  if (bulk && threadIdx.x == kThreads - 1 && g.splits > 0) {  // a scalar row's thread only when rows >= kThreads
    for (int k = 0; k < kSmallPer; ++k) {
      const std::uint32_t first = begin + static_cast<std::uint32_t>(k * kThreads);
      if (first >= end) break;
      const std::uint32_t items = end - first < kThreads ? end - first : kThreads;
      const unsigned bytes = items * kItemBytes;  // whole rows from first / chunks on, contiguous per input
      port::bulk_begin(sh_bar[k], bytes * static_cast<unsigned>(g.splits));
      const std::uint32_t row = fastdiv(first, g.by_chunks);
      for (int i = 0; i < g.splits; ++i)
        port::bulk_copy(sh_v[i] + k * kThreads * kItemBytes,
                        static_cast<const Elem*>(p.v_partial) +
                            static_cast<std::size_t>(row + static_cast<std::uint32_t>(i) * g.lse_step) * g.D,
                        bytes, sh_bar[k]);
    }
  }
#else
  constexpr bool bulk = false;
#endif

  std::uint32_t rel[kSmallPer], col[kSmallPer];  // row - row0 and first element; rel = ~0u: no item
#pragma unroll
  for (int k = 0; k < kSmallPer; ++k) {
    const std::uint32_t item = begin + static_cast<std::uint32_t>(k * kThreads) + threadIdx.x;
    const std::uint32_t row = fastdiv(item, g.by_chunks);
    rel[k] = item < end ? row - row0 : ~0u;
    col[k] = (item - row * g.chunks) * Chunk<T>::kVec;
  }
  Chunk<T> v[kSmallPer][kSmallN];
  // Loads of input i of items [k0, k1): dense rows know their inputs before the scalar phase,
  // ragged rows after it (only the contributing inputs).
  const auto load_all = [&](bool after, int k0 = 0, int k1 = kSmallPer) {
#pragma unroll
    for (int k = 0; k < kSmallPer; ++k) {
      if (k < k0 || k >= k1) continue;
      if (rel[k] == ~0u) continue;
      const std::uint32_t first = after ? sh_row[rel[k]].first : row0 + rel[k];
      const unsigned code = after ? sh_code[rel[k]] : (1u << g.splits) - 1u;
#pragma unroll
      for (int i = 0; i < kSmallN; ++i)
        if ((code >> i) & 1u)
          load_chunk<T>(p.v_partial, (first + static_cast<std::uint32_t>(i) * g.lse_step) * g.D + col[k], g.half, v[k][i]);
    }
  };
  if (dense && !bulk) load_all(false, 0, kSmallEarly);
  for (std::uint32_t j = threadIdx.x; j < rows; j += kThreads) {
    const std::uint32_t row = row0 + j;
    const RowIn in = small_row_in(p, g, row, first_lse, early && j == threadIdx.x);
    sh_code[j] = small_row(p, in, row, row * g.chunks >= begin, sh_row[j], sh_mw[j]);
  }
  __syncthreads();
  if (!dense) load_all(true);
  if (dense && !bulk) load_all(false, kSmallEarly, kSmallPer);
  if (!p.sink && p.lse_out) {  // the scalar threads' own rows (what they wrote), their loads in flight
    for (std::uint32_t j = threadIdx.x; j < rows; j += kThreads)
      if ((row0 + j) * g.chunks >= begin) small_row_lse(p, row0 + j, sh_code[j], sh_mw[j]);
  }
#pragma unroll
  for (int k = 0; k < kSmallPer; ++k)
    if (rel[k] != ~0u) {
#if DSV4_GPU_BULK
      if (bulk && g.splits > 0) {  // the copy holds rows row0 .. contiguously, as the input does
        port::bulk_wait(sh_bar[k]);
#pragma unroll
        for (int i = 0; i < kSmallN; ++i)
          if (i < g.splits) load_chunk<T>(sh_v[i], rel[k] * g.D + col[k], g.half, v[k][i]);
      }
#endif
      merge_item<T>(v[k], sh_row[rel[k]], sh_code[rel[k]], p.sink != nullptr, p.v_out, (row0 + rel[k]) * g.D + col[k],
                    g.half);
    }
}

// The configuration table: instantiation and dispatch both come from it.
struct MergeConfig {
  VDtype v_dtype;
  void (*kernel)(MergeParams, Geom);        // rows of at most G inputs
  void (*kernel_tiles)(MergeParams, Geom);  // any row
  void (*kernel_small)(MergeParams, SmallGeom);  // at most kSmallN inputs, 31-bit indices
  void (*kernel_bulk)(MergeParams, SmallGeom);   // the same, dense rows through the copy engine (or null)
};
constexpr MergeConfig kConfigs[] = {
    {VDtype::f32, merge_kernel<VDtype::f32, false>, merge_kernel<VDtype::f32, true>,
     merge_small_kernel<VDtype::f32, false>, nullptr},
    {VDtype::bf16, merge_kernel<VDtype::bf16, false>, merge_kernel<VDtype::bf16, true>,
     merge_small_kernel<VDtype::bf16, false>, merge_small_kernel<VDtype::bf16, true>},
};

bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

Status bad(const std::string& msg) { return make_status(Errc::bad_input, "merge_launch: " + msg); }

}  // namespace

std::string merge_gpu_supported() {
  std::string dt;
  for (const MergeConfig& c : kConfigs) dt += std::string(dt.empty() ? "" : " or ") + to_string(c.v_dtype);
  return "supported: v dtype " + dt + ", D a multiple of 8 from 8 to " + std::to_string(kMergeMaxD) +
         ", 0 to " + std::to_string(kMergeMaxSplits) + " inputs per token, lse policy strict or fa2_empty";
}

std::size_t merge_workspace_bytes(const MergeParams&) { return 0; }

Status merge_launch(const MergeParams& p, void* workspace, std::size_t workspace_bytes, port::stream_t stream) {
  (void)workspace;
  if (workspace_bytes < merge_workspace_bytes(p)) return bad("workspace is too small");
  const MergeConfig* cfg = nullptr;
  for (const MergeConfig& c : kConfigs)
    if (c.v_dtype == p.v_dtype) cfg = &c;
  if (!cfg)
    return make_status(Errc::unsupported, "merge_launch: v dtype " + std::to_string(static_cast<int>(p.v_dtype)) +
                                              " is not supported; " + merge_gpu_supported());
  if (p.D < 1) return bad("D = " + std::to_string(p.D) + " must be positive");
  if (p.D % kChunk != 0 || p.D > kMergeMaxD)
    return make_status(Errc::unsupported,
                       "merge_launch: D = " + std::to_string(p.D) + " is not supported; " + merge_gpu_supported());
  if (p.policy != LsePolicy::strict && p.policy != LsePolicy::fa2_empty) return bad("unknown lse policy");
  if (p.splits < 0 || p.tokens < 0 || p.heads < 0)
    return bad("splits, tokens and heads must be >= 0 (got " + std::to_string(p.splits) + ", " +
               std::to_string(p.tokens) + ", " + std::to_string(p.heads) + ")");
  if (p.num_splits && p.split_offsets) return bad("num_splits and split_offsets are both set (use one)");
  if (!p.num_splits && !p.split_offsets && p.splits > kMergeMaxSplits && p.tokens > 0)
    return make_status(Errc::unsupported, "merge_launch: splits = " + std::to_string(p.splits) +
                                              " inputs per token; " + merge_gpu_supported());
  const std::int64_t rows = p.tokens * p.heads;
  if (rows == 0) return Status::success();
  // splits == 0 is valid: every row is empty and the kernel writes (0, -inf) without reading inputs.
  const bool has_inputs = p.splits > 0;
  if (has_inputs && !p.v_partial) return bad("v_partial is null");
  if (has_inputs && !p.lse_partial) return bad("lse_partial is null");
  if (!p.v_out) return bad("v_out is null");
  if (has_inputs && !aligned16(p.v_partial)) return bad("v_partial must be 16-byte aligned");
  if (!aligned16(p.v_out)) return bad("v_out must be 16-byte aligned");
  if (p.sm_count < 0) return bad("sm_count = " + std::to_string(p.sm_count) + " must be >= 0 (0 = default)");
  const std::int64_t sms = p.sm_count > 0 ? p.sm_count : kDefaultSms;
  // Every layout has n <= splits inputs per row, so splits <= kSmallN bounds them all. The
  // small kernel also needs every v index (inputs and output) below 2^31, and bf16 rows of
  // whole 16-element chunks (D % 16 == 0; other D take the generic kernel).
  const std::int64_t small_elems = p.v_dtype == VDtype::bf16 ? kChunkElems<VDtype::bf16> : kChunkElems<VDtype::f32>;
  constexpr std::int64_t kIndexLimit = 0x7fffffffLL;
  if (p.splits <= kSmallN && p.D % small_elems == 0 && rows <= kIndexLimit / p.D &&
      p.splits * (p.split_offsets ? p.heads : rows) <= kIndexLimit / p.D) {
    SmallGeom g;
    g.chunks = static_cast<std::uint32_t>(p.D / small_elems);
    const std::int64_t items = rows * g.chunks;
    const std::int64_t blocks = (items + kSmallItems - 1) / kSmallItems;
    g.by_chunks = make_fastdiv(g.chunks);
    g.by_heads = make_fastdiv(static_cast<std::uint32_t>(p.heads));
    g.items = static_cast<std::uint32_t>(items);
    g.heads = static_cast<std::uint32_t>(p.heads);
    g.lse_step = static_cast<std::uint32_t>(p.split_offsets ? p.heads : rows);
    g.D = static_cast<std::uint32_t>(p.D);
    g.half = g.D / 2;
    g.splits = static_cast<int>(p.splits);
    // Dense rows whose item groups of kThreads are whole rows may take the bulk-copy kernel.
    const bool bulk = cfg->kernel_bulk && !p.num_splits && !p.split_offsets && kThreads % g.chunks == 0;
    (bulk ? cfg->kernel_bulk : cfg->kernel_small)<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p, g);
    return port::launch_status("merge_small_kernel");
  }
  Geom gm;
  gm.chunks = static_cast<int>(p.D / kChunk);
  while ((1 << gm.g_log2) < gm.chunks && (1 << gm.g_log2) < kMaxGroup) ++gm.g_log2;
  gm.slices = (gm.chunks + (1 << gm.g_log2) - 1) >> gm.g_log2;
  const std::int64_t rows_per_warp = kWarp >> gm.g_log2;
  gm.items = (rows + rows_per_warp - 1) / rows_per_warp;
  // One warp per item when that is less than a full wave, else a full wave of resident
  // blocks whose warps walk the items (the lanes prefetch their next item meanwhile).
  const std::int64_t warps_per_block = kThreads / kWarp;
  // Inputs per row are at most min(splits, kMergeMaxSplits) in every layout.
  const bool tiles = (p.splits < kMergeMaxSplits ? p.splits : kMergeMaxSplits) > (1 << gm.g_log2);
  const std::int64_t wave = sms * blocks_per_sm(tiles);
  const std::int64_t needed = (gm.items + warps_per_block - 1) / warps_per_block;
  const std::int64_t blocks = needed < wave ? needed : wave;
  if (blocks > 0x7fffffffLL) return bad("sm_count is too large");
  gm.small_index = rows + kWarp <= 0xffffffffLL && gm.items + blocks * warps_per_block <= 0xffffffffLL;
  if (gm.small_index) gm.by_heads = make_fastdiv(static_cast<std::uint32_t>(p.heads));
  gm.warps = blocks * warps_per_block;
  gm.lse_step = p.split_offsets ? p.heads : p.tokens * p.heads;
  gm.v_step = gm.lse_step * p.D;
  gm.half = static_cast<int>(p.D / 2);
  gm.dense_n = static_cast<int>(p.splits < kMergeMaxSplits ? p.splits : kMergeMaxSplits);
  gm.ragged = p.num_splits || p.split_offsets;
  (tiles ? cfg->kernel_tiles : cfg->kernel)<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p, gm);
  return port::launch_status("merge_kernel");
}

}  // namespace dsv4::gpu
