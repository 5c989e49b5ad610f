#include "gpu/topk.cuh"

#include "gpu/fastdiv.hpp"

#include <climits>
#include <string>
#include <type_traits>

namespace dsv4::gpu {

namespace {

constexpr int kThreads = kTopkThreads;
constexpr int kItems = kTopkItems;
constexpr int kWarp = port::kWarpSize;
constexpr int kWarps = kThreads / kWarp;
constexpr int kBins = 2048;                // histogram bins of the widest radix digit
constexpr int kBinsPerThread = kBins / kThreads;
constexpr int kPasses = 3;                 // digits of 11, 11 and 10 bits, top first
/// Passes that decide every key of a dtype's logits. A bf16 or fp16 logit upcast exactly has
/// its low 13 bits zero, so its key's low 13 bits are constant (zeros, or ones once negated;
/// a NaN's key is 0, and no other key has its top 22 bits zero): two keys equal in the first
/// two digits are equal, and the third pass would only find one bin. A source of keys gives
/// its count as kPasses (find_cut runs that many).
__host__ __device__ constexpr int key_passes(LogitDtype d) { return d == LogitDtype::f32 ? kPasses : 2; }
__host__ __device__ constexpr int digit_shift(int pass) { return pass == 0 ? 21 : pass == 1 ? 10 : 0; }
__host__ __device__ constexpr int digit_width(int pass) { return pass == 2 ? 10 : 11; }
// The candidate area (dynamic shared memory after Shared): the keys of the first threshold bin,
// kept for the later passes, or a filtered chunk's list (below). 192 KB on CUDA, so that the bin
// of a chunk of up to two tiles always fits; 16 KB under HIP.
constexpr int kCandidates = DSV4_GPU_HIP ? 4096 : 49152;
// CUDA: a chunk of logits longer than a tile (of a merge's candidates, two tiles) is filtered,
// in tiles of kStreamTile, into a list of at most kListCap (key, column) items held in the
// candidate area (the keys, then the columns). A tile's worth: a pruned list plus a stream tile
// fits, and a cluster's counts over such lists fit find_cut's 32-bit scan (measured against
// lists of 24576: 2-3% faster on the filtered rows over a cluster, NOTES_topk.md round 11).
// HIP (64 KB of shared memory) reads such a chunk once per pass instead.
constexpr int kListCap = DSV4_GPU_HIP ? 0 : static_cast<int>(kTopkTile);
constexpr int kStreamItems = 8;
constexpr std::uint32_t kInfKey = 0xff800000u;     // topk_key of +inf, the largest key
constexpr std::uint32_t kNegInfKey = 0x007fffffu;  // topk_key of -inf, the smallest but NaN's
constexpr std::int64_t kStreamTile = static_cast<std::int64_t>(kThreads) * kStreamItems;
static_assert(kListCap == 0 || (kListCap >= kTopkMaxK + kStreamTile && kListCap >= kTopkTile && kListCap % 4 == 0),
              "a pruned list (k <= 2048 items) plus a stream tile fits, and so does a tile");
static_assert(2 * kWarps * sizeof(unsigned) <= kWarps * sizeof(unsigned long long), "two halves of warp totals");
static_assert(kThreads % kWarp == 0 && kWarps <= kWarp, "block scan needs warps <= warp width");
static_assert(kBins % kThreads == 0, "bins split evenly over threads");
static_assert(kItems <= 16 && kTopkTile < 65536, "per-tile counts are packed in 16 bits");

using u64 = unsigned long long;

/// What a pass decided (written by the thread owning the threshold bin).
struct PassResult {
  unsigned digit;             // the threshold digit
  unsigned above, count;      // items of the row above its bin, in its bin (whole cluster)
  unsigned above_l, count_l;  // the same for this block's chunk
};

struct Shared {
  unsigned hist0[kBins], hist1[kBins], hist2[kBins >> 1];  // per pass: this block's counts
  unsigned sum0[kBins];            // the cluster's counts of the first pass, pushed by every block
  u64 warp_totals[kWarps];  // two halves of 32-bit warp sums (the stream's tiles alternate)
  PassResult res;
  unsigned ncand;
  unsigned base[2];  // (above, equal) items of the earlier blocks of the cluster, pushed by them
  unsigned list_min, list_max;  // the key range of a list being pruned
};
// Dynamic shared memory of every kernel: Shared, then the candidate keys (16-byte aligned).
constexpr std::size_t kSharedBytes = (sizeof(Shared) + 15) / 16 * 16;
constexpr std::size_t kSmemBytes = kSharedBytes + kCandidates * sizeof(unsigned);

/// The block's Shared and candidate list in dynamic shared memory.
struct Smem {
  Shared& sh;
  unsigned* cand;  // [kCandidates]: keys of this block's items in the first pass's threshold bin, or a List
};
__device__ __forceinline__ Smem smem() {
  extern __shared__ __align__(16) unsigned char topk_smem[];
  return {*reinterpret_cast<Shared*>(topk_smem), reinterpret_cast<unsigned*>(topk_smem + kSharedBytes)};
}

/// When `on`: adds 1 to the shared counter base[index] (no branch: a predicated reduction,
/// so unrolled item loops stay straight-line code).
__device__ __forceinline__ void count_if(bool on, unsigned* base, unsigned index) {
#if DSV4_GPU_HIP
  if (on) atomicAdd(base + index, 1u);
#else
  const unsigned at = static_cast<unsigned>(__cvta_generic_to_shared(base)) + 4u * index;
  asm volatile("{\n\t.reg .pred p;\n\tsetp.ne.u32 p, %0, 0;\n\t@p red.shared.add.u32 [%1], 1;\n\t}"
               :: "r"(static_cast<unsigned>(on)), "r"(at));
#endif
}

/// When `on`: stores v to the shared base[index] (predicated, no branch).
__device__ __forceinline__ void store_if(bool on, unsigned* base, unsigned index, unsigned v) {
#if DSV4_GPU_HIP
  if (on) base[index] = v;
#else
  const unsigned at = static_cast<unsigned>(__cvta_generic_to_shared(base)) + 4u * index;
  asm volatile("{\n\t.reg .pred p;\n\tsetp.ne.u32 p, %0, 0;\n\t@p st.shared.u32 [%1], %2;\n\t}"
               :: "r"(static_cast<unsigned>(on)), "r"(at), "r"(v) : "memory");
#endif
}

/// Inclusive scan of x over the warp in lane order (a shuffle up and a predicated add a step;
/// an indexed shuffle needed its source lane selected too).
template <class T>
__device__ __forceinline__ T warp_inclusive(T x) {
  const int lane = static_cast<int>(port::lane_id());
#pragma unroll
  for (int d = 1; d < kWarp; d *= 2) {
    const T up = port::shfl_up(x, static_cast<unsigned>(d));
    if (lane >= d) x += up;
  }
  return x;
}

/// Exclusive scan of v over the block in thread order; `total` gets the block's sum. Uses
/// warp_totals[0, kWarps); a barrier must separate two scans that share them.
template <class T>
__device__ T block_exclusive_scan(T v, T& total, T* warp_totals) {
  static_assert(sizeof(T) == sizeof(unsigned), "32-bit counts");
  const int lane = static_cast<int>(port::lane_id()), w = static_cast<int>(threadIdx.x) / kWarp;
  const T inc = warp_inclusive(v);
  if (lane == kWarp - 1) warp_totals[w] = inc;
  __syncthreads();
  const unsigned t = lane < kWarps ? warp_totals[lane] : 0u;  // two warp sums: all warps', the earlier ones'
  total = port::warp_sum(t);
  return port::warp_sum(lane < w ? t : 0u) + inc - v;
}

/// Mask of the first `left` of N items (all when left >= N, none when left <= 0).
template <int N>
__device__ __forceinline__ unsigned prefix_mask(std::int64_t left) {
  return left >= N ? (N == 32 ? ~0u : (1u << N) - 1u) : left <= 0 ? 0u : (1u << left) - 1u;
}

/// w[0 .. W) from consecutive 16-byte vectors at v (16-byte aligned; global or shared).
template <int W, int N>
__device__ __forceinline__ void load_words(const void* v, std::uint32_t (&w)[N]) {
  static_assert(W % 4 == 0 && W <= N, "whole vectors");
#pragma unroll
  for (int q = 0; q < W / 4; ++q) {
    const uint4 x = static_cast<const uint4*>(v)[q];
    w[4 * q] = x.x;
    w[4 * q + 1] = x.y;
    w[4 * q + 2] = x.z;
    w[4 * q + 3] = x.w;
  }
}

/// Column range [begin, end) of part j of `parts` for a row of n valid columns: parts of
/// ceil(n / parts) columns rounded up to kItems (so vector loads stay aligned); the last parts
/// may be short or empty. chunk_at takes ceil(n / parts) already divided (the kernels divide
/// with the launch's FastDiv: chunk_in).
struct Chunk {
  std::int64_t begin, len;
};
__host__ __device__ __forceinline__ Chunk chunk_at(std::int64_t n, int j, std::int64_t ceil_share) {
  const std::int64_t per = (ceil_share + kItems - 1) / kItems * kItems;
  const std::int64_t b = per * j < n ? per * j : n;
  const std::int64_t e = b + per < n ? b + per : n;
  return {b, e - b};
}
__host__ __device__ __forceinline__ Chunk chunk_of(std::int64_t n, int j, int parts) {
  return chunk_at(n, j, (n + parts - 1) / parts);
}

/// Items of one chunk of a row read straight from the logits. Thread t of a tile holds the
/// kItems consecutive items starting at p = tile * kTopkTile + t * kItems.
template <LogitDtype D>
struct LogitSource {
  static constexpr int kPasses = key_passes(D);
  const void* row;
  std::int64_t begin, len;
  bool aligned;  // the chunk starts on a 16-byte boundary: full groups load as 16-byte vectors

