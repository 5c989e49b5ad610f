// Split heuristics against cases computed by hand from their published rules
// (sources cited in sim/heuristics.hpp).
#define BOOST_TEST_MODULE sim_heuristics
#include <boost/test/unit_test.hpp>

#include "sim/heuristics.hpp"
#include "reference/status.hpp"

using namespace dsv4::sim;

BOOST_AUTO_TEST_CASE(fa2_wave_efficiency_and_85_percent_rule) {
  // 16 tiles on 2 x 132: eff(s) = 16 s / 264; best 1.0 at s = 33; s = 14 gives 0.848 < 0.85, s = 15 0.909.
  BOOST_TEST(fa2_num_splits(16, 264, 2048, 128) == 15);
  // 0.8 rule: 212 >= 211.2 -> 1.
  BOOST_TEST(fa2_num_splits(212, 264, 2048, 128) == 1);
  // 211 tiles: s = 1..4 all give 0.799 < 0.85 x 0.999; s = 5: 1055 / 264 = 3.996 -> 0.999.
  BOOST_TEST(fa2_num_splits(211, 264, 2048, 128) == 5);
  // eligibility filter: n = 6 blocks, s = 4, 5 are ineligible (ceil(6/4) = ceil(6/3) = 2, ceil(6/5) = 2);
  // eligible 1, 2, 3, 6 have eff .189 .379 .568 .568 -> max .568, first >= .483 is s = 3.
  BOOST_TEST(fa2_num_splits(50, 264, 6, 128) == 3);
  // max_splits capped by num_n_blocks: n = 3, T = 1: eff s/264, all eligible -> 3.
  BOOST_TEST(fa2_num_splits(1, 264, 3, 128) == 3);
  BOOST_TEST(fa2_num_splits(1, 264, 0, 128) == 1);
  BOOST_TEST(fa2_block_n(64) == 256);
  BOOST_TEST(fa2_block_n(128) == 128);
  BOOST_TEST(fa2_block_n(576) == 64);
}

BOOST_AUTO_TEST_CASE(fa3_rules_including_50MB) {
  const std::int64_t MB = 1024 * 1024;
  // Enough tiles (200 >= 105.6): split only for a KV head > 50 MB with >= 2 SMs of m-blocks, not causal.
  BOOST_TEST(fa3_num_splits(200, 132, 2048, 300, 120 * MB, false, 128) == 3);  // ceil(120 / 50)
  BOOST_TEST(fa3_num_splits(200, 132, 2048, 300, 120 * MB, true, 128) == 1);   // causal
  BOOST_TEST(fa3_num_splits(200, 132, 2048, 200, 120 * MB, false, 128) == 1);  // 200 < 264 m-blocks
  BOOST_TEST(fa3_num_splits(200, 132, 2048, 300, 50 * MB, false, 128) == 1);   // not above 50 MB
  BOOST_TEST(fa3_num_splits(200, 132, 2048, 300, 120 * MB, false, 2) == 2);    // max_splits cap
  // n <= 4 -> 1.
  BOOST_TEST(fa3_num_splits(10, 132, 4, 1, 0, false, 128) == 1);
  // Loop: 16 tiles on 132 SMs: s = 7 gives 112/132 = .848, s = 8 gives .970 (best 1.0 at s = 33).
  BOOST_TEST(fa3_num_splits(16, 132, 2048, 1, 0, false, 128) == 8);
  // Same case as FA2's eligibility example but without the filter: s = 5 (.947) passes.
  BOOST_TEST(fa3_num_splits(50, 264, 6, 1, 0, false, 128) == 5);
}

BOOST_AUTO_TEST_CASE(fa3_varlen_dynamic_splits) {
  // total 2240 blocks; per SM ceil(1.1 * 2240 / 132) = ceil(18.67) = 19.
  const auto s = fa3_varlen_splits({2048, 64, 64, 64}, 1, 1, 132, 128);
  BOOST_TEST((s == std::vector<int>{108, 4, 4, 4}));
  const auto c = fa3_varlen_splits({2048, 64, 64, 64}, 1, 1, 132, 32);
  BOOST_TEST(c[0] == 32);
}

BOOST_AUTO_TEST_CASE(flashinfer_chunk_binary_search) {
  // Plenty of grid: the smallest allowed chunk (128 tokens / page 32 = 4 pages): 25 + 3 + 3 = 31 chunks.
  auto r = flashinfer_decode_chunk({100, 10, 10}, 1, 132, 4);
  BOOST_TEST(r.split);
  BOOST_TEST(r.chunk_pages == 4);
  BOOST_TEST(r.new_batch == 31);
  // Grid of 10: c = 12 gives 9 + 1 + 1 = 11 > 10, c = 13 gives 8 + 1 + 1 = 10.
  r = flashinfer_decode_chunk({100, 10, 10}, 1, 10, 4);
  BOOST_TEST(r.chunk_pages == 13);
  BOOST_TEST(r.new_batch == 10);
  // batch x kv_heads >= grid: no split.
  r = flashinfer_decode_chunk(std::vector<int>(200, 50), 1, 132, 4);
  BOOST_TEST(!r.split);
  BOOST_TEST(r.new_batch == 200);
}

