// Compressor kernels (see gpu/compress.cuh for the grid and the contract).
#include "gpu/compress.cuh"
#include "gpu/compress_step.hpp"

#include <algorithm>
#include <iterator>
#include <sstream>
#include <type_traits>

namespace dsv4::gpu {

namespace {

namespace cm = compress_math;
namespace fast = compress_fast;

constexpr int kLanes = 32;          // threads of a partition (not the hardware warp width)
// V, a kernel's template parameter: contiguous output elements per thread (1 or 2); a block
// covers kLanes * V output elements (see compress_vector_width_rule).

/// Everything the kernel reads, by value.
struct KernelArgs {
  const void* kv_score;             // [tokens, 2 SD]
  const std::int32_t* cu_seq_lens;  // [batch + 1] or nullptr (decode)
  int nn;                           // decode tokens per request
  const float* ape;                 // [CR, SD]
  const std::int32_t* kv_len;       // [batch]
  const std::int32_t* out_offsets;  // [batch + 1]
  void* out;                        // [rows, HD]
  std::uint8_t* empty;              // [rows, HD] or nullptr
  void* state_kv;                   // [num_blocks, page, SD]
  void* state_score;                // [num_blocks, page, SD]
  const std::int32_t* block_table;  // [batch, max_blocks]
  std::int64_t num_blocks;
  int max_blocks;
  int head_dim;
  int page_size;
};

// V contiguous elements (index i a multiple of V) of a dtype, as floats.
template <int V, Dtype D>
__device__ __forceinline__ void loadv(const void* base, std::int64_t i, float* x) {
  if constexpr (D == Dtype::f32 && V == 2) {
    const float2 v = *reinterpret_cast<const float2*>(static_cast<const float*>(base) + i);
    x[0] = v.x;
    x[1] = v.y;
  } else if constexpr (D == Dtype::f32) {
    x[0] = static_cast<const float*>(base)[i];
  } else if constexpr (V == 2) {
    const std::uint32_t u = *reinterpret_cast<const std::uint32_t*>(static_cast<const std::uint16_t*>(base) + i);
    x[0] = num::bf16_to_float(static_cast<std::uint16_t>(u & 0xffffu));
    x[1] = num::bf16_to_float(static_cast<std::uint16_t>(u >> 16));
  } else {
    x[0] = num::bf16_to_float(static_cast<const std::uint16_t*>(base)[i]);
  }
}

// Store V contiguous elements (index i a multiple of V), rounding to the dtype.
template <int V, Dtype D>
__device__ __forceinline__ void storev(void* base, std::int64_t i, const float* x) {
  if constexpr (D == Dtype::f32 && V == 2) {
    *reinterpret_cast<float2*>(static_cast<float*>(base) + i) = make_float2(x[0], x[1]);
  } else if constexpr (D == Dtype::f32) {
    static_cast<float*>(base)[i] = x[0];
  } else if constexpr (V == 2) {
    const std::uint32_t u = static_cast<std::uint32_t>(num::float_to_bf16(x[0])) |
                            (static_cast<std::uint32_t>(num::float_to_bf16(x[1])) << 16);
    *reinterpret_cast<std::uint32_t*>(static_cast<std::uint16_t*>(base) + i) = u;
  } else {
    static_cast<std::uint16_t*>(base)[i] = num::float_to_bf16(x[0]);
  }
}

/// State row (block * page + slot) of position pos of a request, or -1 when its page is
/// beyond max_blocks or its block id is outside [0, num_blocks).
__device__ __forceinline__ std::int64_t state_row(const KernelArgs& p, const std::int32_t* table, int pos) {
  const int page = pos / p.page_size;
  if (page >= p.max_blocks) return -1;
  const std::int32_t block = table[page];
  if (block < 0 || block >= p.num_blocks) return -1;
  return static_cast<std::int64_t>(block) * p.page_size + pos % p.page_size;
}

/// The V values (kv and score) of a new token at column col, rounded as stored.
template <int CR, int V, Dtype KV, Dtype ST>
__device__ __forceinline__ void freshv(const KernelArgs& p, std::int64_t in_row, int pos, int col, int sd, float* v,
                                       float* s) {
  const std::int64_t in = in_row * 2 * sd;
  float a[V];
  loadv<V, KV>(p.kv_score, in + col, v);
  loadv<V, KV>(p.kv_score, in + sd + col, s);
  loadv<V, Dtype::f32>(p.ape, static_cast<std::int64_t>(pos % CR) * sd + col, a);
#pragma unroll
  for (int e = 0; e < V; ++e) {
    v[e] = cm::round_to(ST, v[e]);
    s[e] = cm::stored_score(ST, s[e], a[e]);
  }
}

/// State row of the first candidate pos0 of a segment (positions pos0 .. in one page):
/// -1 when its page is unmapped, 0 (unused) when the whole segment is new tokens.
__device__ __forceinline__ std::int64_t segment_row(const KernelArgs& p, const std::int32_t* table, int start,
                                                    int pos0) {
  return pos0 < start ? state_row(p, table, pos0) : 0;
}

/// A thread's V elements of one state value, as the state stores it: kept in this form
/// between the load and the step that uses it, so that a load needs no instruction after it
/// (f32 values, or bf16 halves in one word).
template <Dtype ST, int V>
struct Raw;
template <int V>
struct alignas(4 * V) Raw<Dtype::f32, V> {
  float x[V];
  __device__ __forceinline__ void load(const void* base, std::int64_t i) { loadv<V, Dtype::f32>(base, i, x); }
  __device__ __forceinline__ void set(const float* y) {
#pragma unroll
    for (int e = 0; e < V; ++e) x[e] = y[e];
  }
  __device__ __forceinline__ float get(int e) const { return x[e]; }
};
template <int V>
struct alignas(2 * V) Raw<Dtype::bf16, V> {
  using Word = std::conditional_t<V == 2, std::uint32_t, std::uint16_t>;
  Word u;
  __device__ __forceinline__ void load(const void* base, std::int64_t i) {
    u = *reinterpret_cast<const Word*>(static_cast<const std::uint16_t*>(base) + i);
  }
  // y[e] are already bf16 values (round_to(bf16, .)): their top halves are exact.
  __device__ __forceinline__ void set(const float* y) {
    if constexpr (V == 2)
      u = (num::bits(y[0]) >> 16) | (num::bits(y[1]) & 0xffff0000u);
    else
      u = static_cast<Word>(num::bits(y[0]) >> 16);
  }
  __device__ __forceinline__ float get(int e) const {
    if constexpr (V == 2) return num::from_bits(e == 0 ? u << 16 : u & 0xffff0000u);
    return num::from_bits(static_cast<std::uint32_t>(u) << 16);
  }
};

/// V floats from (to) shared memory, as one access (x 8-byte aligned for V = 2).
template <int V>
__device__ __forceinline__ void shared_get(const float* x, float* y) {
  if constexpr (V == 2) {
    const float2 a = *reinterpret_cast<const float2*>(x);
    y[0] = a.x, y[1] = a.y;
  } else {
    y[0] = x[0];
  }
}
template <int V>
__device__ __forceinline__ void shared_put(float* x, const float* y) {
  if constexpr (V == 2)
    *reinterpret_cast<float2*>(x) = make_float2(y[0], y[1]);
  else
    x[0] = y[0];
}

/// V copies of x.
template <int V>
struct Splat {
  float x[V];
  __device__ __forceinline__ explicit Splat(float y) {
#pragma unroll
    for (int e = 0; e < V; ++e) x[e] = y;
  }
};

/// G candidates (value and score), as stored in the state.
template <int G, Dtype ST, int V>
struct Group {
  Raw<ST, V> v[G], s[G];
};

/// A decode step's new tokens for CR = 128, read from kv_score and rounded as stored once per
/// block (`stage_new_tokens`), for the reduction and the stores: token t's elements
/// [V lane, V lane + V) of the block's columns are v[t][V lane], s[t][V lane] on.
template <int V>
struct alignas(8) Staged {
  float v[kCompressMaxTokensPerStep][kLanes * V];
  float s[kCompressMaxTokensPerStep][kLanes * V];
  __device__ __forceinline__ void get(int t, int lane, float* vv, float* ss) const {
    shared_get<V>(&v[t][lane * V], vv);
    shared_get<V>(&s[t][lane * V], ss);
  }
};

/// Fill `st` with the n (<= kCompressMaxTokensPerStep) new tokens of a decode request (rows
/// row0 .., positions start ..) at columns c0 .. c0 + kLanes * V - 1, then a block barrier. Every
/// thread issues all its loads before converting any (the index is clamped, not branched
/// on), so the block waits for one round trip, not one per token.
template <int CR, int V, Dtype KV, Dtype ST, int kThreads>
__device__ __forceinline__ void stage_new_tokens(const KernelArgs& p, std::int64_t row0, int start, int n, int c0,
                                                 int sd, Staged<V>& st) {
  constexpr int kPer = kCompressMaxTokensPerStep * kLanes / kThreads;  // V-element pieces per thread
  static_assert(kPer * kThreads == kCompressMaxTokensPerStep * kLanes);
  float v[kPer][V], sc[kPer][V];
#pragma unroll
  for (int u = 0; u < kPer; ++u) {
    const int i = static_cast<int>(threadIdx.x) + u * kThreads;
    const int t = min(i / kLanes, n - 1);  // past n: token n - 1 again (loaded, not kept)
    freshv<CR, V, KV, ST>(p, row0 + t, start + t, c0 + (i % kLanes) * V, sd, v[u], sc[u]);
  }
#pragma unroll
  for (int u = 0; u < kPer; ++u) {
    const int i = static_cast<int>(threadIdx.x) + u * kThreads;
    if (i / kLanes < n) {
      shared_put<V>(&st.v[i / kLanes][(i % kLanes) * V], v[u]);
      shared_put<V>(&st.s[i / kLanes][(i % kLanes) * V], sc[u]);
    }
  }
  __syncthreads();
}

/// Load the G candidates pos0 .. pos0 + G - 1 (inside one page; srow is the state row of
/// pos0 or -1) at column col: new positions from kv_score, rounded as stored (from `st` when
/// `staged`), older ones from the state, NaN from an unmapped page. When all G come from a
/// mapped state page (the common case of a decode step) the loads are the only
/// instructions, so the group can be loaded while the previous one is reduced; otherwise
/// the values are converted here (the first conversion from kv_score waits for its loads).
/// kSplit = false leaves out the loads-only copy (for a caller that reduces right after
/// loading).
template <int CR, int G, int V, Dtype KV, Dtype ST, bool kSplit>
__device__ __forceinline__ void load_group(const KernelArgs& p, std::int64_t row0, int start, int pos0,
                                           std::int64_t srow, int col, int sd, const Staged<V>& st, bool staged,
                                           Group<G, ST, V>& x) {
  if (kSplit && pos0 + G <= start && srow >= 0) {
#pragma unroll
    for (int i = 0; i < G; ++i) {
      const std::int64_t at = (srow + i) * sd + col;
      x.v[i].load(p.state_kv, at);
      x.s[i].load(p.state_score, at);
    }
    return;
  }
#pragma unroll
  for (int i = 0; i < G; ++i) {
    const int pos = pos0 + i;
    if (pos >= start) {
      float v[V], s[V];
      if (staged)
        st.get(pos - start, (col % (kLanes * V)) / V, v, s);
      else
        freshv<CR, V, KV, ST>(p, row0 + (pos - start), pos, col, sd, v, s);
      x.v[i].set(v);
      x.s[i].set(s);
    } else if (srow < 0) {
      x.v[i].set(Splat<V>(num::qnan()).x);
      x.s[i].set(Splat<V>(num::qnan()).x);
    } else {
      const std::int64_t at = (srow + i) * sd + col;
      x.v[i].load(p.state_kv, at);
      x.s[i].load(p.state_score, at);
    }
  }
}

/// Reduce G loaded candidates, in order, into the V accumulators: compress_fast::step on
/// each, same operations, in an order with more independence. A step's exp depends only on
/// the running max before and after it, so the maxima of the G steps come first (a short
/// chain of max_nan), then the G weights (independent of each other), then the l and a
/// chains in candidate order. The V elements are independent too.
template <int G, Dtype ST, int V>
__device__ __forceinline__ void reduce_group(const Group<G, ST, V>& x, cm::Acc* acc) {
#pragma unroll
  for (int e = 0; e < V; ++e) {
    float n[G + 1], c[G], t[G];
    n[0] = acc[e].m;
#pragma unroll
    for (int i = 0; i < G; ++i) n[i + 1] = fast::max_nan(n[i], x.s[i].get(e));
#pragma unroll
    for (int i = 0; i < G; ++i) fast::weights_at(n[i], x.s[i].get(e), n[i + 1], c[i], t[i]);
    float l = acc[e].l, a = acc[e].a;
#pragma unroll
    for (int i = 0; i < G; ++i) {
      l = num::fma(l, c[i], t[i]);
      a = num::fma(a, c[i], x.v[i].get(e) * t[i]);
    }
    acc[e] = cm::Acc{n[G], l, a};
  }
}

// Minimum resident blocks per SM on CUDA (caps registers: 128 for NRW = 4, 4 blocks of 4
// warps; 128 for NRW = 1); HIP's second argument means something else.
#if DSV4_GPU_HIP
#define DSV4_COMPRESS_BOUNDS(threads, blocks) __launch_bounds__(threads)
#else
#define DSV4_COMPRESS_BOUNDS(threads, blocks) __launch_bounds__(threads, blocks)
#endif

// Candidates per group: a group is loaded while the previous one is reduced, and the
// reduction of one group (kGroup steps of V elements, unrolled) is the loop body, so the
// kernel's code stays small enough for the instruction cache. 4, not 8: 70-90 registers
// instead of 128 with spills, so 5 blocks of NRW = 4 fit an SM instead of 4, and a group's
// first step waits for 4 loads, not 8 (measured, NOTES_compress.md round 4: CR 128 HD 512 NN 4
// batch 256 65.2 -> 63.0 us; 2 was faster still at batch 256 and 20% slower at batch 16).
constexpr int kGroup = 4;

// Groups a CR = 128 partition of a V = 1 kernel keeps in flight: a group wholly in the state
// is copied into a ring of kRing group slots in shared memory with cp.async (a lane copies,
// and later reads, only its own elements), kRing - 1 groups ahead of the one being reduced.
// The V = 2 kernels (large grids) keep one group ahead in registers: a ring there was slower
// at CR 128 HD 128 batch 256 (NOTES_compress.md rounds 5 and 8).
constexpr int kRing = 4;
// cp.async copies 4 bytes or more, so a bf16 state at V = 1 goes through registers too.
template <Dtype ST, int V>
constexpr bool kRinged = DSV4_GPU_ASYNC && V == 1 && sizeof(Raw<ST, V>) >= 4;

/// A partition's ring: slot r holds group g = r mod kRing, [candidate][kv, score][lane].
template <Dtype ST, int V>
using Ring = Raw<ST, V>[kRing][kGroup][2][kLanes];

#if DSV4_GPU_ASYNC
/// Issues the copies of this lane's elements of the kGroup candidates from state row srow on
/// (column col) into ring slot r.
template <Dtype ST, int V>
__device__ __forceinline__ void copy_group(const KernelArgs& p, std::int64_t srow, int col, int sd,
                                           Ring<ST, V>& ring, int r, int lane) {
  constexpr int kBytes = static_cast<int>(sizeof(Raw<ST, V>));
  const std::size_t elem = ST == Dtype::f32 ? 4 : 2;
#pragma unroll
  for (int i = 0; i < kGroup; ++i) {
    const std::size_t at = static_cast<std::size_t>((srow + i) * sd + col) * elem;
    port::copy_async<kBytes>(&ring[r][i][0][lane], static_cast<const char*>(p.state_kv) + at);
    port::copy_async<kBytes>(&ring[r][i][1][lane], static_cast<const char*>(p.state_score) + at);
  }
}
#endif

// Grid (slots, HD / (32 V), batch), block 32 * NRW threads. See gpu/compress.cuh.
template <int CR, int NRW, int V, Dtype KV, Dtype ST, Dtype OUT>
__global__ void DSV4_COMPRESS_BOUNDS(kLanes * NRW, NRW > 1 ? 4 : 16) compress_kernel(const KernelArgs p) {
  constexpr int kChunk = kLanes * V;  // output elements per block
  const int b = blockIdx.z;
  const int part = threadIdx.x / kLanes;
  const int lane = threadIdx.x % kLanes;
  const int d = blockIdx.y * kChunk + lane * V;  // first of this thread's V elements
  const int hd = p.head_dim;
  const int sd = CR == 4 ? 2 * hd : hd;

  std::int64_t row0;
  int n;
  if (p.cu_seq_lens) {
    row0 = p.cu_seq_lens[b];
    n = p.cu_seq_lens[b + 1] - p.cu_seq_lens[b];
  } else {
    row0 = static_cast<std::int64_t>(b) * p.nn;
    n = p.nn;
  }
  const int len = p.kv_len[b];
  if (n < 0 || len < n) return;  // invalid request (the whole block leaves: b is block-uniform)
  const int start = len - n;
  const int slot = blockIdx.x;
  const int slots = gridDim.x;
  const std::int32_t* table = p.block_table + static_cast<std::int64_t>(b) * p.max_blocks;

  const int k0 = start / CR;               // window of the first new token
  const int windows = len / CR - k0;       // windows emitted by this call
  // Read up front so its latency overlaps the candidate loads.
  const std::int64_t out0 = windows > slot ? static_cast<std::int64_t>(p.out_offsets[b]) : 0;

  // 0. A decode step with CR = 128 (at most 8 new tokens, one block per request and chunk):
  //    its new tokens once into shared memory, in one round trip. The reduction's last group
  //    then waits for no load (each new token had cost it a round trip: they are converted
  //    as loaded), and the stores read them from there.
  __shared__ Staged<V> staged_tokens;
  const bool staged = CR == 128 && !p.cu_seq_lens && n > 0;  // block-uniform
  if (staged) stage_new_tokens<CR, V, KV, ST, kLanes * NRW>(p, row0, start, n, blockIdx.y * kChunk, sd, staged_tokens);

  // 1. Reduce this block's share of the emitted windows. New positions are read from
  //    kv_score or the staged copy (rounded as stored), so the reduction does not depend on
  //    the stores of step 2 and its loads are issued first.
  __shared__ cm::Acc partial[NRW > 1 ? NRW - 1 : 1][kLanes][V];
  for (int w = slot; w < windows; w += slots) {
    const int k = k0 + w;
    cm::Acc acc[V];
#pragma unroll
    for (int e = 0; e < V; ++e) acc[e] = cm::acc_init();
    if constexpr (CR == 4) {
      // A half (k >= 1): positions 4k-4 .. 4k-1, column d; B half: 4k .. 4k+3, column HD + d;
      // one group of 8, A first. For k = 0 the A half is 4 candidates of score -inf and
      // value 0: a step of those on the initial accumulator returns it bit for bit
      // (n = -inf, weights 0 and 0, l = a = fma(0, 0, 0) = +0), the same as no step.
      Group<4, ST, V> ah, bh;
      if (k >= 1) {
        load_group<CR, 4, V, KV, ST, false>(p, row0, start, 4 * k - 4, segment_row(p, table, start, 4 * k - 4), d, sd,
                                           staged_tokens, false, ah);
      } else {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          ah.v[i].set(Splat<V>(0.0f).x);
          ah.s[i].set(Splat<V>(num::neg_inf()).x);
        }
      }
      load_group<CR, 4, V, KV, ST, false>(p, row0, start, 4 * k, segment_row(p, table, start, 4 * k), hd + d, sd,
                                         staged_tokens, false, bh);
      Group<8, ST, V> x;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        x.v[i] = ah.v[i], x.s[i] = ah.s[i];
        x.v[4 + i] = bh.v[i], x.s[4 + i] = bh.s[i];
      }
      reduce_group<8, ST, V>(x, acc);
    } else {
      // Partition part reduces positions [CR k + per part, CR k + per (part + 1)) in order,
      // kGroup at a time. V = 2: group g + 1 is loaded into registers before group g is
      // reduced. V = 1: the groups wholly in a mapped state page come through the ring,
      // kRing - 1 ahead; the others (new tokens, an unmapped page) are loaded in their turn.
      constexpr int per = CR / NRW;
      constexpr int groups = per / kGroup;
      static_assert(per % kGroup == 0);
      const int pos0 = CR * k + per * part;
      const std::int64_t srow0 = segment_row(p, table, start, pos0);  // the window lies in one page
#if DSV4_GPU_ASYNC
      if constexpr (kRinged<ST, V>) {
        const int ringed = srow0 < 0 || start <= pos0 ? 0 : min(groups, (start - pos0) / kGroup);
        __shared__ Ring<ST, V> rings[NRW];
        Ring<ST, V>& ring = rings[part];
#pragma unroll
        for (int g = 0; g < kRing - 1; ++g) {
          if (g < ringed) copy_group<ST, V>(p, srow0 + g * kGroup, d, sd, ring, g, lane);
          port::commit_async();
        }
#pragma unroll 1
        for (int g = 0; g < groups; ++g) {
          const int ahead = g + kRing - 1;
          if (ahead < ringed) copy_group<ST, V>(p, srow0 + ahead * kGroup, d, sd, ring, ahead % kRing, lane);
          port::commit_async();  // one group per step, empty or not: group g is then kRing - 1 back
          Group<kGroup, ST, V> cur;
          if (g < ringed) {
            port::wait_async<kRing - 1>();
#pragma unroll
            for (int i = 0; i < kGroup; ++i) {
              cur.v[i] = ring[g % kRing][i][0][lane];
              cur.s[i] = ring[g % kRing][i][1][lane];
            }
          } else {
            load_group<CR, kGroup, V, KV, ST, false>(p, row0, start, pos0 + g * kGroup,
                                                     srow0 < 0 ? srow0 : srow0 + g * kGroup, d, sd, staged_tokens,
                                                     staged, cur);
          }
          reduce_group<kGroup, ST, V>(cur, acc);
        }
      } else
#endif
      {
        Group<kGroup, ST, V> cur, nxt;
#pragma unroll 1
        for (int g = 0; g <= groups; ++g) {
          if (g < groups)
            load_group<CR, kGroup, V, KV, ST, true>(p, row0, start, pos0 + g * kGroup,
                                                    srow0 < 0 ? srow0 : srow0 + g * kGroup, d, sd, staged_tokens,
                                                    staged, nxt);
          if (g > 0) reduce_group<kGroup, ST, V>(cur, acc);
          if (g < groups) cur = nxt;  // waits for the loads, which had the reduction's time
        }
      }
    }
    if constexpr (NRW > 1) {
      if (part > 0) {
#pragma unroll
        for (int e = 0; e < V; ++e) partial[part - 1][lane][e] = acc[e];
      }
      __syncthreads();
      if (part == 0) {
#pragma unroll 1
        for (int q = 0; q < NRW - 1; ++q) {
#pragma unroll
          for (int e = 0; e < V; ++e) fast::fold(acc[e], partial[q][lane][e]);
        }
      }
      __syncthreads();  // partial is rewritten by the next window
    }
    if (part == 0) {
      const std::int64_t at = (out0 + w) * hd + d;
      float o[V];
#pragma unroll
      for (int e = 0; e < V; ++e) o[e] = cm::finish(acc[e]);
      storev<V, OUT>(p.out, at, o);
      if (p.empty) {
#pragma unroll
        for (int e = 0; e < V; ++e) p.empty[at + e] = cm::is_empty(acc[e]) ? 1 : 0;
      }
    }
  }

