// Synthetic trace generator (see synth.hpp). Every random value comes from a counter-based
// stream (splitmix64 keyed by seed and position), so results depend neither on thread count
// nor on the order in which things are generated.
#include "traces/synth.hpp"

#include "reference/numerics/numerics.hpp"
#include "reference/parallel.hpp"
#include "reference/status.hpp"
#include "reference/topk.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>
#include <sstream>

#ifndef DSV4LAB_VERSION_STRING
#define DSV4LAB_VERSION_STRING "0"
#endif

namespace dsv4::trace {

// ---- presets ----------------------------------------------------------------------------------

const std::vector<SynthPreset>& synth_presets() {
  // V4-Pro "moderate": the published beta fit. V4-Flash and V3.2: dsv4lab's choice (a wider,
  // flatter distribution for Flash, whose top-k moves more between steps; a wider range and
  // higher mean for V3.2's uncompressed rows). Hit-rate targets per layer from the published
  // hint studies (Flash 0.36/0.46/0.44, Pro 0.69/0.75/0.77, V3.2 0.50).
  static const std::vector<SynthPreset> p{
      {"v4-flash", "deepseek-v4-flash", 512, 4, -1.60, 1.30, -6.50, 9.00, {0.36, 0.46, 0.44}, true},
      {"v4-pro", "deepseek-v4-pro", 1024, 4, -1.885, 1.025, -6.15, 8.45, {0.69, 0.75, 0.77}, true},
      {"v3.2", "deepseek-v3.2", 2048, 1, -0.80, 1.50, -8.00, 10.00, {0.50}, false},
  };
  return p;
}

const SynthPreset& synth_preset(const std::string& name) {
  std::string names;
  for (const auto& p : synth_presets()) {
    if (p.name == name) return p;
    names += (names.empty() ? "" : ", ") + p.name;
  }
  raise(Errc::bad_input, "--preset: unknown preset '" + name + "' (supported: " + names + ")");
}

std::vector<std::string> parse_plants(const std::string& list) {
  static const std::vector<std::string> known{"nan-lse", "inf-lse", "neg-inf-score", "ties"};
  std::vector<std::string> out;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');) {
    if (item.empty()) continue;
    if (std::find(known.begin(), known.end(), item) == known.end())
      raise(Errc::bad_input, "--plant: unknown value '" + item + "' (supported: nan-lse, inf-lse, neg-inf-score, ties)");
    if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
  }
  return out;
}

std::vector<SynthCompressor> parse_compressors(const std::string& list) {
  std::vector<SynthCompressor> out;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');) {
    if (item.empty()) continue;
    SynthCompressor c;
    std::stringstream is(item);
    std::string hd, cr;
    std::getline(is, c.name, ':');
    std::getline(is, hd, ':');
    std::getline(is, cr, ':');
    try {
      c.head_dim = std::stoi(hd);
      c.compress_ratio = std::stoi(cr);
    } catch (...) {
      raise(Errc::bad_input, "--compressors: '" + item + "' is not NAME:HEAD_DIM:RATIO");
    }
    if (c.name.empty() || (c.compress_ratio != 4 && c.compress_ratio != 128) || (c.head_dim != 128 && c.head_dim != 512))
      raise(Errc::bad_input, "--compressors: '" + item + "' (head dim 128 or 512, ratio 4 or 128)");
    out.push_back(c);
  }
  return out;
}

double hit_rate(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b, int k) {
  std::set<std::int32_t> sa;
  for (auto x : a)
    if (x >= 0) sa.insert(x);
  std::size_t n = 0;
  for (auto x : b)
    if (x >= 0 && sa.count(x)) ++n;
  return static_cast<double>(n) / k;
}

