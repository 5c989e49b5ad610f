#include "gpu/topk.cuh"

#include <climits>
#include <string>

namespace dsv4::gpu {

namespace {

constexpr int kThreads = kTopkThreads;
constexpr int kItems = kTopkItems;
constexpr int kWarp = port::kWarpSize;
constexpr int kWarps = kThreads / kWarp;
constexpr int kBins = 2048;                // histogram bins of the widest radix digit
constexpr int kBinsPerThread = kBins / kThreads;
constexpr int kPasses = 3;                 // digits of 11, 11 and 10 bits, top first
__host__ __device__ constexpr int digit_shift(int pass) { return pass == 0 ? 21 : pass == 1 ? 10 : 0; }
__host__ __device__ constexpr int digit_width(int pass) { return pass == 2 ? 10 : 11; }
// Keys of the first threshold bin kept in shared memory for the later passes (dynamic shared
// memory after Shared): 192 KB on CUDA, so that a streamed chunk's bin fits too (uniform
// logits put 1/16 of the items in it: 16384 of a 262144-column row); 16 KB under HIP.
constexpr int kCandidates = DSV4_GPU_HIP ? 4096 : 49152;
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
  u64 warp_totals[kWarps];
  PassResult res;
  unsigned ncand;
  unsigned base[2];  // (above, equal) items of the earlier blocks of the cluster, pushed by them
};
// Dynamic shared memory of every kernel: Shared, then the candidate keys.
constexpr std::size_t kSmemBytes = sizeof(Shared) + kCandidates * sizeof(unsigned);
static_assert(sizeof(Shared) % 16 == 0, "the candidate keys start 16-byte aligned");

/// The block's Shared and candidate list in dynamic shared memory.
struct Smem {
  Shared& sh;
  unsigned* cand;  // [kCandidates]: keys of this block's items in the first pass's threshold bin
};
__device__ __forceinline__ Smem smem() {
  extern __shared__ __align__(16) unsigned char topk_smem[];
  return {*reinterpret_cast<Shared*>(topk_smem), reinterpret_cast<unsigned*>(topk_smem + sizeof(Shared))};
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

/// Inclusive scan of x over the warp in lane order.
template <class T>
__device__ __forceinline__ T warp_inclusive(T x) {
  const int lane = static_cast<int>(port::lane_id());
#pragma unroll
  for (int d = 1; d < kWarp; d *= 2) {
    const T up = port::shfl(x, lane >= d ? lane - d : lane);
    if (lane >= d) x += up;
  }
  return x;
}

template <class T>
__device__ T block_exclusive_scan(T v, T& total, T* warp_totals) {
  const int lane = static_cast<int>(port::lane_id()), w = static_cast<int>(threadIdx.x) / kWarp;
  const T inc = warp_inclusive(v);
  if (lane == kWarp - 1) warp_totals[w] = inc;
  __syncthreads();
  const T over = warp_inclusive(lane < kWarps ? warp_totals[lane] : T(0));  // inclusive over warps
  const T before = port::shfl(over, w > 0 ? w - 1 : 0);
  total = port::shfl(over, kWarps - 1);
  return (w > 0 ? before : T(0)) + inc - v;
}

/// Column range [begin, end) of part j of `parts` for a row of n valid columns: parts of
/// ceil(n / parts) columns rounded up to kItems (so vector loads stay aligned); the last parts
/// may be short or empty.
struct Chunk {
  std::int64_t begin, len;
};
__device__ __forceinline__ Chunk chunk_of(std::int64_t n, int j, int parts) {
  const std::int64_t per = ((n + parts - 1) / parts + kItems - 1) / kItems * kItems;
  const std::int64_t b = per * j < n ? per * j : n;
  const std::int64_t e = b + per < n ? b + per : n;
  return {b, e - b};
}

/// Items of one chunk of a row read straight from the logits. Thread t of a tile holds the
/// kItems consecutive items starting at p = tile * kTopkTile + t * kItems.
template <LogitDtype D>
struct LogitSource {
  const void* row;
  std::int64_t begin, len;
  bool aligned;  // the chunk starts on a 16-byte boundary: full groups load as 16-byte vectors

  /// Keys of items [p, p + kItems); returns the mask of those inside the chunk (a prefix).
  __device__ __forceinline__ unsigned load(std::int64_t p, std::uint32_t (&key)[kItems]) const {
    const std::int64_t left = len - p;
    if (left >= kItems && aligned) {
      if constexpr (D == LogitDtype::f32) {
        const uint4* v = reinterpret_cast<const uint4*>(static_cast<const float*>(row) + begin + p);
#pragma unroll
        for (int q = 0; q < kItems / 4; ++q) {
          const uint4 x = v[q];
          key[4 * q] = topk_key(x.x);
          key[4 * q + 1] = topk_key(x.y);
          key[4 * q + 2] = topk_key(x.z);
          key[4 * q + 3] = topk_key(x.w);
        }
      } else {
        const uint4* v = reinterpret_cast<const uint4*>(static_cast<const std::uint16_t*>(row) + begin + p);
#pragma unroll
        for (int q = 0; q < kItems / 8; ++q) {
          const uint4 x = v[q];
          const std::uint32_t w[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
          for (int h = 0; h < 4; ++h) {  // little endian: the lower half is the earlier column
            if constexpr (D == LogitDtype::bf16) {
              key[8 * q + 2 * h] = topk_key(w[h] << 16);
              key[8 * q + 2 * h + 1] = topk_key(w[h] & 0xffff0000u);
            } else {
              key[8 * q + 2 * h] = topk_key(num::bits(num::fp16_to_float(static_cast<std::uint16_t>(w[h]))));
              key[8 * q + 2 * h + 1] = topk_key(num::bits(num::fp16_to_float(static_cast<std::uint16_t>(w[h] >> 16))));
            }
          }
        }
      }
      return (1u << kItems) - 1u;
    }
#pragma unroll
    for (int i = 0; i < kItems; ++i) key[i] = i < left ? topk_load_key<D>(row, begin + p + i) : 0u;
    return left >= kItems ? (1u << kItems) - 1u : left <= 0 ? 0u : (1u << left) - 1u;
  }
  __device__ std::int32_t index(std::int64_t p) const { return static_cast<std::int32_t>(begin + p); }
};

/// The candidates of one row written by the split blocks: bp slots of k, block j's first
/// filled[j] = min(k, length of chunk j) slots hold its chunk's top k in column order.
struct CandidateSource {
  const std::uint32_t* keys;  // [bp * k]
  const std::int32_t* index_; // [bp * k]
  const int* filled;          // [bp] (shared memory)
  int k;
  std::int64_t len;           // bp * k

  __device__ __forceinline__ unsigned load(std::int64_t p, std::uint32_t (&key)[kItems]) const {
    unsigned mask = 0;
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
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
template <class Src, class Fn>
__device__ __forceinline__ void for_each_tile(const Src& src, std::int64_t len, bool resident, bool backward,
                                              std::uint32_t (&key)[kItems], unsigned& mask, Fn&& fn) {
  const std::int64_t tiles = (len + kTopkTile - 1) / kTopkTile;
  for (std::int64_t i = 0; i < tiles; ++i) {
    const std::int64_t t = backward ? tiles - 1 - i : i;
    const std::int64_t p = t * kTopkTile + static_cast<std::int64_t>(threadIdx.x) * kItems;
    if (!resident) mask = src.load(p, key);
    fn(p);
  }
}

/// Writes the k best items of a row to sink slots 0 .. k-1 in item order. The row is the
/// concatenation, in cluster rank order, of the chunks `src` of the blocks of this block's
/// cluster (a cluster of one block: src is the whole row); it has at least k items. Every
/// thread of every block of the cluster must call it.
///
/// Radix select over the cluster: each pass, every block counts its chunk into its own
/// histogram and combines the cluster's counts through distributed shared memory (one
/// barrier a pass), so all blocks find the same threshold digit. The items of the
/// first threshold bin are kept as a shared-memory key list for the later passes when they
/// fit. Then each block adds its (above, equal) counts into the later blocks' bases and writes
/// its chunk's selected items: one block scan in item order places them.
template <class Src, class Sink>
__device__ void block_select(const Src& src, std::int64_t len, int k, const Sink& sink, const Smem& mem) {
  Shared& sh = mem.sh;
  const int tid = static_cast<int>(threadIdx.x);
  const unsigned blocks = port::cluster_blocks(), rank = port::cluster_rank();
  const bool clustered = blocks > 1;
  const bool resident = len <= kTopkTile;  // keys stay in registers across all passes
  std::uint32_t key[kItems];
  unsigned mask = 0;
  if (resident) mask = src.load(static_cast<std::int64_t>(tid) * kItems, key);
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
  for (int pass = 0; pass < kPasses; ++pass) {
    const int shift = digit_shift(pass);
    const unsigned bins = 1u << digit_width(pass);
    const std::uint32_t high = pass == 0 ? 0u : ~((1u << (shift + digit_width(pass))) - 1u);
    unsigned* hist = pass == 0 ? sh.hist0 : pass == 1 ? sh.hist1 : sh.hist2;
    if (pass == 0) {  // every valid item; the digit is the key's top 11 bits
      for_each_tile(src, len, resident, false, key, mask, [&](std::int64_t) {
#pragma unroll
        for (int i = 0; i < kItems; ++i) count_if((mask >> i) & 1u, hist, key[i] >> digit_shift(0));
      });
    } else if (in_list) {
      const unsigned n = sh.ncand;
      for (unsigned i = static_cast<unsigned>(tid); i < n; i += kThreads) {
        const std::uint32_t c = mem.cand[i];
        count_if((c & high) == prefix, hist, (c >> shift) & (bins - 1u));
      }
    } else {  // streamed again: pass 1 backward after pass 0, pass 2 forward
      for_each_tile(src, len, resident, pass == 1, key, mask, [&](std::int64_t) {
#pragma unroll
        for (int i = 0; i < kItems; ++i)
          count_if(((mask >> i) & 1u) && (key[i] & high) == prefix, hist, (key[i] >> shift) & (bins - 1u));
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
    const u64 c0 = all0 | (static_cast<u64>(own0) << 32), c1 = all1 | (static_cast<u64>(own1) << 32);
    u64 total = 0;
    const u64 before = block_exclusive_scan(c0 + c1, total, sh.warp_totals);
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
    if (pass == 0 && !whole_bin && res.count_l <= kCandidates) {
      in_list = true;
      // One shared atomic per warp and tile: a warp scan of the per-thread counts places them.
      for_each_tile(src, len, resident, true, key, mask, [&](std::int64_t) {  // the list's order is free
        unsigned mine = 0;
#pragma unroll
        for (int i = 0; i < kItems; ++i) mine += ((mask >> i) & 1u) && (key[i] >> shift) == res.digit;
        const unsigned inc = warp_inclusive(mine);
        unsigned at = 0;
        if (port::lane_id() == kWarp - 1 && inc > 0) at = atomicAdd(&sh.ncand, inc);
        at = port::shfl(at, kWarp - 1) + inc - mine;
#pragma unroll
        for (int i = 0; i < kItems; ++i) {
          const bool in_bin = ((mask >> i) & 1u) && (key[i] >> shift) == res.digit;
          store_if(in_bin, mem.cand, at, key[i]);
          at += in_bin ? 1u : 0u;
        }
      });
    }
    __syncthreads();  // sh.res is rewritten by the next pass; mem.cand is complete
    if (whole_bin) break;
  }

  // Items compare on their top 32 - low bits: above T always taken, equal to T the first
  // `take` of the row in item order (all of them when the passes stopped early).
  const std::uint32_t threshold = prefix >> low;
  const unsigned take = remaining;
  if (clustered) {
    if (tid == 0) {
#pragma unroll 1
      for (unsigned b = rank + 1; b < blocks; ++b) {
        port::cluster_add(&sh.base[0], b, local_above);
        port::cluster_add(&sh.base[1], b, local_equal);
      }
    }
    port::cluster_sync();  // every block has read the others' counts: none touches another's shared memory after it
  }
  unsigned above = sh.base[0], equal = sh.base[1];  // items of the earlier cluster blocks, then of earlier tiles
  for_each_tile(src, len, resident, false, key, mask, [&](std::int64_t p) {  // item order: positions
    unsigned counts = 0;  // (above, equal) of this thread's items, packed 16 | 16 bits
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      const std::uint32_t top = key[i] >> low;
      if ((mask >> i) & 1u) counts += top > threshold ? 1u : top == threshold ? 0x10000u : 0u;
    }
    unsigned tile_total = 0;
    const unsigned before = block_exclusive_scan(counts, tile_total, reinterpret_cast<unsigned*>(sh.warp_totals));
    unsigned a = above + (before & 0xffffu), e = equal + (before >> 16);
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      const std::uint32_t top = key[i] >> low;
      if (!((mask >> i) & 1u) || top < threshold) continue;
      if (top > threshold) {
        sink.put(a + (e < take ? e : take), key[i], src.index(p + i));
        ++a;
      } else {
        if (e < take) sink.put(a + e, key[i], src.index(p + i));
        ++e;
      }
    }
    above += tile_total & 0xffffu;
    equal += tile_total >> 16;
    if (!resident) __syncthreads();  // warp_totals is reused by the next tile's scan
  });
}

struct KernelArgs {
  const void* logits;
  std::int64_t rows, cols, row_stride;
  const std::int32_t* seq_lens;
  int next_n, compress_ratio, k, bp;
  std::int32_t* out;              // [rows, k]
  std::uint32_t* cand_key;        // [rows, bp, k] when the row is split into workspace slots
  std::int32_t* cand_index;       // [rows, bp, k]
};

__device__ __forceinline__ std::int64_t row_length(const KernelArgs& a, std::int64_t row) {
  return topk_row_length_unchecked(a.seq_lens[row / a.next_n], row, a.next_n, a.compress_ratio);
}

/// Rows of length <= k (or invalid, written as all -1): 0 .. n-1 then -1.
__device__ void write_short_row(std::int32_t* out, std::int64_t n, std::int64_t cols, int k) {
  const bool bad = n < 0 || n > cols;
  for (int i = static_cast<int>(threadIdx.x); i < k; i += kThreads) out[i] = (!bad && i < n) ? i : -1;
}

template <LogitDtype D>
__device__ LogitSource<D> chunk_source(const KernelArgs& a, std::int64_t row, std::int64_t n, int j, int parts) {
  constexpr std::size_t bytes = D == LogitDtype::f32 ? 4 : 2;
  const void* row_ptr = static_cast<const char*>(a.logits) + static_cast<std::size_t>(row * a.row_stride) * bytes;
  const Chunk c = chunk_of(n, j, parts);
  const std::size_t at = reinterpret_cast<std::uintptr_t>(row_ptr) + static_cast<std::size_t>(c.begin) * bytes;
  return LogitSource<D>{row_ptr, c.begin, c.len, at % 16 == 0};
}

// Grid: rows * C blocks of kThreads in clusters of C = bp <= port::kMaxClusterBlocks; cluster r
// selects row r's top k into out, block j of it reading chunk j.
template <LogitDtype D>
__global__ void __launch_bounds__(kThreads, 1) topk_row_kernel(KernelArgs a) {
  const int parts = static_cast<int>(port::cluster_blocks());
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) / parts;
  const std::int64_t n = row_length(a, row);
  std::int32_t* out = a.out + row * a.k;
  if (n < 0 || n > a.cols || n <= a.k) {  // the same for every block of the cluster
    if (port::cluster_rank() == 0) write_short_row(out, n, a.cols, a.k);
    return;
  }
  const LogitSource<D> src = chunk_source<D>(a, row, n, static_cast<int>(port::cluster_rank()), parts);
  block_select(src, src.len, a.k, OutputSink{out}, smem());
}

// Rows split over more blocks than a cluster holds (or under HIP): grid rows * bp blocks;
// block j selects its chunk's top min(k, chunk) into the row's workspace slots [j * k, ...)
// as (key, column) in column order, and topk_merge_kernel finishes the row.
template <LogitDtype D>
__global__ void __launch_bounds__(kThreads, 1) topk_chunk_kernel(KernelArgs a) {
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) / a.bp;
  const int j = static_cast<int>(static_cast<std::int64_t>(blockIdx.x) - row * a.bp);
  const std::int64_t n = row_length(a, row);
  if (n < 0 || n > a.cols || n <= a.k) return;  // the merge kernel writes these rows
  const std::size_t slot = static_cast<std::size_t>(row * a.bp + j) * static_cast<std::size_t>(a.k);
  const CandidateSink sink{a.cand_key + slot, a.cand_index + slot};
  const LogitSource<D> src = chunk_source<D>(a, row, n, j, a.bp);
  if (src.len <= a.k) {
    for (std::int64_t i = threadIdx.x; i < src.len; i += kThreads)
      sink.put(static_cast<unsigned>(i), topk_load_key<D>(src.row, src.begin + i), src.index(i));
    return;
  }
  block_select(src, src.len, a.k, sink, smem());
}

// Grid: rows blocks of kThreads; block r selects row r's top k among its bp * k candidate slots.
__global__ void __launch_bounds__(kThreads, 1) topk_merge_kernel(KernelArgs a) {
  __shared__ int filled[kTopkMaxBlocksPerRow];
  const std::int64_t row = blockIdx.x;
  const std::int64_t n = row_length(a, row);
  std::int32_t* out = a.out + row * a.k;
  if (n < 0 || n > a.cols || n <= a.k) {
    write_short_row(out, n, a.cols, a.k);
    return;
  }
  for (int j = static_cast<int>(threadIdx.x); j < a.bp; j += kThreads) {
    const std::int64_t len = chunk_of(n, j, a.bp).len;
    filled[j] = static_cast<int>(len < a.k ? len : a.k);
  }
  __syncthreads();
  const std::size_t slot = static_cast<std::size_t>(row * a.bp) * static_cast<std::size_t>(a.k);
  const std::int64_t len = static_cast<std::int64_t>(a.bp) * a.k;
  block_select(CandidateSource{a.cand_key + slot, a.cand_index + slot, filled, a.k, len}, len, a.k, OutputSink{out}, smem());
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

template <LogitDtype D>
Status launch_typed(const KernelArgs& a, port::stream_t stream) {
  const unsigned rows = static_cast<unsigned>(a.rows);
  if (a.bp <= port::kMaxClusterBlocks)
    return launch_clustered(&topk_row_kernel<D>, rows * static_cast<unsigned>(a.bp), a.bp, a, stream, "topk_row_kernel");
  Status s = launch_clustered(&topk_chunk_kernel<D>, static_cast<unsigned>(a.rows * a.bp), 1, a, stream, "topk_chunk_kernel");
  if (!s.ok()) return s;
  return launch_clustered(&topk_merge_kernel, rows, 1, a, stream, "topk_merge_kernel");
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
  a.out = p.out;
  if (need > 0) {
    const std::size_t slots = static_cast<std::size_t>(p.rows) * bp * static_cast<std::size_t>(p.k);
    a.cand_key = static_cast<std::uint32_t*>(workspace);
    a.cand_index = reinterpret_cast<std::int32_t*>(a.cand_key + slots);
  }
  return cfg->launch(a, stream);
}

}  // namespace dsv4::gpu
