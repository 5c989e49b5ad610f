#include "sim/simulate.hpp"

#include "reference/parallel.hpp"
#include "reference/status.hpp"
#include "sim/cost/lse_merge.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>

namespace dsv4::sim {

namespace {

struct ParamSetter {
  SweepParam info;
  std::function<void(SimConfig&, GpuSpec&, double)> set;
};

int as_int(double v) { return static_cast<int>(std::llround(v)); }

const std::vector<ParamSetter>& setters() {
  static const std::vector<ParamSetter> table = {
      {{"heads", "query heads per KV head on one rank"}, [](SimConfig& c, GpuSpec&, double v) { c.model.q_heads = as_int(v); }},
      {{"q_heads_per_cta", "query heads one CTA serves"},
       [](SimConfig& c, GpuSpec&, double v) { c.model.q_heads_per_cta = as_int(v); }},
      {{"kv_bytes_per_token", "KV bytes read per token"},
       [](SimConfig& c, GpuSpec&, double v) { c.model.kv_bytes_per_token = v; }},
      {{"page_size", "KV page size (tokens)"}, [](SimConfig& c, GpuSpec&, double v) { c.model.page_size = as_int(v); }},
      {{"topk", "sparse attention: tokens attended per request (0 = dense)"},
       [](SimConfig& c, GpuSpec&, double v) { c.model.topk = as_int(v); }},
      {{"split_overhead_tokens", "fixed cost of one split, in tokens"},
       [](SimConfig& c, GpuSpec&, double v) { c.model.split_overhead_tokens = v; }},
      {{"cta_prologue_us", "per-CTA latency not hidden by streaming (us)"},
       [](SimConfig& c, GpuSpec&, double v) { c.model.cta_prologue_us = v; }},
      {{"ctas_per_sm", "resident attention CTAs per SM"},
       [](SimConfig& c, GpuSpec&, double v) { c.model.ctas_per_sm = as_int(v); }},
      {{"trtllm.min_tokens_per_cta", "TRT-LLM-gen oversubscription kMinTokensPerCta"},
       [](SimConfig& c, GpuSpec&, double v) { c.knobs.trtllm.min_tokens_per_cta = as_int(v); }},
      {{"trtllm.max_waves", "TRT-LLM-gen kMaxOccupancyWaves of the trtllm_gen entry (oversub uses max(16, this))"},
       [](SimConfig& c, GpuSpec&, double v) { c.knobs.trtllm.max_waves = as_int(v); }},
      {{"trtllm.max_splits", "TRT-LLM-gen kMaxSplits"},
       [](SimConfig& c, GpuSpec&, double v) { c.knobs.trtllm.max_splits = as_int(v); }},
      {{"trtllm.step_kv", "TRT-LLM-gen KV tile (tokens)"},
       [](SimConfig& c, GpuSpec&, double v) { c.knobs.trtllm.step_kv = as_int(v); }},
      {{"flashmla.overhead_blocks", "FlashMLA fixed overhead per split (blocks)"},
       [](SimConfig& c, GpuSpec&, double v) { c.knobs.flashmla_overhead_blocks = as_int(v); }},
      {{"flashinfer.occupancy", "FlashInfer decode CTAs per SM"},
       [](SimConfig& c, GpuSpec&, double v) { c.knobs.flashinfer_occupancy = as_int(v); }},
      {{"gpu.sm_count", "SMs of the GPU"}, [](SimConfig&, GpuSpec& g, double v) { g.sm_count = as_int(v); }},
      {{"gpu.bandwidth_GBps", "copy bandwidth of the GPU"},
       [](SimConfig&, GpuSpec& g, double v) { g.copy_bandwidth_GBps = v; }},
      {{"gpu.sm_bandwidth_cap_GBps", "per-SM streaming cap"},
       [](SimConfig&, GpuSpec& g, double v) { g.sm_bandwidth_cap_GBps = v; }},
      {{"gpu.launch_us", "launch floor of the GPU"}, [](SimConfig&, GpuSpec& g, double v) { g.launch_us = v; }},
  };
  return table;
}

const ParamSetter& setter(const std::string& name) {
  std::string names;
  for (const auto& s : setters()) {
    if (s.info.name == name) return s;
    names += (names.empty() ? "" : ", ") + s.info.name;
  }
  raise(Errc::bad_input, "--sweep: unknown parameter '" + name + "'; supported: " + names);
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
  return v[std::min(i, v.size() - 1)];
}

void validate(const SimConfig& c) {
  if (c.batches.empty()) raise(Errc::bad_input, "--batch: give at least one batch size");
  for (int b : c.batches)
    if (b < 1 || b > 1 << 20) raise(Errc::bad_input, "--batch: batch size " + std::to_string(b) + " outside 1..1048576");
  if (c.samples < 1) raise(Errc::bad_input, "--samples must be >= 1");
  if (c.model.q_heads < 1 || c.model.q_heads_per_cta < 1 || c.model.kv_bytes_per_token <= 0 || c.model.page_size < 1 ||
      c.model.ctas_per_sm < 1 || c.model.topk < 0)
    raise(Errc::bad_input, "attention model: heads, q_heads_per_cta, kv_bytes_per_token, page_size, ctas_per_sm must be positive");
  if (c.knobs.trtllm.min_tokens_per_cta < 1 || c.knobs.trtllm.max_waves < 1 || c.knobs.trtllm.max_splits < 1 ||
      c.knobs.trtllm.step_kv < 1 || c.knobs.flashmla_overhead_blocks < 0 || c.knobs.flashinfer_occupancy < 1)
    raise(Errc::bad_input, "heuristic knobs must be positive");
}

}  // namespace

const std::vector<SweepParam>& sweep_params() {
  static const std::vector<SweepParam> v = [] {
    std::vector<SweepParam> r;
    for (const auto& s : setters()) r.push_back(s.info);
    return r;
  }();
  return v;
}

std::vector<double> Sweep::values() const {
  std::vector<double> v;
  for (int i = 0; i < 1000; ++i) {
    const double x = lo + step * i;
    if (x > hi + 1e-9 * std::max(1.0, std::fabs(hi))) break;
    v.push_back(x);
  }
  return v;
}

Sweep parse_sweep(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos) raise(Errc::bad_input, "--sweep '" + text + "': expected param=lo:hi:step");
  Sweep s;
  s.param = text.substr(0, eq);
  setter(s.param);  // validates the name
  const std::string r = text.substr(eq + 1);
  double v[3];
  std::size_t pos = 0;
  for (int i = 0; i < 3; ++i) {
    const auto end = i < 2 ? r.find(':', pos) : r.size();
    if (end == std::string::npos) raise(Errc::bad_input, "--sweep '" + text + "': expected param=lo:hi:step");
    const std::string tok = r.substr(pos, end - pos);
    char* e = nullptr;
    v[i] = std::strtod(tok.c_str(), &e);
    if (tok.empty() || e != tok.c_str() + tok.size()) raise(Errc::bad_input, "--sweep '" + text + "': '" + tok + "' is not a number");
    pos = end + 1;
  }
  s.lo = v[0];
  s.hi = v[1];
  s.step = v[2];
  if (!(s.step > 0) || s.hi < s.lo) raise(Errc::bad_input, "--sweep '" + text + "': need lo <= hi and step > 0");
  return s;
}

