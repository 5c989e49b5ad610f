// CUDA / HIP compressor kernels (DESIGN §3.1, §6): decode steps and prefill chunks of the
// online-softmax KV compressor, bit for bit equal to reference/compress.hpp.
//
// One kernel serves both: grid (window slots, HD / 32V, batch), 32 * NRW threads per block,
// V = 1 or 2 elements per thread (compress_vector_width_rule: V = 1 for grids of at most one
// V = 2 block per SM). Block (j, c, b) reduces request b's emitted windows j, j + slots, ...
// for the 32V output elements of chunk c: thread lane owns elements V lane .. V lane + V - 1; with
// NRW = 4 the four 32-thread partitions reduce positions [32w, 32w + 32) of the window and
// partition 0 folds 1, 2, 3 in order through shared memory. New positions are read from
// kv_score and rounded exactly as the store rounds them, older ones from the state, so no
// block reads what another block writes in the same launch (a CR = 128 decode step first
// stages its at most 8 new tokens, so rounded, in shared memory: one round trip for all).
// A thread reduces its candidates 4 at a time in a loop (small code), loading the next 4
// before reducing the current ones (V = 1 at CR = 128: the next 3 groups, through a cp.async
// ring in shared memory; CR = 4: both 4-position halves, one group of 8), and the
// steps are branch-free (gpu/compress_step.hpp: the same bits as compress_math, without
// divergence). Then the block stores the new tokens of its windows (several tokens loaded
// per thread before the first store). No shuffles: the bits do not depend on the warp width.
//
// Launch rules: no allocation, no device query, no host synchronisation (graph-capture
// safe); no workspace is needed. Errors are returned as a Status.
#pragma once

#include "gpu/port.hpp"
#include "reference/compress.hpp"

#include <cstdint>
#include <string>

namespace dsv4::gpu {

// The configuration table: X(CR, NRW, KV, STATE, OUT) instantiates one kernel per row and
// drives the runtime dispatch and the "supported: ..." message. HD is a runtime value in
// kCompressGpuHeadDims; NN (1..8) and the page size (a multiple of CR) are runtime too.
#define DSV4_COMPRESS_GPU_DTYPES(X, CR, NRW) \
  X(CR, NRW, bf16, f32, bf16)                \
  X(CR, NRW, bf16, f32, f32)                 \
  X(CR, NRW, bf16, bf16, bf16)               \
  X(CR, NRW, bf16, bf16, f32)                \
  X(CR, NRW, f32, f32, bf16)                 \
  X(CR, NRW, f32, f32, f32)                  \
  X(CR, NRW, f32, bf16, bf16)                \
  X(CR, NRW, f32, bf16, f32)
#define DSV4_COMPRESS_GPU_CONFIGS(X)  \
  DSV4_COMPRESS_GPU_DTYPES(X, 4, 1)   \
  DSV4_COMPRESS_GPU_DTYPES(X, 128, 1) \
  DSV4_COMPRESS_GPU_DTYPES(X, 128, 4)

inline constexpr int kCompressGpuHeadDims[] = {128, 512};

/// SMs assumed when a launch's sm_count is 0 (an H100 SXM).
inline constexpr int kCompressDefaultSmCount = 132;

/// Elements per thread (V) for a launch whose V = 2 grid has `blocks` blocks: 1 when they
/// are at most one per SM, else 2. With at most one block per SM a warp's own latency (its
/// loads, its chain of steps) is the kernel's time and no other warp hides it; V = 1 doubles
/// the warps, halves each one's steps and keeps 3 groups of candidates in flight per
/// partition (a cp.async ring, sm_80 on). With more blocks other warps hide that latency;
/// there V = 1 measured faster at some grids and slower at others, for reasons not known,
/// so the rule keeps V = 2 (NOTES_compress.md round 8).
int compress_vector_width_rule(std::int64_t blocks, int sm_count);

/// True when the GPU table has (CR, NRW, dtypes) of `config` and its HD.
bool compress_gpu_supports(const CompressConfig& config);
/// The table as text: "HD in {128, 512} x (CR=4 NRW=1 kv=bf16 state=f32 out=bf16), ...".
std::string compress_gpu_supported();

/// A decode step: NN = config.tokens_per_step new tokens for every request.
struct CompressDecodeParams {
  CompressConfig config;
  int batch = 0;                              ///< requests (<= 65535)
  const void* kv_score = nullptr;             ///< [batch * NN, 2 * SD] kv_dtype; token t of request b is row b * NN + t
  const float* ape = nullptr;                 ///< [CR, SD] fp32
  const std::int32_t* kv_len = nullptr;       ///< [batch] lengths after the step
  const std::int32_t* out_offsets = nullptr;  ///< [batch + 1] first output row of each request's windows
  void* out = nullptr;                        ///< [out rows, HD] out_dtype; only emitted windows' rows are written
  std::uint8_t* empty = nullptr;              ///< [out rows, HD] 1 = no finite score (output 0); may be nullptr
  CompressState state;                        ///< device pointers: state_kv, state_score [num_blocks, page, SD],
                                              ///< block_table [batch, max_blocks]
  int sm_count = 0;                           ///< SMs of the device (filled once by the caller), 0 = 132
  int vector_width = 0;                       ///< 0 = compress_vector_width_rule; 1 or 2 forces a kernel
};

/// A prefill chunk: request b's tokens are rows cu_seq_lens[b] .. cu_seq_lens[b + 1] - 1.
struct CompressPrefillParams {
  CompressConfig config;                      ///< tokens_per_step is ignored
  int batch = 0;                              ///< requests (<= 65535)
  const void* kv_score = nullptr;             ///< [cu_seq_lens[batch], 2 * SD] kv_dtype
  const std::int32_t* cu_seq_lens = nullptr;  ///< [batch + 1] token row offsets
  int max_tokens = 0;                         ///< >= every request's token count (sizes the grid; a
                                              ///< smaller value stays correct, only slower)
  const float* ape = nullptr;                 ///< [CR, SD] fp32
  const std::int32_t* kv_len = nullptr;       ///< [batch] lengths after the chunk
  const std::int32_t* out_offsets = nullptr;  ///< [batch + 1] first output row of each request's windows
  void* out = nullptr;                        ///< [out rows, HD] out_dtype
  std::uint8_t* empty = nullptr;              ///< [out rows, HD] may be nullptr
  CompressState state;                        ///< device pointers, as in CompressDecodeParams
  int sm_count = 0;                           ///< as in CompressDecodeParams
  int vector_width = 0;                       ///< as in CompressDecodeParams
};

/// Enqueue a decode step on `stream`. Device data is not validated (validate it on the
/// host with compress_validate); the kernel skips a request whose kv_len is less than its
/// token count, drops stores to an out-of-range block id and reads NaN from one, so bad
/// data never faults.
Status compress_decode_launch(const CompressDecodeParams& params, port::stream_t stream);

/// Enqueue a prefill chunk on `stream` (same rules as compress_decode_launch).
Status compress_prefill_launch(const CompressPrefillParams& params, port::stream_t stream);

/// The V (elements per thread) a launch with these params runs: vector_width, or the rule's
/// choice when it is 0; -1 when vector_width or sm_count is out of range (the launch then
/// fails).
int compress_vector_width(const CompressDecodeParams& params);
int compress_vector_width(const CompressPrefillParams& params);

}  // namespace dsv4::gpu