namespace {

// ---- counter-based random numbers -------------------------------------------------------------

std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::uint64_t key(std::initializer_list<std::uint64_t> parts) {
  std::uint64_t h = 0x6a09e667f3bcc909ull;
  for (auto p : parts) h = splitmix(h ^ splitmix(p));
  return h;
}

class Rng {
 public:
  explicit Rng(std::uint64_t k) : s_(k) {}
  std::uint64_t next() { return splitmix(s_++); }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1p-53; }  // [0, 1)
  double uniform_pos() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1p-53; }  // (0, 1)
  double normal() {
    if (have_) {
      have_ = false;
      return spare_;
    }
    const double u = uniform_pos(), v = uniform();
    const double r = std::sqrt(-2.0 * std::log(u));
    spare_ = r * std::sin(2.0 * M_PI * v);
    have_ = true;
    return r * std::cos(2.0 * M_PI * v);
  }
  double gamma(double a) {  // Marsaglia & Tsang
    if (a < 1.0) return gamma(a + 1.0) * std::pow(uniform_pos(), 1.0 / a);
    const double d = a - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double x, v;
      do {
        x = normal();
        v = 1.0 + c * x;
      } while (v <= 0.0);
      v = v * v * v;
      const double u = uniform_pos();
      if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
      if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
    }
  }
  std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : next() % n; }

 private:
  std::uint64_t s_;
  bool have_ = false;
  double spare_ = 0;
};

/// Beta distribution rescaled to [low, high] with the given mean and standard deviation.
struct BetaLogits {
  double alpha = 1, beta = 1, low = 0, high = 1;
  BetaLogits(double mean, double sd, double lo, double hi) : low(lo), high(hi) {
    const double r = hi - lo;
    const double mu = std::clamp((mean - lo) / r, 1e-3, 1.0 - 1e-3);
    const double var = std::min((sd / r) * (sd / r), 0.99 * mu * (1.0 - mu));
    const double conc = mu * (1.0 - mu) / var - 1.0;
    alpha = conc * mu;
    beta = conc * (1.0 - mu);
  }
  double sample(Rng& g) const {
    const double x = g.gamma(alpha), y = g.gamma(beta);
    const double b = x + y > 0 ? x / (x + y) : 0.5;
    return low + (high - low) * b;
  }
  double stddev() const {
    const double s = alpha + beta;
    return (high - low) * std::sqrt(alpha * beta / (s * s * (s + 1.0)));
  }
};

float round_to(DType t, float x) {
  switch (t) {
    case DType::bf16: return num::round_bf16(x);
    case DType::f16: return num::round_fp16(x);
    default: return x;
  }
}

void store(Array& a, std::size_t i, float x) {
  switch (a.dtype) {
    case DType::f32: a.view<float>()[i] = x; break;
    case DType::bf16: a.view<std::uint16_t>()[i] = num::float_to_bf16(x); break;
    case DType::f16: a.view<std::uint16_t>()[i] = num::float_to_fp16(x); break;
    default: raise(Errc::internal, "synth: store into a non-float array");
  }
}

/// Exact top-k of one row of n values (dsv4::topk_reference; ascending indices, -1 padded).
std::vector<std::int32_t> row_topk(const std::vector<float>& x, int k) {
  std::vector<std::int32_t> out(static_cast<std::size_t>(k), -1);
  if (x.empty()) return out;
  const std::int32_t n = static_cast<std::int32_t>(x.size());
  TopkProblem p;
  p.logits = x.data();
  p.dtype = LogitDtype::f32;
  p.rows = 1;
  p.cols = n;
  p.row_stride = n;
  p.seq_lens = &n;
  p.batch = 1;
  p.next_n = 1;
  p.compress_ratio = 1;
  p.k = k;
  topk_reference(p, out.data());
  return out;
}

