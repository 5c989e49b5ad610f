// calibrate: recovers known constants from synthetic bench JSON, holds out deterministically,
// reports MAPE; NNLS; input errors.
#define BOOST_TEST_MODULE sim_calibrate
#include <boost/test/unit_test.hpp>

#include "reference/status.hpp"
#include "sim/calibrate.hpp"
#include "sim/predict.hpp"
#include "test_util.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>

using namespace dsv4::sim;

namespace {

/// cps 0: the op's cost model carries its kernels' occupancy (launch stages), so calibrate
/// does not fit it and reports 0.
KernelConstants truth(double launch, double bw, double unit, int cps, double aux = 0) {
  KernelConstants c;
  c.aux_us_per_unit = aux;
  c.launch_us = launch;
  c.bandwidth_GBps = bw;
  c.cta_us_per_unit = unit;
  c.ctas_per_sm = cps;
  return c;
}

/// A bench document whose medians come from `c` (times 1 + noise in [-amp, amp]).
nlohmann::json synth_bench(const std::string& op, const std::vector<nlohmann::json>& shapes, const KernelConstants& c,
                           double amp, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-amp, amp);
  nlohmann::json doc = {{"schema", "dsv4lab-bench"},
                        {"version", 1},
                        {"op", op},
                        {"device", {{"name", "Synthetic H100"}, {"sm_count", 132}, {"l2_bytes", 52428800},
                                    {"copy_bandwidth_GBps", 3000.0}}},
                        {"results", nlohmann::json::array()}};
  for (const auto& p : shapes) {
    const KernelWork w = op_model(op).work(p);
    const double t = kernel_time_us(c, w, 132) * (1 + (amp > 0 ? u(rng) : 0.0));
    doc["results"].push_back({{"op", op}, {"impl", "ours"}, {"params", p}, {"median_us", t}, {"bytes", w.bytes}});
  }
  return doc;
}

std::vector<nlohmann::json> topk_shapes() {
  std::vector<nlohmann::json> v;
  for (int rows : {1, 8, 64, 132, 133, 512})
    for (int cols : {8192, 65536, 196608})
      for (int bp : {1, 4, 16})
        for (int k : {512, 2048})
          v.push_back({{"rows", rows}, {"cols", cols}, {"k", k}, {"dtype", "fp32"}, {"blocks_per_row", bp}});
  return v;
}

std::vector<nlohmann::json> merge_shapes() {
  std::vector<nlohmann::json> v;
  for (int tokens : {1, 16, 128, 1024})
    for (int splits : {2, 8, 32})
      for (int D : {128, 512}) v.push_back({{"tokens", tokens}, {"heads", 64}, {"D", D}, {"splits", splits}, {"dtype", "fp32"}});
  return v;
}

std::vector<nlohmann::json> compress_shapes() {
  std::vector<nlohmann::json> v;
  for (int batch : {1, 16, 64, 128, 256, 1024})
    for (int NN : {1, 4, 8})
      for (int CR : {4, 128}) v.push_back({{"batch", batch}, {"NN", NN}, {"HD", 512}, {"CR", CR}, {"mode", "decode"}, {"windows", 1}});
  return v;
}

}  // namespace

BOOST_AUTO_TEST_CASE(nnls_exact_and_clamped) {
  // b = 2 x0 + 3 x2 exactly, x1 unused -> (2, 0, 3).
  std::vector<std::vector<double>> A = {{1, 1, 0}, {1, 2, 1}, {1, 0, 2}, {1, 5, 3}};
  std::vector<double> b;
  for (const auto& r : A) b.push_back(2 * r[0] + 3 * r[2]);
  double loss = 1;
  auto x = nnls_small(A, b, &loss);
  BOOST_TEST(x[0] == 2.0, boost::test_tools::tolerance(1e-9));
  BOOST_TEST(x[1] == 0.0, boost::test_tools::tolerance(1e-9));
  BOOST_TEST(x[2] == 3.0, boost::test_tools::tolerance(1e-9));
  BOOST_TEST(loss < 1e-18);
  // Unconstrained LS would want a negative x1; NNLS keeps it at 0.
  std::vector<double> c;
  for (const auto& r : A) c.push_back(1 + r[0] - 0.5 * r[1]);
  x = nnls_small(A, c, &loss);
  BOOST_TEST(*std::min_element(x.begin(), x.end()) >= 0.0);
}