  // 2. Store the new tokens of windows k0 + slot, k0 + slot + slots, ... (the last one may
  //    be incomplete): a block stores the tokens its own reduction read (cache-hot, or
  //    staged in shared memory). Up to kStoreBurst tokens per thread are loaded before any
  //    of them is stored (4: all new tokens of a CR = 4 window in one round trip; more
  //    would only add code).
  //    A window lies in one page (page_size is a multiple of CR), so its tokens' state rows
  //    are the window's first row plus the offset (state_row's value, one look-up).
  if (n > 0) {
    constexpr int halves = CR == 4 ? 2 : 1;
    constexpr int kStoreBurst = 4;
    const int last = (len - 1) / CR - k0;  // window index of the last new token
    for (int wi = slot; wi <= last; wi += slots) {
      const int wpos = (k0 + wi) * CR;
      const std::int64_t wrow = state_row(p, table, wpos);
      if (wrow < 0) continue;  // unmapped page: nothing is stored
      const int first = wpos - start, end = wpos + CR - start;
      const int lo = first > 0 ? first : 0, hi = end < n ? end : n;
      for (int t0 = lo + part; t0 < hi; t0 += kStoreBurst * NRW) {
        float v[kStoreBurst][halves][V], s[kStoreBurst][halves][V];
#pragma unroll
        for (int u = 0; u < kStoreBurst; ++u) {
          const int t = t0 + u * NRW;
          if (t < hi) {
#pragma unroll
            for (int half = 0; half < halves; ++half) {
              if (staged)
                staged_tokens.get(t, lane, v[u][half], s[u][half]);
              else
                freshv<CR, V, KV, ST>(p, row0 + t, start + t, d + half * hd, sd, v[u][half], s[u][half]);
            }
          }
        }
#pragma unroll
        for (int u = 0; u < kStoreBurst; ++u) {
          const int t = t0 + u * NRW;
          if (t >= hi) break;
          const std::int64_t srow = wrow + (start + t - wpos);
#pragma unroll
          for (int half = 0; half < halves; ++half) {
            const std::int64_t at = srow * sd + d + half * hd;
            storev<V, ST>(p.state_kv, at, v[u][half]);
            storev<V, ST>(p.state_score, at, s[u][half]);
          }
        }
      }
    }
  }
}

