// LSE merge on the GPU (DESIGN §3.2, §6): split-KV combine with ragged inputs per token,
// two-way / dual-scope merge, attention sink. Bit for bit equal to merge_reference
// (reference/lse_merge.hpp states the numerics contract and the layouts).
//
// Kernel: 1-D grid of 256-thread blocks; a row (token, head) is D/8 consecutive threads,
// each owning 8 elements of v (fp32: two 16-byte loads per input, elements 4c..4c+3 and
// D/2+4c..D/2+4c+3 so each load of a warp is one contiguous span; bf16: one 16-byte load).
// A thread first issues the v loads of its row's first 4 inputs, then computes the row's
// max, weight sum and lse itself (same bits in every thread of the row; the lse values
// come from L1 after the first touch), then folds the inputs in index order with fma,
// 4 inputs' loads in flight at a time. No shared memory, shuffles, barriers or atomics.
// Registers (sm_90a, __launch_bounds__(256, 3)): 80 (fp32), 78 (bf16), no spills.
#pragma once

#include "gpu/port.hpp"
#include "reference/lse_merge.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

namespace dsv4::gpu {

struct MergeParams {
  const void* v_partial = nullptr;             ///< dense [splits][tokens][heads][D] or packed [splits][heads][D], v_dtype, 16-byte aligned
  const float* lse_partial = nullptr;          ///< dense [splits][tokens][heads] or packed [splits][heads], natural log
  const std::int32_t* num_splits = nullptr;    ///< [tokens], may be nullptr = all `splits` (dense only)
  const std::int32_t* split_offsets = nullptr; ///< [tokens + 1], non-decreasing, may be nullptr = dense layout
  const float* sink = nullptr;                 ///< [heads] sink logits, may be nullptr
  void* v_out = nullptr;                       ///< [tokens][heads][D], v_dtype, 16-byte aligned
  float* lse_out = nullptr;                    ///< [tokens][heads], may be nullptr
  std::int64_t splits = 0;                     ///< partials per token (dense) or total partial rows (packed)
  std::int64_t tokens = 0;
  std::int64_t heads = 0;
  std::int64_t D = 0;                          ///< multiple of 8, <= 1024
  VDtype v_dtype = VDtype::f32;
  LsePolicy policy = LsePolicy::strict;
  bool lse_includes_sink = false;
};

/// Params for a MergeProblem whose pointers are device pointers (scope_names is not used).
inline MergeParams make_merge_params(const MergeProblem& p, void* v_out, float* lse_out) {
  MergeParams m;
  m.v_partial = p.v_partial;
  m.lse_partial = p.lse_partial;
  m.num_splits = p.num_splits;
  m.split_offsets = p.split_offsets;
  m.sink = p.sink;
  m.v_out = v_out;
  m.lse_out = lse_out;
  m.splits = p.splits;
  m.tokens = p.tokens;
  m.heads = p.heads;
  m.D = p.D;
  m.v_dtype = p.v_dtype;
  m.policy = p.policy;
  m.lse_includes_sink = p.lse_includes_sink;
  return m;
}

/// Workspace the launch needs (none today; kept so callers size it up front).
std::size_t merge_workspace_bytes(const MergeParams& params);

/// The configurations the GPU supports, one line (the table behind the dispatch).
std::string merge_gpu_supported();

/// Enqueue the merge on `stream`. No allocation, no device query, no sync: capturable
/// into a CUDA graph. Host-side checks only (shapes, pointers, alignment, the config
/// table); device-resident num_splits / split_offsets are not read on the host: values
/// outside the valid range are clamped in the kernel (check them with merge_validate).
Status merge_launch(const MergeParams& params, void* workspace, std::size_t workspace_bytes, port::stream_t stream);

}  // namespace dsv4::gpu