SimResult simulate(const SimConfig& cfg0, const Distribution& dist) {
  validate(cfg0);
  std::vector<const Heuristic*> hs;
  if (cfg0.heuristics.empty())
    for (const auto& h : heuristics()) hs.push_back(&h);
  else
    for (const auto& n : cfg0.heuristics) hs.push_back(&heuristic(n));
  const std::size_t H = hs.size();
  const std::vector<double> sweep_values = cfg0.sweep ? cfg0.sweep->values() : std::vector<double>{0.0};

  SimResult res;
  for (std::size_t si = 0; si < sweep_values.size(); ++si) {
    SimConfig cfg = cfg0;
    GpuSpec gpu = gpu_spec(cfg0.gpu);
    if (cfg0.sweep) setter(cfg0.sweep->param).set(cfg, gpu, sweep_values[si]);
    validate(cfg);
    if (gpu.sm_count < 1 || gpu.copy_bandwidth_GBps <= 0 || gpu.sm_bandwidth_cap_GBps <= 0)
      raise(Errc::bad_input, "--sweep: GPU figures must stay positive");
    const auto ait = cfg.constants.find("attention");
    const KernelConstants attn = ait != cfg.constants.end() ? ait->second : attention_default_constants(gpu);
    const auto mit = cfg.constants.find("lse_merge");
    const KernelConstants merge = mit != cfg.constants.end() ? mit->second : lse_merge_default_constants(gpu);
    const HeuristicContext ctx{gpu, cfg.model, cfg.knobs, attn, merge};

    for (std::size_t bi = 0; bi < cfg.batches.size(); ++bi) {
      const int B = cfg.batches[bi];
      const std::size_t N = static_cast<std::size_t>(cfg.samples);
      std::vector<AttnTime> out(H * N);
      parallel_for(
          N,
          [&](std::size_t begin, std::size_t end) {
            std::vector<int> lens(static_cast<std::size_t>(B));
            for (std::size_t i = begin; i < end; ++i) {
              std::uint64_t st = stream_seed(cfg.seed, static_cast<std::uint64_t>(B), i);
              for (auto& L : lens) {
                L = dist.sample(st);
                if (cfg.model.topk > 0) L = std::min(L, cfg.model.topk);
              }
              for (std::size_t h = 0; h < H; ++h)
                out[h * N + i] = attention_time(gpu, cfg.model, hs[h]->plan(lens, ctx), attn, merge);
            }
          },
          16);
      // Sequential reductions: the same bits whatever the thread count.
      std::vector<double> best_t(N, 0.0);
      std::vector<std::size_t> best_h(N, 0);
      for (std::size_t i = 0; i < N; ++i) {
        for (std::size_t h = 0; h < H; ++h) {
          const double t = out[h * N + i].total_us;
          if (h == 0 || t < best_t[i]) {
            best_t[i] = t;
            best_h[i] = h;
          }
        }
      }
      SimBest best;
      for (std::size_t h = 0; h < H; ++h) {
        SimRow row;
        row.sweep_value = sweep_values[si];
        row.batch = B;
        row.heuristic = hs[h]->name;
        std::vector<double> ts(N);
        for (std::size_t i = 0; i < N; ++i) {
          const AttnTime& a = out[h * N + i];
          ts[i] = a.total_us;
          row.mean_us += a.total_us;
          row.mean_combine_us += a.combine_us;
          row.mean_splits += a.mean_splits;
          row.max_splits = std::max(row.max_splits, a.max_splits);
          row.balance += a.balance;
          row.wins += best_h[i] == h ? 1.0 : 0.0;
          row.regret += best_t[i] > 0 ? a.total_us / best_t[i] - 1.0 : 0.0;
        }
        const double n = static_cast<double>(N);
        row.mean_us /= n;
        row.mean_combine_us /= n;
        row.mean_splits /= n;
        row.balance /= n;
        row.wins /= n;
        row.regret /= n;
        row.p50_us = quantile(ts, 0.5);
        row.p99_us = quantile(ts, 0.99);
        if (h == 0 || row.mean_us < best.mean_us) best = {row.sweep_value, B, row.heuristic, row.mean_us};
        res.rows.push_back(std::move(row));
      }
      res.best.push_back(best);
    }
  }
  return res;
}