bool head_dim_supported(int hd) {
  for (int h : kCompressGpuHeadDims)
    if (h == hd) return true;
  return false;
}

/// grid.y is HD / 64: the V = 1 kernel's blocks cover 32 columns, twice as many of them.
template <int CR, int NRW, Dtype KV, Dtype ST, Dtype OUT>
Status launch(const KernelArgs& a, dim3 grid, int vec, port::stream_t stream) {
  if (vec == 1) {
    grid.y *= 2;
    compress_kernel<CR, NRW, 1, KV, ST, OUT><<<grid, kLanes * NRW, 0, stream>>>(a);
  } else {
    compress_kernel<CR, NRW, 2, KV, ST, OUT><<<grid, kLanes * NRW, 0, stream>>>(a);
  }
  return port::launch_status("compress_kernel");
}

/// The V = 2 grid of a launch: (window slots, HD / 64, batch).
dim3 grid_of(const CompressConfig& c, long long slots, int batch) {
  return dim3(static_cast<unsigned>(slots), static_cast<unsigned>(c.head_dim / (2 * kLanes)),
              static_cast<unsigned>(batch));
}
long long decode_slots(const CompressConfig& c) {
  return (c.tokens_per_step + c.compress_ratio - 1) / c.compress_ratio;
}
long long prefill_slots(const CompressConfig& c, int max_tokens) {
  return std::max<long long>(1, (static_cast<long long>(max_tokens) + c.compress_ratio - 1) / c.compress_ratio);
}

