// Compressor reference: shared scalar math vs the literal formula, reference vs float64
// oracle, bitwise invariance (token-by-token decode == one prefill == chunked prefill +
// decode, outputs and state), edge cases with exactly known answers, bad input.
#define BOOST_TEST_MODULE reference_compress
#include <boost/test/unit_test.hpp>

#include "reference/compress.hpp"
#include "reference/status.hpp"
#include "test_util.hpp"
#include "reference/compress_fixtures.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

using namespace dsv4;
using num::bits;

namespace {

using test::Bytes;
using test::get;
using test::put;

/// Every request's whole token history: tokens[b][p * 2SD + col] (values exact in kv_dtype).
struct History {
  std::vector<std::vector<float>> tokens;
  std::vector<float> ape;  // [CR, SD]
};

History make_history(const CompressConfig& c, const std::vector<int>& lens, std::uint64_t seed,
                     double neg_inf_fraction = 0.0, float score_span = 8.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> kv(-2.0f, 2.0f), sc(-score_span, score_span), ap(-1.0f, 1.0f), u(0.0f, 1.0f);
  const int sd = c.state_dim();
  History h;
  for (int len : lens) {
    std::vector<float> t(static_cast<std::size_t>(len) * 2 * sd);
    for (int p = 0; p < len; ++p) {
      for (int col = 0; col < sd; ++col) {
        float v = kv(rng), s = sc(rng);
        if (neg_inf_fraction > 0 && u(rng) < neg_inf_fraction) s = num::neg_inf();
        if (c.kv_dtype == Dtype::bf16) {
          v = num::round_bf16(v);
          s = num::round_bf16(s);
        }
        t[(static_cast<std::size_t>(p) * 2 * sd) + col] = v;
        t[(static_cast<std::size_t>(p) * 2 * sd) + sd + col] = s;
      }
    }
    h.tokens.push_back(std::move(t));
  }
  h.ape.resize(static_cast<std::size_t>(c.compress_ratio) * sd);
  for (float& a : h.ape) a = ap(rng);
  return h;
}

/// Runs calls against one paged state and collects each request's output rows (as float
/// bit patterns) in window order.
struct Runner {
  CompressConfig cfg;
  int batch;
  CompressStateBuffer buf;
  std::vector<int> len;
  std::vector<std::vector<std::uint32_t>> rows;  // per request: windows * HD output bits
  std::vector<int> empties;                      // per request: empty elements reported

  Runner(const CompressConfig& c, int b, int pages, std::vector<std::int32_t> ids = {})
      : cfg(c), batch(b), buf(c, b, pages, std::move(ids)), len(b, 0), rows(b), empties(b, 0) {}

  /// Advance request b by n[b] tokens of history h; decode (all n equal to NN) or prefill.
  void call(const History& h, const std::vector<int>& n, bool decode) {
    const int sd = cfg.state_dim();
    std::vector<std::int32_t> cu(batch + 1, 0), kv_len(batch);
    for (int b = 0; b < batch; ++b) {
      cu[b + 1] = cu[b] + n[b];
      kv_len[b] = len[b] + n[b];
    }
    Bytes kvs(static_cast<std::size_t>(cu[batch]) * 2 * sd * size_of(cfg.kv_dtype));
    for (int b = 0; b < batch; ++b)
      for (int t = 0; t < n[b]; ++t)
        for (int col = 0; col < 2 * sd; ++col)
          put(kvs, cfg.kv_dtype, (static_cast<std::int64_t>(cu[b]) + t) * 2 * sd + col,
              h.tokens[b][(static_cast<std::size_t>(len[b]) + t) * 2 * sd + col]);
    const auto off = compress_output_offsets(cfg, batch, kv_len.data(), decode ? nullptr : cu.data());
    Bytes out(static_cast<std::size_t>(std::max(off[batch], 1)) * cfg.head_dim * size_of(cfg.out_dtype));
    std::vector<std::uint8_t> empty(static_cast<std::size_t>(std::max(off[batch], 1)) * cfg.head_dim, 7);
    CompressStep s;
    s.batch = batch;
    s.kv_score = kvs.data();
    s.tokens = cu[batch];
    s.cu_seq_lens = decode ? nullptr : cu.data();
    s.ape = h.ape.data();
    s.kv_len = kv_len.data();
    s.out_offsets = off.data();
    s.out_rows = off[batch];
    const CompressReport rep = decode ? compress_decode_reference(cfg, s, buf.view(), out.data(), empty.data())
                                      : compress_prefill_reference(cfg, s, buf.view(), out.data(), empty.data());
    BOOST_REQUIRE_EQUAL(rep.windows, off[batch]);
    for (int b = 0; b < batch; ++b) {
      for (std::int64_t r = off[b]; r < off[b + 1]; ++r)
        for (int d = 0; d < cfg.head_dim; ++d) {
          rows[b].push_back(bits(get(out, cfg.out_dtype, r * cfg.head_dim + d)));
          const std::uint8_t e = empty[r * cfg.head_dim + d];
          BOOST_REQUIRE(e == 0 || e == 1);
          empties[b] += e;
        }
      len[b] = kv_len[b];
    }
    int reported = 0;
    for (const auto& e : rep.empty) reported += e.empty_elements;
    int flagged = 0;
    for (std::int32_t i = 0; i < off[batch] * cfg.head_dim; ++i) flagged += empty[i];
    BOOST_REQUIRE_EQUAL(reported, flagged);
  }

