// Synthetic traces: byte-identical for the same seed, the documented structure (seq_lens
// growth, pre_idx = previous top-k, stored top-k = the exact top-k, N_r within cols), the
// beta distribution, the overlap target, the compressor store rule across steps, and planted
// specials exactly where the attributes say.
#define BOOST_TEST_MODULE traces_synth
#include <boost/test/unit_test.hpp>

#include "reference/numerics/numerics.hpp"
#include "reference/status.hpp"
#include "reference/topk.hpp"
#include "test_util.hpp"
#include "traces/synth.hpp"
#include "traces/trace.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

using namespace dsv4;
using namespace dsv4::trace;
namespace fs = std::filesystem;

namespace {

float to_float(const Array& a, std::size_t i) {
  switch (a.dtype) {
    case DType::f32: return a.view<float>()[i];
    case DType::bf16: return num::bf16_to_float(a.view<std::uint16_t>()[i]);
    case DType::f16: return num::fp16_to_float(a.view<std::uint16_t>()[i]);
    default: throw std::logic_error("not a float array");
  }
}

float round_state(DType t, float x) { return t == DType::bf16 ? num::round_bf16(x) : x; }

SynthOptions small(std::uint64_t seed) {
  SynthOptions o;
  o.preset = "v4-flash";
  o.layers = 2;
  o.steps = 3;
  o.batch = 3;
  o.next_n = 2;
  o.seed = seed;
  o.max_seq_len = 8192;
  o.merge_heads = 3;
  o.merge_head_dim = 16;
  o.compressors = {{"csa", 128, 4}, {"hca", 128, 128}};
  return o;
}

std::vector<std::int64_t> planted(const Attributes& a, const std::string& name) {
  return std::get<std::vector<std::int64_t>>(a.at(name));
}

}  // namespace

BOOST_AUTO_TEST_CASE(same_seed_same_bytes) {
  test::TempDir tmp("synth");
  const std::uint64_t seed = test::seed(11);
  BOOST_TEST_CONTEXT("seed " << seed) {
    synth_trace(tmp("a.h5"), small(seed));
    synth_trace(tmp("b.h5"), small(seed));
    synth_trace(tmp("c.h5"), small(seed + 1));
    BOOST_TEST((test::read_bytes(tmp("a.h5")) == test::read_bytes(tmp("b.h5"))));
    BOOST_TEST((test::read_bytes(tmp("a.h5")) != test::read_bytes(tmp("c.h5"))));
  }
}