/// Next step's row: the previous values plus noise of scale c·sd, new columns fresh; then
/// values re-drawn from the beta distribution in the same rank order (so the marginal stays
/// exactly the beta distribution and c only controls how much the ranking moves).
std::vector<float> evolve(const std::vector<float>& prev, std::size_t n, double c, const BetaLogits& dist, DType dt,
                          std::uint64_t k) {
  Rng g(k);
  std::vector<double> y(n);
  const double sd = dist.stddev();
  for (std::size_t j = 0; j < n; ++j) y[j] = j < prev.size() ? prev[j] + c * sd * g.normal() : dist.sample(g);
  std::vector<double> fresh(n);
  for (auto& v : fresh) v = dist.sample(g);
  std::sort(fresh.begin(), fresh.end(), std::greater<>());
  std::vector<std::uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) { return y[a] > y[b] || (y[a] == y[b] && a < b); });
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) out[order[i]] = round_to(dt, static_cast<float>(fresh[i]));
  return out;
}

std::vector<float> fresh_row(std::size_t n, const BetaLogits& dist, DType dt, std::uint64_t k) {
  Rng g(k);
  std::vector<float> out(n);
  for (auto& v : out) v = round_to(dt, static_cast<float>(dist.sample(g)));
  return out;
}

constexpr std::int64_t kMixLengths[] = {4096, 8192, 16384, 32768, 65536, 131072};
constexpr double kMixWeights[] = {35, 20, 15, 12, 10, 8};

std::vector<std::int64_t> initial_lengths(const SynthOptions& o) {
  std::vector<std::int64_t> out(o.batch);
  if (o.seq_len) {
    std::fill(out.begin(), out.end(), *o.seq_len);
    return out;
  }
  double total = 0;
  for (std::size_t i = 0; i < 6; ++i)
    if (kMixLengths[i] <= o.max_seq_len) total += kMixWeights[i];
  if (total == 0) raise(Errc::bad_input, "--max-seq-len " + std::to_string(o.max_seq_len) + " is below every length of the mix (4096 ...)");
  for (std::uint64_t b = 0; b < o.batch; ++b) {
    Rng g(key({o.seed, 1, b}));
    double u = g.uniform() * total;
    std::int64_t len = 4096;
    for (std::size_t i = 0; i < 6; ++i) {
      if (kMixLengths[i] > o.max_seq_len) continue;
      len = kMixLengths[i];
      if (u < kMixWeights[i]) break;
      u -= kMixWeights[i];
    }
    out[b] = len - static_cast<std::int64_t>(g.below(64));  // a little jitter: rows not all aligned
  }
  return out;
}

// ---- indexer ----------------------------------------------------------------------------------

struct PlantLog {
  std::vector<std::int64_t> rows;
};

