// Replay, report and diagnose end to end on small traces: clean traces pass, a planted
// mismatch in a captured output fails the right rule (library and CLI exit codes), the
// report folder is byte-identical across runs, and diagnose finds exactly the planted
// special values.
#define BOOST_TEST_MODULE validation_replay
#include <boost/test/unit_test.hpp>

#include "reference/lse_merge.hpp"
#include "reference/status.hpp"
#include "reference/topk.hpp"
#include "test_util.hpp"
#include "traces/synth.hpp"
#include "traces/trace.hpp"
#include "validation/diagnose.hpp"
#include "validation/replay.hpp"
#include "validation/report.hpp"

#include <hdf5.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <tuple>

using namespace dsv4;
using namespace dsv4::validation;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("dsv4lab_test_replay_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d / name;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

ReplayOptions quiet() {
  ReplayOptions o;
  o.progress = false;
  o.device = "cpu";
  return o;
}

enum class Plant { none, topk_index, merge_v, merge_lse_nan };

// A small hand-built trace: one indexer group (2 requests, next_n 2, K 4, 24 columns, ties
// in the logits) and one merge group (3 splits, bf16 v) with captured outputs equal to the
// reference, except for the planted mismatch.
std::string write_trace(const std::string& name, Plant plant, std::uint64_t seed) {
  const std::string path = scratch(name).string();
  trace::Provenance prov;
  prov.producer = "test_replay";
  prov.model = "test";
  prov.seed = static_cast<std::int64_t>(seed);
  trace::TraceWriter w(path, prov);
  std::mt19937 rng(static_cast<unsigned>(seed));
  std::uniform_int_distribution<int> small(-3, 3);
  std::normal_distribution<float> normal(0.0f, 1.0f);

  trace::IndexerConfig ic;
  ic.k = 4;
  ic.compress_ratio = 1;
  ic.next_n = 2;
  ic.batch = 2;
  ic.cols = 24;
  ic.has_topk = true;
  auto iw = w.add_indexer("L00", ic);
  for (int s = 0; s < 3; ++s) {
    trace::IndexerStep st;
    st.logits = trace::Array(trace::DType::f32, {4, 24});
    auto lv = st.logits.view<float>();
    for (auto& x : lv) x = static_cast<float>(small(rng));  // many ties
    st.seq_lens = {24, 5 + s};                              // row N_r: 23, 24, 4+s, 5+s
    TopkProblem p;
    p.logits = st.logits.data();
    p.rows = 4;
    p.cols = 24;
    p.row_stride = 24;
    p.seq_lens = st.seq_lens.data();
    p.batch = 2;
    p.next_n = 2;
    p.k = 4;
    std::vector<std::int32_t> out(16);
    topk_oracle(p, out.data());
    // Captured outputs come in any order: reverse each row.
    for (int r = 0; r < 4; ++r) std::reverse(out.begin() + r * 4, out.begin() + r * 4 + 4);
    if (plant == Plant::topk_index && s == 1) {
      // Replace a selected column of row 1 by the unselected column of smallest value.
      std::set<int> sel(out.begin() + 4, out.begin() + 8);
      int worst = -1;
      for (int c = 0; c < 24; ++c)
        if (!sel.count(c) && (worst < 0 || lv[24 + c] < lv[24 + worst])) worst = c;
      const float kth = std::min({lv[24 + out[4]], lv[24 + out[5]], lv[24 + out[6]], lv[24 + out[7]]});
      BOOST_REQUIRE(lv[24 + worst] < kth);  // strictly below the tie class: a real error
      out[5] = worst;
    }
    st.topk = out;
    iw.append(st);
  }

  trace::MergeConfig mc;
  mc.splits = 3;
  mc.tokens = 2;
  mc.heads = 3;
  mc.head_dim = 8;
  mc.v_dtype = trace::DType::bf16;
  mc.sink = std::vector<float>{0.5f, -1.0f, 2.0f};
  mc.has_v = true;
  mc.has_lse = true;
  auto mw = w.add_merge("attn", mc);
  for (int s = 0; s < 2; ++s) {
    trace::MergeStep st;
    st.v_partial = trace::Array(trace::DType::bf16, {3, 2, 3, 8});
    for (auto& x : st.v_partial.view<std::uint16_t>()) x = num::float_to_bf16(normal(rng));
    st.lse_partial.resize(18);
    for (auto& x : st.lse_partial) x = 3.0f + normal(rng);
    if (plant == Plant::merge_lse_nan && s == 1) st.lse_partial[7] = num::qnan();  // split 1, token 0, head 1
    MergeProblem p;
    p.v_partial = st.v_partial.data();
    p.v_dtype = VDtype::bf16;
    p.lse_partial = st.lse_partial.data();
    p.splits = 3;
    p.tokens = 2;
    p.heads = 3;
    p.D = 8;
    p.sink = mc.sink->data();
    trace::Array v(trace::DType::bf16, {2, 3, 8});
    std::vector<float> lse(6);
    merge_reference(p, v.data(), lse.data(), nullptr);
    if (plant == Plant::merge_v && s == 1) {
      auto vv = v.view<std::uint16_t>();
      vv[13] = num::float_to_bf16(num::bf16_to_float(vv[13]) + 0.5f);
    }
    st.v = std::move(v);
    st.lse = lse;
    mw.append(st);
  }
  w.close();
  return path;
}

bool has_failure(const Report& r, const std::string& needle) {
  for (const auto& f : r.failures())
    if (f.find(needle) != std::string::npos) return true;
  return false;
}

}  // namespace