BOOST_AUTO_TEST_CASE(recovers_known_constants_exactly) {
  struct Case {
    std::string op;
    std::vector<nlohmann::json> shapes;
    KernelConstants c;
  };
  const std::vector<Case> cases = {
      {"topk", topk_shapes(), truth(4.5, 2600, 14.0, 0, 4e-4)},
      {"lse_merge", merge_shapes(), truth(2.5, 2400, 0.02, 8)},
      {"compress", compress_shapes(), truth(3.2, 2000, 0.15, 0)},
  };
  for (const auto& k : cases) {
    const auto pts = parse_bench_json(synth_bench(k.op, k.shapes, k.c, 0.0, 1), "synthetic-" + k.op);
    const auto r = calibrate(pts, CalibrateOptions{});
    BOOST_REQUIRE(r.kernels.size() == 1u);
    const KernelFit& f = r.kernels[0];
    BOOST_TEST(f.kernel == (k.op == "compress" ? "compress/ours[mode=decode]" : k.op + "/ours"));
    BOOST_TEST(f.constants.launch_us == k.c.launch_us, boost::test_tools::tolerance(1e-6));
    BOOST_TEST(f.constants.bandwidth_GBps == k.c.bandwidth_GBps, boost::test_tools::tolerance(1e-6));
    BOOST_TEST(f.constants.cta_us_per_unit == k.c.cta_us_per_unit, boost::test_tools::tolerance(1e-6));
    BOOST_TEST(f.constants.aux_us_per_unit == k.c.aux_us_per_unit, boost::test_tools::tolerance(1e-6));
    BOOST_TEST(f.constants.ctas_per_sm == k.c.ctas_per_sm, k.op);
    BOOST_TEST(f.n_holdout > 0);
    BOOST_TEST(f.mape_holdout < 1e-9);
    BOOST_TEST(f.model_over_bench_bytes == 1.0, boost::test_tools::tolerance(1e-12));
  }
}

BOOST_AUTO_TEST_CASE(noisy_measurements_fit_within_noise) {
  const std::uint64_t seed = dsv4::test::seed(8301);
  const KernelConstants c = truth(4.5, 2600, 14.0, 0, 4e-4);
  const auto pts = parse_bench_json(synth_bench("topk", topk_shapes(), c, 0.03, seed), "noisy");
  const auto r = calibrate(pts, CalibrateOptions{});
  const KernelFit& f = r.kernels.at(0);
  BOOST_TEST(std::fabs(f.constants.bandwidth_GBps / c.bandwidth_GBps - 1) < 0.05, "seed " << seed);
  BOOST_TEST(std::fabs(f.constants.cta_us_per_unit / c.cta_us_per_unit - 1) < 0.05, "seed " << seed);
  BOOST_TEST(f.mape_holdout < 0.05, "seed " << seed);
  const nlohmann::json j = calibrate_json(r, CalibrateOptions{}, {"noisy"});
  BOOST_TEST(j["schema"] == "dsv4lab-calibration");
  BOOST_TEST(j["kernels"][0]["meets_goal"] == true);
  BOOST_TEST(j["kernels"][0]["worst_holdout"]["measured_us"].get<double>() > 0);
  // The constants round-trip into predictions.
  const ConstantsTable t = load_constants(j);
  BOOST_TEST(t.count("topk/ours") == 1u);
  BOOST_TEST(t.count("topk") == 1u);
  BOOST_TEST(t.at("topk").bandwidth_GBps == f.constants.bandwidth_GBps);
}

BOOST_AUTO_TEST_CASE(holdout_is_deterministic_and_order_free) {
  const KernelConstants c = truth(4.5, 2600, 14.0, 0, 4e-4);
  nlohmann::json doc = synth_bench("topk", topk_shapes(), c, 0.03, 5);
  const auto a = calibrate(parse_bench_json(doc, "a"), CalibrateOptions{});
  std::reverse(doc["results"].begin(), doc["results"].end());
  const auto b = calibrate(parse_bench_json(doc, "a"), CalibrateOptions{});
  BOOST_TEST(calibrate_json(a, {}, {}).dump() == calibrate_json(b, {}, {}).dump());
  BOOST_TEST(a.kernels[0].n_holdout == 27);  // every 4th of 108, from the 3rd
  CalibrateOptions none;
  none.holdout_share = 0;
  BOOST_TEST(calibrate(parse_bench_json(doc, "a"), none).kernels[0].n_holdout == 0);
}

BOOST_AUTO_TEST_CASE(variants_and_result_level_fields) {
  // Two variants of one kernel are fitted apart; blocks_per_row next to params is used.
  nlohmann::json doc = synth_bench("topk", topk_shapes(), truth(4.5, 2600, 2.1e-3, 1), 0, 1);
  for (auto& r : doc["results"]) {
    r["blocks_per_row"] = r["params"]["blocks_per_row"];
    r["params"].erase("blocks_per_row");
  }
  auto pts = parse_bench_json(doc, "moved");
  BOOST_TEST(pts[1].params.contains("blocks_per_row"));
  BOOST_TEST(calibrate(pts, {}).kernels[0].mape_fit < 1e-9);
  nlohmann::json m = synth_bench("lse_merge", merge_shapes(), truth(2.5, 2400, 0.02, 8), 0, 1);
  nlohmann::json hot = synth_bench("lse_merge", merge_shapes(), truth(2.0, 9000, 0.01, 8), 0, 1);
  for (auto& r : m["results"]) r["params"]["l2"] = "cold";
  for (auto& r : hot["results"]) {
    r["params"]["l2"] = "hot";
    m["results"].push_back(r);
  }
  const auto r = calibrate(parse_bench_json(m, "l2"), {});
  BOOST_REQUIRE(r.kernels.size() == 2u);
  BOOST_TEST(r.kernels[0].kernel == "lse_merge/ours[l2=cold]");
  BOOST_TEST(r.kernels[1].constants.bandwidth_GBps == 9000.0, boost::test_tools::tolerance(1e-6));
  const ConstantsTable t = load_constants(calibrate_json(r, {}, {}));
  const nlohmann::json q = {{"tokens", 4}, {"heads", 64}, {"D", 512}, {"splits", 2}, {"dtype", "fp32"}, {"l2", "hot"}};
  BOOST_TEST(predict(gpu_spec("h100"), "lse_merge", q, &t, "ours").constants.bandwidth_GBps == 9000.0,
             boost::test_tools::tolerance(1e-6));
}