  /// A decode step (NN = cfg.tokens_per_step) of request b alone: a batch-1 call whose
  /// state view starts at b's block-table row.
  void decode_one(const History& h, int b) {
    const int sd = cfg.state_dim(), nn = cfg.tokens_per_step;
    std::vector<std::int32_t> kv_len = {len[b] + nn};
    Bytes kvs(static_cast<std::size_t>(nn) * 2 * sd * size_of(cfg.kv_dtype));
    for (int t = 0; t < nn; ++t)
      for (int col = 0; col < 2 * sd; ++col)
        put(kvs, cfg.kv_dtype, static_cast<std::int64_t>(t) * 2 * sd + col,
            h.tokens[b][(static_cast<std::size_t>(len[b]) + t) * 2 * sd + col]);
    const auto off = compress_output_offsets(cfg, 1, kv_len.data());
    Bytes out(static_cast<std::size_t>(std::max(off[1], 1)) * cfg.head_dim * size_of(cfg.out_dtype));
    std::vector<std::uint8_t> empty(static_cast<std::size_t>(std::max(off[1], 1)) * cfg.head_dim, 7);
    CompressState st = buf.view();
    st.block_table += static_cast<std::ptrdiff_t>(b) * st.max_blocks;
    const CompressStep s{1, kvs.data(), nn, nullptr, h.ape.data(), kv_len.data(), off.data(), off[1]};
    const CompressReport rep = compress_decode_reference(cfg, s, st, out.data(), empty.data());
    BOOST_REQUIRE_EQUAL(rep.windows, off[1]);
    for (std::int64_t r = 0; r < off[1]; ++r)
      for (int d = 0; d < cfg.head_dim; ++d) {
        rows[b].push_back(bits(get(out, cfg.out_dtype, r * cfg.head_dim + d)));
        empties[b] += empty[r * cfg.head_dim + d];
      }
    len[b] = kv_len[0];
  }
};

std::vector<CompressConfig> all_configs(int nn, int page_cr_multiple) {
  std::vector<CompressConfig> v;
  for (int hd : {128, 512})
    for (int cr : {4, 128})
      for (int nrw : {1, 4}) {
        if (nrw == 4 && cr != 128) continue;
        for (Dtype kv : {Dtype::bf16, Dtype::f32})
          for (Dtype st : {Dtype::f32, Dtype::bf16})
            for (Dtype out : {Dtype::bf16, Dtype::f32}) {
              CompressConfig c;
              c.head_dim = hd;
              c.compress_ratio = cr;
              c.tokens_per_step = nn;
              c.kv_dtype = kv;
              c.state_dtype = st;
              c.out_dtype = out;
              c.warps = nrw;
              c.page_size = cr * page_cr_multiple;
              v.push_back(c);
            }
      }
  return v;
}

std::vector<std::int32_t> shuffled_ids(int n, std::uint64_t seed) {
  std::vector<std::int32_t> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(ids.begin(), ids.end(), rng);
  return ids;
}

// The literal DESIGN formula for the weights, to check compress_math::weights against.
void literal_weights(float m, float s, float& n, float& c, float& t) {
  n = num::max_nan(m, s);
  const float ninf = num::neg_inf();
  c = (m == ninf && n == ninf) ? 0.0f : num::exp(m - n);
  t = (s == ninf && n == ninf) ? 0.0f : num::exp(s - n);
}

bool same_bits(float a, float b) { return bits(a) == bits(b) || (num::is_nan(a) && num::is_nan(b)); }

}  // namespace