/// vector_width, or the rule's choice on the V = 2 grid when it is 0 (-1: out of range).
int resolve_vec(int vector_width, int sm_count, dim3 grid) {
  if (sm_count < 0 || vector_width < 0 || vector_width > 2) return -1;
  if (vector_width != 0) return vector_width;
  return compress_vector_width_rule(static_cast<std::int64_t>(grid.x) * grid.y * grid.z,
                                    sm_count > 0 ? sm_count : kCompressDefaultSmCount);
}

/// Errors in a launch's sm_count and vector_width.
Status check_vec(int vector_width, int sm_count) {
  if (sm_count < 0)
    return make_status(Errc::bad_input, "compressor launch: sm_count " + std::to_string(sm_count) + " is negative");
  if (vector_width < 0 || vector_width > 2)
    return make_status(Errc::bad_input, "compressor launch: vector_width " + std::to_string(vector_width) +
                                            " must be 0 (the rule's), 1 or 2");
  return Status::success();
}

/// Launches the table's kernel for c on `grid` (its V = 2 shape), with V = vector_width or
/// the rule's when it is 0 (checked by check_vec).
Status dispatch(const CompressConfig& c, const KernelArgs& a, dim3 grid, int vector_width, int sm_count,
                port::stream_t stream) {
  const int vec = resolve_vec(vector_width, sm_count, grid);
#define DSV4_COMPRESS_DISPATCH(CR, NRW, KV, ST, OUT)                                                        \
  if (c.compress_ratio == CR && c.warps == NRW && c.kv_dtype == Dtype::KV && c.state_dtype == Dtype::ST && \
      c.out_dtype == Dtype::OUT)                                                                            \
    return launch<CR, NRW, Dtype::KV, Dtype::ST, Dtype::OUT>(a, grid, vec, stream);
  DSV4_COMPRESS_GPU_CONFIGS(DSV4_COMPRESS_DISPATCH)
#undef DSV4_COMPRESS_DISPATCH
  return make_status(Errc::unsupported, "compressor: " + c.to_string() + " is not in the GPU table; supported: " +
                                            compress_gpu_supported());
}

