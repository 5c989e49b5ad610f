// Deterministic indexer top-k on the GPU (DESIGN §3.3): returns exactly the array of
// dsv4::topk_reference (reference/topk.hpp), for f32, bf16 and f16 logits and K in [1, 2048].
//
// Algorithm (a row per thread-block cluster of blocks_per_row <= 8 blocks on sm_90; wider
// splits, and HIP, go through a workspace and a merge kernel):
// - Keys: topk_key() of the exactly upcast logit (larger key first, NaN lowest, ties by index).
//   Thread t of a block holds 16 consecutive columns of its chunk (16-byte vector loads).
// - Radix select on the 32-bit key in up to three passes (11, 11, 10 bits; two for bf16 and f16,
//   whose keys' low 13 bits are constant): each block counts
//   its chunk into a shared-memory histogram (atomic counts are order independent); the
//   cluster's counts are combined through distributed shared memory (the first pass's sparse
//   bins are added into every block's sum, the later passes' bins are read from the other
//   blocks), so every block finds the same threshold digit by a block scan. The keys of the first threshold bin
//   are kept as a shared-memory list for the later passes. The passes stop early when the
//   threshold bin holds exactly the elements still to take (all of it is taken; T is then
//   compared on the decided top bits only).
// - A chunk longer than a tile (CUDA) is read once: tiles of 8 columns per thread append the
//   items whose key reaches a floor, in column order, to a shared-memory list of (key, column).
//   The floor starts at a guess from a sample of the chunk, with about 1.5K items above it; if
//   fewer than K reach it, the chunk is read again from no floor. When the list would overflow
//   it is pruned to at least its K best (one counting pass, or the exact select when that is
//   not enough), which raises the floor. The select then runs over the list. (A merge's
//   candidates get no guess and are filtered from two tiles on; up to two they are read once
//   per pass, the later passes hitting the L2.)
// - "Mark then compact in column order": each block adds its (above T, equal to T) counts into
//   the later blocks' bases; one block-wide scan in index order of the per-thread counts gives
//   each selected element its output slot; the elements equal to T are taken in index order.
//   No atomic decides a placement.
// - blocks_per_row above the cluster limit: block j of a row selects the top-K of its chunk
//   and stores (key, column) pairs in the workspace in column order; a second kernel selects
//   the top K of the concatenated candidates by the same (key, index) order. The union of
//   chunk top-Ks contains the row's top K, so the split never changes the result.
#pragma once

#include "gpu/port.hpp"
#include "reference/topk.hpp"

#include <cstddef>
#include <cstdint>

namespace dsv4::gpu {

/// Elements one block holds in registers per tile (threads x items): a chunk of at most
/// this many columns is read from memory once; longer chunks are filtered into a shared-memory
/// list in one read (CUDA; HIP reads them once per pass).
inline constexpr int kTopkThreads = 1024;
inline constexpr int kTopkItems = 16;
inline constexpr std::int64_t kTopkTile = static_cast<std::int64_t>(kTopkThreads) * kTopkItems;
/// Largest blocks_per_row accepted.
inline constexpr int kTopkMaxBlocksPerRow = 64;

struct TopkParams {
  const void* logits = nullptr;            ///< [rows, row_stride] elements of dtype (device); first cols used
  LogitDtype dtype = LogitDtype::f32;      ///< element type of logits
  std::int64_t rows = 0;                   ///< rows to compute (<= batch * next_n)
  std::int64_t cols = 0;                   ///< columns present per row (>= every N_r)
  std::int64_t row_stride = 0;             ///< elements between row starts, >= cols
  const std::int32_t* seq_lens = nullptr;  ///< [batch] uncompressed sequence lengths (device)
  std::int64_t batch = 0;                  ///< entries of seq_lens
  int next_n = 1;                          ///< rows per request, >= 1
  int compress_ratio = 1;                  ///< >= 1
  int k = 0;                               ///< 1 .. kTopkMaxK
  std::int32_t* out = nullptr;             ///< [rows, k] selected columns, ascending, -1 padded (device)
  int blocks_per_row = 0;                  ///< 0 = topk_blocks_per_row_rule(rows, cols, sm_count); else 1 .. 64
  int sm_count = 0;                        ///< SMs of the device (filled once by the caller; used by the rule)
};

/// blocks_per_row the launcher uses when TopkParams::blocks_per_row is 0. With clusters (CUDA):
/// the largest power of two bp <= min(8, ceil(cols / kTopkTile)) with rows * bp <= sm_count
/// (<= sm_count / 2 for bp = 8, whose clusters need 8 SMs of one GPC), so the grid is at most
/// one wave of co-resident clusters; measured on an H100 (gpu/bench/NOTES_topk.md). Without
/// clusters (HIP): ceil(cols / kTopkTile) capped at 64, through the workspace.
int topk_blocks_per_row_rule(std::int64_t rows, std::int64_t cols, int sm_count);

/// Workspace bytes for (rows, cols, k, blocks_per_row); blocks_per_row = 0 sizes for the
/// largest value the rule can choose for these cols on any device. 0 when the row is not
/// split or is split within one cluster (blocks_per_row <= port::kMaxClusterBlocks).
std::size_t topk_workspace_bytes(std::int64_t rows, std::int64_t cols, int k, int blocks_per_row);

/// Launch the top-k on `stream`: no allocation, no device query, no synchronisation (graph
/// capturable). The workspace (4-byte aligned, >= topk_workspace_bytes) is caller owned and
/// need not be initialised. seq_lens live on the device and are not validated here: a row
/// whose N_r falls outside [0, cols] is written as all -1 (use topk_validate on the host).
Status topk_launch(const TopkParams& params, void* workspace, std::size_t workspace_bytes, port::stream_t stream);

/// The supported configurations, for messages: "dtype in {f32, bf16, f16}, k in [1, 2048], ...".
const char* topk_supported();

}  // namespace dsv4::gpu
