#include "gpu/topk.cuh"

#include <climits>
#include <string>

namespace dsv4::gpu {

namespace {

constexpr int kThreads = kTopkThreads;
constexpr int kItems = kTopkItems;
constexpr int kWarp = port::kWarpSize;
constexpr int kWarps = kThreads / kWarp;
constexpr int kGroups = kItems * kWarps;  // (item, warp) groups of one tile, in index order
constexpr int kBins = 2048;               // histogram bins of the widest radix digit
constexpr int kBinsPerThread = kBins / kThreads;
constexpr unsigned long long kFullWarp = kWarp == 64 ? ~0ull : (1ull << kWarp) - 1ull;
static_assert(kThreads % kWarp == 0 && kWarps <= kWarp, "block scan needs warps <= warp width");
static_assert(kGroups <= kThreads, "one thread per (item, warp) group in the compaction scan");
static_assert(kBins % kThreads == 0, "bins split evenly over threads");
static_assert(kItems <= 32, "valid-item mask is 32 bits");

using u64 = unsigned long long;

struct Shared {
  unsigned hist[kBins];
  u64 groups[kGroups];  // per (item, warp): packed counts, then their exclusive bases
  u64 warp_totals[kWarps];
  unsigned digit, above, count;  // threshold digit, items above its bin, items in its bin
};

/// Exclusive scan of v over the block in thread order; `total` gets the block sum.
/// Contains barriers: every thread of the block must call it.
template <class T>
__device__ T block_exclusive_scan(T v, T& total, T* warp_totals) {
  const int lane = static_cast<int>(port::lane_id()), w = static_cast<int>(threadIdx.x) / kWarp;
  T inc = v;
#pragma unroll
  for (int d = 1; d < kWarp; d *= 2) {
    const T up = port::shfl(inc, lane >= d ? lane - d : lane);
    if (lane >= d) inc += up;
  }
  if (lane == kWarp - 1) warp_totals[w] = inc;
  __syncthreads();
  if (w == 0) {
    T t = lane < kWarps ? warp_totals[lane] : T(0);
#pragma unroll
    for (int d = 1; d < kWarp; d *= 2) {
      const T up = port::shfl(t, lane >= d ? lane - d : lane);
      if (lane >= d) t += up;
    }
    if (lane < kWarps) warp_totals[lane] = t;  // inclusive over warps
  }
  __syncthreads();
  const T base = w > 0 ? warp_totals[w - 1] : T(0);
  total = warp_totals[kWarps - 1];
  __syncthreads();  // warp_totals may be reused by the next call
  return base + inc - v;
}

/// Column chunk [begin, end) of block j of bp for a row of n valid columns.
__device__ __forceinline__ std::int64_t chunk_begin(std::int64_t n, int j, int bp) { return n * j / bp; }

/// Items of one row (or one chunk) read straight from the logits.
template <LogitDtype D>
struct LogitSource {
  const void* row;
  std::int64_t begin;  // first column of the chunk
  __device__ bool valid(std::int64_t) const { return true; }
  __device__ std::uint32_t key(std::int64_t i) const { return topk_load_key<D>(row, begin + i); }
  __device__ std::int32_t index(std::int64_t i) const { return static_cast<std::int32_t>(begin + i); }
};

/// The candidates of one row written by the split blocks: bp slots of k, block j's first
/// min(k, chunk length) slots hold its chunk's top-k in column order; the rest were never written.
struct CandidateSource {
  const std::uint32_t* keys;  // [bp * k]
  const std::int32_t* index_; // [bp * k]
  const int* filled;          // [bp] (shared memory): min(k, length of chunk j)
  int k;
  // s < bp * k <= 64 * 2048: 32-bit arithmetic, one division.
  __device__ bool valid(std::int64_t s) const {
    const int si = static_cast<int>(s);
    const int j = si / k;
    return si - j * k < filled[j];
  }
  __device__ std::uint32_t key(std::int64_t s) const { return keys[s]; }
  __device__ std::int32_t index(std::int64_t s) const { return index_[s]; }
};

/// Final output of a row: column indices only.
struct OutputSink {
  std::int32_t* out;
  __device__ void put(int pos, std::uint32_t, std::int32_t index) const { out[pos] = index; }
};

/// Workspace slots of one chunk: key and column.
struct CandidateSink {
  std::uint32_t* keys;
  std::int32_t* index;
  __device__ void put(int pos, std::uint32_t key, std::int32_t col) const {
    keys[pos] = key;
    index[pos] = col;
  }
};

/// Loads tile `tile` of src (items tile*kTopkTile + it*kThreads + threadIdx.x) into registers.
template <class Src>
__device__ __forceinline__ unsigned load_tile(const Src& src, std::int64_t n, std::int64_t tile,
                                              std::uint32_t (&key)[kItems]) {
  unsigned valid = 0;
#pragma unroll
  for (int it = 0; it < kItems; ++it) {
    const std::int64_t p = tile * kTopkTile + static_cast<std::int64_t>(it) * kThreads + threadIdx.x;
    key[it] = 0;
    if (p < n && src.valid(p)) {
      key[it] = src.key(p);
      valid |= 1u << it;
    }
  }
  return valid;
}

/// Writes the k best items of src[0, n) (n > k, at least k valid) to sink slots 0 .. k-1 in
/// item order. One block; every thread must call it.
template <class Src, class Sink>
__device__ void block_select(const Src& src, std::int64_t n, int k, const Sink& sink, Shared& sh) {
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = static_cast<int>(port::lane_id()), w = tid / kWarp;
  const std::int64_t tiles = (n + kTopkTile - 1) / kTopkTile;
  const bool resident = tiles == 1;  // keep the keys in registers across all passes
  std::uint32_t key[kItems];
  unsigned valid = 0;
  if (resident) valid = load_tile(src, n, 0, key);

  // ---- radix select: threshold key T and how many items equal to T to take ----------------
  std::uint32_t prefix = 0;
  unsigned remaining = static_cast<unsigned>(k);  // items still to take among those matching prefix
  int low = 0;  // bits below the decided prefix: the compaction compares key >> low with prefix >> low
  constexpr int kShift[3] = {21, 10, 0};
  constexpr int kWidth[3] = {11, 11, 10};
#pragma unroll
  for (int pass = 0; pass < 3; ++pass) {
    const int shift = kShift[pass];
    const unsigned bins = 1u << kWidth[pass];
    const std::uint32_t high = pass == 0 ? 0u : ~((1u << (shift + kWidth[pass])) - 1u);
    for (int b = tid; b < kBins; b += kThreads) sh.hist[b] = 0;
    __syncthreads();
    for (std::int64_t tile = 0; tile < tiles; ++tile) {
      if (!resident) valid = load_tile(src, n, tile, key);
#pragma unroll
      for (int it = 0; it < kItems; ++it) {
        const bool counted = ((valid >> it) & 1u) && (key[it] & high) == prefix;
        const unsigned digit = counted ? (key[it] >> shift) & (bins - 1u) : 0xffffffffu;
        // Warp-aggregated count when the whole warp hits one bin (tie plateaus): lane 0 adds
        // the warp's count (then digit == d0 on every lane, and lane 0 is counted exactly when
        // d0 is a bin). One conditional atomic per item and no branch around the shuffles,
        // so the compiler may overlap the shuffles and ballots of different items.
        const unsigned d0 = port::shfl(digit, 0);
        const bool same = port::ballot(digit == d0) == kFullWarp;
        const bool add = same ? (lane == 0 && counted) : counted;
        if (add) atomicAdd(&sh.hist[digit], same ? static_cast<unsigned>(kWarp) : 1u);
      }
    }
    __syncthreads();
    // Thread t owns the bins of rank 2t, 2t+1 counted from the top bin down.
    unsigned c[kBinsPerThread], local = 0;
#pragma unroll
    for (int q = 0; q < kBinsPerThread; ++q) {
      const unsigned r = static_cast<unsigned>(tid * kBinsPerThread + q);
      c[q] = r < bins ? sh.hist[bins - 1u - r] : 0u;
      local += c[q];
    }
    unsigned total = 0;
    unsigned before = block_exclusive_scan(local, total, reinterpret_cast<unsigned*>(sh.warp_totals));
#pragma unroll
    for (int q = 0; q < kBinsPerThread; ++q) {
      if (before < remaining && remaining <= before + c[q]) {
        sh.digit = bins - 1u - static_cast<unsigned>(tid * kBinsPerThread + q);
        sh.above = before;
        sh.count = c[q];
      }
      before += c[q];
    }
    __syncthreads();
    prefix |= sh.digit << shift;
    remaining -= sh.above;
    low = shift;
    // Every item of the threshold bin is taken: the items whose prefix is above or equal
    // are exactly the top k, whatever their lower bits, so the later passes are skipped.
    // (Block-uniform: all threads read the same shared values.)
    const bool whole_bin = sh.count == remaining;
    __syncthreads();  // sh.digit / sh.above / sh.count / hist are rewritten by the next pass
    if (whole_bin) break;
  }
  // Items compare on their top 32 - low bits: above (> threshold) always taken, equal to
  // threshold the first take_equal in item order (all of them when the loop stopped early).
  const std::uint32_t threshold = prefix >> low;
  const unsigned take_equal = remaining;

  // ---- compaction in item order: above T always, equal to T the first take_equal ----------
  const u64 lanes_below = (1ull << lane) - 1ull;
  u64 carry = 0;  // packed (above, equal) counts of the previous tiles
  for (std::int64_t tile = 0; tile < tiles; ++tile) {
    if (!resident) valid = load_tile(src, n, tile, key);
#pragma unroll
    for (int it = 0; it < kItems; ++it) {
      const bool v = (valid >> it) & 1u;
      const std::uint32_t top = key[it] >> low;
      const u64 gm = port::ballot(v && top > threshold);
      const u64 em = port::ballot(v && top == threshold);
      if (lane == 0)
        sh.groups[it * kWarps + w] = static_cast<u64>(__popcll(gm)) | (static_cast<u64>(__popcll(em)) << 32);
    }
    __syncthreads();
    const u64 mine = tid < kGroups ? sh.groups[tid] : 0ull;
    u64 tile_total = 0;
    const u64 base = block_exclusive_scan(mine, tile_total, sh.warp_totals);
    if (tid < kGroups) sh.groups[tid] = base + carry;
    __syncthreads();
#pragma unroll
    for (int it = 0; it < kItems; ++it) {
      // The same ballots again (cheaper than keeping them in registers across the scan);
      // every lane executes them, before any lane skips an invalid item.
      const bool v = (valid >> it) & 1u;
      const std::uint32_t top = key[it] >> low;
      const u64 gm = port::ballot(v && top > threshold);
      const u64 em = port::ballot(v && top == threshold);
      if (!v) continue;
      const u64 b = sh.groups[it * kWarps + w];
      const unsigned above = static_cast<unsigned>(b) + static_cast<unsigned>(__popcll(gm & lanes_below));
      const unsigned equal = static_cast<unsigned>(b >> 32) + static_cast<unsigned>(__popcll(em & lanes_below));
      const std::int64_t p = tile * kTopkTile + static_cast<std::int64_t>(it) * kThreads + tid;
      if (top > threshold) {
        sink.put(static_cast<int>(above + (equal < take_equal ? equal : take_equal)), key[it], src.index(p));
      } else if (top == threshold && equal < take_equal) {
        sink.put(static_cast<int>(above + equal), key[it], src.index(p));
      }
    }
    carry += tile_total;
    __syncthreads();  // sh.groups is rewritten by the next tile
  }
}

struct KernelArgs {
  const void* logits;
  std::int64_t rows, cols, row_stride;
  const std::int32_t* seq_lens;
  int next_n, compress_ratio, k, bp;
  std::int32_t* out;              // [rows, k]
  std::uint32_t* cand_key;        // [rows, bp, k] when bp > 1
  std::int32_t* cand_index;       // [rows, bp, k] when bp > 1
};

__device__ __forceinline__ std::int64_t row_length(const KernelArgs& a, std::int64_t row) {
  return topk_row_length_unchecked(a.seq_lens[row / a.next_n], row, a.next_n, a.compress_ratio);
}

/// Rows of length <= k (or invalid, written as all -1): 0 .. n-1 then -1.
__device__ void write_short_row(std::int32_t* out, std::int64_t n, std::int64_t cols, int k) {
  const bool bad = n < 0 || n > cols;
  for (int i = static_cast<int>(threadIdx.x); i < k; i += kThreads) out[i] = (!bad && i < n) ? i : -1;
}

// Grid: rows * bp blocks of kThreads; block b handles chunk j = b % bp of row r = b / bp.
// kSplit = false (bp == 1): the block selects the row's top k into out.
// kSplit = true: the block selects its chunk's top min(k, chunk) into the row's workspace
// slots [j * k, ...) as (key, column), in column order; topk_merge_kernel finishes the row.
template <LogitDtype D, bool kSplit>
__global__ void __launch_bounds__(kThreads) topk_select_kernel(KernelArgs a) {
  __shared__ Shared sh;
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) / a.bp;
  const int j = static_cast<int>(static_cast<std::int64_t>(blockIdx.x) - row * a.bp);
  const std::int64_t n = row_length(a, row);
  const bool bad = n < 0 || n > a.cols;
  const void* row_ptr =
      static_cast<const char*>(a.logits) + static_cast<std::size_t>(row * a.row_stride) * (D == LogitDtype::f32 ? 4 : 2);
  if constexpr (!kSplit) {
    std::int32_t* out = a.out + row * a.k;
    if (bad || n <= a.k) {
      write_short_row(out, n, a.cols, a.k);
      return;
    }
    block_select(LogitSource<D>{row_ptr, 0}, n, a.k, OutputSink{out}, sh);
  } else {
    if (bad || n <= a.k) return;  // the merge kernel writes these rows
    const std::int64_t begin = chunk_begin(n, j, a.bp), len = chunk_begin(n, j + 1, a.bp) - begin;
    const std::size_t slot = static_cast<std::size_t>(row * a.bp + j) * static_cast<std::size_t>(a.k);
    const CandidateSink sink{a.cand_key + slot, a.cand_index + slot};
    const LogitSource<D> src{row_ptr, begin};
    if (len <= a.k) {
      for (std::int64_t i = threadIdx.x; i < len; i += kThreads) sink.put(static_cast<int>(i), src.key(i), src.index(i));
      return;
    }
    block_select(src, len, a.k, sink, sh);
  }
}

// Grid: rows blocks of kThreads; block r selects row r's top k among its bp * k candidate slots.
__global__ void __launch_bounds__(kThreads) topk_merge_kernel(KernelArgs a) {
  __shared__ Shared sh;
  const std::int64_t row = blockIdx.x;
  const std::int64_t n = row_length(a, row);
  std::int32_t* out = a.out + row * a.k;
  if (n < 0 || n > a.cols || n <= a.k) {
    write_short_row(out, n, a.cols, a.k);
    return;
  }
  // Filled slots of each chunk, once per block (n is the same for every thread: no thread
  // returned above unless all did).
  __shared__ int filled[kTopkMaxBlocksPerRow];
  for (int j = static_cast<int>(threadIdx.x); j < a.bp; j += kThreads) {
    const std::int64_t len = chunk_begin(n, j + 1, a.bp) - chunk_begin(n, j, a.bp);
    filled[j] = static_cast<int>(len < a.k ? len : a.k);
  }
  __syncthreads();
  const std::size_t slot = static_cast<std::size_t>(row * a.bp) * static_cast<std::size_t>(a.k);
  const CandidateSource src{a.cand_key + slot, a.cand_index + slot, filled, a.k};
  block_select(src, static_cast<std::int64_t>(a.bp) * a.k, a.k, OutputSink{out}, sh);
}

template <LogitDtype D>
Status launch_typed(const KernelArgs& a, port::stream_t stream) {
  const unsigned grid_rows = static_cast<unsigned>(a.rows);
  if (a.bp == 1) {
    topk_select_kernel<D, false><<<grid_rows, kThreads, 0, stream>>>(a);
    return port::launch_status("topk_select_kernel");
  }
  topk_select_kernel<D, true><<<static_cast<unsigned>(a.rows * a.bp), kThreads, 0, stream>>>(a);
  Status s = port::launch_status("topk_select_kernel (split)");
  if (!s.ok()) return s;
  topk_merge_kernel<<<grid_rows, kThreads, 0, stream>>>(a);
  return port::launch_status("topk_merge_kernel");
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

int topk_blocks_per_row_rule(std::int64_t /*rows*/, std::int64_t cols, int /*sm_count*/) {
  // No split below one tile per block: a block's time is mostly fixed (passes, barriers,
  // scans), so smaller chunks barely shorten the select kernel, and the merge kernel after
  // it costs a whole block time on the critical path (see gpu/bench/NOTES_topk.md).
  const std::int64_t bp = cols <= kTopkTile ? 1 : (cols + kTopkTile - 1) / kTopkTile;
  return static_cast<int>(bp < kTopkMaxBlocksPerRow ? bp : kTopkMaxBlocksPerRow);
}

std::size_t topk_workspace_bytes(std::int64_t rows, std::int64_t cols, int k, int blocks_per_row) {
  const int bp = blocks_per_row > 0 ? blocks_per_row : max_blocks_per_row(cols);
  if (bp <= 1 || rows <= 0 || k <= 0) return 0;
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
  if (bp > 1) {
    const std::size_t slots = static_cast<std::size_t>(p.rows) * bp * static_cast<std::size_t>(p.k);
    a.cand_key = static_cast<std::uint32_t*>(workspace);
    a.cand_index = reinterpret_cast<std::int32_t*>(a.cand_key + slots);
  }
  return cfg->launch(a, stream);
}

}  // namespace dsv4::gpu
