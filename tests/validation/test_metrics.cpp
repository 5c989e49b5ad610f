// Parity metrics against hand-computed cases: bitwise / ulp / non-finite placement,
// cosine, tolerance rules, top-k exact / set / recall / tie-aware equality, SHA-256
// known-answer vectors.
#define BOOST_TEST_MODULE validation_metrics
#include <boost/test/unit_test.hpp>

#include "reference/numerics/numerics.hpp"
#include "reference/status.hpp"
#include "test_util.hpp"
#include "validation/metrics.hpp"
#include "validation/provenance.hpp"
#include "validation/report.hpp"

#include <cmath>
#include <random>
#include <vector>

using namespace dsv4;
using namespace dsv4::validation;

namespace {
float next_up(float x, int n = 1) { return num::from_bits(num::bits(x) + static_cast<std::uint32_t>(n)); }
const std::vector<std::size_t> kShape2x3{2, 3};
}  // namespace

BOOST_AUTO_TEST_CASE(identical_arrays_have_no_mismatch) {
  const std::vector<float> a{1.0f, -0.0f, 3.5f, num::inf(), num::neg_inf(), num::qnan()};
  auto m = compare_float(0, a, a, 3, Tolerance{});
  BOOST_TEST(m.elements == 6u);
  BOOST_TEST(m.rows == 2u);
  BOOST_TEST(m.mismatches == 0u);
  BOOST_TEST(m.nonfinite_mismatches == 0u);
  BOOST_TEST(m.nonfinite_got == 3u);
  BOOST_TEST(m.max_ulp == 0u);
  BOOST_TEST(m.ulp_hist[0] == 3u);  // only the finite pairs are binned
  BOOST_TEST(m.cos_min == 1.0);
  BOOST_TEST(evaluate(float_rule_vs_reference(), m, kShape2x3).empty());
}

BOOST_AUTO_TEST_CASE(nan_payloads_compare_equal_but_signed_zero_does_not) {
  const std::vector<float> got{num::from_bits(0xffc00000u), 0.0f, 1.0f};
  const std::vector<float> want{num::from_bits(0x7fc00001u), -0.0f, 1.0f};
  auto m = compare_float(4, got, want, 3, Tolerance{});
  BOOST_TEST(m.mismatches == 1u);
  BOOST_TEST(m.first_mismatch.step == 4);
  BOOST_TEST(m.first_mismatch.flat == 1);
  BOOST_TEST(m.first_got_bits == 0x00000000u);
  BOOST_TEST(m.first_want_bits == 0x80000000u);
  BOOST_TEST(m.nonfinite_mismatches == 0u);
  BOOST_TEST(m.max_ulp == 0u);  // +0 and -0 are 0 ulp apart
  BOOST_TEST(m.max_abs == 0.0);
}

BOOST_AUTO_TEST_CASE(ulp_histogram_bins_first_and_worst) {
  // Distances 0, 1, 2, 3, 4, 5, 8, 9 ulp; 10 elements as two rows of 5.
  const float base = 1.5f;
  const int d[10] = {0, 1, 2, 3, 4, 5, 8, 9, 0, 1};
  std::vector<float> want(10, base), got(10);
  for (int i = 0; i < 10; ++i) got[static_cast<std::size_t>(i)] = next_up(base, d[i]);
  auto m = compare_float(2, got, want, 5, Tolerance{});
  BOOST_TEST(m.mismatches == 8u);
  BOOST_TEST(m.ulp_hist[0] == 2u);
  BOOST_TEST(m.ulp_hist[1] == 2u);
  BOOST_TEST(m.ulp_hist[2] == 1u);
  BOOST_TEST(m.ulp_hist[3] == 2u);  // 3, 4
  BOOST_TEST(m.ulp_hist[4] == 2u);  // 5, 8
  BOOST_TEST(m.ulp_hist[5] == 1u);  // 9
  BOOST_TEST(m.max_ulp == 9u);
  BOOST_TEST(m.first_mismatch.flat == 1);
  BOOST_TEST(m.worst_mismatch.flat == 7);
  BOOST_TEST(m.worst_got_bits == num::bits(next_up(base, 9)));
  BOOST_TEST(m.worst_want_bits == num::bits(base));
  const std::vector<std::size_t> shape{2, 5};
  BOOST_TEST(format_position(m.worst_mismatch, shape) == "step 2 [1, 2]");
  const double ulp = std::ldexp(1.0, -23);
  BOOST_TEST(m.max_abs == 9 * ulp);
  BOOST_TEST(m.max_rel == 9 * ulp / 1.5);
  BOOST_TEST(m.max_abs_at.flat == 7);
  const auto why = evaluate(float_rule_vs_reference(), m, shape);
  BOOST_REQUIRE(why.size() == 1u);
  BOOST_TEST(why[0].find("8 bitwise mismatches") != std::string::npos, why[0]);
  BOOST_TEST(why[0].find("step 2 [0, 1]") != std::string::npos, why[0]);
  BOOST_TEST(why[0].find("0x3fc00009") != std::string::npos, why[0]);
}

