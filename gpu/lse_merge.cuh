// LSE merge on the GPU (DESIGN §3.2, §6): split-KV combine with ragged inputs per token,
// two-way / dual-scope merge, attention sink. Bit for bit equal to merge_reference
// (reference/lse_merge.hpp states the numerics contract and the layouts).
//
// Kernel: a row (token, head) of D/8 chunks of 8 elements is merged by a row group of G
// lanes (D/8 rounded up to a power of two, at most 32; a wider row is done in slices of 32
// chunks, one after the other), each lane owning one chunk per slice (fp32: two 16-byte
// loads per input, elements 4c..4c+3 and D/2+4c..D/2+4c+3 so each load of a warp is one
// contiguous span; bf16: one 16-byte load). The row's scalars are computed once per input,
// not once per lane: lane j loads lse_j and computes w_j and s_j = w_j / W; the max is a
// butterfly, W is summed in input order from shuffled weights, and the fold takes s_i by
// shuffle and the w_i != 0 skip from a ballot (same operations, same order as
// merge_reference). The grid is one wave of resident blocks (sm_count x 3 blocks of 256
// threads; 2 when a row may have more than G inputs); each warp walks its rows and
// prefetches the next row's lse and the next slice's first v batch while it merges the
// current one. No shared memory, barriers or atomics.
// Small rows (splits <= 2, which bounds every layout; every v index below 2^31; bf16 with
// D % 16 == 0) take a straight-line kernel instead: a block owns 512 consecutive (row, chunk)
// items (fp32: 8 elements, bf16: 16; two 16-byte vectors per input at c*V and D/2 + c*V).
// One thread per row of the block computes the row's scalars into shared memory (the same
// operations in the same order), then each thread merges its two items, their loads issued
// before any is used (dense rows: the first item's before the scalar phase); no loops over
// inputs, 32-bit indices. Dense bf16 rows whose blocks' item groups of 256 are whole rows (D a
// power of two) load through sm_90's copy engine instead: one bulk copy per input and item
// group into shared memory, started before the scalar phase, each group on its own mbarrier.
// Stores round to bf16 with one conversion per element pair (port::bf16x2_rn; a chunk holding
// a NaN takes port::bf16x2_canon). Registers (sm_90a): 74 (fp32) / 79 (bf16) for rows of <= G
// inputs, 91 / 89 otherwise, no spills; small rows 60 / 64 (bf16 spilling 16 bytes around the
// scalar phase), bulk copies 49 and 46 KB of shared memory; 4 blocks per SM
// (gpu/bench/NOTES_lse_merge.md).
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
  int sm_count = 0;                            ///< SMs of the device (filled once by the caller; sizes the grid), 0 = 132
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
