// Split heuristics of the field, each re-stated from its published source (cited per function;
// see also the merge-and-splits and topk background notes), plus dsv4lab's own. The raw rules
// take the integers their sources take; the plan builders turn a batch of KV lengths into a
// SplitPlan for the attention cost model (sim/cost/attention.hpp).
#pragma once

#include "sim/cost/attention.hpp"
#include "sim/gpu_specs.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace dsv4::sim {

// ---- raw rules ---------------------------------------------------------------------------

/// FlashAttention-2 `num_splits_heuristic` (csrc/flash_attn/flash_api.cpp). Caller passes
/// num_sms = 2 x SMs as upstream does. 1 when the tiles fill 80% of num_sms; else the smallest
/// eligible split (ceil(n/s) != ceil(n/(s-1))) whose wave efficiency w/ceil(w), w = tiles*s/num_sms,
/// is >= 85% of the best, over s = 1 .. min(max_splits, num_sms, num_n_blocks).
int fa2_num_splits(int batch_nheads_mblocks, int num_sms, int num_n_blocks, int max_splits);

/// FlashAttention-2 KV tile: 256 (d <= 64), 128 (d <= 128), else 64.
int fa2_block_n(int head_dim);

/// FlashAttention-3 `num_splits_heuristic` (hopper/heuristics.h): if total_mblocks >= 0.8 SMs,
/// split only when one KV head exceeds 50 MB (the L2 size assumed upstream), num_m_blocks >= 2 SMs
/// and not causal/local: min(ceil(size / 50 MB), max_splits); n <= 4 -> 1; else the FA2 loop
/// without the eligibility filter.
int fa3_num_splits(int total_mblocks, int num_sms, int num_n_blocks, int num_m_blocks,
                   std::int64_t size_one_kv_head, bool causal_or_local, int max_splits);

/// FlashAttention-3 varlen dynamic split (prepare_varlen_num_blocks): blocks_per_sm =
/// ceil(1.1 * sum_b m_b * n_b * heads / SMs); splits_b = clamp(ceil(n_b / blocks_per_sm), 1, cap).
std::vector<int> fa3_varlen_splits(const std::vector<int>& n_blocks, int m_blocks, int heads, int num_sms, int cap);

/// FlashInfer decode chunking (include/flashinfer/attention/scheduler.cuh): no split when
/// batch x kv_heads >= max_grid (= occupancy x SMs); else binary-search the smallest chunk c >=
/// min_pages with sum_b ceil(pages_b / c) x kv_heads <= max_grid.
struct FlashInferChunk {
  bool split = false;
  int chunk_pages = 0;  ///< pages per chunk (max pages when not split)
  int new_batch = 0;    ///< sum_b ceil(pages_b / chunk)
};
FlashInferChunk flashinfer_decode_chunk(const std::vector<int>& num_pages, int kv_heads, int max_grid, int min_pages);

/// TRT-LLM-gen FMHA n_kv (FlashInfer include/flashinfer/trtllm/fmha/fmhaKernels.cuh) with the
/// KV-split oversubscription rule of FlashInfer PR #3379.
struct TrtllmGenOptions {
  int min_tokens_per_cta = 2048;  ///< kMinTokensPerCta (PR #3379)
  int max_waves = 1;              ///< kMaxOccupancyWaves: 1 = rule off (upstream default), 16 = on
  int max_splits = 32;            ///< kMaxSplits
  int step_kv = 128;              ///< KV tile of the kernel (assumption for the MLA gen kernels)
};
/// base = CTAs without KV split (Q tiles x head groups x batch); W = max KV length (sparse:
/// min(L_max, topK)); maxPerSeq = ceil(W / (2 step_kv)); n_kv = min(maxPerSeq, max(1, SMs / base));
/// oversubscription: desired = ceil(L_max / min_tokens); if n_kv < desired and desired > 4:
/// n_kv = max(n_kv, min(desired, max(1, max_waves * SMs / base), maxPerSeq, max_splits)).
int trtllm_gen_n_kv(int base_ctas, int max_len, int num_sms, const TrtllmGenOptions& o);

