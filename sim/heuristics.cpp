#include "sim/heuristics.hpp"

#include "reference/status.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace dsv4::sim {

namespace {

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return b <= 0 ? 0 : (a + b - 1) / b; }

int max_len(const std::vector<int>& lens) {
  int m = 0;
  for (int l : lens) m = std::max(m, l);
  return m;
}

}  // namespace

// ---- raw rules ---------------------------------------------------------------------------

int fa2_num_splits(int batch_nheads_mblocks, int num_sms, int num_n_blocks, int max_splits) {
  // Source: FlashAttention-2 csrc/flash_attn/flash_api.cpp, num_splits_heuristic (float math as upstream).
  if (static_cast<float>(batch_nheads_mblocks) >= 0.8f * static_cast<float>(num_sms)) return 1;
  max_splits = std::min({max_splits, num_sms, num_n_blocks});
  auto eligible = [&](int s) { return s == 1 || ceil_div(num_n_blocks, s) != ceil_div(num_n_blocks, s - 1); };
  std::vector<float> eff(static_cast<std::size_t>(std::max(0, max_splits)), 0.f);
  float max_eff = 0.f;
  for (int s = 1; s <= max_splits; ++s) {
    if (!eligible(s)) continue;
    const float n_waves = static_cast<float>(batch_nheads_mblocks * s) / static_cast<float>(num_sms);
    const float e = n_waves / std::ceil(n_waves);
    eff[static_cast<std::size_t>(s - 1)] = e;
    max_eff = std::max(max_eff, e);
  }
  for (int s = 1; s <= max_splits; ++s) {
    if (!eligible(s)) continue;
    if (eff[static_cast<std::size_t>(s - 1)] >= 0.85 * max_eff) return s;
  }
  return 1;
}

int fa2_block_n(int head_dim) { return head_dim <= 64 ? 256 : (head_dim <= 128 ? 128 : 64); }

int fa3_num_splits(int total_mblocks, int num_sms, int num_n_blocks, int num_m_blocks,
                   std::int64_t size_one_kv_head, bool causal_or_local, int max_splits) {
  // Source: FlashAttention-3 hopper/heuristics.h, num_splits_heuristic.
  if (static_cast<float>(total_mblocks) >= 0.8f * static_cast<float>(num_sms)) {
    const std::int64_t size_l2 = 50LL * 1024 * 1024;  // upstream assumes a 50 MB L2
    if (size_one_kv_head > size_l2 && num_m_blocks >= num_sms * 2 && !causal_or_local)
      return static_cast<int>(std::min<std::int64_t>(ceil_div(size_one_kv_head, size_l2), max_splits));
    return 1;
  }
  if (num_n_blocks <= 4) return 1;
  max_splits = std::min({max_splits, num_sms, num_n_blocks});
  std::vector<float> eff;
  float max_eff = 0.f;
  for (int s = 1; s <= max_splits; ++s) {
    const float n_waves = static_cast<float>(total_mblocks * s) / static_cast<float>(num_sms);
    const float e = n_waves / std::ceil(n_waves);
    max_eff = std::max(max_eff, e);
    eff.push_back(e);
  }
  for (int s = 1; s <= max_splits; ++s)
    if (eff[static_cast<std::size_t>(s - 1)] >= 0.85 * max_eff) return s;
  return 1;
}

std::vector<int> fa3_varlen_splits(const std::vector<int>& n_blocks, int m_blocks, int heads, int num_sms, int cap) {
  // Source: FlashAttention-3 varlen scheduler (prepare_varlen_num_blocks), dynamic split:
  // blocks_per_sm = ceil(1.1 * total blocks / SMs); splits_b = clamp(ceil(n_b / blocks_per_sm), 1, cap).
  double total = 0;
  for (int n : n_blocks) total += static_cast<double>(m_blocks) * n * heads;
  const std::int64_t per_sm = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(1.1 * total / num_sms)));
  std::vector<int> s(n_blocks.size());
  for (std::size_t b = 0; b < n_blocks.size(); ++b)
    s[b] = static_cast<int>(std::clamp<std::int64_t>(ceil_div(n_blocks[b], per_sm), 1, cap));
  return s;
}