bool aligned(const void* ptr, std::size_t bytes) { return reinterpret_cast<std::uintptr_t>(ptr) % bytes == 0; }

/// Host-side checks of everything a launch can see without touching device memory.
Status check_common(const CompressConfig& c, int batch, const void* kv_score, const float* ape,
                    const std::int32_t* kv_len, const std::int32_t* out_offsets, const void* out,
                    const CompressState& st) {
  const std::string who = "compressor launch: ";
  if (!compress_gpu_supports(c))
    return make_status(Errc::unsupported, who + c.to_string() + " is not in the GPU table; supported: " +
                                              compress_gpu_supported());
  if (c.page_size <= 0 || c.page_size % c.compress_ratio != 0)
    return make_status(Errc::bad_input, who + "page_size " + std::to_string(c.page_size) +
                                            " is not a positive multiple of CR " + std::to_string(c.compress_ratio));
  if (batch < 0 || batch > 65535) return make_status(Errc::bad_input, who + "batch must be in [0, 65535]");
  if (batch == 0) return Status::success();
  if (!kv_score || !ape || !kv_len || !out_offsets || !out)
    return make_status(Errc::bad_input, who + "kv_score, ape, kv_len, out_offsets and out must not be null");
  if (!st.state_kv || !st.state_score || !st.block_table)
    return make_status(Errc::bad_input, who + "state.state_kv, state.state_score and state.block_table must not be null");
  if (st.max_blocks <= 0 || st.num_blocks <= 0)
    return make_status(Errc::bad_input, who + "state.max_blocks and state.num_blocks must be positive");
  const std::size_t pair_kv = 2 * size_of(c.kv_dtype), pair_st = 2 * size_of(c.state_dtype),
                    pair_out = 2 * size_of(c.out_dtype);
  if (!aligned(kv_score, pair_kv) || !aligned(ape, 8) || !aligned(out, pair_out) || !aligned(st.state_kv, pair_st) ||
      !aligned(st.state_score, pair_st))
    return make_status(Errc::bad_input, who + "kv_score, ape, out and the state must be aligned to two elements");
  return Status::success();
}