nlohmann::json gpu_json(const GpuSpec& g) {
  nlohmann::json src = nlohmann::json::object();
  for (const auto& [k, v] : g.sources) src[k] = v;
  return {{"key", g.key},
          {"name", g.name},
          {"sm_count", g.sm_count},
          {"warp_size", g.warp_size},
          {"copy_bandwidth_GBps", g.copy_bandwidth_GBps},
          {"peak_bandwidth_GBps", g.peak_bandwidth_GBps},
          {"l2_bytes", g.l2_bytes},
          {"launch_us", g.launch_us},
          {"sm_bandwidth_cap_GBps", g.sm_bandwidth_cap_GBps},
          {"clock_GHz", g.clock_GHz},
          {"sources", src}};
}

nlohmann::json simulate_json(const SimConfig& cfg, const Distribution& dist, const SimResult& r) {
  nlohmann::json j;
  j["schema"] = "dsv4lab-simulate";
  j["version"] = 1;
  const GpuSpec& gpu = gpu_spec(cfg.gpu);
  nlohmann::json hs = nlohmann::json::array();
  for (const auto& h : heuristics())
    if (cfg.heuristics.empty() || std::find(cfg.heuristics.begin(), cfg.heuristics.end(), h.name) != cfg.heuristics.end())
      hs.push_back({{"name", h.name}, {"source", h.source}});
  nlohmann::json consts = nlohmann::json::object();
  for (const auto& [k, c] : cfg.constants) consts[k] = constants_json(c);
  j["config"] = {
      {"gpu", gpu_json(gpu)},
      {"dist", dist.spec},
      {"batches", cfg.batches},
      {"seed", cfg.seed},
      {"samples", cfg.samples},
      {"heuristics", hs},
      {"model",
       {{"q_heads", cfg.model.q_heads},
        {"q_heads_per_cta", cfg.model.q_heads_per_cta},
        {"kv_bytes_per_token", cfg.model.kv_bytes_per_token},
        {"d_v", cfg.model.d_v},
        {"page_size", cfg.model.page_size},
        {"topk", cfg.model.topk},
        {"split_overhead_tokens", cfg.model.split_overhead_tokens},
        {"cta_prologue_us", cfg.model.cta_prologue_us},
        {"ctas_per_sm", cfg.model.ctas_per_sm}}},
      {"knobs",
       {{"trtllm.min_tokens_per_cta", cfg.knobs.trtllm.min_tokens_per_cta},
        {"trtllm.max_waves", cfg.knobs.trtllm.max_waves},
        {"trtllm.max_splits", cfg.knobs.trtllm.max_splits},
        {"trtllm.step_kv", cfg.knobs.trtllm.step_kv},
        {"flashmla.block", cfg.knobs.flashmla_block},
        {"flashmla.overhead_blocks", cfg.knobs.flashmla_overhead_blocks},
        {"flashinfer.occupancy", cfg.knobs.flashinfer_occupancy},
        {"fa.block_n", cfg.knobs.fa_block_n},
        {"fa.max_splits", cfg.knobs.fa_max_splits}}},
      {"constants", consts},
  };
  if (cfg.sweep)
    j["config"]["sweep"] = {{"param", cfg.sweep->param}, {"lo", cfg.sweep->lo}, {"hi", cfg.sweep->hi}, {"step", cfg.sweep->step}};
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& x : r.rows) {
    nlohmann::json o = {{"batch", x.batch},         {"heuristic", x.heuristic},   {"mean_us", x.mean_us},
                        {"p50_us", x.p50_us},       {"p99_us", x.p99_us},         {"mean_combine_us", x.mean_combine_us},
                        {"mean_splits", x.mean_splits}, {"max_splits", x.max_splits}, {"sm_balance", x.balance},
                        {"wins", x.wins},           {"regret", x.regret}};
    if (cfg.sweep) o["sweep_value"] = x.sweep_value;
    rows.push_back(o);
  }
  j["results"] = rows;
  nlohmann::json best = nlohmann::json::array();
  for (const auto& b : r.best) {
    nlohmann::json o = {{"batch", b.batch}, {"heuristic", b.heuristic}, {"mean_us", b.mean_us}};
    if (cfg.sweep) o["sweep_value"] = b.sweep_value;
    best.push_back(o);
  }
  j["best"] = best;
  return j;
}