FlashInferChunk flashinfer_decode_chunk(const std::vector<int>& num_pages, int kv_heads, int max_grid, int min_pages) {
  // Source: FlashInfer include/flashinfer/attention/scheduler.cuh (decode plan; binary search of
  // the smallest pages-per-chunk whose chunk count x kv_heads fits max_grid).
  FlashInferChunk r;
  const std::int64_t B = static_cast<std::int64_t>(num_pages.size());
  std::int64_t high = 0;
  for (int p : num_pages) high = std::max<std::int64_t>(high, p);
  if (B * kv_heads >= max_grid) {
    r.split = false;
    r.chunk_pages = static_cast<int>(std::max<std::int64_t>(1, high));
    r.new_batch = static_cast<int>(B);
    return r;
  }
  std::int64_t low = std::max(1, min_pages);
  while (low < high) {
    const std::int64_t mid = (low + high) / 2;
    std::int64_t nb = 0;
    for (int p : num_pages) nb += ceil_div(p, mid);
    if (nb * kv_heads > max_grid)
      low = mid + 1;
    else
      high = mid;
  }
  std::int64_t nb = 0;
  for (int p : num_pages) nb += ceil_div(std::max(p, 1), low);
  r.chunk_pages = static_cast<int>(low);
  r.new_batch = static_cast<int>(nb);
  r.split = nb > B;
  return r;
}

int trtllm_gen_n_kv(int base_ctas, int max_len_tokens, int num_sms, const TrtllmGenOptions& o) {
  // Source: FlashInfer include/flashinfer/trtllm/fmha/fmhaKernels.cuh (computeCtaAndClusterConfig)
  // and the KV-split oversubscription rule of FlashInfer PR #3379.
  const int base = std::max(1, base_ctas);
  const int max_per_seq = static_cast<int>(std::max<std::int64_t>(1, ceil_div(max_len_tokens, 2LL * o.step_kv)));
  int n_kv = std::min(max_per_seq, std::max(1, num_sms / base));
  const int desired = static_cast<int>(ceil_div(max_len_tokens, std::max(1, o.min_tokens_per_cta)));
  if (n_kv < desired && desired > 4) {
    const int by_waves = std::max(1, o.max_waves * num_sms / base);
    n_kv = std::max(n_kv, std::min({desired, by_waves, max_per_seq, o.max_splits}));
  }
  return n_kv;
}

int flashmla_num_parts(int num_sms, int s_q, int heads) {
  // Source: FlashMLA get_decoding_sched_meta (sparse SM90): num_sm_parts = SMs / s_q / (heads / 64);
  // heads below 64 count as one 64-head tile here (upstream pads them).
  const int tiles = std::max(1, (heads + 63) / 64);
  return std::max(num_sms / std::max(1, s_q) / tiles, 1);
}

FlashMlaSchedule flashmla_schedule(const std::vector<int>& lens, int num_parts, int block, int F) {
  // Source: FlashMLA csrc/smxx/decode/get_decoding_sched_meta: payload = ceil(total / parts) + F,
  // then each part takes whole requests while they fit (n + F), else a piece of payload - F blocks.
  FlashMlaSchedule s;
  const std::size_t B = lens.size();
  std::vector<int> nb(B);
  std::int64_t total = 0;
  for (std::size_t b = 0; b < B; ++b) {
    nb[b] = static_cast<int>(std::max<std::int64_t>(1, ceil_div(lens[b], block)));
    total += nb[b] + F;
  }
  num_parts = std::max(1, num_parts);
  s.payload = static_cast<int>(ceil_div(total, num_parts) + F);
  s.parts.assign(static_cast<std::size_t>(num_parts), {});
  s.splits.assign(B, 0);
  std::size_t idx = 0;
  int now_block = 0, now_split = 0;
  for (int i = 0; i < num_parts && idx < B; ++i) {
    auto& part = s.parts[static_cast<std::size_t>(i)];
    int remain = s.payload;
    while (idx < B) {
      const int rest = nb[idx] - now_block;
      if (remain >= rest + F) {
        part.blocks += rest;
        part.segments += 1;
        s.splits[idx] = now_split + 1;
        remain -= rest + F;
        ++idx;
        now_block = 0;
        now_split = 0;
      } else {
        if (remain - F > 0) {
          part.blocks += remain - F;
          part.segments += 1;
          now_block += remain - F;
          ++now_split;
        }
        break;
      }
    }
  }
  // Guard (not reached with upstream's payload): anything left goes to the last part.
  while (idx < B) {
    auto& part = s.parts.back();
    part.blocks += nb[idx] - now_block;
    part.segments += 1;
    s.splits[idx] = now_split + 1;
    ++idx;
    now_block = 0;
    now_split = 0;
  }
  return s;
}