SynthLayerStats synth_indexer_layer(TraceWriter& w, const SynthOptions& o, const SynthPreset& p, int layer,
                                    const std::vector<std::int64_t>& seq0, bool plant_ties) {
  const int nn = o.next_n, k = p.k;
  const std::uint64_t rows = o.batch * static_cast<std::uint64_t>(nn);
  const double spread = 0.1 * p.stddev * static_cast<double>((layer % 5) - 2);
  const BetaLogits dist(p.mean + spread, p.stddev, p.clip_low, p.clip_high);
  const double target = o.hit_rate ? *o.hit_rate : p.hit_rates[static_cast<std::size_t>(layer) % p.hit_rates.size()];

  IndexerConfig cfg;
  cfg.k = k;
  cfg.compress_ratio = p.compress_ratio;
  cfg.next_n = nn;
  cfg.batch = o.batch;
  cfg.logit_dtype = o.logit_dtype;
  cfg.has_pre_idx = true;
  cfg.has_topk = o.write_topk;
  auto seq_at = [&](std::uint64_t b, int s) { return seq0[b] + static_cast<std::int64_t>(s) * nn; };
  auto len_at = [&](std::uint64_t r, int s) -> std::size_t {
    const std::int64_t sl = std::max<std::int64_t>(0, seq_at(r / static_cast<std::uint64_t>(nn), s));
    return static_cast<std::size_t>(std::max<std::int64_t>(0, indexer_row_len(cfg, static_cast<std::int32_t>(sl), r)));
  };
  std::uint64_t cols = 1;
  for (std::uint64_t r = 0; r < rows; ++r) cols = std::max<std::uint64_t>(cols, len_at(r, o.steps - 1));
  cfg.cols = cols;

  char name[16];
  std::snprintf(name, sizeof name, "L%02d", layer);
  SynthLayerStats st;
  st.group = std::string("/indexer/") + name;
  st.target_hit_rate = target;
  st.cols = cols;

  // Rows of the virtual step -1 (the hint of step 0).
  std::vector<std::vector<float>> cur(rows);
  parallel_for(rows, [&](std::size_t b, std::size_t e) {
    for (std::size_t r = b; r < e; ++r) cur[r] = fresh_row(len_at(r, -1), dist, o.logit_dtype, key({o.seed, 2, static_cast<std::uint64_t>(layer), r}));
  });

  // Noise scale by bisection on the step -1 -> 0 transition of up to 4 long rows, with the
  // same noise for every candidate scale.
  // The longest rows: a short row's overlap cannot fall below about K / N_r.
  std::vector<std::uint64_t> probe;
  for (std::uint64_t r = 0; r < rows; ++r)
    if (len_at(r, -1) > static_cast<std::size_t>(k)) probe.push_back(r);
  std::stable_sort(probe.begin(), probe.end(), [&](std::uint64_t a, std::uint64_t b) { return len_at(a, -1) > len_at(b, -1); });
  if (probe.size() > 4) probe.resize(4);
  double c = 1.0;
  if (!probe.empty()) {
    std::vector<std::vector<std::int32_t>> base(probe.size());
    for (std::size_t i = 0; i < probe.size(); ++i) base[i] = row_topk(cur[probe[i]], k);
    auto rate = [&](double scale) {
      double sum = 0;
      for (std::size_t i = 0; i < probe.size(); ++i) {
        const auto r = probe[i];
        auto next = evolve(cur[r], len_at(r, 0), scale, dist, o.logit_dtype, key({o.seed, 3, static_cast<std::uint64_t>(layer), r}));
        sum += hit_rate(base[i], row_topk(next, k), k);
      }
      return sum / static_cast<double>(probe.size());
    };
    double lo = 0.0, hi = 1.0;
    while (rate(hi) > target && hi < 64.0) hi *= 2.0;
    for (int it = 0; it < 20; ++it) {
      const double mid = 0.5 * (lo + hi);
      (rate(mid) > target ? lo : hi) = mid;
    }
    c = 0.5 * (lo + hi);
  }
  st.noise_scale = c;

  IndexerWriter iw = w.add_indexer(name, cfg);
  std::vector<std::vector<std::int32_t>> prev_topk(rows);
  for (std::uint64_t r = 0; r < rows; ++r) prev_topk[r] = row_topk(cur[r], k);
  double hit_sum = 0;
  std::size_t hit_n = 0;
  std::vector<std::int64_t> planted;
  for (int s = 0; s < o.steps; ++s) {
    std::vector<std::vector<float>> next(rows);
    parallel_for(rows, [&](std::size_t b, std::size_t e) {
      for (std::size_t r = b; r < e; ++r)
        next[r] = evolve(cur[r], len_at(r, s), c, dist, o.logit_dtype,
                         key({o.seed, 4, static_cast<std::uint64_t>(layer), static_cast<std::uint64_t>(s), r}));
    });
    if (plant_ties && s == std::min(1, o.steps - 1)) {
      // The first row long enough gets a tie class across the K boundary: the K-th value
      // copied onto 4 columns that rank below it.
      for (std::uint64_t r = 0; r < rows; ++r) {
        auto& x = next[r];
        if (x.size() < static_cast<std::size_t>(k) + 8) continue;
        std::vector<std::uint32_t> order(x.size());
        std::iota(order.begin(), order.end(), 0u);
        std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
          return topk_key(num::bits(x[a])) > topk_key(num::bits(x[b]));
        });
        const float kth = x[order[static_cast<std::size_t>(k) - 1]];
        for (int j = 0; j < 4; ++j) x[order[static_cast<std::size_t>(k) + 2 * static_cast<std::size_t>(j) + 1]] = kth;
        planted.insert(planted.end(), {s, static_cast<std::int64_t>(r), 4});
        break;
      }
    }
    IndexerStep step;
    step.logits = Array(o.logit_dtype, {rows, cols});
    for (std::uint64_t r = 0; r < rows; ++r)
      for (std::size_t j = 0; j < next[r].size(); ++j) store(step.logits, r * cols + j, next[r][j]);
    step.seq_lens.resize(o.batch);
    for (std::uint64_t b = 0; b < o.batch; ++b) step.seq_lens[b] = static_cast<std::int32_t>(seq_at(b, s));
    step.pre_idx = std::vector<std::int32_t>();
    for (std::uint64_t b = 0; b < o.batch; ++b) {
      const auto& h = prev_topk[b * static_cast<std::uint64_t>(nn) + static_cast<std::uint64_t>(nn) - 1];
      step.pre_idx->insert(step.pre_idx->end(), h.begin(), h.end());
    }
    std::vector<std::vector<std::int32_t>> tk(rows);
    parallel_for(rows, [&](std::size_t b, std::size_t e) {
      for (std::size_t r = b; r < e; ++r) tk[r] = row_topk(next[r], k);
    });
    if (s > 0) {
      for (std::uint64_t r = 0; r < rows; ++r) {
        if (next[r].size() > static_cast<std::size_t>(k) && cur[r].size() > static_cast<std::size_t>(k)) {
          hit_sum += hit_rate(prev_topk[r], tk[r], k);
          ++hit_n;
        }
      }
    }
    if (o.write_topk) {
      step.topk = std::vector<std::int32_t>();
      for (const auto& t : tk) step.topk->insert(step.topk->end(), t.begin(), t.end());
    }
    iw.append(step);
    cur = std::move(next);
    prev_topk = std::move(tk);
  }
  if (!planted.empty()) w.set_attr(st.group, "planted_ties", planted);
  st.achieved_hit_rate = hit_n ? hit_sum / static_cast<double>(hit_n) : std::numeric_limits<double>::quiet_NaN();
  return st;
}