BOOST_AUTO_TEST_CASE(nonfinite_placement_must_match) {
  // NaN vs finite, +inf vs -inf, finite vs -inf: three placement mismatches.
  const std::vector<float> got{num::qnan(), num::inf(), 2.0f, 1.0f};
  const std::vector<float> want{1.0f, num::neg_inf(), num::neg_inf(), 1.0f};
  auto m = compare_float(0, got, want, 2, Tolerance{1.0, 1.0});
  BOOST_TEST(m.nonfinite_mismatches == 3u);
  BOOST_TEST(m.first_nonfinite_mismatch.flat == 0);
  BOOST_TEST(m.mismatches == 3u);
  BOOST_TEST(m.max_ulp == 0u);  // only index 3 is a finite pair
  BOOST_TEST(m.worst_mismatch.flat == 0);  // non-finite mismatches are the worst; earliest wins
  // Even a loose tolerance rule fails on placement.
  FloatRule loose = float_rule_tolerance("float32");
  loose.tol = {1e9, 1e9};
  loose.cos_min = -1;
  loose.cos_mean = -1;
  const std::vector<std::size_t> shape{2, 2};
  const auto why = evaluate(loose, m, shape);
  BOOST_REQUIRE(why.size() == 1u);
  BOOST_TEST(why[0].find("non-finite") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(cosine_per_row_hand_computed) {
  // Row 0: (1, 0) vs (1, 1): cos = 1/sqrt(2). Row 1: identical. Row 2: zero vs zero = 1.
  // Row 3: zero vs non-zero = 0.
  const std::vector<float> got{1, 0, 3, 4, 0, 0, 0, 0};
  const std::vector<float> want{1, 1, 3, 4, 0, 0, 0, 2};
  auto m = compare_float(1, got, want, 2, Tolerance{});
  BOOST_TEST(m.rows == 4u);
  BOOST_TEST(m.cos_min == 0.0);
  BOOST_TEST(m.cos_min_at.flat == 3);
  BOOST_TEST(std::fabs(m.cos_mean() - (1 / std::sqrt(2.0) + 1 + 1 + 0) / 4) < 1e-15);
  BOOST_TEST(m.cos_hist[0] == 2u);  // exact
  BOOST_TEST(m.cos_hist[7] == 2u);  // 1 - 0.707 and 1 - 0 are > 1e-2
}

BOOST_AUTO_TEST_CASE(tolerance_rule_and_oracle_in_double) {
  // want in float64: 1 + 1e-9 rounds to 1.0f, so bitwise equal, |d| = 1e-9.
  const std::vector<float> got{1.0f, 2.0f};
  const std::vector<double> want{1.0 + 1e-9, 2.0 + 1e-3};
  auto m = compare_float(0, got, want, 2, default_tolerance("float32"));
  BOOST_TEST(m.mismatches == 1u);  // 2.001 rounds to a different float
  BOOST_TEST(m.tol_violations == 1u);
  BOOST_TEST(m.first_tol_violation.flat == 1);
  BOOST_TEST(std::fabs(m.max_abs - 1e-3) < 1e-12);
  const std::vector<std::size_t> shape{1, 2};
  auto why = evaluate(float_rule_tolerance("float32"), m, shape);
  BOOST_REQUIRE(!why.empty());
  BOOST_TEST(why[0].find("outside atol") != std::string::npos);
  // bf16 tolerance (rtol 1.6e-2) accepts it.
  auto mb = compare_float(0, got, want, 2, default_tolerance("bfloat16"));
  BOOST_TEST(evaluate(float_rule_tolerance("bfloat16"), mb, shape).empty());
}

BOOST_AUTO_TEST_CASE(bf16_grid_rounds_once_and_counts_bf16_ulps) {
  // 1 + 2^-8 + 2^-30 lies just above the midpoint between the bf16 numbers 1 and 1 + 2^-7.
  // Through float it would round to the midpoint and then to even (1.0): wrong.
  const double x = 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30);
  BOOST_TEST(round_to_bf16(x) == 1.0f + std::ldexp(1.0f, -7));
  BOOST_TEST(round_to_bf16(1.0 + std::ldexp(1.0, -8)) == 1.0f);  // exact tie: to even
  BOOST_TEST(round_to_bf16(-(1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30))) == -(1.0f + std::ldexp(1.0f, -7)));
  // A bf16 output one bf16 ulp above the oracle: 1 mismatch of 1 ulp on the bf16 grid,
  // 65536 on the float grid.
  const std::vector<float> got{1.0f + std::ldexp(1.0f, -7), 2.0f};
  const std::vector<double> want{1.0, 2.0};
  auto mb = compare_float(0, got, want, 2, Tolerance{}, Grid::bf16);
  BOOST_TEST(mb.mismatches == 1u);
  BOOST_TEST(mb.max_ulp == 1u);
  auto mf = compare_float(0, got, want, 2, Tolerance{}, Grid::f32);
  BOOST_TEST(mf.max_ulp == 65536u);
}