BOOST_AUTO_TEST_CASE(weights_equal_the_literal_formula) {
  std::vector<float> special = {0.0f, -0.0f, 1.0f, -1.0f, 1e-30f, -1e-30f, 88.0f, -88.0f, 100.0f, -110.0f,
                                3.4e38f, -3.4e38f, num::inf(), num::neg_inf(), num::qnan(), 1e-45f, -1e-45f};
  std::mt19937_64 rng(test::seed(11));
  std::uniform_real_distribution<float> u(-120.0f, 120.0f);
  for (int i = 0; i < 200; ++i) special.push_back(u(rng));
  std::size_t checked = 0;
  for (float m : special)
    for (float s : special) {
      float n1, c1, t1, n2, c2, t2;
      compress_math::weights(m, s, n1, c1, t1);
      literal_weights(m, s, n2, c2, t2);
      BOOST_REQUIRE_MESSAGE(same_bits(n1, n2) && same_bits(c1, c2) && same_bits(t1, t2),
                            "m=" << test::hex(m) << " s=" << test::hex(s) << ": fast (" << test::hex(n1) << ", "
                                 << test::hex(c1) << ", " << test::hex(t1) << ") literal (" << test::hex(n2) << ", "
                                 << test::hex(c2) << ", " << test::hex(t2) << ")");
      ++checked;
    }
  // Random pairs near each other (where both exps matter most).
  std::normal_distribution<float> g(0.0f, 3.0f);
  for (int i = 0; i < 200000; ++i) {
    const float m = g(rng), s = m + g(rng) * 0.1f;
    float n1, c1, t1, n2, c2, t2;
    compress_math::weights(m, s, n1, c1, t1);
    literal_weights(m, s, n2, c2, t2);
    BOOST_REQUIRE_MESSAGE(same_bits(n1, n2) && same_bits(c1, c2) && same_bits(t1, t2),
                          "m=" << test::hex(m) << " s=" << test::hex(s));
  }
  BOOST_TEST(checked > 40000u);
}

BOOST_AUTO_TEST_CASE(reference_vs_oracle) {
  // Every configuration: per-window cosine >= 0.99999 (fp32 state; bf16 state too, since
  // the oracle reads the same rounded state) and per-element error bounded by the output
  // format plus fp32 accumulation.
  const std::uint64_t seed = test::seed(2026);
  int cfg_i = 0;
  for (CompressConfig c : all_configs(3, 2)) {
    ++cfg_i;
    const int batch = 3;
    std::vector<int> lens = {c.compress_ratio * 2 + 3, c.compress_ratio + 1, 3 * c.compress_ratio};
    const History h = make_history(c, lens, seed + cfg_i, 0.02, cfg_i % 2 ? 8.0f : 30.0f);
    CompressStateBuffer ref_buf(c, batch, 4), ora_buf(c, batch, 4);
    std::vector<std::int32_t> cu = {0, lens[0], lens[0] + lens[1], lens[0] + lens[1] + lens[2]};
    std::vector<std::int32_t> kv_len(lens.begin(), lens.end());
    const int sd = c.state_dim();
    Bytes kvs(static_cast<std::size_t>(cu[3]) * 2 * sd * size_of(c.kv_dtype));
    for (int b = 0; b < batch; ++b)
      for (std::size_t i = 0; i < h.tokens[b].size(); ++i)
        put(kvs, c.kv_dtype, static_cast<std::int64_t>(cu[b]) * 2 * sd + static_cast<std::int64_t>(i), h.tokens[b][i]);
    const auto off = compress_output_offsets(c, batch, kv_len.data(), cu.data());
    CompressStep s{batch, kvs.data(), cu[3], cu.data(), h.ape.data(), kv_len.data(), off.data(), off[batch]};
    Bytes out(static_cast<std::size_t>(off[batch]) * c.head_dim * size_of(c.out_dtype));
    std::vector<double> ora(static_cast<std::size_t>(off[batch]) * c.head_dim);
    const auto r1 = compress_prefill_reference(c, s, ref_buf.view(), out.data());
    const auto r2 = compress_oracle(c, s, ora_buf.view(), ora.data());
    BOOST_REQUIRE_EQUAL(r1.windows, off[batch]);
    BOOST_REQUIRE_EQUAL(r2.windows, off[batch]);
    BOOST_REQUIRE(ref_buf.kv_bytes() == ora_buf.kv_bytes());
    BOOST_REQUIRE(ref_buf.score_bytes() == ora_buf.score_bytes());
    const double out_eps = c.out_dtype == Dtype::bf16 ? std::ldexp(1.0, -8) : 0.0;
    for (std::int64_t r = 0; r < off[batch]; ++r) {
      double dot = 0, nr = 0, no = 0;
      for (int d = 0; d < c.head_dim; ++d) {
        const double x = get(out, c.out_dtype, r * c.head_dim + d), y = ora[r * c.head_dim + d];
        BOOST_REQUIRE_MESSAGE(std::isfinite(x) && std::isfinite(y), c.to_string() << " row " << r << " d " << d);
        const double tol = out_eps * std::fabs(y) + 2e-5 * 2.0;  // |v| <= 2
        BOOST_REQUIRE_MESSAGE(std::fabs(x - y) <= tol, c.to_string() << " seed " << seed + cfg_i << " row " << r
                                                                     << " d " << d << ": ref " << x << " oracle " << y);
        dot += x * y;
        nr += x * x;
        no += y * y;
      }
      const double cos = (nr == 0 && no == 0) ? 1.0 : dot / std::sqrt(nr * no);
      BOOST_REQUIRE_MESSAGE(cos >= 0.99999, c.to_string() << " seed " << seed + cfg_i << " row " << r << " cosine " << cos);
    }
  }
}