int topk_blocks_per_row_trtllm(std::int64_t rows, std::int64_t cols, int num_sms) {
  // Source: TensorRT-LLM indexerTopK.cu blocks_per_row rule (one revision, topk-notes).
  if (cols >= 200000) return 10;
  const std::int64_t max_bp = std::min<std::int64_t>(std::max<std::int64_t>(1, cols / 2048), 10);
  if (rows < num_sms / 2) {
    if (max_bp < 2) return static_cast<int>(max_bp);
    // score(bp) = ceil(rows bp / SMs) / bp, compared exactly as fractions.
    std::int64_t best = 2, best_num = ceil_div(rows * 2, num_sms);
    for (std::int64_t bp = 3; bp <= max_bp; ++bp) {
      const std::int64_t num = ceil_div(rows * bp, num_sms);
      if (num * best < best_num * bp) {  // num / bp < best_num / best
        best = bp;
        best_num = num;
      }
    }
    return static_cast<int>(best);
  }
  return static_cast<int>(std::min<std::int64_t>(2, max_bp));
}

int topk_blocks_per_row_one_wave(std::int64_t rows, std::int64_t cols, int num_sms) {
  // dsv4lab: fill one wave, never more; >= 2048 columns per block; <= 32 blocks per row.
  if (rows <= 0 || rows >= num_sms) return 1;
  const std::int64_t by_cols = std::max<std::int64_t>(1, cols / 2048);
  return static_cast<int>(std::clamp<std::int64_t>(num_sms / rows, 1, std::min<std::int64_t>(by_cols, 32)));
}

// ---- plans -------------------------------------------------------------------------------

SplitPlan plan_uniform(const std::vector<int>& lens, int splits, int granule, int G) {
  SplitPlan p;
  splits = std::max(1, splits);
  const std::int64_t lmax = max_len(lens);
  std::int64_t chunk = std::max<std::int64_t>(1, ceil_div(lmax, splits));
  if (granule > 1) chunk = ceil_div(chunk, granule) * granule;
  p.groups.reserve(lens.size() * 3);
  p.splits.assign(lens.size(), splits);
  for (int L : lens) {
    const std::int64_t full = std::min<std::int64_t>(L / chunk, splits);
    const std::int64_t rest = L - full * chunk;
    const std::int64_t active = full + (rest > 0 ? 1 : 0);
    if (full > 0) p.groups.push_back({static_cast<double>(full * G), static_cast<double>(chunk), 1});
    if (rest > 0) p.groups.push_back({static_cast<double>(G), static_cast<double>(rest), 1});
    if (active == 0) p.groups.push_back({static_cast<double>(G), 0, 1});  // empty request: prologue only
    else if (splits > active) p.groups.push_back({static_cast<double>((splits - active) * G), 0, 0});
  }
  return p;
}

SplitPlan plan_fixed_chunk(const std::vector<int>& lens, std::int64_t chunk, int G) {
  SplitPlan p;
  chunk = std::max<std::int64_t>(1, chunk);
  p.groups.reserve(lens.size() * 2);
  p.splits.resize(lens.size());
  for (std::size_t b = 0; b < lens.size(); ++b) {
    const std::int64_t L = lens[b];
    const std::int64_t s = std::max<std::int64_t>(1, ceil_div(L, chunk));
    p.splits[b] = static_cast<int>(s);
    if (s > 1) p.groups.push_back({static_cast<double>((s - 1) * G), static_cast<double>(chunk), 1});
    p.groups.push_back({static_cast<double>(G), static_cast<double>(L - (s - 1) * chunk), 1});
  }
  return p;
}