BOOST_AUTO_TEST_CASE(indexer_structure) {
  test::TempDir tmp("synth");
  const std::uint64_t seed = test::seed(12);
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (DType dt : {DType::f32, DType::bf16}) {
      SynthOptions o = small(seed);
      o.logit_dtype = dt;
      synth_trace(tmp("ix.h5"), o);
      TraceReader r(tmp("ix.h5"));
      BOOST_TEST(r.provenance().model == "deepseek-v4-flash");
      BOOST_TEST(*r.provenance().seed == static_cast<std::int64_t>(seed));
      BOOST_REQUIRE(r.groups(GroupKind::indexer).size() == 2u);
      for (const auto& gi : r.groups(GroupKind::indexer)) {
        auto g = r.indexer(gi.name);
        const auto& c = g.config();
        BOOST_TEST(c.k == 512);
        BOOST_TEST(c.compress_ratio == 4);
        BOOST_TEST(c.next_n == 2);
        BOOST_TEST((c.logit_dtype == dt));
        BOOST_REQUIRE(c.has_pre_idx);
        BOOST_REQUIRE(c.has_topk);
        std::vector<std::int32_t> prev_topk, prev_lens;
        std::int64_t max_n = 0;
        for (std::uint64_t s = 0; s < g.steps(); ++s) {
          const IndexerStep st = g.read_step(s);
          // independent top-k: the sorting oracle
          TopkProblem p;
          p.logits = st.logits.data();
          p.dtype = dt == DType::f32 ? LogitDtype::f32 : LogitDtype::bf16;
          p.rows = static_cast<std::int64_t>(c.rows());
          p.cols = static_cast<std::int64_t>(c.cols);
          p.row_stride = p.cols;
          p.seq_lens = st.seq_lens.data();
          p.batch = static_cast<std::int64_t>(c.batch);
          p.next_n = c.next_n;
          p.compress_ratio = c.compress_ratio;
          p.k = c.k;
          std::vector<std::int32_t> want(c.rows() * 512);
          topk_oracle(p, want.data());
          BOOST_TEST(*st.topk == want);
          for (std::uint64_t r = 0; r < c.rows(); ++r)
            max_n = std::max(max_n, indexer_row_len(c, st.seq_lens[r / 2], r));
          if (s > 0) {
            for (std::uint64_t b = 0; b < c.batch; ++b) {
              BOOST_TEST(st.seq_lens[b] == prev_lens[b] + 2);  // grows by next_n
              // pre_idx = the previous step's top-k of the request's last row
              const std::vector<std::int32_t> hint(st.pre_idx->begin() + static_cast<std::ptrdiff_t>(b * 512),
                                                   st.pre_idx->begin() + static_cast<std::ptrdiff_t>((b + 1) * 512));
              const std::vector<std::int32_t> last(prev_topk.begin() + static_cast<std::ptrdiff_t>((2 * b + 1) * 512),
                                                   prev_topk.begin() + static_cast<std::ptrdiff_t>((2 * b + 2) * 512));
              BOOST_TEST(hint == last);
            }
          }
          prev_topk = *st.topk;
          prev_lens = st.seq_lens;
        }
        BOOST_TEST(max_n == static_cast<std::int64_t>(c.cols));  // cols = the layer's maximum N_r
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(beta_distribution_and_overlap) {
  test::TempDir tmp("synth");
  const std::uint64_t seed = test::seed(13);
  BOOST_TEST_CONTEXT("seed " << seed) {
    SynthOptions o;
    o.preset = "v4-pro";
    o.layers = 3;  // layer 2 uses the preset's mean exactly
    o.steps = 3;
    o.batch = 2;
    o.seed = seed;
    o.seq_len = 65536;  // N = 16384 >> K = 1024
    o.merge = o.compressor = false;
    const SynthSummary sum = synth_trace(tmp("pro.h5"), o);
    TraceReader r(tmp("pro.h5"));
    auto g = r.indexer("L02");
    const IndexerStep st = g.read_step(1);
    const std::size_t n = 16384;
    double m = 0, q = 0, lo = 1e9, hi = -1e9;
    for (std::size_t i = 0; i < 2 * n; ++i) {
      const double x = to_float(st.logits, i);
      m += x;
      q += x * x;
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
    m /= 2.0 * n;
    const double sd = std::sqrt(q / (2.0 * n) - m * m);
    BOOST_TEST(std::abs(m - -1.885) < 0.03, "mean " << m);
    BOOST_TEST(std::abs(sd - 1.025) < 0.03, "std " << sd);
    BOOST_TEST(lo >= -6.15);
    BOOST_TEST(hi <= 8.45);
    // Overlap between consecutive steps near the per-layer targets 0.69 / 0.75 / 0.77.
    BOOST_REQUIRE(sum.layers.size() == 3u);
    for (const auto& l : sum.layers) BOOST_TEST(std::abs(l.achieved_hit_rate - l.target_hit_rate) < 0.06, l.group << " " << l.achieved_hit_rate);
    // and measured independently from the file
    const IndexerStep s0 = g.read_step(0), s1 = g.read_step(1);
    std::vector<std::int32_t> a(s0.topk->begin(), s0.topk->begin() + 1024), b(s1.topk->begin(), s1.topk->begin() + 1024);
    BOOST_TEST(std::abs(hit_rate(a, b, 1024) - 0.77) < 0.08);
  }
}

BOOST_AUTO_TEST_CASE(production_mix_lengths) {
  test::TempDir tmp("synth");
  SynthOptions o;
  o.layers = 1;
  o.steps = 1;
  o.batch = 64;
  o.seed = test::seed(14);
  o.merge = o.compressor = false;
  o.write_topk = false;
  o.max_seq_len = 16384;
  synth_trace(tmp("mix.h5"), o);
  TraceReader r(tmp("mix.h5"));
  const auto st = r.indexer("L00").read_step(0);
  std::set<std::int64_t> seen;
  for (auto len : st.seq_lens) {
    const std::int64_t base = len <= 4096 ? 4096 : len <= 8192 ? 8192 : 16384;
    BOOST_TEST((len > base - 64 && len <= base), "length " << len);
    seen.insert(base);
  }
  BOOST_TEST(seen.size() == 3u);  // every allowed length of the mix occurs in 64 draws
}

BOOST_AUTO_TEST_CASE(compressor_store_rule_across_steps) {
  test::TempDir tmp("synth");
  const std::uint64_t seed = test::seed(15);
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (DType state : {DType::f32, DType::bf16}) {
      SynthOptions o = small(seed);
      o.indexer = o.merge = false;
      o.next_n = 3;
      o.steps = 4;
      o.seq_len = 300;
      o.state_dtype = state;
      synth_trace(tmp("c.h5"), o);
      TraceReader r(tmp("c.h5"));
      BOOST_REQUIRE(r.groups(GroupKind::compressor).size() == 2u);
      for (const auto& gi : r.groups(GroupKind::compressor)) {
        auto g = r.compressor(gi.name);
        const auto& c = g.config();
        const auto sd = static_cast<std::uint64_t>(c.state_dim());
        const auto w = static_cast<std::uint64_t>(c.state_window());
        std::size_t checked = 0;
        for (std::uint64_t s = 1; s < g.steps(); ++s) {
          const auto prev = g.read_step(s - 1), cur = g.read_step(s);
          for (std::uint64_t b = 0; b < c.batch; ++b) {
            BOOST_TEST(cur.kv_len[b] == prev.kv_len[b] + 3);
            const std::int64_t first_prev = prev.kv_len[b] - 3;
            for (std::int64_t p = first_prev; p < first_prev + 3; ++p) {
              const std::int64_t j = p - cur.state_base[b];
              if (j < 0 || j >= static_cast<std::int64_t>(w)) continue;
              const std::uint64_t row = b * 3 + static_cast<std::uint64_t>(p - first_prev);
              for (std::uint64_t d = 0; d < sd; ++d) {
                const float kv = to_float(prev.kv_score, row * 2 * sd + d);
                const float sc = to_float(prev.kv_score, row * 2 * sd + sd + d);
                const float ape = c.ape[static_cast<std::uint64_t>(p % c.compress_ratio) * sd + d];
                const std::size_t at = (b * w + static_cast<std::uint64_t>(j)) * sd + d;
                BOOST_REQUIRE(num::bits(to_float(cur.state_kv, at)) == num::bits(round_state(state, kv)));
                BOOST_REQUIRE(num::bits(to_float(cur.state_score, at)) == num::bits(round_state(state, sc + ape)));
                ++checked;
              }
            }
          }
        }
        BOOST_TEST(checked > 0u, gi.path);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(planted_specials_where_recorded) {
  test::TempDir tmp("synth");
  const std::uint64_t seed = test::seed(16);
  BOOST_TEST_CONTEXT("seed " << seed) {
    SynthOptions o = small(seed);
    o.seq_len = 2200;  // N_r > K = 512 for ties
    o.plant = parse_plants("nan-lse,inf-lse,neg-inf-score,ties");
    synth_trace(tmp("p.h5"), o);
    TraceReader r(tmp("p.h5"));
    // merge: exactly the recorded lse_partial entries are NaN / +inf
    auto mg = r.merge("scopes");
    const auto nan_at = planted(mg.config().extra, "planted_nan_lse");
    const auto inf_at = planted(mg.config().extra, "planted_inf_lse");
    BOOST_REQUIRE(nan_at.size() == 4u);
    BOOST_REQUIRE(inf_at.size() == 4u);
    const auto& mc = mg.config();
    std::size_t nans = 0, infs = 0;
    for (std::uint64_t s = 0; s < mg.steps(); ++s) {
      const auto st = mg.read_step(s);
      for (std::uint64_t i = 0; i < st.lse_partial.size(); ++i) {
        const std::uint64_t h = i % mc.heads, t = (i / mc.heads) % mc.tokens, sp = i / (mc.heads * mc.tokens);
        const std::vector<std::int64_t> here{static_cast<std::int64_t>(s), static_cast<std::int64_t>(sp), static_cast<std::int64_t>(t),
                                             static_cast<std::int64_t>(h)};
        const float x = st.lse_partial[i];
        if (std::isnan(x)) {
          ++nans;
          BOOST_TEST(here == nan_at);
        } else if (std::isinf(x) && x > 0) {
          ++infs;
          BOOST_TEST(here == inf_at);
        }
      }
    }
    BOOST_TEST(nans == 1u);
    BOOST_TEST(infs == 1u);
    BOOST_TEST(r.merge("splitkv").config().extra.count("planted_nan_lse") == 0u);
    // compressor: the recorded score column is -inf
    auto cg = r.compressor("csa");
    const auto at = planted(cg.config().extra, "planted_neg_inf_score");
    BOOST_REQUIRE(at.size() == 3u);
    const auto sd = static_cast<std::uint64_t>(cg.config().state_dim());
    std::size_t neg = 0;
    for (std::uint64_t s = 0; s < cg.steps(); ++s) {
      const auto st = cg.read_step(s);
      for (std::uint64_t i = 0; i < st.kv_score.size(); ++i) {
        const float x = to_float(st.kv_score, i);
        if (std::isinf(x) && x < 0) {
          ++neg;
          BOOST_TEST(static_cast<std::int64_t>(s) == at[0]);
          BOOST_TEST(static_cast<std::int64_t>(i / (2 * sd)) == at[1]);
          BOOST_TEST(static_cast<std::int64_t>(i % (2 * sd)) == static_cast<std::int64_t>(sd) + at[2]);
        }
      }
    }
    BOOST_TEST(neg == 1u);
    // indexer: a tie class across the K boundary at the recorded row
    auto ig = r.indexer("L00");
    const auto tie = planted(ig.config().extra, "planted_ties");
    BOOST_REQUIRE(tie.size() == 3u);
    const auto st = ig.read_step(static_cast<std::uint64_t>(tie[0]));
    const auto row = static_cast<std::uint64_t>(tie[1]);
    const std::int64_t n = indexer_row_len(ig.config(), st.seq_lens[row / 2], row);
    std::vector<float> x(static_cast<std::size_t>(n));
    for (std::int64_t j = 0; j < n; ++j) x[static_cast<std::size_t>(j)] = to_float(st.logits, row * ig.config().cols + static_cast<std::uint64_t>(j));
    std::vector<float> sorted = x;
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    const float kth = sorted[511];
    std::size_t equal = 0, equal_selected = 0;
    std::set<std::int32_t> sel(st.topk->begin() + static_cast<std::ptrdiff_t>(row * 512), st.topk->begin() + static_cast<std::ptrdiff_t>((row + 1) * 512));
    for (std::int64_t j = 0; j < n; ++j) {
      if (x[static_cast<std::size_t>(j)] == kth) {
        ++equal;
        equal_selected += sel.count(static_cast<std::int32_t>(j));
      }
    }
    BOOST_TEST(equal >= 5u);
    BOOST_TEST(equal_selected >= 1u);
    BOOST_TEST(equal_selected < equal);  // the class straddles the boundary
  }
}

BOOST_AUTO_TEST_CASE(presets_and_bad_options) {
  test::TempDir tmp("synth");
  BOOST_TEST(synth_preset("v3.2").k == 2048);
  BOOST_TEST(synth_preset("v3.2").compress_ratio == 1);
  BOOST_TEST(synth_preset("v4-pro").k == 1024);
  BOOST_TEST(synth_preset("v4-flash").k == 512);
  SynthOptions o = small(test::seed(17));
  o.preset = "v3.2";
  o.layers = 1;
  o.seq_len = 3000;
  synth_trace(tmp("v32.h5"), o);
  TraceReader r(tmp("v32.h5"));
  BOOST_TEST(r.groups(GroupKind::compressor).empty());
  BOOST_TEST(r.groups(GroupKind::merge).size() == 1u);  // split-KV only: no SWA scope in V3.2
  BOOST_TEST(r.indexer("L00").config().compress_ratio == 1);
  auto expect_bad = [&](SynthOptions opt, const std::string& part) {
    try {
      synth_trace(tmp("bad.h5"), opt);
    } catch (const Error& e) {
      BOOST_TEST((e.code() == Errc::bad_input));
      BOOST_TEST(std::string(e.what()).find(part) != std::string::npos, e.what());
      return;
    }
    BOOST_ERROR("no error for " << part);
  };
  SynthOptions bad = small(1);
  bad.preset = "v5";
  expect_bad(bad, "v4-flash, v4-pro, v3.2");
  bad = o;
  bad.plant = {"neg-inf-score"};
  expect_bad(bad, "neg-inf-score");
  bad = small(1);
  bad.next_n = 9;
  expect_bad(bad, "--next-n");
  BOOST_CHECK_THROW(parse_plants("nan-lse,oops"), Error);
  BOOST_CHECK_THROW(parse_compressors("x:100:4"), Error);
  BOOST_TEST(parse_compressors("a:128:128")[0].compress_ratio == 128);
}
