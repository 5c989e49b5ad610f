// gpu/fastdiv.hpp on the host (CPU, runs in CI): fastdiv(x, make_fastdiv(d)) == x / d. The
// kernels use it for row and chunk indices (top-k) and row / head splits (LSE merge); the
// device pass differs only in computing the multiply-high with __umulhi.
#define BOOST_TEST_MODULE fastdiv
#include <boost/test/unit_test.hpp>

#include "gpu/fastdiv.hpp"
#include "test_util.hpp"

#include <cstdint>
#include <random>
#include <vector>

using dsv4::gpu::fastdiv;
using dsv4::gpu::make_fastdiv;

namespace {

/// Dividends that stress a divisor d: around multiples of d, around powers of two, the
/// extremes, and random ones.
std::vector<std::uint32_t> dividends(std::uint32_t d, std::mt19937_64& rng) {
  std::vector<std::uint32_t> x = {0u, 1u, 2u, 0x7fffffffu, 0x80000000u, 0xfffffffeu, 0xffffffffu};
  const std::uint64_t top = std::uint64_t{0xffffffffu} / d;
  for (std::uint64_t q : {std::uint64_t{1}, std::uint64_t{2}, std::uint64_t{3}, top / 2, top - 1, top}) {
    if (q == 0 || q > top) continue;
    const std::uint64_t m = q * d;
    for (std::int64_t e = -1; e <= 1; ++e)
      if (m + e <= 0xffffffffu) x.push_back(static_cast<std::uint32_t>(m + e));
  }
  for (int b = 1; b < 32; ++b)
    for (std::int64_t e = -1; e <= 1; ++e) x.push_back(static_cast<std::uint32_t>((std::int64_t{1} << b) + e));
  for (int i = 0; i < 64; ++i) x.push_back(static_cast<std::uint32_t>(rng()));
  return x;
}

/// Quotients checked and wrong (the first wrong one is reported).
struct Tally {
  std::uint64_t checked = 0, wrong = 0;
  void check(std::uint32_t x, std::uint32_t d, std::uint32_t got) {
    ++checked;
    if (got == x / d) return;
    if (wrong++ == 0) BOOST_ERROR("fastdiv(" << x << ", " << d << ") = " << got << ", want " << x / d);
  }
};

void check_divisor(std::uint32_t d, std::mt19937_64& rng, Tally& t) {
  const auto f = make_fastdiv(d);
  for (const std::uint32_t x : dividends(d, rng)) t.check(x, d, fastdiv(x, f));
}

}  // namespace

BOOST_AUTO_TEST_CASE(small_divisors_every_dividend_pattern) {
  // Every divisor a launch uses in practice (next_n, compress_ratio, blocks_per_row, heads,
  // chunks per row) is small.
  std::mt19937_64 rng(dsv4::test::seed(1));
  Tally t;
  for (std::uint32_t d = 1; d <= 5000; ++d) check_divisor(d, rng, t);
  BOOST_TEST(t.wrong == 0u, t.wrong << " of " << t.checked << " quotients wrong");
}

BOOST_AUTO_TEST_CASE(large_and_random_divisors) {
  std::mt19937_64 rng(dsv4::test::seed(2));
  std::vector<std::uint32_t> ds = {0x7fffffffu, 0x80000000u, 0x80000001u, 0xfffffffeu, 0xffffffffu};
  for (int b = 12; b < 32; ++b)
    for (std::int64_t e = -1; e <= 1; ++e) ds.push_back(static_cast<std::uint32_t>((std::int64_t{1} << b) + e));
  for (int i = 0; i < 2000; ++i) ds.push_back(static_cast<std::uint32_t>(rng() >> (rng() % 32)) | 1u);
  Tally t;
  for (const std::uint32_t d : ds) check_divisor(d, rng, t);
  BOOST_TEST(t.wrong == 0u, t.wrong << " of " << t.checked << " quotients wrong");
}

BOOST_AUTO_TEST_CASE(every_dividend_for_a_few_divisors, *boost::unit_test::label("long")) {
  Tally t;
  for (const std::uint32_t d : {3u, 7u, 641u}) {
    const auto f = make_fastdiv(d);
    for (std::uint64_t x = 0; x <= 0xffffffffu; ++x) {
      const auto x32 = static_cast<std::uint32_t>(x);
      t.check(x32, d, fastdiv(x32, f));
    }
  }
  BOOST_TEST(t.wrong == 0u, t.wrong << " of " << t.checked << " quotients wrong");
}