// ---- merge ---------------------------------------------------------------------------------------

void synth_merge(TraceWriter& w, const SynthOptions& o, const SynthPreset& p, const std::vector<std::int64_t>& seq0,
                 bool plant_nan, bool plant_inf, SynthSummary& sum) {
  const int nn = o.next_n;
  const std::uint64_t tokens = o.batch * static_cast<std::uint64_t>(nn);
  const auto heads = static_cast<std::uint64_t>(o.merge_heads), dim = static_cast<std::uint64_t>(o.merge_head_dim);
  if (heads == 0 || dim == 0 || o.max_splits < 1) raise(Errc::bad_input, "--merge-heads, --merge-dim and --max-splits must be positive");
  auto token_len = [&](std::uint64_t t, int s) {
    return seq0[t / static_cast<std::uint64_t>(nn)] + static_cast<std::int64_t>(s) * nn - nn + static_cast<std::int64_t>(t % static_cast<std::uint64_t>(nn)) + 1;
  };
  const bool scopes = p.has_compressor;  // dual-scope SWA + compressed (V4)
  bool planted_done = false;
  for (int gi = scopes ? 0 : 1; gi < 2; ++gi) {
    MergeConfig cfg;
    cfg.tokens = tokens;
    cfg.heads = heads;
    cfg.head_dim = dim;
    std::string name;
    if (gi == 0) {
      name = "scopes";
      cfg.splits = 2;
      cfg.scopes = {"swa", "compressed"};
      cfg.v_dtype = DType::bf16;
      Rng g(key({o.seed, 10}));
      cfg.sink = std::vector<float>(heads);
      for (auto& x : *cfg.sink) x = static_cast<float>(3.0 + g.normal());
    } else {
      name = "splitkv";
      cfg.splits = static_cast<std::uint64_t>(o.max_splits);
      cfg.v_dtype = DType::f32;
      cfg.has_num_splits = true;
    }
    // Planted positions (first merge group written).
    std::vector<std::int64_t> nan_at, inf_at;
    if (!planted_done && (plant_nan || plant_inf)) {
      Rng g(key({o.seed, 11}));
      const auto s = static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(o.steps)));
      const auto t = static_cast<std::int64_t>(g.below(tokens));
      const auto h = static_cast<std::int64_t>(g.below(heads));
      if (plant_nan) nan_at = {s, 0, t, h};
      if (plant_inf) inf_at = {s, gi == 0 ? 1 : 0, t, (h + 1) % static_cast<std::int64_t>(heads)};
      if (plant_nan) cfg.extra["planted_nan_lse"] = nan_at;
      if (plant_inf) cfg.extra["planted_inf_lse"] = inf_at;
      planted_done = true;
    }
    MergeWriter mw = w.add_merge(name, cfg);
    sum.groups.push_back("/merge/" + name);
    for (int s = 0; s < o.steps; ++s) {
      MergeStep st;
      st.v_partial = Array(cfg.v_dtype, {cfg.splits, tokens, heads, dim});
      st.lse_partial.assign(cfg.splits * tokens * heads, -std::numeric_limits<float>::infinity());
      if (cfg.has_num_splits) st.num_splits = std::vector<std::int32_t>(tokens);
      parallel_for(tokens, [&](std::size_t tb, std::size_t te) {
        for (std::size_t t = tb; t < te; ++t) {
          const std::int64_t len = std::max<std::int64_t>(1, token_len(t, s));
          std::uint64_t used = cfg.splits;
          if (cfg.has_num_splits) {
            used = static_cast<std::uint64_t>(std::clamp<std::int64_t>((len + 16383) / 16384, 1, o.max_splits));
            (*st.num_splits)[t] = static_cast<std::int32_t>(used);
          }
          for (std::uint64_t i = 0; i < used; ++i) {
            Rng g(key({o.seed, 12, static_cast<std::uint64_t>(gi), static_cast<std::uint64_t>(s), t, i}));
            double span;
            if (gi == 0) {
              span = i == 0 ? std::min<double>(static_cast<double>(len), 128.0) : std::max(1.0, static_cast<double>(len) / p.compress_ratio);
            } else {
              span = std::max(1.0, static_cast<double>(len) / static_cast<double>(used));
            }
            for (std::uint64_t h = 0; h < heads; ++h) {
              st.lse_partial[(i * tokens + t) * heads + h] = static_cast<float>(std::log(span) + 2.0 + 0.75 * g.normal());
              for (std::uint64_t d = 0; d < dim; ++d)
                store(st.v_partial, ((i * tokens + t) * heads + h) * dim + d, static_cast<float>(0.5 * g.normal()));
            }
          }
        }
      });
      if (!nan_at.empty() && nan_at[0] == s)
        st.lse_partial[(static_cast<std::uint64_t>(nan_at[1]) * tokens + static_cast<std::uint64_t>(nan_at[2])) * heads +
                       static_cast<std::uint64_t>(nan_at[3])] = std::numeric_limits<float>::quiet_NaN();
      if (!inf_at.empty() && inf_at[0] == s)
        st.lse_partial[(static_cast<std::uint64_t>(inf_at[1]) * tokens + static_cast<std::uint64_t>(inf_at[2])) * heads +
                       static_cast<std::uint64_t>(inf_at[3])] = std::numeric_limits<float>::infinity();
      mw.append(st);
    }
  }
}