BOOST_AUTO_TEST_CASE(invariance_decode_prefill_chunked) {
  // For a sample of configurations (all CR / NRW / dtypes, NN in {1, 3, 5, 8}, page sizes
  // of 1 and 2 windows, shuffled block ids): token-by-token decode, one prefill and a
  // chunked prefill at random boundaries followed by NN-token decode steps give the same
  // output bits and the same state bytes.
  const std::uint64_t seed = test::seed(77);
  const int nseeds = test::seed_count(1);
  std::mt19937_64 pick(seed);
  int cfg_i = 0;
  for (int rep = 0; rep < nseeds; ++rep)
    for (int nn : {1, 3, 5, 8})
      for (CompressConfig c : all_configs(nn, 1 + (nn % 2))) {
        ++cfg_i;
        // Keep the sweep fast: every config with CR = 4, a quarter of the CR = 128 ones.
        if (c.compress_ratio == 128 && (pick() % 4) != 0) continue;
        const std::uint64_t s = seed + 1000 * rep + cfg_i;
        std::mt19937_64 rng(s);
        const int batch = 3;
        const int cr = c.compress_ratio;
        std::vector<int> lens(batch);
        const int decode_tokens = nn * (1 + static_cast<int>(rng() % 3));
        for (int& l : lens) l = decode_tokens + static_cast<int>(rng() % (cr == 4 ? 40 : 3 * cr + 7));
        const int pages = (*std::max_element(lens.begin(), lens.end()) + c.page_size - 1) / c.page_size + 1;
        const auto ids = shuffled_ids(batch * pages, s);
        const History h = make_history(c, lens, s, 0.05);

        // 1. token by token (NN = 1), each request alone.
        CompressConfig c1 = c;
        c1.tokens_per_step = 1;
        Runner tok(c1, batch, pages, ids);
        for (int b = 0; b < batch; ++b)
          while (tok.len[b] < lens[b]) tok.decode_one(h, b);

        // 2. one prefill.
        Runner one(c, batch, pages, ids);
        one.call(h, lens, false);

        // 3. chunked prefill at random boundaries, then decode steps of NN tokens.
        Runner chunk(c, batch, pages, ids);
        std::vector<int> target(batch);
        for (int b = 0; b < batch; ++b) target[b] = lens[b] - decode_tokens;
        while (chunk.len != target) {
          std::vector<int> n(batch);
          for (int b = 0; b < batch; ++b) {
            const int left = target[b] - chunk.len[b];
            n[b] = left == 0 ? 0 : std::min(left, static_cast<int>(rng() % (2 * cr + 3)));
          }
          chunk.call(h, n, false);
        }
        for (int i = 0; i < decode_tokens / nn; ++i) chunk.call(h, std::vector<int>(batch, nn), true);

        for (int b = 0; b < batch; ++b) {
          BOOST_REQUIRE_MESSAGE(tok.rows[b] == one.rows[b], c.to_string() << " seed " << s << " request " << b
                                                                           << ": token-by-token != prefill");
          BOOST_REQUIRE_MESSAGE(chunk.rows[b] == one.rows[b], c.to_string() << " seed " << s << " request " << b
                                                                             << ": chunked + decode != prefill");
          BOOST_REQUIRE_EQUAL(static_cast<std::int64_t>(one.rows[b].size()),
                              static_cast<std::int64_t>(lens[b] / cr) * c.head_dim);
          BOOST_REQUIRE_EQUAL(tok.empties[b], one.empties[b]);
          BOOST_REQUIRE_EQUAL(chunk.empties[b], one.empties[b]);
        }
        BOOST_REQUIRE_MESSAGE(tok.buf.kv_bytes() == one.buf.kv_bytes() && tok.buf.score_bytes() == one.buf.score_bytes(),
                              c.to_string() << " seed " << s << ": state differs (token-by-token vs prefill)");
        BOOST_REQUIRE_MESSAGE(chunk.buf.kv_bytes() == one.buf.kv_bytes() && chunk.buf.score_bytes() == one.buf.score_bytes(),
                              c.to_string() << " seed " << s << ": state differs (chunked + decode vs prefill)");
      }
}

