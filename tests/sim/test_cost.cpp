// Cost model: known values, monotonicity (more bytes never faster, more SMs never slower),
// GPU specs and their provenance, JSON params.
#define BOOST_TEST_MODULE sim_cost
#include <boost/test/unit_test.hpp>

#include "reference/status.hpp"
#include "sim/cost/attention.hpp"
#include "sim/heuristics.hpp"
#include "sim/predict.hpp"
#include "test_util.hpp"

#include <random>

using namespace dsv4::sim;
namespace tt = boost::test_tools;

BOOST_AUTO_TEST_CASE(kernel_time_known_value) {
  KernelConstants c;
  c.launch_us = 3;
  c.bandwidth_GBps = 1000;  // 1e6 bytes -> 1 us
  c.cta_us_per_unit = 0.5;
  c.ctas_per_sm = 1;
  KernelWork w;
  w.bytes = 1e6;
  w.ctas = 133;
  w.cta_units = 2;
  // 3 + 1 + ceil(133 / 132) = 2 waves x 2 units x 0.5
  BOOST_TEST(kernel_time_us(c, w, 132) == 6.0);
  BOOST_TEST(waves(0, 132, 1) == 0.0);
  BOOST_TEST(waves(264, 132, 2) == 1.0);
  BOOST_TEST(waves(265, 132, 2) == 2.0);
}

BOOST_AUTO_TEST_CASE(gpu_specs_and_provenance) {
  const GpuSpec& h = gpu_spec("H100");
  BOOST_TEST(h.sm_count == 132);
  BOOST_TEST(h.copy_bandwidth_GBps == 3000.0);
  BOOST_TEST(h.l2_bytes == 50.0 * 1024 * 1024);
  BOOST_TEST(h.sources.at("copy_bandwidth_GBps").rfind("measured", 0) == 0);
  BOOST_TEST(gpu_spec("h200").sources.at("copy_bandwidth_GBps").rfind("derived", 0) == 0);
  BOOST_TEST(gpu_spec("mi355x").warp_size == 64);
  for (const auto& g : gpu_specs())
    for (const char* f : {"sm_count", "copy_bandwidth_GBps", "peak_bandwidth_GBps", "l2_bytes", "launch_us",
                          "sm_bandwidth_cap_GBps", "clock_GHz"})
      BOOST_TEST(g.sources.count(f) == 1u, g.key << " lacks the source of " << f);
  try {
    gpu_spec("a100");
    BOOST_FAIL("expected an error");
  } catch (const dsv4::Error& e) {
    BOOST_TEST(std::string(e.what()).find("h100, h200, b200, mi355x") != std::string::npos);
  }
}

namespace {

nlohmann::json random_params(const std::string& op, std::mt19937_64& rng) {
  auto pick = [&](std::initializer_list<int> v) { return *(v.begin() + rng() % v.size()); };
  if (op == "topk")
    return {{"rows", pick({1, 7, 64, 131, 132, 512})}, {"cols", pick({4096, 65537, 196608})}, {"k", pick({512, 2048})},
            {"dtype", pick({0, 1}) ? "fp32" : "bf16"}, {"blocks_per_row", pick({1, 2, 10})}};
  if (op == "lse_merge")
    return {{"tokens", pick({1, 16, 256})}, {"heads", pick({16, 64, 128})}, {"D", pick({128, 512})},
            {"splits", pick({2, 4, 32})}, {"dtype", "fp32"}};
  return {{"batch", pick({1, 16, 256})}, {"NN", pick({1, 4, 8})}, {"HD", pick({128, 512})}, {"CR", pick({4, 128})},
          {"mode", pick({0, 1}) ? "decode" : "prefill"}};
}

/// The key whose growth adds bytes for each op.
const char* size_key(const std::string& op) { return op == "topk" ? "cols" : op == "lse_merge" ? "tokens" : "batch"; }

}  // namespace