// ---- compressor ----------------------------------------------------------------------------------

void synth_compressor(TraceWriter& w, const SynthOptions& o, const SynthCompressor& sc, std::size_t index,
                      const std::vector<std::int64_t>& seq0, bool plant_neg_inf, SynthSummary& sum) {
  CompressorConfig cfg;
  cfg.head_dim = sc.head_dim;
  cfg.compress_ratio = sc.compress_ratio;
  cfg.next_n = o.next_n;
  cfg.batch = o.batch;
  cfg.kv_dtype = o.kv_dtype;
  cfg.state_dtype = o.state_dtype;
  cfg.out_dtype = o.out_dtype;
  const auto sd = static_cast<std::uint64_t>(cfg.state_dim());
  const auto cr = static_cast<std::uint64_t>(cfg.compress_ratio);
  const auto win = static_cast<std::uint64_t>(cfg.state_window());
  const std::uint64_t tokens = cfg.tokens();
  cfg.ape.resize(cr * sd);
  {
    Rng g(key({o.seed, 20, index}));
    for (auto& x : cfg.ape) x = static_cast<float>(0.5 * g.normal());
  }
  std::vector<std::int64_t> planted;
  if (plant_neg_inf) {
    Rng g(key({o.seed, 21, index}));
    planted = {o.steps - 1, static_cast<std::int64_t>(g.below(tokens)), static_cast<std::int64_t>(g.below(sd))};
    cfg.extra["planted_neg_inf_score"] = planted;
  }
  CompressorWriter cw = w.add_compressor(sc.name, cfg);
  sum.groups.push_back("/compressor/" + sc.name);
  // Token values by (request, absolute position, column): the state a step sees holds exactly
  // what earlier steps stored.
  auto kv_at = [&](std::uint64_t b, std::int64_t pos, std::uint64_t col) {
    Rng g(key({o.seed, 22, index, b, static_cast<std::uint64_t>(pos), col}));
    return round_to(cfg.kv_dtype, static_cast<float>(g.normal()));
  };
  auto score_at = [&](std::uint64_t b, std::int64_t pos, std::uint64_t col) {
    Rng g(key({o.seed, 23, index, b, static_cast<std::uint64_t>(pos), col}));
    return round_to(cfg.kv_dtype, static_cast<float>(1.5 * g.normal()));
  };
  const int nn = o.next_n;
  for (int s = 0; s < o.steps; ++s) {
    CompressorStep st;
    st.kv_score = Array(cfg.kv_dtype, {tokens, 2 * sd});
    st.state_kv = Array(cfg.state_dtype, {o.batch, win, sd});
    st.state_score = Array(cfg.state_dtype, {o.batch, win, sd});
    st.kv_len.resize(o.batch);
    st.state_base.resize(o.batch);
    for (std::uint64_t b = 0; b < o.batch; ++b) {
      const std::int64_t kv_len = seq0[b] + static_cast<std::int64_t>(s) * nn;
      st.kv_len[b] = static_cast<std::int32_t>(kv_len);
      st.state_base[b] = static_cast<std::int32_t>(compressor_state_base(cfg, kv_len));
    }
    parallel_for(o.batch, [&](std::size_t bb, std::size_t be) {
      for (std::size_t b = bb; b < be; ++b) {
        const std::int64_t first_new = st.kv_len[b] - nn;
        for (int t = 0; t < nn; ++t) {
          const std::uint64_t row = b * static_cast<std::uint64_t>(nn) + static_cast<std::uint64_t>(t);
          for (std::uint64_t c = 0; c < sd; ++c) {
            store(st.kv_score, row * 2 * sd + c, kv_at(b, first_new + t, c));
            store(st.kv_score, row * 2 * sd + sd + c, score_at(b, first_new + t, c));
          }
        }
        for (std::uint64_t j = 0; j < win; ++j) {
          const std::int64_t pos = st.state_base[b] + static_cast<std::int64_t>(j);
          if (pos >= first_new) break;
          for (std::uint64_t c = 0; c < sd; ++c) {
            const float sc_v = score_at(b, pos, c) + cfg.ape[static_cast<std::uint64_t>(pos % static_cast<std::int64_t>(cr)) * sd + c];
            store(st.state_kv, (b * win + j) * sd + c, kv_at(b, pos, c));
            store(st.state_score, (b * win + j) * sd + c, sc_v);
          }
        }
      }
    });
    if (!planted.empty() && planted[0] == s)
      store(st.kv_score, static_cast<std::uint64_t>(planted[1]) * 2 * sd + sd + static_cast<std::uint64_t>(planted[2]),
            -std::numeric_limits<float>::infinity());
    cw.append(st);
  }
}

}  // namespace