namespace {

/// A one-request history with all scores -inf and kv = a distinct value per (p, col);
/// ape = 0 so that stored scores equal the given ones.
History sparse_history(const CompressConfig& c, int len) {
  const int sd = c.state_dim();
  History h;
  std::vector<float> t(static_cast<std::size_t>(len) * 2 * sd);
  for (int p = 0; p < len; ++p)
    for (int col = 0; col < sd; ++col) {
      t[static_cast<std::size_t>(p) * 2 * sd + col] = static_cast<float>(p) + static_cast<float>(col) / 1024.0f;
      t[static_cast<std::size_t>(p) * 2 * sd + sd + col] = num::neg_inf();
    }
  h.tokens.push_back(std::move(t));
  h.ape.assign(static_cast<std::size_t>(c.compress_ratio) * sd, 0.0f);
  return h;
}

void set_score(const CompressConfig& c, History& h, int p, int col, float s) {
  h.tokens[0][static_cast<std::size_t>(p) * 2 * c.state_dim() + c.state_dim() + col] = s;
}

float kv_at(const CompressConfig& c, const History& h, int p, int col) {
  return h.tokens[0][static_cast<std::size_t>(p) * 2 * c.state_dim() + col];
}

}  // namespace

BOOST_AUTO_TEST_CASE(overlap_candidates_are_exactly_the_documented_ones) {
  // CR = 4, f32 everywhere: one finite score per element picks exactly one candidate, whose
  // value is then the output bit for bit (weight exp(0) = 1, all others exp(-inf) = 0).
  CompressConfig c;
  c.head_dim = 128;
  c.compress_ratio = 4;
  c.tokens_per_step = 1;
  c.kv_dtype = c.state_dtype = c.out_dtype = Dtype::f32;
  c.page_size = 4;  // every window's halves sit on different pages
  const int len = 12;
  History h = sparse_history(c, len);
  // Window 0 (k = 0, no A half): element d picks position d % 4 of the B half (column HD+d).
  // Window 1: even d picks A-half position d % 4 (column d), odd d picks B position 4 + d % 4.
  // Window 2: element d has two finite equal scores: A position 4 + 1 and B position 8 + 2:
  //   output = (v_a + v_b) / 2 computed as fma(fma(0,..)..): a = fma(v_a, 1, v_b * 1), l = 2.
  for (int d = 0; d < c.head_dim; ++d) {
    set_score(c, h, d % 4, c.head_dim + d, 0.0f);
    if (d % 2 == 0)
      set_score(c, h, d % 4, d, 0.0f);
    else
      set_score(c, h, 4 + d % 4, c.head_dim + d, 0.0f);
    set_score(c, h, 5, d, 0.0f);
    set_score(c, h, 10, c.head_dim + d, 0.0f);
  }
  Runner r(c, 1, 4, shuffled_ids(4, 5));
  for (int p = 0; p < len; ++p) r.call(h, {1}, true);
  BOOST_REQUIRE_EQUAL(r.rows[0].size(), 3u * c.head_dim);
  for (int d = 0; d < c.head_dim; ++d) {
    const float w0 = kv_at(c, h, d % 4, c.head_dim + d);
    const float w1 = d % 2 == 0 ? kv_at(c, h, d % 4, d) : kv_at(c, h, 4 + d % 4, c.head_dim + d);
    const float w2 = (kv_at(c, h, 5, d) + kv_at(c, h, 10, c.head_dim + d)) / 2.0f;
    BOOST_REQUIRE_MESSAGE(r.rows[0][d] == bits(w0), "window 0 d " << d);
    BOOST_REQUIRE_MESSAGE(r.rows[0][c.head_dim + d] == bits(w1), "window 1 d " << d);
    BOOST_REQUIRE_MESSAGE(r.rows[0][2 * c.head_dim + d] == bits(w2), "window 2 d " << d);
  }
  BOOST_REQUIRE_EQUAL(r.empties[0], 0);
}