BOOST_AUTO_TEST_CASE(clean_trace_passes_every_rule) {
  const auto seed = test::seed(7);
  BOOST_TEST_MESSAGE("seed " << seed);
  const auto path = write_trace("clean.h5", Plant::none, seed);
  auto o = quiet();
  o.oracle_rows = -1;
  const Report r = replay_trace(path, o);
  BOOST_TEST(r.pass(), "seed " << seed << ": " << (r.failures().empty() ? "" : r.failures()[0]));
  BOOST_REQUIRE(r.groups.size() == 2u);
  // indexer: ref vs oracle, captured vs ref, captured vs oracle; merge: v/lse x 3.
  BOOST_TEST(r.groups[0].comparisons.size() == 3u);
  BOOST_TEST(r.groups[1].comparisons.size() == 6u);
  BOOST_TEST(r.provenance.trace_sha256.size() == 64u);
  BOOST_TEST(r.provenance.seeds.size() == 1u);
  // Captured rows are reversed: exact-array equality fails, the tie-aware rule holds.
  const auto& cap = r.groups[0].comparisons[1];
  BOOST_TEST(cap.name() == "topk: captured vs reference");
  BOOST_TEST(cap.metrics["exact_rows"].get<int>() < cap.metrics["rows"].get<int>());
  auto strict = o;
  strict.topk_captured = TopkCheck::exact;
  BOOST_TEST(!replay_trace(path, strict).pass());
}

BOOST_AUTO_TEST_CASE(planted_topk_mismatch_fails_captured_rules_only) {
  const auto seed = test::seed(8);
  const auto path = write_trace("topk_bad.h5", Plant::topk_index, seed);
  const Report r = replay_trace(path, quiet());
  BOOST_TEST(!r.pass(), "seed " << seed);
  BOOST_TEST(has_failure(r, "/indexer/L00: topk: captured vs reference"));
  BOOST_TEST(!has_failure(r, "reference vs oracle"));
  BOOST_TEST(!has_failure(r, "/merge/"));
  const auto& cap = r.groups[0].comparisons[1];
  BOOST_TEST(cap.metrics["first_tie_fail"]["step"].get<int>() == 1);
  BOOST_TEST(cap.metrics["first_tie_fail"]["row"].get<int>() == 1);
}