KernelArgs make_args(const CompressConfig& c, const void* kv_score, const std::int32_t* cu, int nn, const float* ape,
                     const std::int32_t* kv_len, const std::int32_t* out_offsets, void* out, std::uint8_t* empty,
                     const CompressState& st) {
  return KernelArgs{kv_score, cu,          nn,           ape,          kv_len,      out_offsets, out, empty,
                    st.state_kv, st.state_score, st.block_table, st.num_blocks, st.max_blocks, c.head_dim,
                    c.page_size};
}

}  // namespace

int compress_vector_width_rule(std::int64_t blocks, int sm_count) { return blocks <= sm_count ? 1 : 2; }

bool compress_gpu_supports(const CompressConfig& c) {
  if (!head_dim_supported(c.head_dim)) return false;
#define DSV4_COMPRESS_MATCH(CR, NRW, KV, ST, OUT)                                                           \
  if (c.compress_ratio == CR && c.warps == NRW && c.kv_dtype == Dtype::KV && c.state_dtype == Dtype::ST && \
      c.out_dtype == Dtype::OUT)                                                                            \
    return true;
  DSV4_COMPRESS_GPU_CONFIGS(DSV4_COMPRESS_MATCH)
#undef DSV4_COMPRESS_MATCH
  return false;
}