namespace {

SplitPlan plan_none(const std::vector<int>& lens, const HeuristicContext& c) {
  return plan_fixed_chunk(lens, std::numeric_limits<int>::max(), c.model.head_groups());
}

SplitPlan plan_fa2(const std::vector<int>& lens, const HeuristicContext& c) {
  const int G = c.model.head_groups();
  const int bn = c.knobs.fa_block_n;
  const int n = static_cast<int>(ceil_div(max_len(lens), bn));
  const int s = fa2_num_splits(static_cast<int>(lens.size()) * G, 2 * c.gpu.sm_count, n, c.knobs.fa_max_splits);
  return plan_uniform(lens, s, bn, G);
}

SplitPlan plan_fa3(const std::vector<int>& lens, const HeuristicContext& c) {
  const int G = c.model.head_groups();
  const int bn = c.knobs.fa_block_n;
  const int lmax = max_len(lens);
  const int n = static_cast<int>(ceil_div(lmax, bn));
  const auto size = static_cast<std::int64_t>(static_cast<double>(lmax) * c.model.kv_bytes_per_token);
  const int s = fa3_num_splits(static_cast<int>(lens.size()) * G, c.gpu.sm_count, n, 1, size, false,
                               c.knobs.fa_max_splits);
  return plan_uniform(lens, s, bn, G);
}

SplitPlan plan_fa3_varlen(const std::vector<int>& lens, const HeuristicContext& c) {
  const int G = c.model.head_groups();
  const int bn = c.knobs.fa_block_n;
  std::vector<int> nb(lens.size());
  for (std::size_t b = 0; b < lens.size(); ++b) nb[b] = static_cast<int>(std::max<std::int64_t>(1, ceil_div(lens[b], bn)));
  const std::vector<int> s = fa3_varlen_splits(nb, 1, G, c.gpu.sm_count, c.knobs.fa_max_splits);
  const int smax = s.empty() ? 1 : *std::max_element(s.begin(), s.end());
  SplitPlan p;
  p.splits = s;
  for (std::size_t b = 0; b < lens.size(); ++b) {
    const std::int64_t chunk = ceil_div(nb[b], s[b]) * bn;
    const std::int64_t L = lens[b];
    const std::int64_t full = std::min<std::int64_t>(L / chunk, s[b]);
    const std::int64_t rest = L - full * chunk;
    const std::int64_t active = full + (rest > 0 ? 1 : 0);
    if (full > 0) p.groups.push_back({static_cast<double>(full * G), static_cast<double>(chunk), 1});
    if (rest > 0) p.groups.push_back({static_cast<double>(G), static_cast<double>(rest), 1});
    if (active == 0) p.groups.push_back({static_cast<double>(G), 0, 1});  // empty request: prologue only
    const std::int64_t working = std::max<std::int64_t>(active, 1);
    if (smax > working) p.groups.push_back({static_cast<double>((smax - working) * G), 0, 0});  // grid is max splits
  }
  return p;
}

SplitPlan plan_flashinfer(const std::vector<int>& lens, const HeuristicContext& c) {
  const int G = c.model.head_groups();
  const int page = std::max(1, c.model.page_size);
  std::vector<int> pages(lens.size());
  for (std::size_t b = 0; b < lens.size(); ++b) pages[b] = static_cast<int>(ceil_div(lens[b], page));
  const int max_grid = c.knobs.flashinfer_occupancy * c.gpu.sm_count;
  const FlashInferChunk r = flashinfer_decode_chunk(pages, G, max_grid, std::max(1, 128 / page));
  if (!r.split) return plan_none(lens, c);
  return plan_fixed_chunk(lens, static_cast<std::int64_t>(r.chunk_pages) * page, G);
}

SplitPlan plan_trtllm(const std::vector<int>& lens, const HeuristicContext& c, int waves) {
  const int G = c.model.head_groups();
  TrtllmGenOptions o = c.knobs.trtllm;
  o.max_waves = waves;
  const int n_kv = trtllm_gen_n_kv(static_cast<int>(lens.size()) * G, max_len(lens), c.gpu.sm_count, o);
  return plan_uniform(lens, n_kv, o.step_kv, G);
}

SplitPlan plan_trtllm_gen(const std::vector<int>& lens, const HeuristicContext& c) {
  return plan_trtllm(lens, c, c.knobs.trtllm.max_waves);
}

SplitPlan plan_trtllm_gen_oversub(const std::vector<int>& lens, const HeuristicContext& c) {
  return plan_trtllm(lens, c, std::max(16, c.knobs.trtllm.max_waves));
}

SplitPlan plan_flashmla(const std::vector<int>& lens, const HeuristicContext& c) {
  const int G = c.model.head_groups();
  const int parts = flashmla_num_parts(c.gpu.sm_count, 1, c.model.q_heads);
  const FlashMlaSchedule s = flashmla_schedule(lens, parts, c.knobs.flashmla_block, c.knobs.flashmla_overhead_blocks);
  SplitPlan p;
  p.splits = s.splits;
  for (const auto& part : s.parts)
    p.groups.push_back({static_cast<double>(G), static_cast<double>(part.blocks) * c.knobs.flashmla_block,
                        static_cast<double>(part.segments)});
  return p;
}

SplitPlan plan_dsv4_fixed_size(const std::vector<int>& lens, const HeuristicContext& c) {
  // dsv4lab: a fixed split *size* (batch-invariant numerics for a given size), the size picked per
  // batch by this cost model among powers of two from 1024 to 131072 tokens, or no split.
  const int G = c.model.head_groups();
  SplitPlan best = plan_none(lens, c);
  double best_us = attention_time(c.gpu, c.model, best, c.attn, c.merge).total_us;
  for (std::int64_t chunk = 131072; chunk >= 1024; chunk /= 2) {
    SplitPlan p = plan_fixed_chunk(lens, chunk, G);
    const double us = attention_time(c.gpu, c.model, p, c.attn, c.merge).total_us;
    if (us < best_us) {
      best_us = us;
      best = std::move(p);
    }
  }
  return best;
}

}  // namespace