  /// Raw bits of items [p, p + N) (16-bit types two per word, the earlier column in the lower
  /// half; all ones past the chunk: NaNs, key 0); returns the mask of those inside the chunk (a
  /// prefix). keys_of converts them, so a caller can keep a tile's loads in flight until it
  /// needs the keys.
  template <int N>
  __device__ __forceinline__ unsigned fetch(std::int64_t p, std::uint32_t (&w)[N]) const {
    static_assert(N % 8 == 0 && N <= 32, "whole 16-byte vectors of any dtype");
    constexpr int kPerWord = D == LogitDtype::f32 ? 1 : 2;
    const std::int64_t left = len - p;
    if (left >= N && aligned) {
      load_words<N / kPerWord>(static_cast<const char*>(row) + (begin + p) * (4 / kPerWord), w);
      return prefix_mask<N>(N);
    }
#pragma unroll
    for (int j = 0; j < N / kPerWord; ++j) w[j] = ~0u;  // past the chunk: NaN, key 0
#pragma unroll
    for (int i = 0; i < N; ++i) {
      if (i < left) {
        if constexpr (D == LogitDtype::f32) {
          w[i] = num::bits(static_cast<const float*>(row)[begin + p + i]);
        } else {
          const std::uint32_t h = static_cast<const std::uint16_t*>(row)[begin + p + i];
          w[i / 2] = i % 2 ? (w[i / 2] & 0xffffu) | (h << 16) : (w[i / 2] & 0xffff0000u) | h;
        }
      }
    }
    return prefix_mask<N>(left);
  }
  template <int N>
  __device__ __forceinline__ void keys_of(const std::uint32_t (&w)[N], std::uint32_t (&key)[N]) const {
    bits_of(w, key);
#pragma unroll
    for (int i = 0; i < N; ++i) key[i] = topk_key(key[i]);
  }
  /// The f32 bit patterns of fetched items (exact upcasts).
  template <int N>
  __device__ __forceinline__ void bits_of(const std::uint32_t (&w)[N], std::uint32_t (&b)[N]) const {
#pragma unroll
    for (int i = 0; i < N; ++i) {
      if constexpr (D == LogitDtype::f32) {
        b[i] = w[i];
      } else if constexpr (D == LogitDtype::bf16) {
        b[i] = i % 2 ? w[i / 2] & 0xffff0000u : w[i / 2] << 16;
      } else {
        b[i] = num::bits(num::fp16_to_float(static_cast<std::uint16_t>(w[i / 2] >> (16 * (i % 2)))));
      }
    }
  }
  template <int N>
  __device__ __forceinline__ unsigned load(std::int64_t p, std::uint32_t (&key)[N]) const {
    std::uint32_t w[N];
    const unsigned mask = fetch(p, w);
    keys_of(w, key);
    return mask;
  }
  __device__ std::int32_t index(std::int64_t p) const { return static_cast<std::int32_t>(begin + p); }
};

/// The candidates of one row written by the split blocks: bp slots of k, block j's first
/// filled[j] = min(k, length of chunk j) slots hold its chunk's top k in column order; P: the
/// passes of the logits' keys (key_passes).
template <int P>
struct CandidateSource {
  static constexpr int kPasses = P;
  const std::uint32_t* keys;  // [bp * k]
  const std::int32_t* index_; // [bp * k]
  const int* filled;          // [bp] (shared memory)
  int k;
  std::int64_t len;           // bp * k