BOOST_AUTO_TEST_CASE(more_bytes_never_faster_more_sms_never_slower) {
  const std::uint64_t seed = dsv4::test::seed(8101);
  std::mt19937_64 rng(seed);
  for (const auto& m : op_models()) {
    for (int trial = 0; trial < 200; ++trial) {
      nlohmann::json p = random_params(m.op, rng);
      for (const auto& g : gpu_specs()) {
        const Prediction a = predict(g, m.op, p);
        nlohmann::json q = p;
        q[size_key(m.op)] = q[size_key(m.op)].get<double>() * 2;
        const Prediction b = predict(g, m.op, q);
        BOOST_TEST(b.work.bytes > a.work.bytes);
        BOOST_TEST(b.us >= a.us, "seed " << seed << " " << m.op << " " << p.dump() << " on " << g.key);
        GpuSpec more = g;
        more.sm_count = g.sm_count * 2;
        BOOST_TEST(predict(more, m.op, p).us <= a.us, "seed " << seed << " " << m.op << " " << p.dump());
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(typed_and_json_predictions_agree) {
  const GpuSpec& g = gpu_spec("h100");
  TopkShape t;
  t.rows = 64;
  t.cols = 65536;
  t.k = 512;
  t.elem_bytes = 2;
  t.blocks_per_row = 2;
  const nlohmann::json p = {{"rows", 64}, {"cols", 65536}, {"k", 512}, {"dtype", "bf16"}, {"blocks_per_row", 2}, {"extra", 1}};
  BOOST_TEST(predict_topk_us(g, t) == predict(g, "topk", p).us);
  // bytes: 64*65536*2 + 64*512*4 (bp 2 is a cluster: no workspace); bp 16 adds 2*64*16*512*8
  BOOST_TEST(predict(g, "topk", p).work.bytes == 64.0 * 65536 * 2 + 64.0 * 512 * 4);
  nlohmann::json wide = p;
  wide["blocks_per_row"] = 16;
  BOOST_TEST(predict(g, "topk", wide).work.bytes == 64.0 * 65536 * 2 + 64.0 * 512 * 4 + 2.0 * 64 * 16 * 512 * 8);
  LseMergeShape s;
  s.tokens = 4;
  s.heads = 64;
  s.D = 512;
  s.splits = 3;
  BOOST_TEST(predict_lse_merge_us(g, s) ==
             predict(g, "lse_merge", {{"tokens", 4}, {"heads", 64}, {"D", 512}, {"splits", 3}, {"dtype", "fp32"}}).us);
  CompressShape c;
  c.batch = 16;
  c.NN = 4;
  BOOST_TEST(predict_compress_us(g, c) ==
             predict(g, "compress", {{"batch", 16}, {"NN", 4}, {"HD", 512}, {"CR", 128}, {"mode", "decode"}}).us);
  // Calibrated constants take precedence: "op/impl", then "op".
  ConstantsTable table;
  KernelConstants k;
  k.launch_us = 100;
  table["topk"] = k;
  BOOST_TEST(predict(g, "topk", p, &table, "ours").us == 100.0);     // bp 2: one cluster launch
  BOOST_TEST(predict(g, "topk", wide, &table, "ours").us == 200.0);  // bp 16: select + merge launches
}

BOOST_AUTO_TEST_CASE(bad_params_are_named) {
  const GpuSpec& g = gpu_spec("h100");
  auto expect = [&](const std::string& op, const nlohmann::json& p, const std::string& word) {
    try {
      predict(g, op, p);
      BOOST_FAIL("expected an error for " << p.dump());
    } catch (const dsv4::Error& e) {
      BOOST_TEST(std::string(e.what()).find(word) != std::string::npos, e.what());
    }
  };
  expect("topk", {{"rows", 1}, {"k", 2}}, "cols");
  expect("topk", {{"rows", 1}, {"cols", 2}, {"k", 2}, {"dtype", "int4"}}, "int4");
  expect("compress", {{"batch", 1}, {"NN", 1}, {"HD", 512}, {"CR", 8}}, "CR");
  expect("attention_v9", {}, "topk, lse_merge, compress");
}

BOOST_AUTO_TEST_CASE(attention_model_hand_values) {
  const GpuSpec& g = gpu_spec("h100");
  AttnModel m;  // 1152 bytes/token, overhead 320 tokens
  const KernelConstants attn = attention_default_constants(g);
  const KernelConstants merge = lse_merge_default_constants(g);
  // 16 requests of 8192 tokens, no split: 16 busy SMs x 100 GB/s = 1600 GB/s < 3000, so each
  // streams (8192 + 320) x 1152 bytes at 100 GB/s; + 3 us floor + one wave of 1 us prologue.
  const SplitPlan none = plan_fixed_chunk(std::vector<int>(16, 8192), 1 << 30, 1);
  const AttnTime t = attention_time(g, m, none, attn, merge);
  BOOST_TEST(t.kernel_us == 3.0 + (8192.0 + 320.0) * 1152.0 / 1e5 + 1.0, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(t.combine_us == 0.0);
  BOOST_TEST(t.balance == 1.0, boost::test_tools::tolerance(1e-12));
  // 264 equal CTAs saturate DRAM: 264 x 1320 x 1152 bytes at 3000 GB/s, 2 prologue waves.
  const SplitPlan two = plan_fixed_chunk(std::vector<int>(264, 1000), 1 << 30, 1);
  const AttnTime u = attention_time(g, m, two, attn, merge);
  BOOST_TEST(u.kernel_us == 3.0 + 264 * 1320.0 * 1152.0 / 3e6 + 2.0, boost::test_tools::tolerance(1e-12));
  // One long request among 20 short ones (21 x 100 GB/s < 3000: DRAM not saturated, share = cap):
  // the critical path 131072 + 320 tokens at 100 GB/s is the time.
  std::vector<int> mixed(20, 1000);
  mixed.push_back(131072);
  const AttnTime v = attention_time(g, m, plan_fixed_chunk(mixed, 1 << 30, 1), attn, merge);
  BOOST_TEST(v.kernel_us == 3.0 + (131072.0 + 320.0) * 1152.0 / 1e5 + 1.0, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(v.balance < 0.5);
  // Splitting it into 2048-token pieces removes the critical path and adds a combine.
  const AttnTime w = attention_time(g, m, plan_fixed_chunk(mixed, 2048, 1), attn, merge);
  BOOST_TEST(w.total_us < v.total_us);
  BOOST_TEST(w.combine_us > 0.0);
  BOOST_TEST(w.max_splits == 64);
  // Saturated: 200 requests of 1000 tokens + one of 131072 on 132 SMs. fluid = all bytes / 3000 GB/s;
  // the long CTA gets 3000 / 132 GB/s meanwhile, then finishes alone at 100 GB/s.
  std::vector<int> sat(200, 1000);
  sat.push_back(131072);
  const AttnTime x = attention_time(g, m, plan_fixed_chunk(sat, 1 << 30, 1), attn, merge);
  const double fluid = (200 * 1320.0 + 131392.0) * 1152.0 / 3e6;
  const double left = 131392.0 * 1152.0 - 3000.0 / 132 * 1e3 * fluid;
  BOOST_TEST(x.kernel_us == 3.0 + fluid + left / 1e5 + 2.0, boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(attention_more_bytes_never_faster_more_sms_never_slower) {
  const std::uint64_t seed = dsv4::test::seed(8102);
  std::mt19937_64 rng(seed);
  const KernelConstants merge = lse_merge_default_constants(gpu_spec("h100"));
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<int> lens(1 + rng() % 300);
    for (auto& l : lens) l = 1 + static_cast<int>(rng() % 140000);
    const int splits = 1 + static_cast<int>(rng() % 40);
    const SplitPlan p = rng() % 2 ? plan_uniform(lens, splits, 64, 1) : plan_fixed_chunk(lens, 1024 << (rng() % 7), 1);
    AttnModel m;
    GpuSpec g = gpu_spec("h100");
    const KernelConstants attn = attention_default_constants(g);
    const double t0 = attention_time(g, m, p, attn, merge).total_us;
    AttnModel heavier = m;
    heavier.kv_bytes_per_token *= 1.5;
    BOOST_TEST(attention_time(g, heavier, p, attn, merge).total_us >= t0, "seed " << seed << " trial " << trial);
    double working = 0;
    for (const auto& grp : p.groups) working += grp.segments > 0 ? grp.count : 0;
    for (int sms : {16, 66, 132, 264, 528}) {
      if (working > sms) continue;  // monotone in SMs while the working CTAs fit (see attention.hpp)
      GpuSpec a = g, b = g;
      a.sm_count = sms;
      b.sm_count = sms + 1 + static_cast<int>(rng() % 100);
      BOOST_TEST(attention_time(b, m, p, attn, merge).kernel_us <= attention_time(a, m, p, attn, merge).kernel_us * (1 + 1e-12),
                 "seed " << seed << " trial " << trial << " sms " << sms << " -> " << b.sm_count);
    }
  }
}

BOOST_AUTO_TEST_CASE(topk_and_compress_stages_follow_the_kernels) {
  // Top-k: one 1024-thread select block per SM, one select chain each (1.4 in a cluster of
  // 2-8 blocks); aux = 8192-item stream tiles a block reads beyond one resident 16384 tile (a
  // longer chunk of logits counts 1 read of its tiles and 1 for its sample and list). A split
  // wider than 8 adds a merge launch of `rows` blocks over the bp x K candidates, counted the
  // same way but for two tiles of candidates (2 reads of their tiles: no list).
  TopkShape t;
  t.rows = 133;
  t.cols = 16384;
  t.k = 512;
  KernelWork w = topk_work(t);
  BOOST_TEST(w.launches == 1.0);
  double aux = -1;
  BOOST_TEST(serial_units(w, 132, 7, &aux) == 2.0);  // 133 blocks, 1 per SM: 2 waves (fitted cps ignored)
  BOOST_TEST(aux == 0.0);                            // one resident tile
  t.cols = 262144;
  BOOST_TEST(serial_units(topk_work(t), 132, 1, &aux) == 2.0);
  BOOST_TEST(aux == 2.0 * (32 + 1));  // filtered: one read of 32 stream tiles per block and the list, 2 waves
  t.rows = 64;
  t.cols = 131072;
  t.blocks_per_row = 2;
  w = topk_work(t);
  BOOST_TEST(w.launches == 1.0);  // a cluster of 2: one launch
  // 128 blocks: one wave of cluster chains; chunks of 65536: 8 stream tiles and the list.
  BOOST_TEST(serial_units(w, 132, 1, &aux) == 1.4, tt::tolerance(1e-12));
  BOOST_TEST(aux == 8.0 + 1);
  t.blocks_per_row = 4;
  serial_units(topk_work(t), 132, 1, &aux);
  BOOST_TEST(aux == 2.0 * (4 + 1));  // 256 blocks (2 waves), chunks of 32768: 4 stream tiles and the list
  t.rows = 16;
  t.cols = 262144;
  t.blocks_per_row = 16;
  w = topk_work(t);
  BOOST_TEST(w.launches == 2.0);
  BOOST_TEST(serial_units(w, 132, 1, &aux) == 2.0 + 1.0);  // 256 select blocks (2 waves) + 1 merge wave
  BOOST_TEST(aux == 0.0);                                  // 16384-column chunks; 8192 candidates: resident
  t.k = 2048;
  serial_units(topk_work(t), 132, 1, &aux);
  BOOST_TEST(aux == 2.0 * 4);  // 32768 candidates: two tiles, 2 reads of 4 stream tiles
  // Compressor: grid (slots, HD / 64, batch); NRW = 4 (CR 128) holds 5 blocks per SM, NRW = 1 16.
  CompressShape c;
  c.batch = 64;
  c.HD = 512;
  c.CR = 128;
  c.NN = 1;
  c.windows = 1;
  w = compress_work(c);
  BOOST_TEST(w.ctas == 64.0 * 8);
  BOOST_TEST(serial_units(w, 132, 1) == 1.0 * 32);  // 512 blocks / 660 per wave = 1 wave x 32 steps
  c.batch = 128;
  BOOST_TEST(serial_units(compress_work(c), 132, 1) == 2.0 * 32);  // 1024 blocks: 2 waves
  c.batch = 82;
  BOOST_TEST(serial_units(compress_work(c), 132, 1) == 1.0 * 32);  // 656 blocks: still 1 wave of 660
  c.batch = 64;
  c.CR = 4;
  w = compress_work(c);
  BOOST_TEST(serial_units(w, 132, 1) == 1.0 * 8);  // 512 blocks in one wave of 2112, 8 steps
}
