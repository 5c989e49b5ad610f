// Indexer top-k: hand-checked semantics (total order, row lengths, padding), the fast
// reference against the sorting oracle on random and edge fixtures, and bad-input errors.
#define BOOST_TEST_MODULE reference_topk
#include <boost/test/unit_test.hpp>

#include "reference/status.hpp"
#include "reference/topk.hpp"
#include "reference/topk_fixtures.hpp"
#include "test_util.hpp"

#include <functional>
#include <string>
#include <vector>

using namespace dsv4;
using test::TopkCase;

namespace {

std::vector<std::int32_t> run_oracle(const TopkCase& c) {
  std::vector<std::int32_t> out(static_cast<std::size_t>(c.rows * c.k), -7);
  topk_oracle(c.problem(), out.data());
  return out;
}

std::vector<std::int32_t> run_reference(const TopkCase& c) {
  std::vector<std::int32_t> out(static_cast<std::size_t>(c.rows * c.k), -7);
  topk_reference(c.problem(), out.data());
  return out;
}

/// One f32 row of the given values, N_r = values.size() (next_n 1, ratio 1).
TopkCase row_case(const std::vector<std::uint32_t>& bits, int k, LogitDtype dt = LogitDtype::f32) {
  TopkCase c = test::make_case("hand", dt, 1, 1, 1, k, static_cast<std::int64_t>(bits.size()));
  for (std::size_t j = 0; j < bits.size(); ++j) c.set_bits(0, static_cast<std::int64_t>(j), bits[j]);
  c.seq_lens[0] = static_cast<std::int32_t>(bits.size());
  return c;
}

/// Both implementations must give `want`.
void expect_both(const TopkCase& c, const std::vector<std::int32_t>& want) {
  const auto o = run_oracle(c);
  const auto r = run_reference(c);
  BOOST_TEST(o == want, boost::test_tools::per_element());
  BOOST_TEST(r == want, boost::test_tools::per_element());
}

/// Reference == oracle, and the shape properties hold.
void check_case(const TopkCase& c, std::uint64_t seed) {
  const auto o = run_oracle(c);
  const auto r = run_reference(c);
  const std::string shape = test::check_shape(c, o);
  BOOST_REQUIRE_MESSAGE(shape.empty(), c.describe() << " seed " << seed << ": oracle output malformed: " << shape);
  const std::string d = test::first_diff(r, o, c.k);
  BOOST_REQUIRE_MESSAGE(d.empty(), c.describe() << " seed " << seed << ": reference != oracle at " << d);
}

void expect_bad_input(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
  } catch (const Error& e) {
    BOOST_TEST((e.code() == Errc::bad_input));
    BOOST_TEST_MESSAGE(e.what());
    BOOST_TEST(std::string(e.what()).find(needle) != std::string::npos, "message '" << e.what() << "' lacks '" << needle << "'");
    return;
  }
  BOOST_ERROR("no error thrown; expected one naming '" << needle << "'");
}

}  // namespace

BOOST_AUTO_TEST_CASE(key_is_monotone_in_the_total_order) {
  // Walk a list sorted best-first by hand; keys must strictly decrease.
  const std::vector<std::uint32_t> best_first = {0x7f800000u /*+inf*/, 0x7f7fffffu, 0x3f800000u, 0x00000001u,
                                                 0x00000000u /*+0*/,   0x80000000u /*-0*/, 0x80000001u,
                                                 0xbf800000u,          0xff7fffffu, 0xff800000u /*-inf*/};
  for (std::size_t i = 1; i < best_first.size(); ++i)
    BOOST_TEST(topk_key(best_first[i - 1]) > topk_key(best_first[i]), "at " << i);
  for (std::uint32_t nan : {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xffffffffu, 0x7fffffffu}) {
    BOOST_TEST(topk_key(nan) == 0u);
    BOOST_TEST(topk_key(0xff800000u) > topk_key(nan));
  }
}