BOOST_AUTO_TEST_CASE(input_errors_and_unknown_ops) {
  BOOST_CHECK_THROW(parse_bench_json({{"schema", "other"}}, "x"), dsv4::Error);
  BOOST_CHECK_THROW(parse_bench_json({{"schema", "dsv4lab-bench"}, {"results", {{{"op", "topk"}}}}}, "x"), dsv4::Error);
  BOOST_CHECK_THROW(read_bench_file("does-not-exist-dsv4lab.json"), dsv4::Error);
  nlohmann::json doc = synth_bench("topk", topk_shapes(), truth(4.5, 2600, 2.1e-3, 1), 0, 1);
  doc["results"].push_back({{"op", "copy"}, {"impl", "cuda"}, {"params", {{"bytes", 1}}}, {"median_us", 3.0}});
  const auto r = calibrate(parse_bench_json(doc, "mixed"), CalibrateOptions{});
  BOOST_TEST(r.kernels.size() == 1u);
  BOOST_TEST(r.skipped.size() == 1u);
  BOOST_TEST(r.skipped[0].find("copy/cuda") != std::string::npos);
  doc["device"].erase("sm_count");
  try {
    parse_bench_json(doc, "nodev");
    BOOST_FAIL("expected an error");
  } catch (const dsv4::Error& e) {
    BOOST_TEST(std::string(e.what()).find("sm_count") != std::string::npos);
  }
}

// The fitted model on real H100 measurements meets the held-out goal of 15% MAPE. The data
// (tests/sim/data): bench_lse_merge and bench_topk as the bench wrote them in the round-17 and
// round-15 runs (gpu/bench/results/h100-2026-11-22-r17, -r15); bench_compress as the bench
// wrote it in the round-18 compressor run (h100-2026-11-22-r18).
// Hold-out is calibrate's default (every 4th point in params order), fixed before any fit.
BOOST_AUTO_TEST_CASE(h100_measurements_meet_the_holdout_goal) {
  const char* src = std::getenv("DSV4LAB_SOURCE_DIR");
  BOOST_REQUIRE_MESSAGE(src, "DSV4LAB_SOURCE_DIR is unset (run through ctest)");
  std::vector<BenchPoint> pts;
  for (const char* f : {"bench_topk.json", "bench_lse_merge.json", "bench_compress.json"}) {
    const auto v = read_bench_file(std::string(src) + "/tests/sim/data/" + f);
    pts.insert(pts.end(), v.begin(), v.end());
  }
  const CalibrateOptions opts;
  const auto r = calibrate(pts, opts);
  int checked = 0;
  for (const auto& k : r.kernels) {
    BOOST_TEST_CONTEXT(k.kernel) {
      BOOST_TEST(k.device == "NVIDIA H100 80GB HBM3");
      if (k.n_holdout == 0) continue;  // too few points to hold any out (prefill, some lse variants)
      ++checked;
      BOOST_TEST(k.mape_holdout <= opts.goal_mape, "held-out MAPE " << k.mape_holdout);
    }
  }
  // The kernels of the goal all had points held out.
  auto held = [&](const std::string& name) {
    return std::any_of(r.kernels.begin(), r.kernels.end(),
                       [&](const KernelFit& k) { return k.kernel == name && k.n_holdout >= 8; });
  };
  BOOST_TEST(held("topk/dsv4lab"));
  BOOST_TEST(held("compress/dsv4lab[mode=decode]"));
  BOOST_TEST(checked >= 3);
  // The top-k fit reads as the kernel's story: a serial block chain of the order of the 12-16 us
  // per block in gpu/bench/NOTES_topk.md, and a stream-tile cost > 0.
  for (const auto& k : r.kernels)
    if (k.kernel == "topk/dsv4lab") {
      BOOST_TEST(k.constants.cta_us_per_unit > 6.0);
      BOOST_TEST(k.constants.cta_us_per_unit < 24.0);
      BOOST_TEST(k.constants.aux_us_per_unit > 0.0);
    }
}
