#include "gpu/lse_merge.cuh"

namespace dsv4::gpu {

namespace mm = merge_math;

namespace {

constexpr int kThreads = 256;  // threads per block
constexpr int kChunk = 8;      // elements of v per thread

// 8 consecutive elements of v as floats (16-byte vector loads; idx is a multiple of 8).
template <VDtype T>
__device__ __forceinline__ void load8(const void* __restrict__ base, std::int64_t idx, float x[kChunk]) {
  if constexpr (T == VDtype::f32) {
    const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(base) + idx);
    const float4 a = p[0], b = p[1];
    x[0] = a.x; x[1] = a.y; x[2] = a.z; x[3] = a.w;
    x[4] = b.x; x[5] = b.y; x[6] = b.z; x[7] = b.w;
  } else {
    const uint4 q = *reinterpret_cast<const uint4*>(static_cast<const std::uint16_t*>(base) + idx);
    const unsigned w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {  // little endian: element 2k in the low half
      x[2 * k] = num::bf16_to_float(static_cast<std::uint16_t>(w[k] & 0xffffu));
      x[2 * k + 1] = num::bf16_to_float(static_cast<std::uint16_t>(w[k] >> 16));
    }
  }
}

// Store 8 floats (NaN made canonical) rounded to the output dtype.
template <VDtype T>
__device__ __forceinline__ void store8(void* __restrict__ base, std::int64_t idx, const float y[kChunk]) {
  if constexpr (T == VDtype::f32) {
    float4* p = reinterpret_cast<float4*>(static_cast<float*>(base) + idx);
    p[0] = make_float4(mm::canon(y[0]), mm::canon(y[1]), mm::canon(y[2]), mm::canon(y[3]));
    p[1] = make_float4(mm::canon(y[4]), mm::canon(y[5]), mm::canon(y[6]), mm::canon(y[7]));
  } else {
    unsigned w[4];
#pragma unroll
    for (int k = 0; k < 4; ++k)
      w[k] = static_cast<unsigned>(num::float_to_bf16(mm::canon(y[2 * k]))) |
             (static_cast<unsigned>(num::float_to_bf16(mm::canon(y[2 * k + 1]))) << 16);
    *reinterpret_cast<uint4*>(static_cast<std::uint16_t*>(base) + idx) = make_uint4(w[0], w[1], w[2], w[3]);
  }
}

// Grid: ceil(tokens * heads * D/8 / 256) blocks of 256 threads. Thread g handles row
// g / (D/8) (row = token * heads + head), elements 8 * (g % (D/8)) .. +7 of that row.
// The thread with chunk 0 also writes the row's lse.
template <VDtype T>
__global__ void __launch_bounds__(kThreads) merge_kernel(MergeParams p, bool small_index) {
  const std::int64_t chunks = p.D / kChunk;
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
  const mm::RowWeights rw = mm::row_weights(p.lse_partial, r, p.policy);
  float acc[kChunk];
  float lse = num::neg_inf();
  if (rw.empty) {
#pragma unroll
    for (int k = 0; k < kChunk; ++k) acc[k] = 0.0f;
  } else {
#pragma unroll
    for (int k = 0; k < kChunk; ++k) acc[k] = -0.0f;
    // The loads are unconditional (every input row is in bounds) so that unrolled
    // iterations keep several of them in flight; only the fma depends on the weight.
#pragma unroll 4
    for (int i = 0; i < r.n; ++i) {
      const std::int64_t in = r.first + i * r.step;
      float x[kChunk];
      load8<T>(p.v_partial, in * p.D + c * kChunk, x);
      const float w = mm::weight(mm::effective_lse(p.lse_partial[in], p.policy), rw.m);
      if (w != 0.0f) {  // an empty or underflowed input contributes nothing, whatever its v
        const float s = w / rw.W;
#pragma unroll
        for (int k = 0; k < kChunk; ++k) acc[k] = num::fma(s, x[k], acc[k]);
      }
    }
    lse = rw.lse;
    if (p.sink) {
      const float sg = p.sink[h];
      const float div = mm::sink_divisor(sg, rw.lse);
#pragma unroll
      for (int k = 0; k < kChunk; ++k) acc[k] = acc[k] / div;
      if (p.lse_includes_sink) lse = mm::lse_with_sink(rw.lse, sg);
    }
  }
  store8<T>(p.v_out, row * p.D + c * kChunk, acc);
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