std::string compress_gpu_supported() {
  std::ostringstream o;
  o << "HD in {";
  for (std::size_t i = 0; i < std::size(kCompressGpuHeadDims); ++i) o << (i ? ", " : "") << kCompressGpuHeadDims[i];
  o << "}, NN in 1..8, page_size a multiple of CR, and (CR, NRW, kv, state, out) in {";
  bool first = true;
#define DSV4_COMPRESS_LIST(CR, NRW, KV, ST, OUT)                                                       \
  o << (first ? "" : ", ") << "(" << CR << ", " << NRW << ", " #KV ", " #ST ", " #OUT ")"; \
  first = false;
  DSV4_COMPRESS_GPU_CONFIGS(DSV4_COMPRESS_LIST)
#undef DSV4_COMPRESS_LIST
  o << "}";
  return o.str();
}

Status compress_decode_launch(const CompressDecodeParams& p, port::stream_t stream) {
  const CompressConfig& c = p.config;
  if (Status s = check_vec(p.vector_width, p.sm_count); !s.ok()) return s;
  if (Status s = check_common(c, p.batch, p.kv_score, p.ape, p.kv_len, p.out_offsets, p.out, p.state); !s.ok())
    return s;
  if (c.tokens_per_step < 1 || c.tokens_per_step > kCompressMaxTokensPerStep)
    return make_status(Errc::unsupported, "compress_decode_launch: tokens_per_step " +
                                              std::to_string(c.tokens_per_step) + " outside 1..8");
  if (p.batch == 0) return Status::success();
  return dispatch(c, make_args(c, p.kv_score, nullptr, c.tokens_per_step, p.ape, p.kv_len, p.out_offsets, p.out,
                               p.empty, p.state),
                  grid_of(c, decode_slots(c), p.batch), p.vector_width, p.sm_count, stream);
}