  template <int N>
  __device__ __forceinline__ unsigned load(std::int64_t p, std::uint32_t (&key)[N]) const {
    unsigned mask = 0;
#pragma unroll
    for (int i = 0; i < N; ++i) {
      const int s = static_cast<int>(p) + i;  // < bp * k <= 64 * 2048
      const int j = s / k;
      key[i] = 0;
      if (s < len && s - j * k < filled[j]) {
        key[i] = keys[s];
        mask |= 1u << i;
      }
    }
    return mask;
  }
  __device__ std::int32_t index(std::int64_t s) const { return index_[s]; }
};

/// Sources that read logits (LogitSource): raw loads converted later, columns computed. The
/// other sources hold keys, and their columns are memory.
template <class Src>
concept RawLogits = requires(const Src& s, const std::uint32_t (&w)[8], std::uint32_t (&b)[8]) { s.bits_of(w, b); };

/// A tile's raw loads, converted to keys later (raw_to_keys) so that they can stay in flight.
template <int N, class Src>
__device__ __forceinline__ unsigned fetch_raw(const Src& src, std::int64_t p, std::uint32_t (&w)[N]) {
  if constexpr (RawLogits<Src>) return src.fetch(p, w);
  else return src.load(p, w);
}
/// Keys of a fetched tile. With `order_only` (logits, when only keys above -inf's can be kept):
/// the sign flip of topk_key without its NaN mask, which keeps the order of every non-NaN value
/// and puts NaNs outside [key of -inf + 1, key of +inf], the only keys a floor test then accepts.
template <int N, class Src>
__device__ __forceinline__ void raw_to_keys(const Src& src, const std::uint32_t (&w)[N], std::uint32_t (&key)[N],
                                            bool order_only) {
  if constexpr (RawLogits<Src>) {
    src.bits_of(w, key);
#pragma unroll
    for (int i = 0; i < N; ++i)
      key[i] = order_only ? key[i] ^ (static_cast<std::uint32_t>(static_cast<std::int32_t>(key[i]) >> 31) | 0x80000000u)
                          : topk_key(key[i]);
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) key[i] = w[i];
  }
}

/// The column of item p when `on`: logits compute it; the other sources read it from memory,
/// which past their end may not be readable, so only for the items kept.
template <class Src>
__device__ __forceinline__ unsigned column_if(const Src& src, bool on, std::int64_t p) {
  if constexpr (RawLogits<Src>)
    return static_cast<unsigned>(src.index(p));
  else
    return on ? static_cast<unsigned>(src.index(p)) : 0u;
}

/// Final output of a row: column indices only.
struct OutputSink {
  std::int32_t* out;
  __device__ void put(unsigned pos, std::uint32_t, std::int32_t index) const { out[pos] = index; }
};

/// Workspace slots of one chunk: key and column.
struct CandidateSink {
  std::uint32_t* keys;
  std::int32_t* index;
  __device__ void put(unsigned pos, std::uint32_t key, std::int32_t col) const {
    keys[pos] = key;
    index[pos] = col;
  }
};

/// Calls fn(p) once per tile of the chunk with the thread's keys and valid mask loaded (from
/// registers when the chunk is one resident tile), in item order, or from the last tile back
/// when `backward` (a streamed chunk then starts with the tiles its previous sweep read last,
/// which are still in L2). Block uniform: fn may contain barriers.
template <int N, class Src, class Fn>
__device__ __forceinline__ void for_each_tile(const Src& src, std::int64_t len, bool resident, bool backward,
                                              std::uint32_t (&key)[N], unsigned& mask, Fn&& fn) {
  constexpr std::int64_t kTile = static_cast<std::int64_t>(kThreads) * N;
  const std::int64_t tiles = (len + kTile - 1) / kTile;
  for (std::int64_t i = 0; i < tiles; ++i) {
    const std::int64_t t = backward ? tiles - 1 - i : i;
    const std::int64_t p = t * kTile + static_cast<std::int64_t>(threadIdx.x) * N;
    if (!resident) mask = src.load(p, key);
    fn(p);
  }
}

/// Which items a selection keeps: those whose top 32 - low key bits are above `top`, and the
/// first `take` in item order of those equal to it.
struct Cut {
  std::uint32_t top;
  int low;
  unsigned take;
};

// Every source gives an item outside its chunk (mask bit 0) the key 0, a NaN's, so only a test
// that key 0 can pass needs the mask: a cut at 0, a threshold digit or prefix of 0. With kTwo,
// such rows (fewer than k items above NaN) take a second, masked copy of the loop; the usual
// ones skip the mask's per-item bit tests (three instructions an item). Block uniform. The
// copies are made for chunks of logits only: in the kernels that select from a list they made
// ptxas spill, and cost 0.4-1.7% (NOTES_topk.md round 12).
template <bool kTwo, class Body>
__device__ __forceinline__ auto with_mask_if(bool zero, const Body& body) {
  if constexpr (kTwo)
    return zero ? body(std::true_type{}) : body(std::false_type{});
  else
    return body(std::true_type{});
}
template <class Masked>
__device__ __forceinline__ bool valid(Masked, unsigned mask, int i) {
  return !Masked::value || ((mask >> i) & 1u);
}

/// (above, equal) counts of a thread's items against a cut, packed 16 | 16 bits.
template <bool kTwo, int N>
__device__ __forceinline__ unsigned cut_counts(const std::uint32_t (&key)[N], unsigned mask, const Cut& c) {
  return with_mask_if<kTwo>(c.top == 0, [&](auto masked) {
    unsigned counts = 0;
#pragma unroll
    for (int i = 0; i < N; ++i) {
      const std::uint32_t top = key[i] >> c.low;
      if (valid(masked, mask, i)) counts += top > c.top ? 1u : top == c.top ? 0x10000u : 0u;
    }
    return counts;
  });
}

/// Puts a thread's kept items into sink slots in item order: a and e are the items above and
/// equal to the cut before this thread's (an exclusive scan of cut_counts); an item above goes
/// after every earlier kept item, an equal one only while fewer than `take` came before it.
template <bool kTwo, int N, class Index, class Sink>
__device__ __forceinline__ void cut_place(const std::uint32_t (&key)[N], unsigned mask, const Cut& c, unsigned a,
                                          unsigned e, Index&& index, const Sink& sink) {
  with_mask_if<kTwo>(c.top == 0, [&](auto masked) {
#pragma unroll
    for (int i = 0; i < N; ++i) {
      const std::uint32_t top = key[i] >> c.low;
      if (!valid(masked, mask, i) || top < c.top) continue;
      if (top > c.top) {
        sink.put(a + (e < c.take ? e : c.take), key[i], index(i));
        ++a;
      } else {
        if (e < c.take) sink.put(a + e, key[i], index(i));
        ++e;
      }
    }
  });
}

// In a cluster a pass scans two counts per bin in one 32-bit word: the other blocks' in the low
// kOthersBits, this block's above them (a 64-bit scan cost 139 instructions a warp against 59,
// three times a row). A block counts at most a tile: a chunk of logits in a cluster is at most a
// tile (a longer one goes through the list), a list at most kListCap.
constexpr int kOthersBits = 17;
static_assert(kListCap <= kTopkTile && kTopkTile < (std::int64_t{1} << (32 - kOthersBits)) &&
                  (port::kMaxClusterBlocks - 1) * kTopkTile < (std::int64_t{1} << kOthersBits),
              "a cluster's counts fit the two fields");

/// The cut of the k best items (exactly k are kept), and this block's items above / equal.
struct Found {
  Cut cut;
  unsigned local_above, local_equal;
};

/// Finds the cut of the k best items of a row: the concatenation, in cluster rank order, of
/// the chunks `src` of the blocks of the cluster when `clustered` (else of this block only); it
/// has at least k items. Every thread of every such block must call it. A thread holds N items
/// of a tile; when `resident` the chunk is one tile, loaded into key / mask here and kept for
/// the caller.
///
/// Radix select: each pass, every block counts its chunk into its own histogram and combines
/// the cluster's counts through distributed shared memory (one barrier a pass), so all blocks
/// find the same threshold digit. The items of the first threshold bin are kept as a
/// shared-memory key list (mem.cand) for the later passes when they fit in `cand_cap`.
template <int N, class Src>
__device__ Found find_cut(const Src& src, std::int64_t len, int k, const Smem& mem, bool clustered, bool resident,
                          unsigned cand_cap, std::uint32_t (&key)[N], unsigned& mask) {
  Shared& sh = mem.sh;
  const int tid = static_cast<int>(threadIdx.x);
  const unsigned blocks = clustered ? port::cluster_blocks() : 1u, rank = clustered ? port::cluster_rank() : 0u;
  if (resident) mask = src.load(static_cast<std::int64_t>(tid) * N, key);
  for (int b = tid; b < kBins; b += kThreads) sh.hist0[b] = sh.hist1[b] = sh.sum0[b] = 0;
  for (int b = tid; b < (kBins >> 1); b += kThreads) sh.hist2[b] = 0;
  if (tid == 0) sh.ncand = sh.base[0] = sh.base[1] = 0;
  __syncthreads();
  // The sums are zero in every block before any block adds to them: arrive now, wait before
  // the first push (the wait overlaps the loads and the first histogram).
  if (clustered) port::cluster_arrive();

  std::uint32_t prefix = 0;
  unsigned remaining = static_cast<unsigned>(k);  // items still to take among those matching prefix
  unsigned local_above = 0, local_equal = 0;      // this chunk's items above T, equal to T
  int low = 0;            // the decided prefix is key >> low
  bool in_list = false;   // passes after the first count mem.cand instead of the chunk
#pragma unroll 1
  for (int pass = 0; pass < Src::kPasses; ++pass) {
    const int shift = digit_shift(pass);
    const unsigned bins = 1u << digit_width(pass);
    const std::uint32_t high = pass == 0 ? 0u : ~((1u << (shift + digit_width(pass))) - 1u);
    unsigned* hist = pass == 0 ? sh.hist0 : pass == 1 ? sh.hist1 : sh.hist2;
    if (RawLogits<Src> && pass == 0 && resident) {  // every item, then those outside the chunk (key 0) out of bin 0
#pragma unroll
      for (int i = 0; i < N; ++i) count_if(true, hist, key[i] >> digit_shift(0));
      if (tid == 0) atomicAdd(&hist[0], static_cast<unsigned>(len) - static_cast<unsigned>(kThreads * N));
    } else if (pass == 0) {  // every valid item; the digit is the key's top 11 bits
      for_each_tile(src, len, resident, false, key, mask, [&](std::int64_t) {
#pragma unroll
        for (int i = 0; i < N; ++i) count_if((mask >> i) & 1u, hist, key[i] >> digit_shift(0));
      });
    } else if (in_list) {
      const unsigned n = sh.ncand;
      for (unsigned i = static_cast<unsigned>(tid); i < n; i += kThreads) {
        const std::uint32_t c = mem.cand[i];
        count_if((c & high) == prefix, hist, (c >> shift) & (bins - 1u));
      }
    } else {  // streamed again: pass 1 backward after pass 0, pass 2 forward
      for_each_tile(src, len, resident, pass == 1, key, mask, [&](std::int64_t) {
        with_mask_if<RawLogits<Src>>(prefix == 0, [&](auto masked) {
#pragma unroll
          for (int i = 0; i < N; ++i)
            count_if(valid(masked, mask, i) && (key[i] & high) == prefix, hist, (key[i] >> shift) & (bins - 1u));
        });
      });
    }
    __syncthreads();
    // Thread t owns the bins of rank 2t, 2t+1 counted from the top bin down (bins lo + 1 and
    // lo): the cluster's count in the low half, this block's in the high half (both < 2^31),
    // one scan for both.
    static_assert(kBinsPerThread == 2, "one bin pair per thread");
    const bool owner = static_cast<unsigned>(2 * tid) < bins;
    const unsigned lo = owner ? bins - 2u - 2u * static_cast<unsigned>(tid) : 0u;
    const unsigned own0 = owner ? hist[lo + 1u] : 0u, own1 = owner ? hist[lo] : 0u;
    unsigned all0 = own0, all1 = own1;
    if (clustered) {
      // The first pass's counts are sparse (a few bins hold the row): each block adds its
      // nonzero bins into every block's sum0. The later passes count a threshold bin's
      // items spread over many bins: each block reads the others' bin pairs instead.
      if (pass == 0) {
        port::cluster_wait();
        if (owner) {
#pragma unroll 1
          for (unsigned b = 0; b < blocks; ++b) {
            if (own0) port::cluster_add(&sh.sum0[lo + 1u], b, own0);
            if (own1) port::cluster_add(&sh.sum0[lo], b, own1);
          }
        }
        port::cluster_sync();
        all0 = owner ? sh.sum0[lo + 1u] : 0u;
        all1 = owner ? sh.sum0[lo] : 0u;
      } else {
        port::cluster_sync();
        if (owner) {
          uint2* pair = reinterpret_cast<uint2*>(&hist[lo]);
#pragma unroll
          for (unsigned b = 0; b < static_cast<unsigned>(port::kMaxClusterBlocks); ++b) {
            if (b < blocks && b != rank) {
              const uint2 x = *port::cluster_map(pair, b);
              all1 += x.x;
              all0 += x.y;
            }
          }
        }
      }
    }
    const u64 c0 = all0 | (static_cast<u64>(own0) << 32);
    u64 before = 0;
    if (clustered) {  // the other blocks' counts in the low kOthersBits, this block's above
      const auto pack = [](unsigned all, unsigned own) { return (all - own) | (own << kOthersBits); };
      unsigned total = 0;
      const unsigned b = block_exclusive_scan(pack(all0, own0) + pack(all1, own1), total,
                                              reinterpret_cast<unsigned*>(sh.warp_totals));
      const unsigned own = b >> kOthersBits;
      before = ((b & ((1u << kOthersBits) - 1u)) + own) | (static_cast<u64>(own) << 32);
    } else {  // the block is the row: one 32-bit scan serves both halves
      unsigned total = 0;
      const unsigned b = block_exclusive_scan(own0 + own1, total, reinterpret_cast<unsigned*>(sh.warp_totals));
      before = b | (static_cast<u64>(b) << 32);
    }
    {
      const unsigned b_all = static_cast<unsigned>(before);
      if (b_all < remaining && remaining <= b_all + all0)
        sh.res = {lo + 1u, b_all, all0, static_cast<unsigned>(before >> 32), own0};
      const u64 mid = before + c0;
      const unsigned m_all = static_cast<unsigned>(mid);
      if (m_all < remaining && remaining <= m_all + all1)
        sh.res = {lo, m_all, all1, static_cast<unsigned>(mid >> 32), own1};
    }
    __syncthreads();
    const PassResult res = sh.res;
    prefix |= res.digit << shift;
    remaining -= res.above;
    local_above += res.above_l;
    local_equal = res.count_l;
    low = shift;
    // Every item of the threshold bin is taken: the items whose prefix is above or equal
    // are exactly the top k, whatever their lower bits, so the later passes are skipped.
    // (Cluster uniform: every block computed the same counts.)
    const bool whole_bin = res.count == remaining;
    if (pass == 0 && !whole_bin && res.count_l <= cand_cap) {
      in_list = true;
      // One shared atomic per warp and tile: a warp scan of the per-thread counts places them.
      for_each_tile(src, len, resident, true, key, mask, [&](std::int64_t) {  // the list's order is free
        with_mask_if<RawLogits<Src>>(res.digit == 0, [&](auto masked) {
          unsigned mine = 0;
#pragma unroll
          for (int i = 0; i < N; ++i) mine += valid(masked, mask, i) && (key[i] >> shift) == res.digit;
          const unsigned inc = warp_inclusive(mine);
          unsigned at = 0;
          if (port::lane_id() == kWarp - 1 && inc > 0) at = atomicAdd(&sh.ncand, inc);
          at = port::shfl(at, kWarp - 1) + inc - mine;
#pragma unroll
          for (int i = 0; i < N; ++i) {
            const bool in_bin = valid(masked, mask, i) && (key[i] >> shift) == res.digit;
            store_if(in_bin, mem.cand, at, key[i]);
            at += in_bin ? 1u : 0u;
          }
        });
      });
    }
    __syncthreads();  // sh.res is rewritten by the next pass; mem.cand is complete
    if (whole_bin) break;
  }
  // Items compare on their top 32 - low bits: above T always taken, equal to T the first
  // `remaining` of the row in item order (all of them when the passes stopped early).
  return {{prefix >> low, low, remaining}, local_above, local_equal};
}

/// Writes the k best items of a row to sink slots 0 .. k-1 in item order (the row as in
/// find_cut, over the cluster). Each block adds its (above, equal) counts into the later
/// blocks' bases and writes its chunk's selected items: one block scan in item order places
/// them.
template <int N, class Src, class Sink>
__device__ void block_select(const Src& src, std::int64_t len, int k, const Sink& sink, const Smem& mem,
                             unsigned cand_cap) {
  Shared& sh = mem.sh;
  const bool clustered = port::cluster_blocks() > 1;
  const bool resident = len <= static_cast<std::int64_t>(kThreads) * N;  // keys stay in registers across all passes
  std::uint32_t key[N];
  unsigned mask = 0;
  const Found f = find_cut(src, len, k, mem, clustered, resident, cand_cap, key, mask);
  if (clustered) {
    if (threadIdx.x == 0) {
      const unsigned blocks = port::cluster_blocks();
#pragma unroll 1
      for (unsigned b = port::cluster_rank() + 1; b < blocks; ++b) {
        port::cluster_add(&sh.base[0], b, f.local_above);
        port::cluster_add(&sh.base[1], b, f.local_equal);
      }
    }
    port::cluster_sync();  // every block has read the others' counts: none touches another's shared memory after it
  }
  unsigned above = sh.base[0], equal = sh.base[1];  // items of the earlier cluster blocks, then of earlier tiles
  for_each_tile(src, len, resident, false, key, mask, [&](std::int64_t p) {  // item order: positions
    unsigned tile_total = 0;
    const unsigned before = block_exclusive_scan(cut_counts<RawLogits<Src>>(key, mask, f.cut), tile_total,
                                                 reinterpret_cast<unsigned*>(sh.warp_totals));
    cut_place<RawLogits<Src>>(key, mask, f.cut, above + (before & 0xffffu), equal + (before >> 16),
              [&](int i) { return src.index(p + i); }, sink);
    above += tile_total & 0xffffu;
    equal += tile_total >> 16;
    if (!resident) __syncthreads();  // warp_totals is reused by the next tile's scan
  });
}

/// A block's list of (key, column) items in shared memory, in column order (CUDA: the
/// candidate area's two halves). A chunk longer than a tile is filtered into it in one read.
struct List {
  std::uint32_t* key;
  std::int32_t* col;