BOOST_AUTO_TEST_CASE(cr128_partitions_cover_the_window) {
  // CR = 128, NRW 1 and 4, NN = 5 (a step straddling windows): one finite score per element
  // at position (37 d) % 128 of window 1; the output is that value exactly. All -inf
  // window 0 outputs 0 and is reported empty with every element.
  for (int nrw : {1, 4}) {
    CompressConfig c;
    c.head_dim = 128;
    c.compress_ratio = 128;
    c.tokens_per_step = 5;
    c.kv_dtype = c.state_dtype = c.out_dtype = Dtype::f32;
    c.warps = nrw;
    c.page_size = 128;
    const int len = 260;  // 52 steps of 5
    History h = sparse_history(c, len);
    for (int d = 0; d < c.head_dim; ++d) set_score(c, h, 128 + (37 * d) % 128, d, 1.5f);
    Runner r(c, 1, 3, shuffled_ids(3, 9));
    for (int p = 0; p < len; p += 5) r.call(h, {5}, true);
    BOOST_REQUIRE_EQUAL(r.rows[0].size(), 2u * c.head_dim);
    for (int d = 0; d < c.head_dim; ++d) {
      BOOST_REQUIRE_EQUAL(r.rows[0][d], bits(0.0f));
      BOOST_REQUIRE_MESSAGE(r.rows[0][c.head_dim + d] == bits(kv_at(c, h, 128 + (37 * d) % 128, d)),
                            "NRW " << nrw << " d " << d);
    }
    BOOST_REQUIRE_EQUAL(r.empties[0], c.head_dim);
  }
}

BOOST_AUTO_TEST_CASE(reduction_order_is_the_documented_one) {
  // DESIGN §3.1 transcribed directly (candidate positions, A then B half, partitions of 32,
  // fold of 1, 2, 3 in order) with the shared step/fold functions: same bits as the
  // reference for CR 4, CR 128 NRW 1 and CR 128 NRW 4 (fp32 state: stored score = s + ape).
  const std::pair<int, int> variants[] = {{4, 1}, {128, 1}, {128, 4}};
  for (const auto& [cr, nrw] : variants) {
    CompressConfig c;
    c.head_dim = 128;
    c.compress_ratio = cr;
    c.warps = nrw;
    c.kv_dtype = c.state_dtype = c.out_dtype = Dtype::f32;
    c.page_size = cr;
    const int len = 3 * cr, sd = c.state_dim(), hd = c.head_dim;
    const History h = make_history(c, {len}, test::seed(31) + cr + nrw, 0.05, 20.0f);
    Runner r(c, 1, 4, shuffled_ids(4, 3));
    r.call(h, {len}, false);
    auto S = [&](int p, int col) { return h.tokens[0][static_cast<std::size_t>(p) * 2 * sd + sd + col] + h.ape[(p % cr) * sd + col]; };
    auto V = [&](int p, int col) { return h.tokens[0][static_cast<std::size_t>(p) * 2 * sd + col]; };
    for (int k = 0; k < 3; ++k)
      for (int d = 0; d < hd; ++d) {
        compress_math::Acc part[4] = {compress_math::acc_init(), compress_math::acc_init(), compress_math::acc_init(),
                                      compress_math::acc_init()};
        if (cr == 4) {
          if (k >= 1)
            for (int i = 0; i < 4; ++i) compress_math::step(part[0], S(4 * k - 4 + i, d), V(4 * k - 4 + i, d));
          for (int i = 0; i < 4; ++i) compress_math::step(part[0], S(4 * k + i, hd + d), V(4 * k + i, hd + d));
        } else {
          for (int w = 0; w < nrw; ++w)
            for (int i = 0; i < 128 / nrw; ++i) {
              const int p = 128 * k + (128 / nrw) * w + i;
              compress_math::step(part[w], S(p, d), V(p, d));
            }
          for (int w = 1; w < nrw; ++w) compress_math::fold(part[0], part[w]);
        }
        const float want = compress_math::finish(part[0]);
        BOOST_REQUIRE_MESSAGE(r.rows[0][static_cast<std::size_t>(k) * hd + d] == bits(want),
                              "CR " << cr << " NRW " << nrw << " window " << k << " d " << d << ": reference "
                                    << test::hex(num::from_bits(r.rows[0][static_cast<std::size_t>(k) * hd + d]))
                                    << " transcription " << test::hex(want));
      }
  }
}