/// FlashMLA decode scheduler (csrc/smxx/decode/get_decoding_sched_meta): blocks of `block`
/// tokens (n_b = max(1, ceil(len_b / block))), fixed overhead F blocks per split, payload =
/// ceil(sum_b (n_b + F) / num_parts) + F, greedy sequential fill of the parts.
struct FlashMlaPart {
  int blocks = 0;    ///< KV blocks this part reads
  int segments = 0;  ///< (request, split) pieces it processes
};
struct FlashMlaSchedule {
  int payload = 0;
  std::vector<FlashMlaPart> parts;  ///< num_parts entries
  std::vector<int> splits;          ///< per request: number of parts it is split over
};
FlashMlaSchedule flashmla_schedule(const std::vector<int>& lens, int num_parts, int block, int overhead_blocks);

/// FlashMLA sparse SM90 part count: max(SMs / s_q / ceil(heads / 64), 1).
int flashmla_num_parts(int num_sms, int s_q, int heads);

/// Top-k blocks_per_row, TensorRT-LLM revision of the indexer top-k (topk-notes): cols >= 200,000
/// -> 10; maxBp = min(max(1, cols / 2048), 10); rows < SMs / 2: bp in [2, maxBp] minimising
/// ceil(rows bp / SMs) / bp, strict improvements only, starting from bp = 2; else min(2, maxBp).
int topk_blocks_per_row_trtllm(std::int64_t rows, std::int64_t cols, int num_sms);

/// dsv4lab's one-wave rule: the most blocks per row that keep rows x bp within one wave
/// (rows x bp <= SMs), at least 2048 columns per block, at most 32; 1 when rows >= SMs.
int topk_blocks_per_row_one_wave(std::int64_t rows, std::int64_t cols, int num_sms);

// ---- split plans for the attention model ---------------------------------------------------

struct SplitKnobs {
  TrtllmGenOptions trtllm;
  int flashmla_block = 64;           ///< FlashMLA block size (tokens)
  int flashmla_overhead_blocks = 5;  ///< FlashMLA fixed overhead per split (blocks)
  int flashinfer_occupancy = 1;      ///< CTAs per SM the FlashInfer decode kernel reaches (assumption)
  int fa_block_n = 64;               ///< FA2/FA3 KV tile for MLA head dim 576 (FA2 rule: d > 128 -> 64)
  int fa_max_splits = 128;           ///< FA2/FA3 max_splits argument
};

struct HeuristicContext {
  const GpuSpec& gpu;
  const AttnModel& model;
  const SplitKnobs& knobs;
  const KernelConstants& attn;
  const KernelConstants& merge;
};

/// A named heuristic: KV lengths of a batch (already min(L, topk) when sparse) -> split plan.
struct Heuristic {
  std::string name;
  std::string source;
  SplitPlan (*plan)(const std::vector<int>& lens, const HeuristicContext& ctx);
};

/// Every heuristic, fixed order: none, fa2, fa3, fa3_varlen, flashinfer, trtllm_gen,
/// trtllm_gen_oversub, flashmla, dsv4_fixed_size.
const std::vector<Heuristic>& heuristics();
const Heuristic& heuristic(const std::string& name);  ///< throws bad_input listing the names
std::string heuristic_names();

/// Plan with the same `splits` for every request over chunks of ceil(L_max / splits) tokens
/// (rounded up to `granule`): request b keeps ceil(L_b / chunk) working CTAs, the rest exit.
SplitPlan plan_uniform(const std::vector<int>& lens, int splits, int granule, int head_groups);

/// Plan with a fixed chunk size: request b gets ceil(L_b / chunk) splits (batch-invariant).
SplitPlan plan_fixed_chunk(const std::vector<int>& lens, std::int64_t chunk_tokens, int head_groups);

}  // namespace dsv4::sim