BOOST_AUTO_TEST_CASE(total_order_by_hand) {
  //                       0: 1.0        1: NaN       2: -inf      3: +0  4: -0        5: 3.0       6: -NaN      7: +inf
  const std::vector<std::uint32_t> row = {0x3f800000u, 0x7fc00000u, 0xff800000u, 0x0u, 0x80000000u, 0x40400000u, 0xffc00000u, 0x7f800000u};
  expect_both(row_case(row, 1), {7});
  expect_both(row_case(row, 4), {0, 3, 5, 7});
  expect_both(row_case(row, 5), {0, 3, 4, 5, 7});
  expect_both(row_case(row, 6), {0, 2, 3, 4, 5, 7});
  expect_both(row_case(row, 7), {0, 1, 2, 3, 4, 5, 7});  // the NaN with the smaller index
  // N_r = K: everything, in column order; N_r < K: then -1.
  expect_both(row_case(row, 8), {0, 1, 2, 3, 4, 5, 6, 7});
  expect_both(row_case(row, 10), {0, 1, 2, 3, 4, 5, 6, 7, -1, -1});
}

BOOST_AUTO_TEST_CASE(equal_values_prefer_smaller_index) {
  expect_both(row_case(std::vector<std::uint32_t>(10, 0x40000000u), 3), {0, 1, 2});
  // Ties at the K-th value: 5.0 at 1 and 8 is above; 2.0 at 0, 3, 6, 9 compete for two slots.
  std::vector<std::uint32_t> r(10, 0xbf800000u);
  r[1] = r[8] = 0x40a00000u;
  r[0] = r[3] = r[6] = r[9] = 0x40000000u;
  expect_both(row_case(r, 4), {0, 1, 3, 8});
  // -0 plateau wider than K below a single +0.
  std::vector<std::uint32_t> z(9, 0x80000000u);
  z[7] = 0x0u;
  expect_both(row_case(z, 3), {0, 1, 7});
}

BOOST_AUTO_TEST_CASE(half_precision_upcast_exactly) {
  // bf16 by column: NaN (payload), -0, min subnormal, 1.0, +0, -inf, -NaN, max, +inf.
  const std::vector<std::uint32_t> b = {0x7f81u, 0x8000u, 0x0001u, 0x3f80u, 0x0000u, 0xff80u, 0xffc0u, 0x7f7fu, 0x7f80u};
  expect_both(row_case(b, 3, LogitDtype::bf16), {3, 7, 8});
  expect_both(row_case(b, 5, LogitDtype::bf16), {2, 3, 4, 7, 8});
  expect_both(row_case(b, 7, LogitDtype::bf16), {1, 2, 3, 4, 5, 7, 8});
  expect_both(row_case(b, 8, LogitDtype::bf16), {0, 1, 2, 3, 4, 5, 7, 8});
  // fp16: the smallest subnormal (2^-24) ranks above +0; 65504 above 1.0; NaN below -inf.
  const std::vector<std::uint32_t> h = {0x0000u, 0x0001u, 0x7e00u, 0xfc00u, 0x3c00u, 0x7bffu, 0x8000u};
  expect_both(row_case(h, 3, LogitDtype::f16), {1, 4, 5});
  expect_both(row_case(h, 4, LogitDtype::f16), {0, 1, 4, 5});
  expect_both(row_case(h, 6, LogitDtype::f16), {0, 1, 3, 4, 5, 6});
}

