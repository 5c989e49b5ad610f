// Trace reader/writer: bitwise round trips for every dtype and group kind (optional datasets
// present and absent), attributes, deterministic bytes, and bad input (one clear error naming
// file and object, never a crash).
#define BOOST_TEST_MODULE traces_trace
#include <boost/test/unit_test.hpp>

#include "reference/status.hpp"
#include "test_util.hpp"
#include "traces/trace.hpp"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

namespace dsv4::trace {
inline std::ostream& operator<<(std::ostream& o, DType t) { return o << to_string(t); }
}  // namespace dsv4::trace

using namespace dsv4;
using namespace dsv4::trace;
namespace fs = std::filesystem;

namespace {

void write_bytes(const std::string& p, const std::vector<char>& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(b.data(), static_cast<std::streamsize>(b.size()));
}

/// Random bit patterns (NaN payloads, ±inf, ±0 and subnormals included; the first
/// elements are forced to specials).
Array random_array(DType t, std::vector<std::uint64_t> shape, std::mt19937_64& g) {
  Array a(t, std::move(shape));
  auto* p = static_cast<unsigned char*>(a.data());
  for (std::size_t i = 0; i < a.bytes(); ++i) p[i] = static_cast<unsigned char>(g());
  if (t == DType::f32 && a.size() >= 6) {
    auto v = a.view<float>();
    const std::uint32_t specials[] = {0x7fc00001u, 0xff800000u, 0x7f800000u, 0x80000000u, 0x00000001u, 0xffffffffu};
    for (int i = 0; i < 6; ++i) v[static_cast<std::size_t>(i)] = num::from_bits(specials[i]);
  }
  if ((t == DType::bf16 || t == DType::f16) && a.size() >= 4) {
    auto v = a.view<std::uint16_t>();
    const std::uint16_t specials[] = {0x7fc1, 0xff80, 0x8000, 0x0001};
    for (int i = 0; i < 4; ++i) v[static_cast<std::size_t>(i)] = specials[i];
  }
  return a;
}

bool same_bits(const Array& a, const Array& b) {
  return a.dtype == b.dtype && a.shape == b.shape && std::memcmp(a.data(), b.data(), a.bytes()) == 0;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

std::vector<std::int32_t> random_indices(std::size_t n, std::int32_t cols, std::mt19937_64& g) {
  std::vector<std::int32_t> v(n);
  for (auto& x : v) x = static_cast<std::int32_t>(g() % static_cast<std::uint64_t>(cols + 1)) - 1;  // -1 .. cols-1
  return v;
}

Provenance prov(std::int64_t seed = 7) {
  Provenance p;
  p.producer = "dsv4lab tests";
  p.model = "test-model";
  p.seed = seed;
  p.notes = "round trip";
  return p;
}

/// Runs fn, requires a dsv4::Error of `code` whose message contains every string in `parts`.
template <class Fn>
void require_error(Fn&& fn, Errc code, std::initializer_list<std::string> parts) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string msg = e.what();
    BOOST_TEST_INFO("message: " << msg);
    BOOST_CHECK(e.code() == code);
    BOOST_CHECK(msg.find('\n') == std::string::npos);
    for (const auto& p : parts) BOOST_CHECK_MESSAGE(msg.find(p) != std::string::npos, "'" << p << "' not in: " << msg);
    return;
  }
  BOOST_FAIL("no dsv4::Error thrown");
}

}  // namespace