BOOST_AUTO_TEST_CASE(merge_is_deterministic_over_steps) {
  std::mt19937 rng(static_cast<unsigned>(test::seed(11)));
  std::uniform_real_distribution<float> u(-1, 1);
  FloatMetrics total;
  std::vector<float> all_got, all_want;
  for (int s = 0; s < 3; ++s) {
    std::vector<float> got(130), want(130);
    for (std::size_t i = 0; i < got.size(); ++i) {
      want[i] = u(rng);
      got[i] = (i % 7 == 0) ? next_up(want[i], static_cast<int>(i % 5)) : want[i];
    }
    total.merge(compare_float(s, got, want, 13, Tolerance{}));
    all_got.insert(all_got.end(), got.begin(), got.end());
    all_want.insert(all_want.end(), want.begin(), want.end());
  }
  auto one = compare_float(0, all_got, all_want, 13, Tolerance{});
  BOOST_TEST(total.mismatches == one.mismatches);
  BOOST_TEST(total.max_ulp == one.max_ulp);
  BOOST_TEST(total.rows == one.rows);
  BOOST_TEST(total.ulp_hist == one.ulp_hist);
  BOOST_TEST(total.first_mismatch.step == 0);
  BOOST_TEST(total.first_mismatch.flat == one.first_mismatch.flat);
}

BOOST_AUTO_TEST_CASE(bad_shapes_are_rejected) {
  const std::vector<float> a(6), b(5);
  BOOST_CHECK_THROW(compare_float(0, a, b, 3, Tolerance{}), dsv4::Error);
  BOOST_CHECK_THROW(compare_float(0, a, a, 4, Tolerance{}), dsv4::Error);
}

// ---- top-k ----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(topk_order_key_is_the_total_order) {
  const float order[] = {num::qnan(), num::neg_inf(), -1e30f, -1.0f, -0.0f, 0.0f, 1e-45f, 1.0f, num::inf()};
  for (std::size_t i = 1; i < std::size(order); ++i)
    BOOST_TEST(topk_order_key(order[i - 1]) < topk_order_key(order[i]), "at " << i);
  BOOST_TEST(topk_order_key(num::from_bits(0xffc00000u)) == topk_order_key(num::qnan()));
}

BOOST_AUTO_TEST_CASE(topk_exact_set_recall) {
  // K = 3, two rows.
  const std::vector<std::int32_t> want{0, 2, 5, 1, 3, -1};
  const std::vector<std::int32_t> same{0, 2, 5, 1, 3, -1};
  const std::vector<std::int32_t> perm{5, 0, 2, -1, 3, 1};  // same sets, other order
  const std::vector<std::int32_t> diff{0, 2, 4, 1, 3, -1};  // row 0 one wrong
  auto m = compare_topk(0, same, want, 2, 3);
  BOOST_TEST(m.exact_rows == 2u);
  BOOST_TEST(m.set_rows == 2u);
  m = compare_topk(0, perm, want, 2, 3);
  BOOST_TEST(m.exact_rows == 0u);
  BOOST_TEST(m.set_rows == 2u);
  BOOST_TEST(m.recall_min == 1.0);
  BOOST_TEST(evaluate(TopkRule{TopkCheck::set, 1.0}, m).empty());
  BOOST_TEST(!evaluate(TopkRule{TopkCheck::exact, 1.0}, m).empty());
  m = compare_topk(7, diff, want, 2, 3);
  BOOST_TEST(m.set_rows == 1u);
  BOOST_TEST(m.first_set_fail.step == 7);
  BOOST_TEST(m.first_set_fail.flat == 0);
  BOOST_TEST(std::fabs(m.recall_min - 2.0 / 3.0) < 1e-15);
  BOOST_TEST(std::fabs(m.recall_mean() - (2.0 / 3.0 + 1.0) / 2) < 1e-15);
  BOOST_TEST(evaluate(TopkRule{TopkCheck::recall, 0.6}, m).empty());
  BOOST_TEST(!evaluate(TopkRule{TopkCheck::recall, 0.7}, m).empty());
}