BOOST_AUTO_TEST_CASE(row_length_formula) {
  // seq_lens {10, 13}, next_n 2, ratio 4: N = floor((s - 2 + t + 1) / 4).
  TopkCase c = test::make_case("len", LogitDtype::f32, 2, 2, 4, 1, 3);
  c.seq_lens = {10, 13};
  const TopkProblem p = c.problem();
  BOOST_TEST(topk_row_length(p, 0) == 2);  // 9 / 4
  BOOST_TEST(topk_row_length(p, 1) == 2);  // 10 / 4
  BOOST_TEST(topk_row_length(p, 2) == 3);  // 12 / 4
  BOOST_TEST(topk_row_length(p, 3) == 3);  // 13 / 4
  // Floor, not truncation: a numerator of -1 gives N = -1 (bad input), not 0.
  BOOST_TEST(topk_row_length_unchecked(0, 0, 2, 4) == -1);
  BOOST_TEST(topk_row_length_unchecked(1, 0, 2, 4) == 0);
  BOOST_TEST(topk_row_length_unchecked(0, 1, 2, 4) == 0);
  // Values beyond N_r are +inf and must be ignored; N_r = 2 < k = 3 pads with -1.
  c.k = 3;
  for (std::int64_t r = 0; r < c.rows; ++r)
    for (std::int64_t j = 0; j < c.cols; ++j) c.set(r, j, static_cast<float>(j));
  test::poison_tail(c);
  expect_both(c, {0, 1, -1, 0, 1, -1, 0, 1, 2, 0, 1, 2});
  c.k = 2;
  expect_both(c, {0, 1, 0, 1, 1, 2, 1, 2});
}