BOOST_AUTO_TEST_CASE(planted_merge_mismatch_fails_with_its_position) {
  const auto seed = test::seed(9);
  const auto path = write_trace("merge_bad.h5", Plant::merge_v, seed);
  const Report r = replay_trace(path, quiet());
  BOOST_TEST(!r.pass());
  BOOST_TEST(has_failure(r, "/merge/attn: v: captured vs reference"));
  BOOST_TEST(!has_failure(r, "lse:"));
  for (const auto& c : r.groups[1].comparisons)
    if (c.name() == "v: captured vs reference") {
      // Element 13 of step 1 = token 0, head 1, d 5.
      BOOST_TEST(c.metrics["first_tol_violation"]["at"].get<std::string>() == "step 1 [0, 1, 5]");
    }
}

BOOST_AUTO_TEST_CASE(report_folder_is_byte_identical) {
  const auto path = write_trace("repro.h5", Plant::merge_v, 11);
  auto write = [&](const std::string& dir) {
    Report r = replay_trace(path, quiet());
    r.provenance.command = "dsv4lab replay repro.h5 --report DIR";
    return write_report(r, scratch(dir));
  };
  const auto a = write("rep_a");
  const auto b = write("rep_b");
  BOOST_TEST(a.plots.size() == b.plots.size());
  std::vector<std::string> names{"report.json", "report.md", "report.html"};
  for (const auto& p : a.plots) names.push_back(p.string());
  for (const auto& n : names)
    BOOST_TEST((slurp(scratch("rep_a") / n) == slurp(scratch("rep_b") / n)), n << " differs between runs");
  const auto j = nlohmann::json::parse(slurp(scratch("rep_a") / "report.json"));
  BOOST_TEST(j["schema"].get<std::string>() == "dsv4lab-report");
  BOOST_TEST(j["version"].get<int>() == 1);
  BOOST_TEST(j["summary"]["pass"].get<bool>() == false);
  const std::string html = slurp(scratch("rep_a") / "report.html");
  BOOST_TEST(html.find("FAIL") != std::string::npos);
  if (!a.plots.empty()) BOOST_TEST(html.find("data:image/png;base64,") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(save_outputs_mirror_the_trace) {
  const auto path = write_trace("save.h5", Plant::none, 12);
  auto o = quiet();
  o.oracle_rows = -1;
  o.save_outputs = scratch("save_out.h5").string();
  BOOST_TEST(replay_trace(path, o).pass());
  // The outputs file mirrors the groups but holds only outputs: read it with HDF5 directly.
  const hid_t f = H5Fopen(o.save_outputs.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  BOOST_REQUIRE(f >= 0);
  auto dims = [&](const char* name) {
    std::vector<hsize_t> d;
    const hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) return d;
    const hid_t sp = H5Dget_space(ds);
    d.resize(static_cast<std::size_t>(H5Sget_simple_extent_ndims(sp)));
    H5Sget_simple_extent_dims(sp, d.data(), nullptr);
    H5Sclose(sp);
    H5Dclose(ds);
    return d;
  };
  BOOST_TEST((dims("/indexer/L00/topk_reference") == std::vector<hsize_t>{3, 4, 4}));
  BOOST_TEST((dims("/indexer/L00/topk_oracle") == std::vector<hsize_t>{3, 4, 4}));
  BOOST_TEST((dims("/merge/attn/v_reference") == std::vector<hsize_t>{2, 2, 3, 8}));
  BOOST_TEST((dims("/merge/attn/lse_oracle") == std::vector<hsize_t>{2, 2, 3}));
  H5Fclose(f);
}

BOOST_AUTO_TEST_CASE(diagnose_finds_exactly_the_planted_values) {
  // synth plants one NaN and one +inf lse; under strict both rows are findings, under
  // fa2_empty only the NaN one.
  const auto seed = test::seed(3);
  trace::SynthOptions so;
  so.steps = 3;
  so.batch = 3;
  so.layers = 1;
  so.seed = seed;
  so.max_seq_len = 16384;
  so.indexer = false;
  so.compressor = false;
  so.merge_head_dim = 64;
  so.plant = {"nan-lse", "inf-lse"};
  const std::string path = scratch("planted.h5").string();
  trace::synth_trace(path, so);
  const trace::TraceReader r(path);
  std::set<std::tuple<std::string, std::int64_t, std::int64_t, std::int64_t>> nan_rows, inf_rows;
  for (const auto& g : r.groups(trace::GroupKind::merge))
    for (const auto& [key, into] : {std::pair{"planted_nan_lse", &nan_rows}, std::pair{"planted_inf_lse", &inf_rows}}) {
      const auto it = g.attrs.find(key);
      if (it == g.attrs.end()) continue;
      const auto& v = std::get<std::vector<std::int64_t>>(it->second);
      for (std::size_t i = 0; i + 3 < v.size(); i += 4) into->insert({g.path, v[i], v[i + 2], v[i + 3]});
    }
  BOOST_REQUIRE(nan_rows.size() == 1u);
  BOOST_REQUIRE(inf_rows.size() == 1u);
  auto rows_of = [](const std::vector<Finding>& f) {
    std::set<std::tuple<std::string, std::int64_t, std::int64_t, std::int64_t>> s;
    for (const auto& x : f) s.insert({x.group, x.step, x.token, x.head});
    return s;
  };
  const auto strict = diagnose_trace(path);
  auto expected = nan_rows;
  expected.insert(inf_rows.begin(), inf_rows.end());
  BOOST_TEST((rows_of(strict) == expected), "seed " << seed);
  BOOST_TEST(strict.size() == expected.size());
  for (const auto& f : strict) {
    BOOST_TEST(!f.op.empty());
    BOOST_TEST(!f.cause.empty());
    if (inf_rows.count({f.group, f.step, f.token, f.head})) BOOST_TEST(f.avoided_by.find("fa2_empty") != std::string::npos);
  }
  DiagnoseOptions fa2;
  fa2.policy = LsePolicy::fa2_empty;
  BOOST_TEST((rows_of(diagnose_trace(path, fa2)) == nan_rows));
  const auto j = findings_json(strict);
  BOOST_TEST(j["findings"].size() == strict.size());
  BOOST_TEST(j["findings"][0].contains("avoided_by"));
  // A clean trace has no findings.
  BOOST_TEST(diagnose_trace(write_trace("clean_diag.h5", Plant::none, seed)).empty());
  const auto nan_trace = diagnose_trace(write_trace("nan_diag.h5", Plant::merge_lse_nan, seed));
  BOOST_REQUIRE(nan_trace.size() == 1u);
  BOOST_TEST(nan_trace[0].step == 1);
  BOOST_TEST(nan_trace[0].token == 0);
  BOOST_TEST(nan_trace[0].head == 1);
}

BOOST_AUTO_TEST_CASE(cli_exit_codes) {
  const char* bin = std::getenv("DSV4LAB_BINARY_DIR");
  if (!bin || !fs::exists(fs::path(bin) / "dsv4lab")) {
    BOOST_TEST_MESSAGE("DSV4LAB_BINARY_DIR/dsv4lab not found: CLI exit codes not checked");
    return;
  }
  const std::string cli = (fs::path(bin) / "dsv4lab").string();
  auto run = [&](const std::string& args) {
    const std::string cmd = cli + " " + args + " >/dev/null 2>&1";
    const int st = std::system(cmd.c_str());
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  };
  const auto clean = write_trace("cli_clean.h5", Plant::none, 21);
  const auto bad = write_trace("cli_bad.h5", Plant::topk_index, 21);
  const std::string rep = scratch("cli_rep").string();
  BOOST_TEST(run("replay " + clean + " --report " + rep + " --device cpu --no-plots") == 0);
  BOOST_TEST(run("replay " + bad + " --report " + rep + " --device cpu --no-plots") == 1);
  BOOST_TEST(run("replay " + scratch("missing.h5").string() + " --report " + rep + " --no-plots") == 2);
  BOOST_TEST(run("replay " + clean + " --report " + rep + " --ops nonsense --no-plots") == 2);
  BOOST_TEST(run("diagnose " + clean + " --json") == 0);
}

BOOST_AUTO_TEST_CASE(zz_cleanup) {
  std::error_code ec;
  fs::remove_all(scratch("x").parent_path(), ec);
}