BOOST_AUTO_TEST_CASE(empty_windows_are_reported) {
  CompressConfig c;
  c.head_dim = 128;
  c.compress_ratio = 4;
  c.tokens_per_step = 4;
  c.page_size = 8;
  History h = make_history(c, {16}, test::seed(3));
  // Window 2 (positions 4..11, A then B half): every score -inf -> all elements empty.
  // Window 3: element 7 empty only.
  for (int p = 4; p < 12; ++p)
    for (int col = 0; col < c.state_dim(); ++col) set_score(c, h, p, col, num::neg_inf());
  for (int p = 12; p < 16; ++p) set_score(c, h, p, c.head_dim + 7, num::neg_inf());
  // Window 3's A half is positions 8..11, already -inf.
  CompressStateBuffer buf(c, 1, 2);
  std::vector<std::int32_t> kv_len = {16}, cu = {0, 16};
  Bytes kvs(16 * 2 * c.state_dim() * 2);
  for (std::size_t i = 0; i < h.tokens[0].size(); ++i) put(kvs, c.kv_dtype, static_cast<std::int64_t>(i), h.tokens[0][i]);
  const auto off = compress_output_offsets(c, 1, kv_len.data(), cu.data());
  BOOST_REQUIRE_EQUAL(off[1], 4);
  CompressStep s{1, kvs.data(), 16, cu.data(), h.ape.data(), kv_len.data(), off.data(), 4};
  std::vector<std::uint16_t> out(4 * c.head_dim, 0xffff);
  std::vector<std::uint8_t> empty(4 * c.head_dim, 9);
  const auto rep = compress_prefill_reference(c, s, buf.view(), out.data(), empty.data());
  BOOST_REQUIRE_EQUAL(rep.empty.size(), 2u);
  BOOST_TEST(rep.empty[0].window == 2);
  BOOST_TEST(rep.empty[0].out_row == 2);
  BOOST_TEST(rep.empty[0].empty_elements == c.head_dim);
  BOOST_TEST(rep.empty[1].window == 3);
  BOOST_TEST(rep.empty[1].empty_elements == 1);
  for (int d = 0; d < c.head_dim; ++d) {
    BOOST_TEST(out[2 * c.head_dim + d] == 0);
    BOOST_TEST(empty[2 * c.head_dim + d] == 1);
    BOOST_TEST(empty[3 * c.head_dim + d] == (d == 7 ? 1 : 0));
    BOOST_TEST(empty[d] == 0);
  }
  BOOST_TEST(out[3 * c.head_dim + 7] == 0);
  BOOST_TEST(out[3 * c.head_dim + 8] != 0);
}

BOOST_AUTO_TEST_CASE(nan_and_inf_scores_propagate) {
  CompressConfig c;
  c.head_dim = 128;
  c.compress_ratio = 128;
  c.tokens_per_step = 1;
  c.kv_dtype = c.state_dtype = c.out_dtype = Dtype::f32;
  c.warps = 4;
  History h = make_history(c, {128}, test::seed(4));
  set_score(c, h, 40, 3, num::from_bits(0xffa12345u));  // a NaN with a payload and the sign set
  set_score(c, h, 100, 5, num::inf());
  h.tokens[0][77 * 2 * c.state_dim() + 9] = num::from_bits(0x7f812345u);  // NaN kv value
  Runner r(c, 1, 1);
  r.call(h, {128}, false);
  BOOST_REQUIRE_EQUAL(r.rows[0].size(), 128u);
  for (int d = 0; d < c.head_dim; ++d) {
    const bool nan = d == 3 || d == 5 || d == 9;
    BOOST_TEST(num::is_nan(num::from_bits(r.rows[0][d])) == nan, "d " << d);
    if (nan) BOOST_TEST(r.rows[0][d] == 0x7fc00000u, "canonical NaN at d " << d);  // whatever the input payload
  }
  // The stored score is canonical too; the stored kv keeps its bits (no arithmetic).
  const auto& sc = r.buf.score_bytes();
  const auto& kv = r.buf.kv_bytes();
  BOOST_TEST(bits(get(sc, Dtype::f32, 40 * c.state_dim() + 3)) == 0x7fc00000u);
  BOOST_TEST(bits(get(kv, Dtype::f32, 77 * c.state_dim() + 9)) == 0x7f812345u);
}

BOOST_AUTO_TEST_CASE(nrw_is_part_of_the_schedule) {
  // NRW 1 and 4 are different reduction orders: on random data some bits differ, both
  // stay within fp32 rounding of each other.
  CompressConfig c;
  c.head_dim = 512;
  c.compress_ratio = 128;
  c.kv_dtype = c.state_dtype = c.out_dtype = Dtype::f32;
  const History h = make_history(c, {256}, test::seed(5), 0.0, 20.0f);
  Runner r1(c, 1, 2), r4(c, 1, 2);
  c.warps = 4;
  r4.cfg = c;
  r1.call(h, {256}, false);
  r4.call(h, {256}, false);
  std::size_t differ = 0;
  for (std::size_t i = 0; i < r1.rows[0].size(); ++i) {
    const float a = num::from_bits(r1.rows[0][i]), b = num::from_bits(r4.rows[0][i]);
    differ += r1.rows[0][i] != r4.rows[0][i];
    BOOST_REQUIRE_LE(std::fabs(a - b), 1e-5f);
  }
  BOOST_TEST(differ > 0u);
  BOOST_TEST(r4.cfg.schedule().to_string().find("warp0_in_order") != std::string::npos);
  BOOST_TEST(c.to_string().find("NRW=4") != std::string::npos);
}