BOOST_AUTO_TEST_CASE(n_around_k) {
  const std::uint64_t s = test::seed(31);
  std::mt19937_64 rng(s);
  for (LogitDtype dt : {LogitDtype::f32, LogitDtype::bf16, LogitDtype::f16}) {
    for (int k : {1, 512, 2048}) {
      for (int delta : {-1, 0, 1, 2}) {
        for (int kind : {0, 1, 2}) {
          TopkCase c = test::make_case("n_around_k", dt, 3, 1, 1, k, k + 5, 3);
          test::fill_kind(c, rng, kind);
          for (auto& sl : c.seq_lens) sl = std::max(0, k + delta);
          test::poison_tail(c);
          check_case(c, s);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(random_and_edge_fixtures_match_oracle) {
  const int seeds = test::seed_count(2);
  for (int si = 0; si < seeds; ++si) {
    const std::uint64_t s = test::seed(1000 + static_cast<std::uint64_t>(si));
    std::mt19937_64 rng(s);
    for (LogitDtype dt : {LogitDtype::f32, LogitDtype::bf16, LogitDtype::f16}) {
      for (std::int64_t cols : {7, 65, 4099}) {
        for (int kind = 0; kind <= 4; ++kind) {
          const int next_n = 1 + static_cast<int>(rng() % 4);
          const int ratio = rng() % 2 ? 4 : 1;
          const int ks[] = {1, 5, 64, 512, 2048};
          const int k = ks[rng() % 5];
          TopkCase c = test::make_case("random kind " + std::to_string(kind), dt, 3, next_n, ratio, k, cols,
                                       static_cast<std::int64_t>(rng() % 3));
          test::fill_kind(c, rng, kind);
          test::random_seq_lens(c, rng);
          test::poison_tail(c);
          check_case(c, s);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(zero_plateau_wider_than_k) {
  // 3000 zeros of mixed sign, a few negatives; K = 2048 lands inside the plateau:
  // every +0 is taken, then the -0 with the smallest indices.
  for (LogitDtype dt : {LogitDtype::f32, LogitDtype::bf16, LogitDtype::f16}) {
    const std::uint64_t s = test::seed(77);
    std::mt19937_64 rng(s);
    TopkCase c = test::make_case("zero plateau", dt, 1, 1, 1, 2048, 3500);
    c.seq_lens[0] = 3500;
    std::vector<std::int32_t> plus, minus;
    for (std::int64_t j = 0; j < c.cols; ++j) {
      const int q = static_cast<int>(rng() % 7);
      if (j < 3000 && q < 3) { c.set(0, j, 0.0f); plus.push_back(static_cast<std::int32_t>(j)); }
      else if (j < 3000) { c.set(0, j, -0.0f); minus.push_back(static_cast<std::int32_t>(j)); }
      else c.set(0, j, -1.0f);
    }
    // Expected by construction: all +0, then the first (2048 - |plus|) -0, in column order.
    std::vector<std::int32_t> want = plus;
    want.insert(want.end(), minus.begin(), minus.begin() + (2048 - static_cast<long>(plus.size())));
    std::sort(want.begin(), want.end());
    expect_both(c, want);
  }
}

BOOST_AUTO_TEST_CASE(long_row_one_million_columns) {
  const std::uint64_t s = test::seed(5);
  std::mt19937_64 rng(s);
  TopkCase c = test::make_case("1M", LogitDtype::f32, 1, 1, 1, 2048, 1 << 20);
  test::fill_kind(c, rng, 0);
  c.seq_lens[0] = 1 << 20;
  check_case(c, s);
}

BOOST_AUTO_TEST_CASE(bad_input_is_named) {
  TopkCase c = test::make_case("bad", LogitDtype::f32, 2, 2, 1, 4, 16);
  c.seq_lens = {10, 10};
  std::vector<std::int32_t> out(static_cast<std::size_t>(c.rows * c.k));
  auto run = [&](TopkProblem p) { return [p, &out] { topk_reference(p, out.data()); }; };
  TopkProblem p = c.problem();
  BOOST_REQUIRE_NO_THROW(topk_reference(p, out.data()));

  TopkProblem q = p;
  q.k = 0;
  expect_bad_input(run(q), "k = 0");
  q.k = 2049;
  expect_bad_input(run(q), "k = 2049");
  q = p;
  q.row_stride = 15;
  expect_bad_input(run(q), "row_stride");
  q = p;
  q.logits = nullptr;
  expect_bad_input(run(q), "logits");
  q = p;
  q.seq_lens = nullptr;
  expect_bad_input(run(q), "seq_lens");
  q = p;
  q.batch = 1;
  expect_bad_input(run(q), "seq_lens too short");
  q = p;
  q.next_n = 0;
  expect_bad_input(run(q), "next_n");
  q = p;
  q.compress_ratio = 0;
  expect_bad_input(run(q), "compress_ratio");
  expect_bad_input([&] { topk_reference(p, nullptr); }, "out");
  expect_bad_input([&] { topk_oracle(p, nullptr); }, "out");
  expect_bad_input([&] { (void)topk_row_length(p, 4); }, "row 4");

  // N_r > cols: request 1 has seq_len 20 -> rows 2, 3 have N = 19, 20 > 16.
  c.seq_lens = {10, 20};
  expect_bad_input([&] { topk_validate(c.problem()); }, "row 2");
  expect_bad_input([&] { topk_oracle(c.problem(), out.data()); }, "exceeds cols");
  // N_r < 0: seq_len 0 with next_n 2 -> row 0 has N = floor(-1 / 1) = -1.
  c.seq_lens = {0, 10};
  expect_bad_input([&] { topk_validate(c.problem()); }, "row 0");
  expect_bad_input([&] { topk_reference(c.problem(), out.data()); }, "negative");
}

BOOST_AUTO_TEST_CASE(no_rows_is_fine) {
  TopkProblem p;
  p.k = 16;
  p.cols = 0;
  BOOST_CHECK_NO_THROW(topk_validate(p));
  BOOST_CHECK_NO_THROW(topk_reference(p, nullptr));
}

BOOST_AUTO_TEST_CASE(random_sweep_against_oracle, *boost::unit_test::label("long")) {
  // 3000 random problems: every dtype and value kind, K in [1, 2048], N_r in [0, 70000].
  const std::uint64_t s = test::seed(2026);
  std::mt19937_64 rng(s);
  const LogitDtype dts[] = {LogitDtype::f32, LogitDtype::bf16, LogitDtype::f16};
  for (int i = 0; i < 3000; ++i) {
    const int k = 1 + static_cast<int>(rng() % kTopkMaxK);
    const std::int64_t cols = 1 + static_cast<std::int64_t>(rng() % 70000);
    TopkCase c = test::make_case("sweep #" + std::to_string(i), dts[rng() % 3], 1 + static_cast<std::int64_t>(rng() % 2),
                                 1 + static_cast<int>(rng() % 4), rng() % 2 ? 4 : 1, k, cols,
                                 static_cast<std::int64_t>(rng() % 3));
    test::fill_kind(c, rng, static_cast<int>(rng() % 5));
    test::random_seq_lens(c, rng);
    test::poison_tail(c);
    check_case(c, s);
  }
}