  /// Appends a thread's items for which keep(i) holds, in item order, from slot `at` on; col(i,
  /// kept) gives an item's column (only its kept items' columns are stored).
  template <int N, class Keep, class Col>
  __device__ __forceinline__ void append(unsigned at, const std::uint32_t (&k)[N], const Keep& keep, const Col& col) const {
#pragma unroll
    for (int i = 0; i < N; ++i) {
      const bool kept = keep(i);
      store_if(kept, key, at, k[i]);
      store_if(kept, reinterpret_cast<unsigned*>(this->col), at, static_cast<unsigned>(col(i, kept)));
      at += kept ? 1u : 0u;
    }
  }
};
__device__ __forceinline__ List list_of(const Smem& mem) {
  return {mem.cand, reinterpret_cast<std::int32_t*>(mem.cand + kListCap)};
}

/// Items [0, n) of a list (of keys whose passes are P).
template <int P>
struct ListSource {
  static constexpr int kPasses = P;
  List list;
  unsigned n;
  template <int N>
  __device__ __forceinline__ unsigned load(std::int64_t p, std::uint32_t (&key)[N]) const {
    const unsigned q = static_cast<unsigned>(p);
    if (q + N <= n) {
      load_words<N>(list.key + q, key);
      return prefix_mask<N>(N);
    }
#pragma unroll
    for (int i = 0; i < N; ++i) key[i] = q + i < n ? list.key[q + i] : 0u;
    return prefix_mask<N>(static_cast<std::int64_t>(n) - q);
  }
  __device__ std::int32_t index(std::int64_t p) const { return list.col[p]; }
};

struct ListSink {
  List list;
  __device__ void put(unsigned pos, std::uint32_t key, std::int32_t col) const {
    list.key[pos] = key;
    list.col[pos] = col;
  }
};

/// Keeps the list's items that pass `cut` (kFloor: the items whose key is at least cut.top,
/// one compare each), in list order, in place; returns how many. A round's items are read
/// before its scan's barrier and written at or before their own slots, so no later round's
/// items are overwritten.
template <bool kFloor>
__device__ unsigned compact_list(const List& list, unsigned n, const Cut& cut, const Smem& mem) {
  constexpr int kPer = 8;
  const ListSource<kPasses> src{list, n};  // loads only
  unsigned* totals = reinterpret_cast<unsigned*>(mem.sh.warp_totals);
  unsigned above = 0, equal = 0;
#pragma unroll 1
  for (unsigned r = 0; r < n; r += kThreads * kPer) {
    const unsigned p = r + threadIdx.x * kPer;
    std::uint32_t key[kPer];
    std::int32_t col[kPer];
    const unsigned m = src.load(p, key);
#pragma unroll
    for (int i = 0; i < kPer; ++i) col[i] = ((m >> i) & 1u) ? list.col[p + i] : 0;
    unsigned total = 0;
    if constexpr (kFloor) {
      const auto keep = [&](int i) { return ((m >> i) & 1u) && key[i] >= cut.top; };
      unsigned c = 0;
#pragma unroll
      for (int i = 0; i < kPer; ++i) c += keep(i) ? 1u : 0u;
      list.append(above + block_exclusive_scan(c, total, totals), key, keep, [&](int i, bool) { return col[i]; });
      above += total;
    } else {
      const unsigned before = block_exclusive_scan(cut_counts<false>(key, m, cut), total, totals);
      cut_place<false>(key, m, cut, above + (before & 0xffffu), equal + (before >> 16), [&](int i) { return col[i]; },
                ListSink{list});
      above += total & 0xffffu;
      equal += total >> 16;
    }
    __syncthreads();
  }
  return above + (cut.take < equal ? cut.take : equal);
}

/// Keeps the list's k best items (n > k), in list order; returns their cut.
template <int P>
__device__ Cut prune_list(const List& list, unsigned& n, int k, const Smem& mem) {
  __syncthreads();  // every append is in the list
  std::uint32_t key[4];  // four items per thread: the caller's stream tiles stay in registers
  unsigned mask = 0;
  const Found f = find_cut(ListSource<P>{list, n}, n, k, mem, false, false, 0u, key, mask);  // mem.cand is the list
  n = compact_list<false>(list, n, f.cut, mem);  // k
  return f.cut;
}

/// The bin of sh.hist0 that holds the k-th item counted from the top bin down goes to
/// sh.res.digit, and the items of the bins above it to sh.res.above (both unset when the bins
/// hold fewer than k); returns the bins' total. Every thread of the block calls it once the
/// histogram is complete; it ends with a barrier.
__device__ __forceinline__ unsigned kth_bin_from_top(Shared& sh, int k) {
  // Thread t owns bins hi = 2047 - 2t and hi - 1, counted from the top down.
  const unsigned hi = kBins - 1u - 2u * static_cast<unsigned>(threadIdx.x);
  const unsigned c_hi = sh.hist0[hi], c_lo = sh.hist0[hi - 1u];
  unsigned total = 0;
  const unsigned before = block_exclusive_scan(c_hi + c_lo, total, reinterpret_cast<unsigned*>(sh.warp_totals));
  const unsigned want = static_cast<unsigned>(k);
  if (before < want && want <= before + c_hi) sh.res.digit = hi, sh.res.above = before;
  if (before + c_hi < want && want <= before + c_hi + c_lo) sh.res.digit = hi - 1u, sh.res.above = before + c_hi;
  __syncthreads();
  return total;
}

/// One counting pass instead of a select: keeps the list's items from the bin that holds its
/// k-th best key up (at least k items, in list order) and returns the new floor: that bin's
/// lowest key, or `floor` if higher. The bins are the 11 bits below the prefix that every key
/// of the list shares, so a list crowded just above its floor still spreads. (After an exact
/// prune the list can hold keys just below the floor: equal to the k-th key.)
__device__ std::uint32_t prune_coarse(const List& list, unsigned& n, int k, const Smem& mem, std::uint32_t floor) {
  Shared& sh = mem.sh;
  const int tid = static_cast<int>(threadIdx.x);
  if (tid == 0) sh.list_min = ~0u, sh.list_max = 0;
  for (int b = tid; b < kBins; b += kThreads) sh.hist0[b] = 0;
  __syncthreads();  // every append is in the list
  std::uint32_t bottom = ~0u, top = 0;
  for (unsigned i = static_cast<unsigned>(tid); i < n; i += kThreads) {
    bottom = min(bottom, list.key[i]);
    top = max(top, list.key[i]);
  }
  for (int d = kWarp / 2; d > 0; d /= 2) {
    bottom = min(bottom, port::shfl(bottom, static_cast<int>(port::lane_id()) ^ d));
    top = max(top, port::shfl(top, static_cast<int>(port::lane_id()) ^ d));
  }
  if (port::lane_id() == 0) {
    atomicMin(&sh.list_min, bottom);
    atomicMax(&sh.list_max, top);
  }
  __syncthreads();
  bottom = sh.list_min;
  top = sh.list_max;
  if (top == bottom) return floor;  // one key: no bin splits it
  const int high = 31 - __clz(static_cast<int>(top ^ bottom));  // the highest bit that differs
  const int shift = high + 1 > 11 ? high + 1 - 11 : 0;
  for (unsigned i = static_cast<unsigned>(tid); i < n; i += kThreads) {
    const std::uint32_t c = list.key[i];
    count_if(true, sh.hist0, (c >> shift) & (kBins - 1u));
  }
  __syncthreads();
  kth_bin_from_top(sh, k);
  const std::uint32_t prefix = shift + 11 >= 32 ? 0u : top >> (shift + 11) << (shift + 11);
  const std::uint32_t lowest = prefix | (sh.res.digit << shift);
  n = compact_list<true>(list, n, Cut{lowest, 0, 0u}, mem);  // keys >= lowest
  return lowest > floor ? lowest : floor;
}

/// A floor for the rest [from, len) of a chunk (at least a stream tile long) from a sample of
/// it: a stream tile's worth of items in 256 runs of 32 spread evenly over it. Returns the
/// lowest key of the bin that holds the sample's rank-th best item (0 when the sample has
/// fewer); the bins are the keys' top 11 bits, or with `fine` their top 22 (a second count over
/// the first bin).
/// The sample's items are the chunk's, so with rank <= k the floor is at most the chunk's k-th
/// best: a safe floor. A larger rank gives a guess, which the caller has to check. Every thread
/// of the block calls it.
template <int N, class Src>
__device__ std::uint32_t sample_floor(const Src& src, std::int64_t from, std::int64_t len, int rank, bool fine,
                                      const Smem& mem) {
  Shared& sh = mem.sh;
  const int tid = static_cast<int>(threadIdx.x);
  for (int b = tid; b < kBins; b += kThreads) sh.hist0[b] = 0;
  __syncthreads();
  constexpr int kRunThreads = 4, kRuns = kThreads / kRunThreads;
  const std::int64_t run = tid / kRunThreads;
  const std::int64_t at = from + run * (len - from) / kRuns / N * N + static_cast<std::int64_t>(tid % kRunThreads) * N;
  std::uint32_t w[N], key[N];
  const unsigned m = fetch_raw(src, at, w);
  raw_to_keys(src, w, key, false);
#pragma unroll
  for (int i = 0; i < N; ++i) count_if((m >> i) & 1u, sh.hist0, key[i] >> digit_shift(0));
  __syncthreads();
  if (kth_bin_from_top(sh, rank) < static_cast<unsigned>(rank)) return 0u;  // block uniform
  const std::uint32_t top = sh.res.digit;
  std::uint32_t f = top << digit_shift(0);
  if (fine) {  // the next 11 bits of the items in that bin
    const int below = rank - static_cast<int>(sh.res.above);
    for (int b = tid; b < kBins; b += kThreads) sh.hist0[b] = 0;  // kth_bin_from_top's reads are done
    __syncthreads();
#pragma unroll
    for (int i = 0; i < N; ++i)
      count_if(((m >> i) & 1u) && (key[i] >> digit_shift(0)) == top, sh.hist0,
               (key[i] >> digit_shift(1)) & (kBins - 1u));
    __syncthreads();
    kth_bin_from_top(sh, below);
    f |= sh.res.digit << digit_shift(1);
  }
  __syncthreads();  // sh.res and sh.warp_totals are reused
  return f;
}

/// The smallest key a later item needs to be among the k best once a prune has returned `cut`
/// (over keys of P passes): above the k-th key (an equal key comes later, so it loses the tie)
/// when every pass ran, since the cut's top bits then decide the key; or, when the select
/// stopped earlier on a whole bin, at least that bin. (An exact cut at +inf lets later +inf
/// through: more items than needed, never fewer; so a floor never exceeds kInfKey.)
template <int P>
__device__ __forceinline__ std::uint32_t floor_of(const Cut& cut) {
  constexpr int kLow = digit_shift(P - 1);
  static_assert((kInfKey & ((1u << kLow) - 1u)) == 0u, "+inf's key ends in the bits below the last digit");
  if (cut.low > kLow) return cut.top << cut.low;
  return cut.top >= (kInfKey >> kLow) ? kInfKey : (cut.top + 1u) << kLow;
}

/// Filters a chunk longer than a tile into the block's list in one read: tiles of kStreamItems
/// per thread (the next tile's loads in flight while this one is filtered) append, in column
/// order, the items whose key reaches the floor, those that can still be among the chunk's k
/// best; when the list would overflow it is pruned to its k best, which raises the floor. The
/// floor of a chunk of logits starts at a guess from a sample, checked at the end (a second read
/// when it was too high). Returns the list's length, <= kListCap.
template <class Src>
__device__ unsigned filter_to_list(const Src& src, std::int64_t len, int k, const List& list, const Smem& mem) {
  constexpr int N = kStreamItems;
  unsigned* totals = reinterpret_cast<unsigned*>(mem.sh.warp_totals);  // two halves: tiles alternate
  const std::int64_t off = static_cast<std::int64_t>(threadIdx.x) * N;
  const std::int64_t tiles = (len + kStreamTile - 1) / kStreamTile;
  std::uint32_t raw[N];
  unsigned mask = fetch_raw(src, off, raw);
  // A guessed floor (logits): the key of the sample's rank-th best item, with the rank set so
  // that about 1.5 k of the chunk's items reach it (a short list; on rows of independent values
  // the chance that fewer than k do is at most 2e-12, a binomial tail over k and the chunk
  // lengths). Then the list needs no prune on most rows; if fewer than k items reach the guess,
  // the chunk is read again from floor 0 (below). The rank is at least a sample run (32 items),
  // so on rows sorted along their columns, either way, about 1.5 k items still reach the guess.
  std::uint32_t guess = 0;
  if constexpr (RawLogits<Src>) {
    const std::int64_t rank = 3 * k * kStreamTile / len / 2 + 32;
    guess = sample_floor<N>(src, 0, len, static_cast<int>(rank < kStreamTile ? rank : kStreamTile), true, mem);
  }
  std::uint32_t floor = guess;
  unsigned n = 0;
  // Without a guess (a merge's candidates, the second read) or with one that lets too many
  // items in, the first prune comes before the list is full: a floor from the first tiles keeps
  // most of the later items out. Measured on the H100 with uniform logits (NOTES_topk.md round
  // 6): after 8192 items for chunks longer than 8 stream tiles, after 16384 for shorter ones (a
  // floor from 8192 items lets a quarter of each later tile in, which fills a short chunk's
  // final list).
  const unsigned first_prune = len > 8 * kStreamTile ? 8192u : 16384u;
  bool pruned = false;
  // Tiles [t, tiles). The watching copy returns early, at the tile after which the rest of the
  // chunk should be sampled (below); the other copy carries no test, so rows that never
  // trigger run the same loop as without the sampling.
  const auto stream = [&](std::int64_t t, auto watch) -> std::int64_t {
#pragma unroll 1
    for (; t < tiles; ++t) {
      const std::int64_t p = t * kStreamTile + off;
      std::uint32_t key[N];
      if (floor > kNegInfKey) raw_to_keys(src, raw, key, true);  // block uniform
      else raw_to_keys(src, raw, key, false);
      const unsigned m = mask;
      mask = fetch_raw(src, p + kStreamTile, raw);  // the next tile (mask 0 past the chunk)
      unsigned* half = totals + (t & 1) * kWarps;
      // Which items to keep: every valid one while the floor is 0; above it, the key test alone
      // (items past the chunk have key 0, below any floor). Block uniform: one of two loops.
      const auto by_mask = [&](int i) { return ((m >> i) & 1u) != 0; };
      const auto by_floor = [&](int i) { return key[i] - floor <= kInfKey - floor; };  // floor <= key <= +inf
      const auto count = [&](const auto& kept) {
        unsigned c = 0;
#pragma unroll
        for (int i = 0; i < N; ++i) c += kept(i) ? 1u : 0u;
        return c;
      };
      const auto column = [&](int i, bool kept) { return column_if(src, kept, p + i); };
      unsigned total = 0;
      unsigned at = block_exclusive_scan(floor == 0 ? count(by_mask) : count(by_floor), total, half);
      if (n + total > static_cast<unsigned>(kListCap) || (!pruned && n >= first_prune)) {  // block uniform
        pruned = true;
        floor = prune_coarse(list, n, k, mem, floor);
        if (n > static_cast<unsigned>(kListCap - kStreamTile))
          floor = floor_of<Src::kPasses>(prune_list<Src::kPasses>(list, n, k, mem));
        at = block_exclusive_scan(floor == 0 ? count(by_mask) : count(by_floor), total, half);
      }
      if (floor == 0) list.append(n + at, key, by_mask, column);
      else list.append(n + at, key, by_floor, column);
      n += total;
      // Rows whose values rise along the columns beat every floor the earlier tiles set: more
      // than half a tile kept after a prune says so (uniform rows keep a quarter of a tile or
      // less after the first prune; `total` is block uniform).
      if (decltype(watch)::value && pruned && total > kStreamTile / 2 && tiles - t > 8) return t + 1;
    }
    return tiles;
  };
  const std::int64_t t = stream(0, std::bool_constant<RawLogits<Src>>{});  // not over candidates (the merge kernel)
  if (t < tiles) {
    // Then the floor is raised once from a sample of the rest of the chunk, instead of a prune
    // every 2-3 tiles (rank k: a safe floor).
    const std::uint32_t f = sample_floor<N>(src, t * kStreamTile, len, k, false, mem);
    floor = f > floor ? f : floor;
    stream(t, std::false_type{});
  }
  __syncthreads();  // the list is complete
  // The list holds every item that reached the floor, or (after a prune) k or more: it holds
  // the chunk's k best unless the guess was too high. Block uniform.
  if (n < static_cast<unsigned>(k) && guess != 0) {
    floor = 0, n = 0, pruned = false;
    mask = fetch_raw(src, off, raw);
    stream(0, std::false_type{});
    __syncthreads();
  }
  return n;
}

/// Writes the k best items of a chunk (or of the cluster's row) to the sink. kFilter (CUDA,
/// chunks longer than a tile): the chunk is filtered into the shared list first, so it is read
/// once, and the list is selected from. The two ways are separate kernels: each keeps its own
/// register budget.
template <bool kFilter, class Src, class Sink>
__device__ void select_chunk(const Src& src, std::int64_t len, int k, const Sink& sink, const Smem& mem) {
  static_assert(!kFilter || kListCap > 0, "no list under HIP");
  if constexpr (kFilter) {
    const List list = list_of(mem);
    const unsigned n = filter_to_list(src, len, k, list, mem);
    // The list (at most kListCap, a tile) is resident: its keys are in registers before
    // mem.cand (their part of the candidate area) is written as a bin list, and its columns are
    // not touched. A short list of logits (the usual one after a guessed floor) is held 4 or 8
    // items per thread, not 16: fewer instructions in every pass and in the placement
    // (NOTES_topk.md round 10: with the guess aimed at 1.5 k items, 6-17% off the filtered
    // shapes). The merge kernel keeps 16 (more instantiations spilled 244 bytes there instead of
    // 128).
    if constexpr (RawLogits<Src>) {
      if (n <= kTopkTile / 4) {
        block_select<kItems / 4>(ListSource<Src::kPasses>{list, n}, n, k, sink, mem, static_cast<unsigned>(kListCap));
        return;
      }
      if (n <= kTopkTile / 2) {
        block_select<kItems / 2>(ListSource<Src::kPasses>{list, n}, n, k, sink, mem, static_cast<unsigned>(kListCap));
        return;
      }
    }
    block_select<kItems>(ListSource<Src::kPasses>{list, n}, n, k, sink, mem, static_cast<unsigned>(kListCap));
  } else {
    block_select<kItems>(src, len, k, sink, mem, static_cast<unsigned>(kCandidates));
  }
}

struct KernelArgs {
  const void* logits;
  std::int64_t rows, cols, row_stride;
  const std::int32_t* seq_lens;
  int next_n, compress_ratio, k, bp;
  FastDiv by_next_n, by_ratio, by_bp;  // the divisions of a row's index and length, in 32 bits
  std::int32_t* out;              // [rows, k]
  std::uint32_t* cand_key;        // [rows, bp, k] when the row is split into workspace slots
  std::int32_t* cand_index;       // [rows, bp, k]
};

/// N_r of `row` (< 2^31): topk_row_length_unchecked's value when that is >= 0, and -1 for
/// every negative one (each writes the same row of -1). In 32-bit arithmetic with the host's
/// divisors: the kernels' first loads wait for it (64-bit divisions were about 200
/// instructions a warp before the tile's loads, NOTES_topk.md round 12).
__device__ __forceinline__ std::int64_t row_length(const KernelArgs& a, std::uint32_t row) {
  const std::uint32_t req = fastdiv(row, a.by_next_n);
  const std::uint32_t in_req = row - req * static_cast<std::uint32_t>(a.next_n);
  // <= seq_len < 2^31, since in_req + 1 <= next_n
  const std::int64_t num = static_cast<std::int64_t>(a.seq_lens[req]) - a.next_n + in_req + 1;
  return num < 0 ? -1 : static_cast<std::int64_t>(fastdiv(static_cast<std::uint32_t>(num), a.by_ratio));
}

/// chunk_of(n, j, a.bp) for 0 <= n <= cols (< 2^31).
__device__ __forceinline__ Chunk chunk_in(const KernelArgs& a, std::int64_t n, int j) {
  return chunk_at(n, j, fastdiv(static_cast<std::uint32_t>(n + a.bp - 1), a.by_bp));
}

/// Rows of length <= k (or invalid, written as all -1): 0 .. n-1 then -1.
__device__ void write_short_row(std::int32_t* out, std::int64_t n, std::int64_t cols, int k) {
  const bool bad = n < 0 || n > cols;
  for (int i = static_cast<int>(threadIdx.x); i < k; i += kThreads) out[i] = (!bad && i < n) ? i : -1;
}

template <LogitDtype D>
__device__ LogitSource<D> chunk_source(const KernelArgs& a, std::int64_t row, std::int64_t n, int j) {
  constexpr std::size_t bytes = D == LogitDtype::f32 ? 4 : 2;
  const void* row_ptr = static_cast<const char*>(a.logits) + static_cast<std::size_t>(row * a.row_stride) * bytes;
  const Chunk c = chunk_in(a, n, j);
  const std::size_t at = reinterpret_cast<std::uintptr_t>(row_ptr) + static_cast<std::size_t>(c.begin) * bytes;
  return LogitSource<D>{row_ptr, c.begin, c.len, at % 16 == 0};
}

// Grid: rows * C blocks of kThreads in clusters of C = bp <= port::kMaxClusterBlocks; cluster r
// selects row r's top k into out, block j of it reading chunk j.
template <LogitDtype D, bool kFilter>
__global__ void __launch_bounds__(kThreads, 1) topk_row_kernel(KernelArgs a) {
  const std::uint32_t row32 = fastdiv(blockIdx.x, a.by_bp);  // clusters of a.bp blocks
  const std::int64_t row = row32, n = row_length(a, row32);
  std::int32_t* out = a.out + row * a.k;
  if (n < 0 || n > a.cols || n <= a.k) {  // the same for every block of the cluster
    if (port::cluster_rank() == 0) write_short_row(out, n, a.cols, a.k);
    return;
  }
  const LogitSource<D> src = chunk_source<D>(a, row, n, static_cast<int>(port::cluster_rank()));
  select_chunk<kFilter>(src, src.len, a.k, OutputSink{out}, smem());
}

// Rows split over more blocks than a cluster holds (or under HIP): grid rows * bp blocks;
// block j selects its chunk's top min(k, chunk) into the row's workspace slots [j * k, ...)
// as (key, column) in column order, and topk_merge_kernel finishes the row.
template <LogitDtype D, bool kFilter>
__global__ void __launch_bounds__(kThreads, 1) topk_chunk_kernel(KernelArgs a) {
  const std::uint32_t row32 = fastdiv(blockIdx.x, a.by_bp);
  const int j = static_cast<int>(blockIdx.x - row32 * static_cast<std::uint32_t>(a.bp));
  const std::int64_t row = row32, n = row_length(a, row32);
  if (n < 0 || n > a.cols || n <= a.k) return;  // the merge kernel writes these rows
  const std::size_t slot = static_cast<std::size_t>(row * a.bp + j) * static_cast<std::size_t>(a.k);
  const CandidateSink sink{a.cand_key + slot, a.cand_index + slot};
  const LogitSource<D> src = chunk_source<D>(a, row, n, j);
  if (src.len <= a.k) {
    for (std::int64_t i = threadIdx.x; i < src.len; i += kThreads)
      sink.put(static_cast<unsigned>(i), topk_load_key<D>(src.row, src.begin + i), src.index(i));
    return;
  }
  select_chunk<kFilter>(src, src.len, a.k, sink, smem());
}

// Grid: rows blocks of kThreads; block r selects row r's top k among its bp * k candidate slots
// (keys of P passes).
template <bool kFilter, int P>
__global__ void __launch_bounds__(kThreads, 1) topk_merge_kernel(KernelArgs a) {
  __shared__ int filled[kTopkMaxBlocksPerRow];
  const std::int64_t row = blockIdx.x;
  const std::int64_t n = row_length(a, blockIdx.x);
  std::int32_t* out = a.out + row * a.k;
  if (n < 0 || n > a.cols || n <= a.k) {
    write_short_row(out, n, a.cols, a.k);
    return;
  }
  for (int j = static_cast<int>(threadIdx.x); j < a.bp; j += kThreads) {
    const std::int64_t len = chunk_in(a, n, j).len;
    filled[j] = static_cast<int>(len < a.k ? len : a.k);
  }
  __syncthreads();
  const std::size_t slot = static_cast<std::size_t>(row * a.bp) * static_cast<std::size_t>(a.k);
  const std::int64_t len = static_cast<std::int64_t>(a.bp) * a.k;
  select_chunk<kFilter>(CandidateSource<P>{a.cand_key + slot, a.cand_index + slot, filled, a.k, len}, len, a.k,
                        OutputSink{out}, smem());
}

/// Launch of `kernel` over `blocks` blocks in clusters of `cluster` (1: a plain launch), each
/// with kSmemBytes of dynamic shared memory.
Status launch_clustered(void (*kernel)(KernelArgs), unsigned blocks, int cluster, const KernelArgs& a,
                        port::stream_t stream, const char* name) {
  const port::error_t allowed = port::allow_dynamic_smem(kernel, kSmemBytes);
  if (allowed != port::kSuccess)
    return make_status(Errc::device, std::string(name) + ": cannot allow " + std::to_string(kSmemBytes) +
                                         " bytes of shared memory: " + port::error_string(allowed));
#if DSV4_GPU_HIP
  (void)cluster;
  kernel<<<blocks, kThreads, kSmemBytes, stream>>>(a);
#else
  if (cluster == 1) {
    kernel<<<blocks, kThreads, kSmemBytes, stream>>>(a);
  } else {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(blocks);
    cfg.blockDim = dim3(kThreads);
    cfg.dynamicSmemBytes = kSmemBytes;
    cfg.stream = stream;
    cudaLaunchAttribute attr{};
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = static_cast<unsigned>(cluster);
    attr.val.clusterDim.y = 1;
    attr.val.clusterDim.z = 1;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    const port::error_t e = cudaLaunchKernelEx(&cfg, kernel, a);
    if (e != port::kSuccess) return make_status(Errc::device, std::string(name) + ": launch failed: " + port::error_string(e));
  }
#endif
  return port::launch_status(name);
}

/// Whether chunks of `len` items at most go through the list (filter_to_list). Logits: longer
/// than a tile; their floor starts at a guess, so the list stays short and needs no prune
/// (measured on the H100, against the three sweeps of a two-tile chunk, two of them from L2:
/// 1 x 262144 f32 K 2048 at bp 8, 35.4 -> 33.0 us; 64 x 65536 34.5 -> 31.0 us;
/// gpu/bench/NOTES_topk.md round 10). A merge's candidates get no guess: longer than two tiles,
/// as before the guess (up to two, the three sweeps cost less than the list's prunes: 36 us
/// against 44 us for that shape in round 6).
bool filtered(std::int64_t len, bool logits) {
  return kListCap > 0 && len > (logits ? 1 : 2) * kTopkTile;
}

template <LogitDtype D, bool kFilter>
Status launch_split(const KernelArgs& a, port::stream_t stream) {
  const unsigned rows = static_cast<unsigned>(a.rows);
  if (a.bp <= port::kMaxClusterBlocks)
    return launch_clustered(&topk_row_kernel<D, kFilter>, rows * static_cast<unsigned>(a.bp), a.bp, a, stream,
                            "topk_row_kernel");
  Status s = launch_clustered(&topk_chunk_kernel<D, kFilter>, static_cast<unsigned>(a.rows * a.bp), 1, a, stream,
                              "topk_chunk_kernel");
  if (!s.ok()) return s;
  const std::int64_t merged = static_cast<std::int64_t>(a.bp) * a.k;
  return filtered(merged, false)
             ? launch_clustered(&topk_merge_kernel<kListCap != 0, key_passes(D)>, rows, 1, a, stream, "topk_merge_kernel")
             : launch_clustered(&topk_merge_kernel<false, key_passes(D)>, rows, 1, a, stream, "topk_merge_kernel");
}

template <LogitDtype D>
Status launch_typed(const KernelArgs& a, port::stream_t stream) {
  // The longest chunk (rows shorter than cols have shorter chunks; the filter takes any length).
  return filtered(chunk_of(a.cols, 0, a.bp).len, true) ? launch_split<D, kListCap != 0>(a, stream)
                                                       : launch_split<D, false>(a, stream);
}

/// The configuration table: one entry per supported logit dtype. Instantiation and dispatch
/// come from here; K in [1, kTopkMaxK] and blocks_per_row in [1, kTopkMaxBlocksPerRow] for all.
struct TopkConfig {
  LogitDtype dtype;
  Status (*launch)(const KernelArgs&, port::stream_t);
};
constexpr TopkConfig kConfigs[] = {
    {LogitDtype::f32, &launch_typed<LogitDtype::f32>},
    {LogitDtype::bf16, &launch_typed<LogitDtype::bf16>},
    {LogitDtype::f16, &launch_typed<LogitDtype::f16>},
};

int max_blocks_per_row(std::int64_t cols) { return topk_blocks_per_row_rule(1, cols, INT_MAX); }

}  // namespace