const std::vector<Heuristic>& heuristics() {
  static const std::vector<Heuristic> table = {
      {"none", "no split: one CTA per request and head group", &plan_none},
      {"fa2", "FlashAttention-2 num_splits_heuristic (flash_api.cpp), 2 x SMs, uniform over L_max", &plan_fa2},
      {"fa3", "FlashAttention-3 num_splits_heuristic (hopper/heuristics.h) incl. the 50 MB rule", &plan_fa3},
      {"fa3_varlen", "FlashAttention-3 varlen dynamic splits (1.1 margin, per request)", &plan_fa3_varlen},
      {"flashinfer", "FlashInfer decode chunk binary search (scheduler.cuh)", &plan_flashinfer},
      {"trtllm_gen", "TRT-LLM-gen n_kv (fmhaKernels.cuh), oversubscription off (max waves 1)", &plan_trtllm_gen},
      {"trtllm_gen_oversub", "TRT-LLM-gen n_kv with KV-split oversubscription (FlashInfer PR #3379, max waves 16)",
       &plan_trtllm_gen_oversub},
      {"flashmla", "FlashMLA scheduler (64-token blocks, 5-block overhead, greedy fill)", &plan_flashmla},
      {"dsv4_fixed_size", "dsv4lab: fixed split size chosen by the cost model (1024..131072 tokens or none)",
       &plan_dsv4_fixed_size},
  };
  return table;
}

std::string heuristic_names() {
  std::string s;
  for (const auto& h : heuristics()) s += (s.empty() ? "" : ", ") + h.name;
  return s;
}

const Heuristic& heuristic(const std::string& name) {
  for (const auto& h : heuristics())
    if (h.name == name) return h;
  raise(Errc::bad_input, "unknown heuristic '" + name + "' (--heuristics); supported: " + heuristic_names());
}

}  // namespace dsv4::sim
