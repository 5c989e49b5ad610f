// gpu/compress_step.hpp on the host (CPU, runs in CI): the branch-free forms the compressor
// kernel uses return compress_math's bits. exp_nonpos == num::exp on every argument it can be
// given (x <= 0 and NaN: strided here, all 2^31 + NaNs in the `long` case); weights / step /
// fold on every pair of special values and on random pairs. The same functions compiled for
// the device are checked against compress_math in gpu/test_compress.cu.
#define BOOST_TEST_MODULE compress_step
#include <boost/test/unit_test.hpp>

#include "compress_step_probe.hpp"
#include "gpu/compress_step.hpp"
#include "test_util.hpp"

#include <cstdint>
#include <random>
#include <vector>

using namespace dsv4;
namespace fast = gpu::compress_fast;

namespace {

/// exp_nonpos vs num::exp on the patterns p = first, first + stride, ... <= last (bitwise;
/// both return the canonical NaN). Returns the number of patterns checked.
std::uint64_t check_exp(std::uint32_t first, std::uint32_t last, std::uint32_t stride) {
  std::uint64_t n = 0;
  for (std::uint64_t p = first; p <= last; p += stride, ++n) {
    const float x = num::from_bits(static_cast<std::uint32_t>(p));
    const float got = fast::exp_nonpos(x), want = num::exp(x);
    if (num::bits(got) != num::bits(want))
      BOOST_FAIL("exp_nonpos(" << test::hex(x) << ") = " << test::hex(got) << ", num::exp = " << test::hex(want));
  }
  return n;
}

void check_pair(float m, float s) {
  float want[9], got[9];
  test::step_probe<false>(m, s, want);
  test::step_probe<true>(m, s, got);
  for (int j = 0; j < 9; ++j)
    if (!num::same_bits(got[j], want[j]))
      BOOST_FAIL("m " << test::hex(m) << " s " << test::hex(s) << " output " << j << ": fast " << test::hex(got[j])
                      << ", compress_math " << test::hex(want[j]));
}

}  // namespace

BOOST_AUTO_TEST_CASE(exp_nonpos_equals_exp_strided) {
  // +0, the negative floats from -0 to -inf, and NaNs of both signs (stride 97: 22 M patterns).
  std::uint64_t n = check_exp(0u, 0u, 1u);
  n += check_exp(0x80000000u, 0xff800000u, 97u);
  n += check_exp(0x7f800001u, 0x7fffffffu, 4099u);
  n += check_exp(0xff800001u, 0xffffffffu, 4099u);
  BOOST_TEST(n > 22'000'000u);
}

BOOST_AUTO_TEST_CASE(exp_nonpos_equals_exp_exhaustive, *boost::unit_test::label("long")) {
  std::uint64_t n = check_exp(0u, 0u, 1u);
  n += check_exp(0x80000000u, 0xff800000u, 1u);
  n += check_exp(0x7f800001u, 0x7fffffffu, 1u);
  n += check_exp(0xff800001u, 0xffffffffu, 1u);
  BOOST_TEST(n == 1u + (0x7f800000u + 1u) + 2u * 0x7fffffu);  // +0, -0 .. -inf, the NaNs
}

BOOST_AUTO_TEST_CASE(weights_step_fold_equal_compress_math) {
  const std::vector<float> special = test::step_probe_specials();
  std::uint64_t checked = 0;
  for (float a : special)
    for (float b : special) check_pair(a, b), ++checked;
  const std::uint64_t seed = test::seed(20261121) + 77;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(-150.0f, 150.0f), near(-100.0f, 100.0f);
  for (int i = 0; i < (1 << 20); ++i) {
    const float a = (i & 1) ? d(rng) : num::from_bits(static_cast<std::uint32_t>(rng()));
    const float b = (i & 2) ? a + near(rng) : num::from_bits(static_cast<std::uint32_t>(rng()));
    check_pair(a, b);
    ++checked;
  }
  BOOST_TEST(checked == special.size() * special.size() + (1u << 20));
  BOOST_TEST_MESSAGE("special pairs and 2^20 random pairs, seed " << seed);
}