SynthSummary synth_trace(const std::string& path, const SynthOptions& o) {
  const SynthPreset& p = synth_preset(o.preset);
  if (o.layers < 0 || o.steps < 1 || o.batch < 1 || o.next_n < 1 || o.next_n > 8)
    raise(Errc::bad_input, "synth: need --layers >= 0, --steps >= 1, --batch >= 1, --next-n in 1..8");
  if (o.seq_len && (*o.seq_len < o.next_n || *o.seq_len > (std::int64_t{1} << 30)))
    raise(Errc::bad_input, "--seq-len " + std::to_string(*o.seq_len) + " must be in [next_n, 2^30]");
  if (o.hit_rate && !(*o.hit_rate > 0.0 && *o.hit_rate < 1.0)) raise(Errc::bad_input, "--hit-rate must be in (0, 1)");
  if (o.logit_dtype != DType::f32 && o.logit_dtype != DType::bf16 && o.logit_dtype != DType::f16)
    raise(Errc::bad_input, "--logit-dtype must be float32, bfloat16 or float16");
  auto planted = [&](const char* n) { return std::find(o.plant.begin(), o.plant.end(), n) != o.plant.end(); };
  const bool do_compressor = o.compressor && p.has_compressor && !o.compressors.empty();
  if (planted("ties") && !(o.indexer && o.layers > 0)) raise(Errc::bad_input, "--plant ties needs an indexer layer");
  if ((planted("nan-lse") || planted("inf-lse")) && !o.merge) raise(Errc::bad_input, "--plant nan-lse/inf-lse needs the merge groups");
  if (planted("neg-inf-score") && !do_compressor)
    raise(Errc::bad_input, "--plant neg-inf-score needs a compressor group (not in preset " + p.name + " or disabled)");

  const auto seq0 = initial_lengths(o);
  Provenance prov;
  prov.producer = std::string("dsv4lab ") + DSV4LAB_VERSION_STRING + " synth";
  prov.model = p.model;
  prov.seed = static_cast<std::int64_t>(o.seed);
  std::ostringstream notes;
  notes << "synthetic: preset " << p.name << ", layers " << o.layers << ", steps " << o.steps << ", batch " << o.batch
        << ", next_n " << o.next_n << ", lengths " << (o.seq_len ? "fixed " + std::to_string(*o.seq_len) : "production mix <= " + std::to_string(o.max_seq_len))
        << ", logits " << to_string(o.logit_dtype);
  if (!o.plant.empty()) {
    notes << ", planted";
    for (const auto& x : o.plant) notes << " " << x;
  }
  if (!o.notes.empty()) notes << "; " << o.notes;
  prov.notes = notes.str();
  prov.extra["preset"] = p.name;

  SynthSummary sum;
  sum.path = path;
  TraceWriter w(path, prov, o.write);
  if (o.indexer) {
    for (int l = 0; l < o.layers; ++l) {
      sum.layers.push_back(synth_indexer_layer(w, o, p, l, seq0, planted("ties") && l == 0));
      sum.groups.push_back(sum.layers.back().group);
      const auto& st = sum.layers.back();
      w.set_attr(st.group, "synth_target_hit_rate", st.target_hit_rate);
      w.set_attr(st.group, "synth_noise_scale", st.noise_scale);
    }
  }
  if (o.merge) synth_merge(w, o, p, seq0, planted("nan-lse"), planted("inf-lse"), sum);
  if (do_compressor)
    for (std::size_t i = 0; i < o.compressors.size(); ++i)
      synth_compressor(w, o, o.compressors[i], i, seq0, planted("neg-inf-score") && i == 0, sum);
  w.close();
  return sum;
}

}  // namespace dsv4::trace