BOOST_AUTO_TEST_CASE(trtllm_gen_n_kv_with_and_without_oversubscription) {
  TrtllmGenOptions off;  // max_waves 1 (upstream default)
  TrtllmGenOptions on;
  on.max_waves = 16;
  // base 16, L_max 131072: maxPerSeq = 512, n_kv = min(512, 132 / 16 = 8) = 8; desired 64 > 4.
  BOOST_TEST(trtllm_gen_n_kv(16, 131072, 132, off) == 8);        // min(64, 8, 512, 32) = 8
  BOOST_TEST(trtllm_gen_n_kv(16, 131072, 132, on) == 32);        // min(64, 132, 512, 32) = 32
  // base 256: n_kv = max(1, 0) = 1; oversubscribed: min(64, 16 * 132 / 256 = 8, 512, 32) = 8.
  BOOST_TEST(trtllm_gen_n_kv(256, 131072, 132, off) == 1);
  BOOST_TEST(trtllm_gen_n_kv(256, 131072, 132, on) == 8);
  // desired = ceil(8192 / 2048) = 4, not > 4: rule idle.
  BOOST_TEST(trtllm_gen_n_kv(256, 8192, 132, on) == 1);
  // short sequences: maxPerSeq = ceil(300 / 256) = 2 caps n_kv.
  BOOST_TEST(trtllm_gen_n_kv(4, 300, 132, off) == 2);
}

BOOST_AUTO_TEST_CASE(flashmla_greedy_fill) {
  // blocks 10, 1, 1; F = 5: total 27, payload ceil(27 / 4) + 5 = 12.
  // part 0: request 0 needs 15 > 12 -> takes 7 blocks; part 1: the remaining 3 (+5), then 4 left < 1 + 5;
  // part 2: requests 1 and 2 (6 + 6); part 3 idle.
  const auto s = flashmla_schedule({640, 64, 64}, 4, 64, 5);
  BOOST_TEST(s.payload == 12);
  BOOST_REQUIRE(s.parts.size() == 4u);
  BOOST_TEST(s.parts[0].blocks == 7);
  BOOST_TEST(s.parts[1].blocks == 3);
  BOOST_TEST(s.parts[2].blocks == 2);
  BOOST_TEST(s.parts[2].segments == 2);
  BOOST_TEST(s.parts[3].blocks == 0);
  BOOST_TEST((s.splits == std::vector<int>{2, 1, 1}));
  // Every block is scheduled exactly once.
  const auto big = flashmla_schedule({131072, 4096, 4096, 65536, 100, 1}, 132, 64, 5);
  int blocks = 0;
  for (const auto& p : big.parts) blocks += p.blocks;
  BOOST_TEST(blocks == 2048 + 64 + 64 + 1024 + 2 + 1);
  BOOST_TEST(flashmla_num_parts(132, 1, 64) == 132);
  BOOST_TEST(flashmla_num_parts(132, 1, 128) == 66);
  BOOST_TEST(flashmla_num_parts(132, 2, 128) == 33);
}

BOOST_AUTO_TEST_CASE(topk_blocks_per_row_rules) {
  // >= 200,000 columns: fixed 10.
  BOOST_TEST(topk_blocks_per_row_trtllm(1, 300000, 132) == 10);
  BOOST_TEST(topk_blocks_per_row_trtllm(1000, 200000, 132) == 10);
  // 50 rows, maxBp 10: scores 1/2, 2/3, 2/4, 2/5 (best), 3/6, 3/7, 4/8, 4/9, 4/10 (ties 2/5, not strict) -> 5.
  BOOST_TEST(topk_blocks_per_row_trtllm(50, 100000, 132) == 5);
  // rows >= SMs / 2 -> min(2, maxBp).
  BOOST_TEST(topk_blocks_per_row_trtllm(100, 100000, 132) == 2);
  BOOST_TEST(topk_blocks_per_row_trtllm(100, 3000, 132) == 1);
  // 10 rows, 8192 columns: maxBp 4, scores 1/2, 1/3, 1/4 -> 4.
  BOOST_TEST(topk_blocks_per_row_trtllm(10, 8192, 132) == 4);
  BOOST_TEST(topk_blocks_per_row_trtllm(10, 3000, 132) == 1);
  // one-wave rule
  BOOST_TEST(topk_blocks_per_row_one_wave(10, 100000, 132) == 13);
  BOOST_TEST(topk_blocks_per_row_one_wave(200, 100000, 132) == 1);
  BOOST_TEST(topk_blocks_per_row_one_wave(1, 4096, 132) == 2);
  BOOST_TEST(topk_blocks_per_row_one_wave(1, 1 << 20, 132) == 32);
}

BOOST_AUTO_TEST_CASE(plans_cover_every_token) {
  const std::vector<int> lens{131072, 4096, 100, 8192, 1};
  auto tokens = [](const SplitPlan& p) {
    double t = 0;
    for (const auto& g : p.groups) t += g.segments > 0 ? g.count * g.tokens : 0;
    return t;
  };
  const double total = 131072 + 4096 + 100 + 8192 + 1;
  for (int s : {1, 3, 8, 32}) BOOST_TEST(tokens(plan_uniform(lens, s, 64, 1)) == total);
  BOOST_TEST(tokens(plan_uniform(lens, 8, 64, 2)) == 2 * total);
  for (int c : {1024, 2048, 100000}) BOOST_TEST(tokens(plan_fixed_chunk(lens, c, 1)) == total);
  const auto p = plan_fixed_chunk(lens, 2048, 1);
  BOOST_TEST((p.splits == std::vector<int>{64, 2, 1, 4, 1}));
}

BOOST_AUTO_TEST_CASE(heuristic_table_and_errors) {
  BOOST_TEST(heuristics().size() == 9u);
  BOOST_TEST(heuristic("flashmla").name == "flashmla");
  try {
    heuristic("nope");
    BOOST_FAIL("expected an error");
  } catch (const dsv4::Error& e) {
    BOOST_TEST((e.code() == dsv4::Errc::bad_input));
    BOOST_TEST(std::string(e.what()).find("trtllm_gen_oversub") != std::string::npos);
  }
}