std::string simulate_table(const SimConfig& cfg, const Distribution& dist, const SimResult& r) {
  const GpuSpec& gpu = gpu_spec(cfg.gpu);
  std::string s;
  char buf[512];
  std::snprintf(buf, sizeof buf, "simulate: %s (%d SMs, %.0f GB/s copy), dist %s, %d samples per batch, seed %llu\n",
                gpu.name.c_str(), gpu.sm_count, gpu.copy_bandwidth_GBps, dist.spec.c_str(), cfg.samples,
                static_cast<unsigned long long>(cfg.seed));
  s += buf;
  std::size_t bi = 0;
  for (std::size_t i = 0; i < r.rows.size(); ++i) {
    const SimRow& x = r.rows[i];
    if (i == 0 || x.batch != r.rows[i - 1].batch || x.sweep_value != r.rows[i - 1].sweep_value) {
      if (cfg.sweep) {
        std::snprintf(buf, sizeof buf, "\n%s = %g, batch %d\n", cfg.sweep->param.c_str(), x.sweep_value, x.batch);
      } else {
        std::snprintf(buf, sizeof buf, "\nbatch %d\n", x.batch);
      }
      s += buf;
      std::snprintf(buf, sizeof buf, "  %-20s %10s %10s %10s %9s %7s %6s %8s %6s %7s\n", "heuristic", "mean_us", "p50_us",
                    "p99_us", "combine", "splits", "max", "balance", "wins", "regret");
      s += buf;
    }
    const bool is_best = bi < r.best.size() && r.best[bi].heuristic == x.heuristic && r.best[bi].batch == x.batch &&
                         r.best[bi].sweep_value == x.sweep_value;
    std::snprintf(buf, sizeof buf, "%c %-20s %10.2f %10.2f %10.2f %9.2f %7.2f %6d %8.3f %5.1f%% %6.1f%%\n",
                  is_best ? '*' : ' ', x.heuristic.c_str(), x.mean_us, x.p50_us, x.p99_us, x.mean_combine_us,
                  x.mean_splits, x.max_splits, x.balance, 100 * x.wins, 100 * x.regret);
    s += buf;
    const bool last_of_group = i + 1 == r.rows.size() || r.rows[i + 1].batch != x.batch ||
                               r.rows[i + 1].sweep_value != x.sweep_value;
    if (last_of_group) ++bi;
  }
  s += "\n* = lowest mean time; wins = share of batches where it was fastest; regret = mean (time / fastest - 1)\n";
  return s;
}

}  // namespace dsv4::sim