const char* topk_supported() {
  static const std::string s = [] {
    std::string d;
    for (const auto& c : kConfigs) d += (d.empty() ? "" : ", ") + std::string(to_string(c.dtype));
    return "dtype in {" + d + "}, k in [1, " + std::to_string(kTopkMaxK) + "], blocks_per_row in [0 (rule), " +
           std::to_string(kTopkMaxBlocksPerRow) + "], cols <= 2^31 - 1";
  }();
  return s.c_str();
}

int topk_blocks_per_row_rule(std::int64_t rows, std::int64_t cols, int sm_count) {
  const std::int64_t tiles = cols <= kTopkTile ? 1 : (cols + kTopkTile - 1) / kTopkTile;
  if (port::kMaxClusterBlocks > 1) {
    // One cluster per row: one block per register tile, at most a cluster, and no more blocks
    // than run at once: rows * bp <= sm_count, and <= sm_count / 2 for clusters of 8 (all 8
    // blocks must fit one GPC; on the H100 about half the SMs host such clusters at once).
    // Past that, a wider split only adds waves, passes' fixed costs and cluster barriers
    // (measured: gpu/bench/NOTES_topk.md).
    std::int64_t bp = 1;
    while (bp * 2 <= tiles && bp * 2 <= port::kMaxClusterBlocks && rows * bp * 2 <= (bp * 2 == 8 ? sm_count / 2 : sm_count))
      bp *= 2;
    return static_cast<int>(bp);
  }
  // Without clusters (HIP): the same split through the workspace and the merge kernel. A row
  // that fits one tile is not split.
  return static_cast<int>(tiles < kTopkMaxBlocksPerRow ? tiles : kTopkMaxBlocksPerRow);
}