BOOST_AUTO_TEST_CASE(topk_invalid_rows) {
  const std::vector<std::int32_t> want{0, 1, 2};
  const std::vector<std::int32_t> dup{0, 1, 1};
  const std::vector<std::int32_t> few{0, 1, -1};
  auto m = compare_topk(0, dup, want, 1, 3);
  BOOST_TEST(m.invalid_rows == 1u);
  BOOST_TEST(m.first_invalid_detail.find("duplicate") != std::string::npos);
  BOOST_TEST(!evaluate(TopkRule{TopkCheck::recall, 0.0}, m).empty());  // invalid always fails
  m = compare_topk(0, few, want, 1, 3);
  BOOST_TEST(m.invalid_rows == 1u);
  // Out of range against N_r from the logits.
  const std::vector<float> logits{5, 4, 3, 2, 1};
  const std::vector<std::int64_t> n{3};
  const TopkLogits lg{logits, 5, n};
  const std::vector<std::int32_t> oob{0, 1, 3};
  m = compare_topk(0, oob, want, 1, 3, &lg);
  BOOST_TEST(m.invalid_rows == 1u);
  BOOST_TEST(m.first_invalid_detail.find("outside [0, 3)") != std::string::npos, m.first_invalid_detail);
}

BOOST_AUTO_TEST_CASE(topk_tie_aware_equality) {
  // Row values (N = 8, K = 3): the 3rd best value 2.0 ties at columns 1, 4 and 6.
  // Reference (index tie-break) picks {0, 3, 1}; {0, 3, 4} and {0, 3, 6} are tie-equal,
  // {0, 1, 4} is not (drops column 3 whose 5.0 ranks above the tie class), {0, 3, 2}
  // is not (1.0 ranks below).
  const std::vector<float> v{9, 2, 1, 5, 2, -3, 2, 0};
  const std::vector<std::int64_t> n{8};
  const TopkLogits lg{v, 8, n};
  const std::vector<std::int32_t> want{0, 1, 3};
  auto tie = [&](std::vector<std::int32_t> g) { return compare_topk(0, g, want, 1, 3, &lg); };
  BOOST_TEST(tie({0, 3, 4}).tie_rows == 1u);
  BOOST_TEST(tie({6, 0, 3}).tie_rows == 1u);
  BOOST_TEST(tie({0, 3, 4}).set_rows == 0u);
  auto m = tie({0, 1, 4});
  BOOST_TEST(m.tie_rows == 0u);
  BOOST_TEST(m.first_tie_detail.find("column 3") != std::string::npos, m.first_tie_detail);
  m = tie({0, 3, 2});
  BOOST_TEST(m.tie_rows == 0u);
  BOOST_TEST(m.first_tie_detail.find("below") != std::string::npos, m.first_tie_detail);
  BOOST_TEST(!evaluate(TopkRule{TopkCheck::tie, 1.0}, m).empty());
}

BOOST_AUTO_TEST_CASE(topk_tie_class_distinguishes_signed_zero_and_nan) {
  // +0 ranks above -0: with K = 2 and values {3, -0, +0, NaN}, the answer is {0, 2};
  // swapping +0 for -0 is NOT a tie. NaNs rank below everything.
  const std::vector<float> v{3.0f, -0.0f, 0.0f, num::qnan(), num::qnan()};
  const std::vector<std::int64_t> n{5};
  const TopkLogits lg{v, 5, n};
  const std::vector<std::int32_t> want{0, 2};
  BOOST_TEST(compare_topk(0, std::vector<std::int32_t>{0, 1}, want, 1, 2, &lg).tie_rows == 0u);
  BOOST_TEST(compare_topk(0, std::vector<std::int32_t>{0, 3}, want, 1, 2, &lg).tie_rows == 0u);
  // All-NaN tail as the tie class: K = 4 wants {0, 1, 2, 3}; {0, 1, 2, 4} is tie-equal.
  const std::vector<std::int32_t> want4{0, 1, 2, 3};
  BOOST_TEST(compare_topk(0, std::vector<std::int32_t>{4, 2, 1, 0}, want4, 1, 4, &lg).tie_rows == 1u);
}