Status compress_prefill_launch(const CompressPrefillParams& p, port::stream_t stream) {
  const CompressConfig& c = p.config;
  if (Status s = check_vec(p.vector_width, p.sm_count); !s.ok()) return s;
  if (Status s = check_common(c, p.batch, p.kv_score, p.ape, p.kv_len, p.out_offsets, p.out, p.state); !s.ok())
    return s;
  if (p.batch == 0) return Status::success();
  if (!p.cu_seq_lens) return make_status(Errc::bad_input, "compress_prefill_launch: cu_seq_lens is null");
  if (p.max_tokens < 0) return make_status(Errc::bad_input, "compress_prefill_launch: max_tokens < 0");
  const long long slots = prefill_slots(c, p.max_tokens);
  if (slots > 0x7fffffffLL) return make_status(Errc::bad_input, "compress_prefill_launch: max_tokens too large");
  return dispatch(c, make_args(c, p.kv_score, p.cu_seq_lens, 0, p.ape, p.kv_len, p.out_offsets, p.out, p.empty,
                               p.state),
                  grid_of(c, slots, p.batch), p.vector_width, p.sm_count, stream);
}

int compress_vector_width(const CompressDecodeParams& p) {
  return resolve_vec(p.vector_width, p.sm_count, grid_of(p.config, decode_slots(p.config), p.batch));
}

int compress_vector_width(const CompressPrefillParams& p) {
  return resolve_vec(p.vector_width, p.sm_count, grid_of(p.config, prefill_slots(p.config, p.max_tokens), p.batch));
}

}  // namespace dsv4::gpu