BOOST_AUTO_TEST_CASE(indexer_round_trip_every_logit_dtype) {
  test::TempDir tmp("trace");
  for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
    for (bool optional : {true, false}) {
      const std::uint64_t seed = test::seed(100 + static_cast<int>(dt) * 2 + optional);
      BOOST_TEST_CONTEXT("dtype " << to_string(dt) << " optional " << optional << " seed " << seed) {
        std::mt19937_64 g(seed);
        IndexerConfig cfg;
        cfg.k = 7;
        cfg.compress_ratio = 4;
        cfg.next_n = 2;
        cfg.batch = 3;
        cfg.cols = 65;
        cfg.logit_dtype = dt;
        cfg.has_pre_idx = optional;
        cfg.has_topk = optional;
        cfg.extra["note"] = std::string("layer two");
        const std::string path = tmp("ix.h5");
        std::vector<IndexerStep> steps;
        {
          TraceWriter w(path, prov(), WriteOptions{optional, 1});
          IndexerWriter iw = w.add_indexer("L02", cfg);
          for (int s = 0; s < 3; ++s) {
            IndexerStep st;
            st.logits = random_array(dt, {cfg.rows(), cfg.cols}, g);
            st.seq_lens = {static_cast<std::int32_t>(4 * 65 + 1), 2, static_cast<std::int32_t>(g() % 200 + 2)};
            if (optional) {
              st.pre_idx = random_indices(cfg.batch * 7, 65, g);
              st.topk = random_indices(cfg.rows() * 7, 65, g);
            }
            iw.append(st);
            steps.push_back(std::move(st));
          }
          w.close();
        }
        TraceReader r(path);
        BOOST_TEST(r.provenance().producer == "dsv4lab tests");
        BOOST_TEST(*r.provenance().seed == 7);
        BOOST_TEST(r.provenance().notes == "round trip");
        BOOST_REQUIRE(r.groups().size() == 1u);
        BOOST_TEST(r.groups()[0].path == "/indexer/L02");
        BOOST_TEST(r.groups()[0].steps == 3u);
        IndexerGroup ig = r.indexer("L02");
        const auto& c = ig.config();
        BOOST_TEST(c.k == 7);
        BOOST_TEST(c.compress_ratio == 4);
        BOOST_TEST(c.next_n == 2);
        BOOST_TEST(c.batch == 3u);
        BOOST_TEST(c.cols == 65u);
        BOOST_TEST(c.logit_dtype == dt);
        BOOST_TEST(c.has_pre_idx == optional);
        BOOST_TEST(c.has_topk == optional);
        BOOST_TEST(std::get<std::string>(c.extra.at("note")) == "layer two");
        for (std::uint64_t s = 0; s < 3; ++s) {
          const IndexerStep st = ig.read_step(s);
          BOOST_TEST(same_bits(st.logits, steps[s].logits));
          BOOST_TEST(st.seq_lens == steps[s].seq_lens);
          BOOST_TEST(st.pre_idx.has_value() == optional);
          if (optional) {
            BOOST_TEST(*st.pre_idx == *steps[s].pre_idx);
            BOOST_TEST(*st.topk == *steps[s].topk);
          }
        }
        require_error([&] { (void)ig.read_step(3); }, Errc::bad_input, {path, "/indexer/L02", "step 3"});
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(merge_round_trip) {
  test::TempDir tmp("trace");
  for (DType dt : {DType::f32, DType::bf16}) {
    for (bool optional : {true, false}) {
      const std::uint64_t seed = test::seed(200 + static_cast<int>(dt) * 2 + optional);
      BOOST_TEST_CONTEXT("v dtype " << to_string(dt) << " optional " << optional << " seed " << seed) {
        std::mt19937_64 g(seed);
        MergeConfig cfg;
        cfg.splits = optional ? 2 : 5;
        cfg.tokens = 7;
        cfg.heads = 3;
        cfg.head_dim = 65;
        cfg.v_dtype = dt;
        if (optional) {
          cfg.scopes = {"swa", "compressed"};
          cfg.sink = std::vector<float>{0.5f, -std::numeric_limits<float>::infinity(), 3.0f};
          cfg.has_v = cfg.has_lse = true;
        } else {
          cfg.has_num_splits = true;
        }
        const std::string path = tmp("m.h5");
        std::vector<MergeStep> steps;
        {
          TraceWriter w(path, prov());
          MergeWriter mw = w.add_merge("dual", cfg);
          for (int s = 0; s < 2; ++s) {
            MergeStep st;
            st.v_partial = random_array(dt, {cfg.splits, cfg.tokens, cfg.heads, cfg.head_dim}, g);
            Array l = random_array(DType::f32, {cfg.splits * cfg.tokens * cfg.heads}, g);
            auto lv = l.view<float>();
            st.lse_partial.assign(lv.begin(), lv.end());
            if (cfg.has_num_splits) {
              st.num_splits = std::vector<std::int32_t>(cfg.tokens);
              for (auto& n : *st.num_splits) n = static_cast<std::int32_t>(g() % (cfg.splits + 1));
            }
            if (cfg.has_v) st.v = random_array(dt, {cfg.tokens, cfg.heads, cfg.head_dim}, g);
            if (cfg.has_lse) {
              Array a = random_array(DType::f32, {cfg.tokens * cfg.heads}, g);
              st.lse = std::vector<float>(a.view<float>().begin(), a.view<float>().end());
            }
            mw.append(st);
            steps.push_back(std::move(st));
          }
        }  // destructor closes
        TraceReader r(path);
        MergeGroup mg = r.merge("dual");
        const auto& c = mg.config();
        BOOST_TEST(c.splits == cfg.splits);
        BOOST_TEST(c.tokens == 7u);
        BOOST_TEST(c.heads == 3u);
        BOOST_TEST(c.head_dim == 65u);
        BOOST_TEST(c.v_dtype == dt);
        BOOST_TEST(c.scopes == cfg.scopes);
        BOOST_TEST(c.lse_base == "e");
        BOOST_TEST(c.sink.has_value() == optional);
        if (optional) BOOST_TEST(same_bits(*c.sink, *cfg.sink));
        BOOST_TEST(mg.steps() == 2u);
        for (std::uint64_t s = 0; s < 2; ++s) {
          const MergeStep st = mg.read_step(s);
          BOOST_TEST(same_bits(st.v_partial, steps[s].v_partial));
          BOOST_TEST(same_bits(st.lse_partial, steps[s].lse_partial));
          BOOST_TEST(st.num_splits.has_value() == !optional);
          if (!optional) BOOST_TEST(*st.num_splits == *steps[s].num_splits);
          BOOST_TEST(st.v.has_value() == optional);
          if (optional) {
            BOOST_TEST(same_bits(*st.v, *steps[s].v));
            BOOST_TEST(same_bits(*st.lse, *steps[s].lse));
          }
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(compressor_round_trip) {
  test::TempDir tmp("trace");
  struct Case {
    int hd, cr, nn;
    DType kv, state, out;
    bool optional;
  };
  const Case cases[] = {{128, 4, 1, DType::bf16, DType::f32, DType::bf16, true},
                        {128, 128, 3, DType::f32, DType::bf16, DType::f32, false},
                        {512, 4, 8, DType::f32, DType::f32, DType::f32, false},
                        {128, 128, 5, DType::bf16, DType::bf16, DType::bf16, true}};
  for (const auto& k : cases) {
    const std::uint64_t seed = test::seed(300 + static_cast<std::uint64_t>(k.hd + k.cr + k.nn));
    BOOST_TEST_CONTEXT("HD " << k.hd << " CR " << k.cr << " NN " << k.nn << " seed " << seed) {
      std::mt19937_64 g(seed);
      CompressorConfig cfg;
      cfg.head_dim = k.hd;
      cfg.compress_ratio = k.cr;
      cfg.next_n = k.nn;
      cfg.batch = 3;
      cfg.kv_dtype = k.kv;
      cfg.state_dtype = k.state;
      cfg.out_dtype = k.out;
      cfg.has_out = cfg.has_new_state = k.optional;
      const auto sd = static_cast<std::uint64_t>(cfg.state_dim());
      const auto win = static_cast<std::uint64_t>(cfg.state_window());
      Array ape = random_array(DType::f32, {static_cast<std::uint64_t>(k.cr) * sd}, g);
      cfg.ape.assign(ape.view<float>().begin(), ape.view<float>().end());
      const std::string path = tmp("c.h5");
      std::vector<CompressorStep> steps;
      {
        TraceWriter w(path, prov());
        CompressorWriter cw = w.add_compressor("kv", cfg);
        for (int s = 0; s < 3; ++s) {
          CompressorStep st;
          st.kv_score = random_array(k.kv, {cfg.tokens(), 2 * sd}, g);
          for (std::uint64_t b = 0; b < cfg.batch; ++b) {
            const auto len = static_cast<std::int32_t>(k.nn + static_cast<int>(g() % 1000));
            st.kv_len.push_back(len);
            st.state_base.push_back(static_cast<std::int32_t>(compressor_state_base(cfg, len)));
          }
          st.state_kv = random_array(k.state, {cfg.batch, win, sd}, g);
          st.state_score = random_array(k.state, {cfg.batch, win, sd}, g);
          if (k.optional) {
            st.out = random_array(k.out, {cfg.batch, static_cast<std::uint64_t>(cfg.max_outputs()), static_cast<std::uint64_t>(k.hd)}, g);
            st.new_state_kv = random_array(k.state, {cfg.tokens(), sd}, g);
            st.new_state_score = random_array(k.state, {cfg.tokens(), sd}, g);
          }
          cw.append(st);
          steps.push_back(std::move(st));
        }
        w.close();
      }
      TraceReader r(path);
      CompressorGroup cg = r.compressor("kv");
      const auto& c = cg.config();
      BOOST_TEST(c.head_dim == k.hd);
      BOOST_TEST(c.compress_ratio == k.cr);
      BOOST_TEST(c.next_n == k.nn);
      BOOST_TEST(c.batch == 3u);
      BOOST_TEST((c.kv_dtype == k.kv && c.state_dtype == k.state && c.out_dtype == k.out));
      BOOST_TEST(same_bits(c.ape, cfg.ape));
      BOOST_TEST(c.has_out == k.optional);
      for (std::uint64_t s = 0; s < 3; ++s) {
        const CompressorStep st = cg.read_step(s);
        BOOST_TEST(same_bits(st.kv_score, steps[s].kv_score));
        BOOST_TEST(st.kv_len == steps[s].kv_len);
        BOOST_TEST(st.state_base == steps[s].state_base);
        BOOST_TEST(same_bits(st.state_kv, steps[s].state_kv));
        BOOST_TEST(same_bits(st.state_score, steps[s].state_score));
        BOOST_TEST(st.out.has_value() == k.optional);
        if (k.optional) {
          BOOST_TEST(same_bits(*st.out, *steps[s].out));
          BOOST_TEST(same_bits(*st.new_state_kv, *steps[s].new_state_kv));
          BOOST_TEST(same_bits(*st.new_state_score, *steps[s].new_state_score));
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(state_base_formula) {
  CompressorConfig c4;
  c4.compress_ratio = 4;
  c4.next_n = 1;
  // kv_len 9, NN 1: new position 8 completes window 2 (positions 8..11 B-half, 4..7 A-half).
  BOOST_TEST(compressor_state_base(c4, 9) == 4);
  BOOST_TEST(compressor_state_base(c4, 1) == 0);
  BOOST_TEST(compressor_state_base(c4, 4) == 0);
  BOOST_TEST(compressor_state_base(c4, 8) == 0);  // first new position 7, window 1: A-half 0..3
  c4.next_n = 3;
  BOOST_TEST(compressor_state_base(c4, 12) == 4);  // positions 9..11 new, window 2 starts at A-half 4
  CompressorConfig c128;
  c128.compress_ratio = 128;
  c128.next_n = 2;
  BOOST_TEST(compressor_state_base(c128, 130) == 128);
  BOOST_TEST(compressor_state_base(c128, 129) == 0);
  BOOST_TEST(c4.state_window() == 8);
  BOOST_TEST(c128.state_window() == 128);
}

BOOST_AUTO_TEST_CASE(attributes_round_trip_and_inspect) {
  test::TempDir tmp("trace");
  Provenance p = prov(-5);
  p.extra["an_int"] = std::int64_t{-3};
  p.extra["a_double"] = 2.5;
  p.extra["empty"] = std::string();
  p.extra["utf8"] = std::string("Δ lse ≥ 0");
  p.extra["ints"] = std::vector<std::int64_t>{1, -2, 3};
  p.extra["doubles"] = std::vector<double>{0.25, -1e300};
  const std::string path = tmp("a.h5");
  {
    TraceWriter w(path, p);
    IndexerConfig cfg;
    cfg.k = 2;
    cfg.batch = 1;
    cfg.cols = 3;
    cfg.extra["planted_ties"] = std::vector<std::int64_t>{0, 0, 4, 1, 0, 2};
    IndexerWriter iw = w.add_indexer("L00", cfg);
    IndexerStep st;
    st.logits = Array(DType::f32, {1, 3});
    st.seq_lens = {3};
    iw.append(st);
  }
  TraceReader r(path);
  const auto& e = r.provenance().extra;
  BOOST_TEST(*r.provenance().seed == -5);
  BOOST_TEST(std::get<std::int64_t>(e.at("an_int")) == -3);
  BOOST_TEST(std::get<double>(e.at("a_double")) == 2.5);
  BOOST_TEST(std::get<std::string>(e.at("empty")) == "");
  BOOST_TEST(std::get<std::string>(e.at("utf8")) == "Δ lse ≥ 0");
  BOOST_TEST((std::get<std::vector<std::int64_t>>(e.at("ints")) == std::vector<std::int64_t>{1, -2, 3}));
  BOOST_TEST((std::get<std::vector<double>>(e.at("doubles")) == std::vector<double>{0.25, -1e300}));
  const auto& ga = r.groups()[0].attrs;
  BOOST_TEST((std::get<std::vector<std::int64_t>>(ga.at("planted_ties")) == std::vector<std::int64_t>{0, 0, 4, 1, 0, 2}));
  const std::string text = describe(r);
  BOOST_TEST(text.find("/indexer/L00") != std::string::npos);
  BOOST_TEST(text.find("logits") != std::string::npos);
  const std::string json = describe_json(r);
  BOOST_TEST(json.find("\"format_version\": 1") != std::string::npos);
  BOOST_TEST(json.find("\"planted_ties\"") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(same_calls_same_bytes) {
  test::TempDir tmp("trace");
  auto write = [&](const std::string& path, bool compress) {
    std::mt19937_64 g(test::seed(9));
    TraceWriter w(path, prov(), WriteOptions{compress, 1});
    MergeConfig cfg;
    cfg.splits = 2;
    cfg.tokens = 2;
    cfg.heads = 2;
    cfg.head_dim = 8;
    MergeWriter mw = w.add_merge("m", cfg);
    for (int s = 0; s < 3; ++s) {
      MergeStep st;
      st.v_partial = random_array(DType::f32, {2, 2, 2, 8}, g);
      st.lse_partial.assign(8, 1.0f);
      mw.append(st);
    }
  };
  for (bool compress : {true, false}) {
    write(tmp("x1.h5"), compress);
    ::sleep(1);  // a timestamp would now differ
    write(tmp("x2.h5"), compress);
    BOOST_TEST((test::read_bytes(tmp("x1.h5")) == test::read_bytes(tmp("x2.h5"))), "compress " << compress);
  }
}

BOOST_AUTO_TEST_CASE(writer_rejects_bad_steps) {
  test::TempDir tmp("trace");
  TraceWriter w(tmp("w.h5"), prov());
  IndexerConfig cfg;
  cfg.k = 4;
  cfg.batch = 2;
  cfg.cols = 10;
  cfg.compress_ratio = 4;
  IndexerWriter iw = w.add_indexer("L00", cfg);
  IndexerStep st;
  st.logits = Array(DType::f32, {2, 10});
  st.seq_lens = {40, 44};  // N = 10, 11 > cols
  require_error([&] { iw.append(st); }, Errc::bad_input, {"row 1", "N_r = 11"});
  st.seq_lens = {40, 40};
  st.logits = Array(DType::f32, {2, 9});
  require_error([&] { iw.append(st); }, Errc::bad_input, {"/indexer/L00/logits", "[2, 10]"});
  st.logits = Array(DType::bf16, {2, 10});
  require_error([&] { iw.append(st); }, Errc::bad_input, {"bfloat16", "float32"});
  require_error([&] { w.add_indexer("L00", cfg); }, Errc::bad_input, {"/indexer/L00", "already exists"});
  require_error([&] { w.add_indexer("a/b", cfg); }, Errc::bad_input, {"bad group name"});
}

// ---- bad input -------------------------------------------------------------------------------

namespace {

/// A valid one-group indexer trace at `path` (cols 16, k 4, batch 2).
void write_small(const std::string& path, int format_version = 1) {
  Provenance p = prov();
  p.format_version = format_version;
  TraceWriter w(path, p);
  IndexerConfig cfg;
  cfg.k = 4;
  cfg.batch = 2;
  cfg.cols = 16;
  cfg.has_pre_idx = true;
  IndexerWriter iw = w.add_indexer("L00", cfg);
  for (int s = 0; s < 2; ++s) {
    IndexerStep st;
    st.logits = Array(DType::f32, {2, 16});
    st.seq_lens = {16, 5};
    st.pre_idx = std::vector<std::int32_t>{0, 1, 2, 3, 4, -1, -1, -1};
    iw.append(st);
  }
}

/// An indexer group written dataset by dataset (to build malformed layouts).
struct RawIndexer {
  TraceWriter w;
  explicit RawIndexer(const std::string& path) : w(path, prov()) {
    GroupInfo gi;
    gi.kind = GroupKind::indexer;
    gi.name = "L07";
    gi.attrs = {{"k", std::int64_t{4}}, {"compress_ratio", std::int64_t{1}}, {"next_n", std::int64_t{1}}};
    w.mirror_group(gi);
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(bad_files_give_one_line_errors) {
  test::TempDir tmp("trace");
  require_error([&] { TraceReader r(tmp("missing.h5")); }, Errc::io, {"missing.h5", "no such file"});
  require_error([&] { TraceReader r(tmp.dir.string()); }, Errc::io, {"is a directory"});
  write_bytes(tmp("text.h5"), std::vector<char>{'h', 'e', 'l', 'l', 'o', '\n'});
  require_error([&] { TraceReader r(tmp("text.h5")); }, Errc::bad_input, {"text.h5", "not an HDF5 file"});
  write_bytes(tmp("empty.h5"), {});
  require_error([&] { TraceReader r(tmp("empty.h5")); }, Errc::bad_input, {"empty.h5"});

  write_small(tmp("ok.h5"));
  const auto bytes = test::read_bytes(tmp("ok.h5"));
  {
    TraceReader r(tmp("ok.h5"));  // the baseline is valid
    BOOST_TEST(r.indexer("L00").read_step(1).seq_lens[1] == 5);
  }
  for (double frac : {0.9, 0.5, 0.1}) {
    const std::vector<char> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(bytes.size() * frac));
    write_bytes(tmp("cut.h5"), cut);
    BOOST_TEST_CONTEXT("truncated to " << frac) {
      require_error(
          [&] {
            TraceReader r(tmp("cut.h5"));
            auto g = r.indexer("L00");
            for (std::uint64_t s = 0; s < g.steps(); ++s) (void)g.read_step(s);
          },
          Errc::bad_input, {"cut.h5"});
    }
  }

  write_small(tmp("v2.h5"), 2);
  require_error([&] { TraceReader r(tmp("v2.h5")); }, Errc::bad_input, {"v2.h5", "format_version 2", "newer"});
  require_error([&] { TraceReader r(tmp("ok.h5")); (void)r.merge("x"); }, Errc::bad_input, {"/merge/x"});
}

BOOST_AUTO_TEST_CASE(bad_layouts_name_the_object) {
  test::TempDir tmp("trace");
  {  // missing dataset
    RawIndexer raw(tmp("nolens.h5"));
    raw.w.step_dataset("/indexer/L07", "logits", DType::f32, {2, 8}).append(Array(DType::f32, {2, 8}));
  }
  require_error([&] { TraceReader r(tmp("nolens.h5")); }, Errc::bad_input, {"nolens.h5", "/indexer/L07/seq_lens", "missing dataset"});
  {  // wrong dtype
    RawIndexer raw(tmp("dtype.h5"));
    raw.w.step_dataset("/indexer/L07", "logits", DType::f32, {2, 8}).append(Array(DType::f32, {2, 8}));
    raw.w.step_dataset("/indexer/L07", "seq_lens", DType::f32, {2}).append(Array(DType::f32, {2}));
  }
  require_error([&] { TraceReader r(tmp("dtype.h5")); }, Errc::bad_input, {"/indexer/L07/seq_lens", "wrong dtype float32", "int32"});
  {  // wrong shape
    RawIndexer raw(tmp("shape.h5"));
    raw.w.step_dataset("/indexer/L07", "logits", DType::f32, {2, 8}).append(Array(DType::f32, {2, 8}));
    raw.w.step_dataset("/indexer/L07", "seq_lens", DType::i32, {3}).append(Array(DType::i32, {3}));
  }
  require_error([&] { TraceReader r(tmp("shape.h5")); }, Errc::bad_input, {"/indexer/L07/seq_lens", "wrong shape [1, 3]"});
  {  // step counts differ
    RawIndexer raw(tmp("steps.h5"));
    auto l = raw.w.step_dataset("/indexer/L07", "logits", DType::f32, {2, 8});
    l.append(Array(DType::f32, {2, 8}));
    l.append(Array(DType::f32, {2, 8}));
    raw.w.step_dataset("/indexer/L07", "seq_lens", DType::i32, {2}).append(Array(DType::i32, {2}));
  }
  require_error([&] { TraceReader r(tmp("steps.h5")); }, Errc::bad_input, {"/indexer/L07/seq_lens", "1 steps", "2"});
  {  // seq_lens imply more columns than stored
    RawIndexer raw(tmp("long.h5"));
    raw.w.step_dataset("/indexer/L07", "logits", DType::f32, {2, 8}).append(Array(DType::f32, {2, 8}));
    raw.w.step_dataset("/indexer/L07", "seq_lens", DType::i32, {2}).append(std::vector<std::int32_t>{8, 9});
  }
  // checked at open (the per-step lengths are small), and again by read_step
  require_error([&] { TraceReader r(tmp("long.h5")); }, Errc::bad_input,
                {"long.h5", "/indexer/L07/seq_lens", "step 0 row 1", "9 columns", "store 8"});
  {  // missing group attribute
    TraceWriter w(tmp("noattr.h5"), prov());
    GroupInfo gi;
    gi.kind = GroupKind::indexer;
    gi.name = "L01";
    gi.attrs = {{"k", std::int64_t{4}}, {"next_n", std::int64_t{1}}};
    w.mirror_group(gi);
  }
  require_error([&] { TraceReader r(tmp("noattr.h5")); }, Errc::bad_input, {"/indexer/L01", "compress_ratio"});
  {  // hint index out of range
    RawIndexer raw(tmp("hint.h5"));
    raw.w.step_dataset("/indexer/L07", "logits", DType::f32, {2, 8}).append(Array(DType::f32, {2, 8}));
    raw.w.step_dataset("/indexer/L07", "seq_lens", DType::i32, {2}).append(std::vector<std::int32_t>{8, 8});
    raw.w.step_dataset("/indexer/L07", "pre_idx", DType::i32, {2, 4}).append(std::vector<std::int32_t>{0, 1, 2, 3, 4, 5, 6, 8});
  }
  {
    TraceReader r(tmp("hint.h5"));
    auto g = r.indexer("L07");
    require_error([&] { (void)g.read_step(0); }, Errc::bad_input, {"/indexer/L07/pre_idx", "row 1", "index 8"});
  }
}

BOOST_AUTO_TEST_CASE(save_outputs_mirror) {
  test::TempDir tmp("trace");
  write_small(tmp("in.h5"));
  TraceReader in(tmp("in.h5"));
  {
    TraceWriter out(tmp("out.h5"), in.provenance());
    for (const auto& gi : in.groups()) {
      out.mirror_group(gi);
      auto g = in.indexer(gi.name);
      StepDataset ref = out.step_dataset(gi.path, "topk_reference", DType::i32, {g.config().rows(), 4});
      for (std::uint64_t s = 0; s < g.steps(); ++s) ref.append(std::vector<std::int32_t>{0, 1, 2, 3, 0, 1, 2, 3});
    }
  }
  // topk_reference alone is not a valid indexer group: a trace reader refuses it ...
  require_error([&] { TraceReader r(tmp("out.h5")); }, Errc::bad_input, {"/indexer/L00/logits", "missing dataset"});
  // ... the outputs mode lists it and reads it step by step.
  TraceReader r(tmp("out.h5"), ReadMode::outputs);
  BOOST_REQUIRE(r.groups().size() == 1u);
  const auto& g = r.groups()[0];
  BOOST_TEST(g.path == "/indexer/L00");
  BOOST_TEST(g.steps == 2u);
  BOOST_TEST(std::get<std::int64_t>(g.attrs.at("k")) == 4);
  BOOST_REQUIRE(g.datasets.size() == 1u);
  BOOST_TEST(g.datasets[0].name == "topk_reference");
  const Array a = r.read_dataset_step(g, "topk_reference", 1);
  BOOST_TEST((a.shape == std::vector<std::uint64_t>{2, 4}));
  BOOST_TEST(a.view<std::int32_t>()[7] == 3);
}