BOOST_AUTO_TEST_CASE(topk_short_rows_must_select_every_column) {
  // N = 2 <= K = 4: output {0, 1, -1, -1}; anything else fails even tie-aware.
  const std::vector<float> v{1, 1, 1, 1};
  const std::vector<std::int64_t> n{2};
  const TopkLogits lg{v, 4, n};
  const std::vector<std::int32_t> want{0, 1, -1, -1};
  BOOST_TEST(compare_topk(0, std::vector<std::int32_t>{1, -1, 0, -1}, want, 1, 4, &lg).tie_rows == 1u);
  BOOST_TEST(compare_topk(0, std::vector<std::int32_t>{0, 2, -1, -1}, want, 1, 4, &lg).tie_rows == 0u);
  // Fully masked row (N = 0): all -1.
  const std::vector<std::int64_t> n0{0};
  const TopkLogits lg0{v, 4, n0};
  const std::vector<std::int32_t> none{-1, -1, -1, -1};
  BOOST_TEST(compare_topk(0, none, none, 1, 4, &lg0).tie_rows == 1u);
  BOOST_TEST(compare_topk(0, none, none, 1, 4, &lg0).recall_min == 1.0);
}

BOOST_AUTO_TEST_CASE(topk_check_parse) {
  BOOST_TEST((parse_topk_check("tie", "x") == TopkCheck::tie));
  BOOST_CHECK_THROW(parse_topk_check("fuzzy", "--topk-captured"), dsv4::Error);
}

// ---- provenance helpers ----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(sha256_known_answers) {
  BOOST_TEST(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  BOOST_TEST(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  BOOST_TEST(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
             "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // One million 'a', fed in uneven pieces to exercise the buffering.
  Sha256 h;
  const std::string chunk(997, 'a');
  std::size_t left = 1000000;
  while (left > 0) {
    const std::size_t n = std::min(left, chunk.size());
    h.update(std::string_view(chunk.data(), n));
    left -= n;
  }
  BOOST_TEST(h.hex_digest() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // 55, 56 and 64 bytes: the padding boundaries.
  BOOST_TEST(sha256_hex(std::string(55, 'a')) == "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  BOOST_TEST(sha256_hex(std::string(56, 'a')) == "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  BOOST_TEST(sha256_hex(std::string(64, 'a')) == "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

BOOST_AUTO_TEST_CASE(sha256_hardware_and_portable_agree) {
  BOOST_TEST_MESSAGE("SHA extensions: " << (Sha256::hardware_available() ? "yes" : "no"));
  std::mt19937 rng(static_cast<unsigned>(test::seed(5)));
  for (std::size_t len : {0u, 1u, 55u, 56u, 63u, 64u, 65u, 127u, 128u, 1000u, 4097u}) {
    std::string data(len, '\0');
    for (auto& ch : data) ch = static_cast<char>(rng());
    Sha256 hw(true), sw(false);
    // Feed in two uneven pieces.
    hw.update(std::string_view(data).substr(0, len / 3));
    hw.update(std::string_view(data).substr(len / 3));
    sw.update(data);
    BOOST_TEST(hw.hex_digest() == sw.hex_digest(), "length " << len);
  }
  Sha256 sw(false);
  sw.update("abc");
  BOOST_TEST(sw.hex_digest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

BOOST_AUTO_TEST_CASE(shell_quoting_and_base64) {
  BOOST_TEST(shell_quote("plain/path-1.h5") == "plain/path-1.h5");
  BOOST_TEST(shell_quote("a b") == "'a b'");
  BOOST_TEST(shell_quote("it's") == "'it'\\''s'");
  BOOST_TEST(shell_quote("") == "''");
  BOOST_TEST(command_line(std::vector<std::string>{"dsv4lab", "replay", "my trace.h5"}) ==
             "dsv4lab replay 'my trace.h5'");
  BOOST_TEST(base64("") == "");
  BOOST_TEST(base64("f") == "Zg==");
  BOOST_TEST(base64("fo") == "Zm8=");
  BOOST_TEST(base64("foo") == "Zm9v");
  BOOST_TEST(base64("foobar") == "Zm9vYmFy");
}
