#include "gpu/lse_merge.cuh"

namespace dsv4::gpu {

namespace mm = merge_math;

namespace {

constexpr int kThreads = 256;  // threads per block
constexpr int kChunk = 8;      // elements of v per thread
constexpr int kBatch = 4;      // inputs whose v loads are in flight together

// The 8 elements of v that chunk c of a row owns, as loaded (16-byte vectors) and widened
// to floats. fp32: elements 4c .. 4c+3 and D/2 + 4c .. D/2 + 4c+3, so that each of the two
// loads of a warp covers one contiguous span; bf16: elements 8c .. 8c+7. `row` is the
// index of the row's first element, half = D/2 (a multiple of 4: 16-byte aligned).
template <VDtype T>
struct Raw8;
template <>
struct Raw8<VDtype::f32> {
  float4 a, b;
};
template <>
struct Raw8<VDtype::bf16> {
  uint4 q;
};

template <VDtype T>
__device__ __forceinline__ void load8(const void* __restrict__ base, std::int64_t row, std::int64_t c,
                                      std::int64_t half, Raw8<T>& r) {
  if constexpr (T == VDtype::f32) {
    const float* p = static_cast<const float*>(base) + row + 4 * c;
    r.a = *reinterpret_cast<const float4*>(p);
    r.b = *reinterpret_cast<const float4*>(p + half);
  } else {
    r.q = *reinterpret_cast<const uint4*>(static_cast<const std::uint16_t*>(base) + row + 8 * c);
  }
}

template <VDtype T>
__device__ __forceinline__ void widen8(const Raw8<T>& r, float x[kChunk]) {
  if constexpr (T == VDtype::f32) {
    x[0] = r.a.x; x[1] = r.a.y; x[2] = r.a.z; x[3] = r.a.w;
    x[4] = r.b.x; x[5] = r.b.y; x[6] = r.b.z; x[7] = r.b.w;
  } else {  // little endian: element 2k in the low half of word k
    const unsigned w[4] = {r.q.x, r.q.y, r.q.z, r.q.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      x[2 * k] = num::bf16_to_float(static_cast<std::uint16_t>(w[k] & 0xffffu));
      x[2 * k + 1] = num::bf16_to_float(static_cast<std::uint16_t>(w[k] >> 16));
    }
  }
}

// Store the chunk's 8 floats (NaN made canonical) rounded to the output dtype, at the
// positions load8 reads them from.
template <VDtype T>
__device__ __forceinline__ void store8(void* __restrict__ base, std::int64_t row, std::int64_t c, std::int64_t half,
                                       const float y[kChunk]) {
  if constexpr (T == VDtype::f32) {
    float* p = static_cast<float*>(base) + row + 4 * c;
    *reinterpret_cast<float4*>(p) = make_float4(mm::canon(y[0]), mm::canon(y[1]), mm::canon(y[2]), mm::canon(y[3]));
    *reinterpret_cast<float4*>(p + half) =
        make_float4(mm::canon(y[4]), mm::canon(y[5]), mm::canon(y[6]), mm::canon(y[7]));
  } else {
    unsigned w[4];
#pragma unroll
    for (int k = 0; k < 4; ++k)
      w[k] = static_cast<unsigned>(num::float_to_bf16(mm::canon(y[2 * k]))) |
             (static_cast<unsigned>(num::float_to_bf16(mm::canon(y[2 * k + 1]))) << 16);
    *reinterpret_cast<uint4*>(static_cast<std::uint16_t*>(base) + row + 8 * c) = make_uint4(w[0], w[1], w[2], w[3]);
  }
}

// Grid: ceil(tokens * heads * D/8 / 256) blocks of 256 threads. Thread g handles row
// g / (D/8) (row = token * heads + head), chunk c = g % (D/8) of that row (8 elements,
// see load8).
// The thread with chunk 0 also writes the row's lse.
template <VDtype T>
__global__ void __launch_bounds__(kThreads, 3) merge_kernel(MergeParams p, bool small_index) {
  const std::int64_t chunks = p.D / kChunk, half = p.D / 2;
  const std::int64_t g = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  std::int64_t row, c, t, h;
  if (small_index) {  // 32-bit divisions (a 64-bit one is a long software sequence)
    const std::uint32_t g32 = static_cast<std::uint32_t>(g), ch = static_cast<std::uint32_t>(chunks);
    const std::uint32_t row32 = g32 / ch, hd = static_cast<std::uint32_t>(p.heads);
    row = row32;
    c = g32 - row32 * ch;
    t = row32 / hd;
    h = row32 - static_cast<std::uint32_t>(t) * hd;
  } else {
    row = g / chunks;
    c = g - row * chunks;
    t = row / p.heads;
    h = row - t * p.heads;
  }
  if (row >= p.tokens * p.heads) return;
  const mm::RowInputs r = mm::row_inputs(t, h, p.splits, p.tokens, p.heads, p.num_splits, p.split_offsets);
  // v of inputs i0 .. i0 + kBatch - 1 (those < n). Every input row is in bounds, so the
  // loads need no weight: the first batch is issued before the weights are computed and
  // its latency overlaps that of the lse loads (a two-way merge has all its loads in
  // flight at once).
  Raw8<T> xb[kBatch];
  auto load_batch = [&](int i0) {
#pragma unroll
    for (int b = 0; b < kBatch; ++b)
      if (i0 + b < r.n) load8<T>(p.v_partial, (r.first + (i0 + b) * r.step) * p.D, c, half, xb[b]);
  };
  load_batch(0);
  // Row max, then W = ((w_0 + w_1) + ...) exactly as merge_math::row_weights sums it;
  // the first kBatch weights stay in registers for the fold.
  const float m = mm::row_max(p.lse_partial, r, p.policy);
  const bool empty = m == num::neg_inf();  // all inputs empty (or none): (0, -inf)
  float acc[kChunk];
  float lse = num::neg_inf();
  if (empty) {
#pragma unroll
    for (int k = 0; k < kChunk; ++k) acc[k] = 0.0f;
  } else {
    float wb[kBatch];
    float W = 0.0f;
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      wb[b] = 0.0f;
      if (b < r.n) {
        wb[b] = mm::weight(mm::effective_lse(p.lse_partial[r.first + b * r.step], p.policy), m);
        W += wb[b];
      }
    }
    for (int i = kBatch; i < r.n; ++i) W += mm::weight(mm::effective_lse(p.lse_partial[r.first + i * r.step], p.policy), m);
#pragma unroll
    for (int k = 0; k < kChunk; ++k) acc[k] = -0.0f;
    for (int i0 = 0; i0 < r.n; i0 += kBatch) {
      if (i0 > 0) load_batch(i0);
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int i = i0 + b;
        if (i >= r.n) continue;
        const float w =
            i0 == 0 ? wb[b] : mm::weight(mm::effective_lse(p.lse_partial[r.first + i * r.step], p.policy), m);
        if (w != 0.0f) {  // an empty or underflowed input contributes nothing, whatever its v
          const float s = w / W;
          float x[kChunk];
          widen8<T>(xb[b], x);
#pragma unroll
          for (int k = 0; k < kChunk; ++k) acc[k] = num::fma(s, x[k], acc[k]);
        }
      }
    }
    // The lse (m + log W) only where it is stored or the sink needs it.
    const bool need_lse = (c == 0 && p.lse_out) || p.sink;
    const float row_lse = need_lse ? m + num::log(W) : 0.0f;
    lse = row_lse;
    if (p.sink) {
      const float sg = p.sink[h];
      const float div = mm::sink_divisor(sg, row_lse);
#pragma unroll
      for (int k = 0; k < kChunk; ++k) acc[k] = acc[k] / div;
      if (p.lse_includes_sink) lse = mm::lse_with_sink(row_lse, sg);
    }
  }
  store8<T>(p.v_out, row * p.D, c, half, acc);
  if (c == 0 && p.lse_out) p.lse_out[row] = mm::canon(lse);
}

// The configuration table: instantiation and dispatch both come from it.
struct MergeConfig {
  VDtype v_dtype;
  void (*kernel)(MergeParams, bool);
};
constexpr MergeConfig kConfigs[] = {
    {VDtype::f32, merge_kernel<VDtype::f32>},
    {VDtype::bf16, merge_kernel<VDtype::bf16>},
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
  const std::int64_t threads = rows * (p.D / kChunk);
  const std::int64_t blocks = (threads + kThreads - 1) / kThreads;
  if (blocks > 0x7fffffffLL) return bad("tokens x heads x D is too large for one launch");
  const bool small_index = blocks * kThreads <= 0xffffffffLL;
  cfg->kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p, small_index);
  return port::launch_status("merge_kernel");
}

}  // namespace dsv4::gpu