std::size_t topk_workspace_bytes(std::int64_t rows, std::int64_t cols, int k, int blocks_per_row) {
  const int bp = blocks_per_row > 0 ? blocks_per_row : max_blocks_per_row(cols);
  // A row split over one cluster needs no workspace; a longer split stores bp * k candidates.
  if (bp <= port::kMaxClusterBlocks || rows <= 0 || k <= 0) return 0;
  return static_cast<std::size_t>(rows) * static_cast<std::size_t>(bp) * static_cast<std::size_t>(k) *
         (sizeof(std::uint32_t) + sizeof(std::int32_t));
}

Status topk_launch(const TopkParams& p, void* workspace, std::size_t workspace_bytes, port::stream_t stream) {
  auto bad = [](const std::string& m) { return make_status(Errc::bad_input, "topk_launch: " + m); };
  const TopkConfig* cfg = nullptr;
  for (const auto& c : kConfigs)
    if (c.dtype == p.dtype) cfg = &c;
  if (!cfg) return make_status(Errc::unsupported, std::string("topk_launch: unsupported dtype; supported: ") + topk_supported());
  if (p.k < 1 || p.k > kTopkMaxK)
    return make_status(Errc::unsupported, "topk_launch: k = " + std::to_string(p.k) + "; supported: " + topk_supported());
  if (p.blocks_per_row < 0 || p.blocks_per_row > kTopkMaxBlocksPerRow)
    return make_status(Errc::unsupported, "topk_launch: blocks_per_row = " + std::to_string(p.blocks_per_row) +
                                              "; supported: " + topk_supported());
  if (p.rows < 0) return bad("rows = " + std::to_string(p.rows) + " is negative");
  if (p.cols < 0 || p.cols > INT_MAX) return bad("cols = " + std::to_string(p.cols) + " is outside [0, 2^31 - 1]");
  if (p.row_stride < p.cols)
    return bad("row_stride = " + std::to_string(p.row_stride) + " is smaller than cols = " + std::to_string(p.cols));
  if (p.next_n < 1) return bad("next_n = " + std::to_string(p.next_n) + " must be >= 1");
  if (p.compress_ratio < 1) return bad("compress_ratio = " + std::to_string(p.compress_ratio) + " must be >= 1");
  if (p.rows == 0) return Status::success();
  if (p.batch < (p.rows + p.next_n - 1) / p.next_n)
    return bad("seq_lens too short: batch = " + std::to_string(p.batch) + " entries for rows = " +
               std::to_string(p.rows) + " with next_n = " + std::to_string(p.next_n));
  if (!p.logits) return bad("logits is a null pointer");
  if (!p.seq_lens) return bad("seq_lens is a null pointer");
  if (!p.out) return bad("out is a null pointer");
  if (p.blocks_per_row == 0 && p.sm_count < 1)
    return bad("sm_count = " + std::to_string(p.sm_count) + " must be >= 1 when blocks_per_row = 0 (rule)");
  const int bp = p.blocks_per_row > 0 ? p.blocks_per_row : topk_blocks_per_row_rule(p.rows, p.cols, p.sm_count);
  if (p.rows * bp > INT_MAX) return bad("rows * blocks_per_row exceeds the grid limit 2^31 - 1");
  const std::size_t need = topk_workspace_bytes(p.rows, p.cols, p.k, bp);
  if (need > 0) {
    if (!workspace) return bad("workspace is a null pointer but " + std::to_string(need) + " bytes are needed");
    if (workspace_bytes < need)
      return bad("workspace_bytes = " + std::to_string(workspace_bytes) + " < " + std::to_string(need) +
                 " needed (topk_workspace_bytes)");
    if (reinterpret_cast<std::uintptr_t>(workspace) % 4 != 0) return bad("workspace is not 4-byte aligned");
  }
  KernelArgs a{};
  a.logits = p.logits;
  a.rows = p.rows;
  a.cols = p.cols;
  a.row_stride = p.row_stride;
  a.seq_lens = p.seq_lens;
  a.next_n = p.next_n;
  a.compress_ratio = p.compress_ratio;
  a.k = p.k;
  a.bp = bp;
  a.by_next_n = make_fastdiv(static_cast<std::uint32_t>(p.next_n));
  a.by_ratio = make_fastdiv(static_cast<std::uint32_t>(p.compress_ratio));
  a.by_bp = make_fastdiv(static_cast<std::uint32_t>(bp));
  a.out = p.out;
  if (need > 0) {
    const std::size_t slots = static_cast<std::size_t>(p.rows) * bp * static_cast<std::size_t>(p.k);
    a.cand_key = static_cast<std::uint32_t*>(workspace);
    a.cand_index = reinterpret_cast<std::int32_t*>(a.cand_key + slots);
  }
  return cfg->launch(a, stream);
}

}  // namespace dsv4::gpu