namespace {

struct BadFixture {
  CompressConfig c;
  CompressStateBuffer buf;
  std::vector<std::int32_t> kv_len{8, 4}, off{0, 0, 0};
  std::vector<float> ape;
  std::vector<std::uint16_t> kvs;
  std::vector<std::uint16_t> out;
  CompressStep s;
  BadFixture() : c(make()), buf(c, 2, 2) {
    ape.assign(static_cast<std::size_t>(c.compress_ratio) * c.state_dim(), 0.0f);
    kvs.assign(static_cast<std::size_t>(2 * c.tokens_per_step) * 2 * c.state_dim(), 0);
    off = compress_output_offsets(c, 2, kv_len.data());
    out.assign(static_cast<std::size_t>(off[2] + 1) * c.head_dim, 0);
    s = CompressStep{2, kvs.data(), 2 * c.tokens_per_step, nullptr, ape.data(), kv_len.data(), off.data(), off[2]};
  }
  static CompressConfig make() {
    CompressConfig c;
    c.head_dim = 128;
    c.compress_ratio = 4;
    c.tokens_per_step = 4;
    c.page_size = 4;
    return c;
  }
  void run() { (void)compress_decode_reference(c, s, buf.view(), out.data()); }
};

void expect_error(BadFixture& f, Errc code, const std::string& needle) {
  try {
    f.run();
  } catch (const Error& e) {
    BOOST_TEST_MESSAGE(e.what());
    BOOST_TEST((e.code() == code), "code " << to_string(e.code()) << " for: " << e.what());
    BOOST_TEST(std::string(e.what()).find(needle) != std::string::npos, "'" << needle << "' not in: " << e.what());
    return;
  }
  BOOST_ERROR("no error, expected one containing '" << needle << "'");
}

}  // namespace

BOOST_AUTO_TEST_CASE(bad_input_is_named) {
  {
    BadFixture f;
    f.run();  // the fixture itself is valid
  }
  {
    BadFixture f;
    f.c.page_size = 6;
    expect_error(f, Errc::bad_input, "page_size 6 is not a positive multiple of CR");
  }
  {
    BadFixture f;
    f.c.head_dim = 256;
    expect_error(f, Errc::unsupported, "supported: HD in {128, 512}");
  }
  {
    BadFixture f;
    f.c.warps = 4;
    expect_error(f, Errc::unsupported, "warps (NRW)");
  }
  {
    BadFixture f;
    f.c.tokens_per_step = 9;
    expect_error(f, Errc::unsupported, "tokens_per_step");
  }
  {
    BadFixture f;
    f.c.compress_ratio = 8;
    expect_error(f, Errc::unsupported, "compress_ratio");
  }
  {
    BadFixture f;
    f.kv_len[1] = 3;  // fewer than NN = 4
    expect_error(f, Errc::bad_input, "kv_len[1] = 3 is less than the 4 tokens");
  }
  {
    BadFixture f;
    f.buf.block_table()[1] = 99;  // request 0, page 1
    expect_error(f, Errc::bad_input, "block_table[0][1] = 99 is outside [0, num_blocks = 4)");
  }
  {
    BadFixture f;
    f.buf.block_table()[2] = -1;  // request 1, page 0
    expect_error(f, Errc::bad_input, "block_table[1][0] = -1");
  }
  {
    BadFixture f;
    f.kv_len[0] = 12;  // needs page 2 of 2
    expect_error(f, Errc::bad_input, "needs page 2 but block_table has max_blocks = 2");
  }
  {
    BadFixture f;
    f.off[2] = 1;  // request 1 emits one window
    expect_error(f, Errc::bad_input, "out_offsets[2] - out_offsets[1]");
  }
  {
    BadFixture f;
    f.s.out_rows = 1;
    expect_error(f, Errc::bad_input, "exceeds out_rows");
  }
  {
    BadFixture f;
    f.s.tokens = 7;
    expect_error(f, Errc::bad_input, "kv_score has 7 rows");
  }
  {
    BadFixture f;
    f.s.ape = nullptr;
    expect_error(f, Errc::bad_input, "ape is null");
  }
  {
    BadFixture f;
    std::vector<std::int32_t> cu = {0, 4, 8};
    f.s.cu_seq_lens = cu.data();
    expect_error(f, Errc::bad_input, "cu_seq_lens must be null");
  }
  BOOST_CHECK_THROW(compress_output_offsets(BadFixture::make(), 1, std::vector<std::int32_t>{2}.data()), Error);
}
