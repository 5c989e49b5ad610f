// GPU top-k == topk_reference bit for bit: the edge fixtures of the reference suite, >= 1000
// random configurations (dtype, K, N_r, next_n, ratio, stride, blocks_per_row, streamed
// tiles), the same bits for every blocks_per_row in 1 .. 32, CUDA-graph capture then 100
// replays with fresh inputs, and launch-time errors. DSV4LAB_SEED replays one seed;
// DSV4LAB_SEEDS scales the random sweep (e.g. 1 under compute-sanitizer).
#define BOOST_TEST_MODULE gpu_topk
#include <boost/test/unit_test.hpp>

#include "gpu/topk.cuh"
#include "gpu_test_util.hpp"
#include "reference/topk_fixtures.hpp"
#include "test_util.hpp"

#include <limits>
#include <random>
#include <string>
#include <vector>

using namespace dsv4;
using test::TopkCase;

namespace {

std::vector<std::int32_t> run_reference(const TopkCase& c) {
  std::vector<std::int32_t> out(static_cast<std::size_t>(c.rows * c.k), -7);
  topk_reference(c.problem(), out.data());
  return out;
}

/// Device copies of a case and the launch parameters pointing at them.
struct DeviceCase {
  test::DeviceBuffer<std::uint8_t> logits;
  test::DeviceBuffer<std::int32_t> seq_lens, out;
  test::DeviceBuffer<std::uint8_t> workspace;
  gpu::TopkParams params;

  DeviceCase(const TopkCase& c, int blocks_per_row) {
    logits.upload(c.logits);
    seq_lens.upload(c.seq_lens);
    out.resize(static_cast<std::size_t>(c.rows * c.k));
    workspace.resize(gpu::topk_workspace_bytes(c.rows, c.cols, c.k, blocks_per_row));
    params.logits = logits.get();
    params.dtype = c.dtype;
    params.rows = c.rows;
    params.cols = c.cols;
    params.row_stride = c.row_stride;
    params.seq_lens = seq_lens.get();
    params.batch = static_cast<std::int64_t>(c.seq_lens.size());
    params.next_n = c.next_n;
    params.compress_ratio = c.compress_ratio;
    params.k = c.k;
    params.out = out.get();
    params.blocks_per_row = blocks_per_row;
    params.sm_count = test::device_sm_count();
  }
  Status launch(cudaStream_t s = nullptr) { return gpu::topk_launch(params, workspace.get(), workspace.size(), s); }
};

std::vector<std::int32_t> run_gpu(const TopkCase& c, int blocks_per_row) {
  DeviceCase d(c, blocks_per_row);
  d.out.fill_bytes(0x5A);  // poison: every slot must be written
  DSV4_STATUS_REQUIRE(d.launch());
  DSV4_CUDA_REQUIRE(cudaDeviceSynchronize());
  return d.out.download();
}

/// GPU (blocks_per_row = bp) == reference, or a failure naming the case, seed and first difference.
bool check_gpu(const TopkCase& c, int bp, std::uint64_t seed, const std::vector<std::int32_t>* want_in = nullptr) {
  const std::vector<std::int32_t> want = want_in ? *want_in : run_reference(c);
  const std::vector<std::int32_t> got = run_gpu(c, bp);
  const std::string d = test::first_diff(got, want, c.k);
  BOOST_CHECK_MESSAGE(d.empty(), c.describe() << " blocks_per_row " << bp << " (rule gives "
                                              << gpu::topk_blocks_per_row_rule(c.rows, c.cols, test::device_sm_count()) << ") seed "
                                              << seed << ": gpu != reference at " << d);
  return d.empty();
}

TopkCase random_case(std::mt19937_64& rng, std::int64_t max_cols) {
  const LogitDtype dts[] = {LogitDtype::f32, LogitDtype::bf16, LogitDtype::f16};
  const int ks[] = {1, 2, 7, 64, 512, 1000, 1024, 2047, 2048};
  const LogitDtype dt = dts[rng() % 3];
  const int k = rng() % 4 == 0 ? 1 + static_cast<int>(rng() % 2048) : ks[rng() % 9];
  const int next_n = 1 + static_cast<int>(rng() % 4);
  const int ratio = rng() % 2 ? 4 : 1;
  const std::int64_t batch = 1 + static_cast<std::int64_t>(rng() % 3);
  // log-uniform columns in [1, max_cols]
  std::uniform_real_distribution<double> lg(0.0, std::log(static_cast<double>(max_cols)));
  // cols >= next_n: otherwise no seq_len gives every row of a request a length in [0, cols].
  const std::int64_t cols = std::max<std::int64_t>(next_n, static_cast<std::int64_t>(std::exp(lg(rng))));
  TopkCase c = test::make_case("random", dt, batch, next_n, ratio, k, cols, static_cast<std::int64_t>(rng() % 5));
  test::fill_kind(c, rng, static_cast<int>(rng() % 5));
  test::random_seq_lens(c, rng);
  test::poison_tail(c);
  return c;
}

TopkCase uniform_row(LogitDtype dt, std::int64_t rows, std::int64_t cols, int k, std::uint64_t seed, int kind = 0) {
  std::mt19937_64 rng(seed);
  TopkCase c = test::make_case("rows " + std::to_string(rows) + " kind " + std::to_string(kind), dt, rows, 1, 1, k, cols);
  test::fill_kind(c, rng, kind);
  for (auto& s : c.seq_lens) s = static_cast<std::int32_t>(cols);
  return c;
}

}  // namespace

BOOST_AUTO_TEST_CASE(hand_fixtures) {
  // Row: 1.0, NaN, -inf, +0, -0, 3.0, -NaN, +inf for every K from 1 to 10 and three dtypes.
  const std::uint32_t f32[] = {0x3f800000u, 0x7fc00000u, 0xff800000u, 0x0u, 0x80000000u, 0x40400000u, 0xffc00000u, 0x7f800000u};
  const std::uint32_t b16[] = {0x3f80u, 0x7fc0u, 0xff80u, 0x0u, 0x8000u, 0x4040u, 0xffc0u, 0x7f80u};
  const std::uint32_t h16[] = {0x3c00u, 0x7e00u, 0xfc00u, 0x0u, 0x8000u, 0x4200u, 0xfe00u, 0x7c00u};
  for (LogitDtype dt : {LogitDtype::f32, LogitDtype::bf16, LogitDtype::f16}) {
    for (int k = 1; k <= 10; ++k) {
      TopkCase c = test::make_case("hand", dt, 1, 1, 1, k, 8);
      for (int j = 0; j < 8; ++j) c.set_bits(0, j, dt == LogitDtype::f32 ? f32[j] : dt == LogitDtype::bf16 ? b16[j] : h16[j]);
      c.seq_lens[0] = 8;
      for (int bp : {0, 1, 2, 3}) check_gpu(c, bp, 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(edge_fixtures) {
  const std::uint64_t s = test::base_seed(11);
  std::mt19937_64 rng(s);
  for (LogitDtype dt : {LogitDtype::f32, LogitDtype::bf16, LogitDtype::f16}) {
    // N_r around K, every value kind, odd sizes.
    for (int k : {1, 512, 2048}) {
      for (int delta : {-1, 0, 1, 2}) {
        for (int kind = 0; kind <= 4; ++kind) {
          TopkCase c = test::make_case("n_around_k", dt, 3, 1, 1, k, k + 5, 3);
          test::fill_kind(c, rng, kind);
          for (auto& sl : c.seq_lens) sl = std::max(0, k + delta);
          test::poison_tail(c);
          const auto want = run_reference(c);
          for (int bp : {0, 1, 2, 5}) check_gpu(c, bp, s, &want);
        }
      }
    }
    for (std::int64_t cols : {7, 65, 4099}) {
      for (int kind = 0; kind <= 4; ++kind) {
        for (int next_n = 1; next_n <= 4; ++next_n) {
          for (int ratio : {1, 4}) {
            const int k = cols == 7 ? 3 : cols == 65 ? 17 : 2048;
            TopkCase c = test::make_case("odd cols", dt, 2, next_n, ratio, k, cols, 1);
            test::fill_kind(c, rng, kind);
            test::random_seq_lens(c, rng);
            test::poison_tail(c);
            const auto want = run_reference(c);
            for (int bp : {0, 1, 3}) check_gpu(c, bp, s, &want);
          }
        }
      }
    }
    // A zero plateau with mixed signs much wider than K.
    TopkCase z = uniform_row(dt, 2, 20000, 2048, s + 1, 2);  // ~1250 positives: K-th is a +0
    const auto want = run_reference(z);
    for (int bp : {0, 1, 2, 7, 16}) check_gpu(z, bp, s, &want);
  }
}

BOOST_AUTO_TEST_CASE(random_configurations) {
  // 1100 configurations at the default seed count (DSV4LAB_SEEDS=1 -> 110).
  const int n = 110 * test::seed_count(10);
  const std::uint64_t s = test::base_seed(20261121);
  std::mt19937_64 rng(s);
  int failures = 0;
  for (int i = 0; i < n && failures < 5; ++i) {
    TopkCase c = random_case(rng, 70000);
    c.name = "random #" + std::to_string(i);
    const int bp = static_cast<int>(rng() % 33);  // 0 = rule
    if (!check_gpu(c, bp, s)) ++failures;
  }
}

BOOST_AUTO_TEST_CASE(same_bits_for_every_blocks_per_row) {
  const std::uint64_t s = test::base_seed(3);
  std::vector<TopkCase> cases;
  cases.push_back(uniform_row(LogitDtype::f32, 1, 131072, 2048, s));
  cases.push_back(uniform_row(LogitDtype::bf16, 3, 65536, 512, s + 1, 1));  // few distinct values
  cases.push_back(uniform_row(LogitDtype::f16, 2, 20000, 1024, s + 2, 3));   // specials
  cases.push_back(uniform_row(LogitDtype::f32, 2, 20000, 2048, s + 3, 2));   // ±0 plateau
  cases.push_back(uniform_row(LogitDtype::f32, 4, 65, 7, s + 4, 0));         // more blocks than needed
  for (const auto& c : cases) {
    const auto want = run_reference(c);
    for (int bp = 1; bp <= 32; ++bp)
      if (!check_gpu(c, bp, s, &want)) break;
  }
}

BOOST_AUTO_TEST_CASE(streamed_tiles_and_long_rows) {
  // Chunks longer than one register tile (streamed once per pass) and a merge over many slots.
  // With bp 1, b's first threshold bin (1/16 of 2^20 uniform items) and t's tie class (a fifth
  // of 300000) overflow the shared candidate list, so their later passes stream the chunk.
  const std::uint64_t s = test::base_seed(9);
  TopkCase a = uniform_row(LogitDtype::f32, 2, 100000, 2048, s, 0);
  const auto wa = run_reference(a);
  for (int bp : {1, 2, 64}) check_gpu(a, bp, s, &wa);
  TopkCase b = uniform_row(LogitDtype::f32, 1, 1 << 20, 2048, s + 1, 0);
  const auto wb = run_reference(b);
  for (int bp : {0, 1, 32, 64}) check_gpu(b, bp, s, &wb);
  TopkCase t = uniform_row(LogitDtype::bf16, 1, 300000, 2048, s + 2, 1);  // huge tie classes
  const auto wt = run_reference(t);
  for (int bp : {0, 1, 64}) check_gpu(t, bp, s, &wt);
}

BOOST_AUTO_TEST_CASE(filtered_chunks_in_any_order) {
  // A chunk longer than a tile is filtered into a shared list in one read, pruned to its k best
  // whenever it would overflow. Ascending rows let every item of a tile through after a prune,
  // which makes the filter raise its floor from a sample of the rest of the chunk (bp 1 and 2
  // here); descending rows let none through after the first; sawtooth rows and bf16's coarse
  // steps put tie classes across prunes (an equal key arriving later loses). The filter's first
  // floor is a guess from a sample of 256 runs of 32 items spread evenly over the chunk; pattern 3
  // puts the row's best items in exactly those runs (the first 32 of every 768 columns, rising,
  // in chunks of 196608 / bp columns), so too few items reach the guess and the chunk is read
  // again from floor 0.
  const std::uint64_t s = test::base_seed(11);
  for (int pattern = 0; pattern < 4; ++pattern) {
    for (const LogitDtype dt : {LogitDtype::f32, LogitDtype::bf16}) {
      TopkCase c = uniform_row(dt, 2, pattern == 3 ? 196608 : 200000, 2048, s + static_cast<std::uint64_t>(pattern), 0);
      for (std::int64_t r = 0; r < c.rows; ++r) {
        for (std::int64_t j = 0; j < c.cols; ++j) {
          const float x = static_cast<float>(j);
          const float hot = j % 768 < 32 ? 1000.0f + 1e-3f * x : 1e-3f * static_cast<float>(j % 997);
          c.set(r, j, pattern == 0   ? 1e-3f * x
                      : pattern == 1 ? -1e-3f * x
                      : pattern == 2 ? static_cast<float>(j % 5000) - 100.0f * r
                                     : hot);
        }
      }
      c.name = "pattern " + std::to_string(pattern);
      const auto want = run_reference(c);
      for (int bp : {1, 2, 4}) check_gpu(c, bp, s, &want);
    }
  }
}

BOOST_AUTO_TEST_CASE(sixteen_bit_keys_in_two_passes) {
  // bf16 and fp16 keys are decided by two radix digits (their low 13 bits are constant), so the
  // kernel selects them in two passes and a list prune's floor is the next key above the k-th.
  // Rows that make every prune end on such a cut: a +inf plateau wider than a list (the cut at
  // +inf, where the floor saturates), rising negative values in tie classes of 40 (keys with
  // their low bits all ones; an equal key arriving after a prune loses), and the same with NaNs
  // and -inf between them. Resident, clustered, filtered and split + merge.
  const std::uint64_t s = test::base_seed(12);
  for (const LogitDtype dt : {LogitDtype::bf16, LogitDtype::f16}) {
    for (int pattern = 0; pattern < 3; ++pattern) {
      for (const std::int64_t cols : {std::int64_t{16000}, std::int64_t{100000}}) {
        TopkCase c = uniform_row(dt, 2, cols, 2048, s + static_cast<std::uint64_t>(pattern), 0);
        const float inf = std::numeric_limits<float>::infinity();
        for (std::int64_t r = 0; r < c.rows; ++r) {
          for (std::int64_t j = 0; j < c.cols; ++j) {
            const float rising = -static_cast<float>((c.cols - j) / 40) / 64.0f - 1.0f;
            const float x = pattern == 0   ? (j % 7 == 3 ? -1.0f : inf)
                            : pattern == 1 ? rising
                            : j % 11 == 0  ? std::numeric_limits<float>::quiet_NaN()
                            : j % 13 == 0  ? -inf
                                           : rising;
            c.set(r, j, x);
          }
        }
        c.name = "16-bit pattern " + std::to_string(pattern);
        const auto want = run_reference(c);
        for (int bp : {1, 2, 8, 32}) check_gpu(c, bp, s, &want);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(cut_among_nans_with_ragged_chunks) {
  // Items outside a block's chunk have the key of a NaN (0), and the kernels skip the mask test
  // unless the cut (or a threshold digit or prefix) is at 0: rows with fewer than k non-NaN
  // items, whose k-th item is a NaN, and row lengths that leave every chunk with a ragged tile.
  const std::uint64_t s = test::base_seed(13);
  std::mt19937_64 rng(s);
  for (const LogitDtype dt : {LogitDtype::f32, LogitDtype::bf16, LogitDtype::f16}) {
    for (const std::int64_t cols : {std::int64_t{5001}, std::int64_t{70001}}) {
      TopkCase c = uniform_row(dt, 3, cols, 2048, s, 0);
      std::uniform_int_distribution<std::int64_t> finite(0, 2047);  // finite items of a row: fewer than k
      for (std::int64_t r = 0; r < c.rows; ++r) {
        const std::int64_t keep = finite(rng);
        for (std::int64_t j = 0; j < c.cols; ++j)
          c.set(r, j,
                (j * 7919) % c.cols < keep ? static_cast<float>(j % 97) : std::numeric_limits<float>::quiet_NaN());
      }
      const auto len = [](std::int64_t v) { return static_cast<std::int32_t>(v); };
      c.seq_lens = {len(cols), len(cols - 3), len(cols / 2 + 1)};
      c.name = "nan rows";
      const auto want = run_reference(c);
      for (int bp : {1, 3, 8}) check_gpu(c, bp, s, &want);
    }
  }
}

BOOST_AUTO_TEST_CASE(sanitizer_smoke) {
  // A few launches covering every path, for compute-sanitizer runs (--run_test=sanitizer_smoke):
  // one resident tile, split + merge, a filtered row (several tiles), a streamed merge
  // (bp * K over several tiles), a tie plateau, short rows, filtered rows that are pruned (by
  // one counting pass; all-NaN and constant rows by a whole select), and rows over a cluster
  // (every pass exchanges counts between the blocks): resident tiles at bp 8, filtered lists at
  // bp 2, and a NaN row and a constant row (one tie class each) at bp 4.
  const std::uint64_t s = test::base_seed(8);
  check_gpu(uniform_row(LogitDtype::f32, 1, 100000, 512, s + 5, 0), 1, s);
  check_gpu(uniform_row(LogitDtype::bf16, 2, 100000, 2048, s + 6, 5), 1, s);
  check_gpu(uniform_row(LogitDtype::f32, 2, 10000, 512, s, 0), 1, s);
  check_gpu(uniform_row(LogitDtype::bf16, 2, 10000, 512, s + 1, 3), 4, s);
  check_gpu(uniform_row(LogitDtype::f32, 1, 40000, 2048, s + 2, 0), 1, s);
  check_gpu(uniform_row(LogitDtype::f16, 1, 70000, 2048, s + 3, 1), 32, s);
  check_gpu(uniform_row(LogitDtype::f32, 1, 20000, 2048, s + 4, 2), 0, s);
  check_gpu(uniform_row(LogitDtype::f32, 1, 131072, 2048, s + 7, 0), 8, s);
  check_gpu(uniform_row(LogitDtype::bf16, 1, 100000, 2048, s + 8, 1), 2, s);
  check_gpu(uniform_row(LogitDtype::f32, 2, 131072, 512, s + 9, 5), 4, s);
  TopkCase c = test::make_case("short rows", LogitDtype::f32, 3, 2, 4, 64, 300);
  std::mt19937_64 rng(s);
  test::fill_kind(c, rng, 0);
  test::random_seq_lens(c, rng);
  test::poison_tail(c);
  check_gpu(c, 2, s);
}

BOOST_AUTO_TEST_CASE(graph_capture_and_replay_with_fresh_inputs) {
  const std::uint64_t s = test::base_seed(42);
  std::mt19937_64 rng(s);
  TopkCase c = test::make_case("graph", LogitDtype::f32, 4, 2, 4, 512, 30000);
  test::fill_kind(c, rng, 0);
  test::random_seq_lens(c, rng);
  DeviceCase d(c, 0);  // the rule's blocks_per_row; workspace sized for its largest choice
  cudaStream_t stream;
  DSV4_CUDA_REQUIRE(cudaStreamCreate(&stream));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  DSV4_CUDA_REQUIRE(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  const Status st = d.launch(stream);
  DSV4_CUDA_REQUIRE(cudaStreamEndCapture(stream, &graph));
  DSV4_STATUS_REQUIRE(st);
  DSV4_CUDA_REQUIRE(cudaGraphInstantiate(&exec, graph, 0));
  for (int replay = 0; replay < 100; ++replay) {
    test::fill_kind(c, rng, replay % 5);
    test::random_seq_lens(c, rng);
    test::poison_tail(c);
    DSV4_CUDA_REQUIRE(cudaMemcpy(d.logits.get(), c.logits.data(), c.logits.size(), cudaMemcpyHostToDevice));
    DSV4_CUDA_REQUIRE(cudaMemcpy(d.seq_lens.get(), c.seq_lens.data(), c.seq_lens.size() * 4, cudaMemcpyHostToDevice));
    d.out.fill_bytes(0x5A);
    DSV4_CUDA_REQUIRE(cudaGraphLaunch(exec, stream));
    DSV4_CUDA_REQUIRE(cudaStreamSynchronize(stream));
    const std::string diff = test::first_diff(d.out.download(), run_reference(c), c.k);
    BOOST_REQUIRE_MESSAGE(diff.empty(), "replay " << replay << " seed " << s << ": " << diff);
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

BOOST_AUTO_TEST_CASE(invalid_row_lengths_write_minus_one) {
  // The kernel does not validate device-resident seq_lens: a row with N_r > cols is all -1.
  TopkCase c = test::make_case("bad rows", LogitDtype::f32, 2, 1, 1, 4, 10);
  c.seq_lens = {11, 6};
  for (int bp : {1, 2}) {
    const auto got = run_gpu(c, bp);
    const std::vector<std::int32_t> want = {-1, -1, -1, -1, 0, 1, 2, 3};
    BOOST_TEST(got == want, boost::test_tools::per_element());
  }
}

BOOST_AUTO_TEST_CASE(launch_errors_name_the_parameter) {
  TopkCase c = uniform_row(LogitDtype::f32, 2, 50000, 64, 1);
  // A split within one cluster needs no workspace; a wider split (through the merge kernel) does.
  BOOST_TEST(gpu::topk_workspace_bytes(c.rows, c.cols, c.k, port::kMaxClusterBlocks) == 0u);
  DeviceCase d(c, 12);
  DSV4_STATUS_REQUIRE(d.launch());
  auto expect = [&](gpu::TopkParams p, std::size_t ws, Errc code, const std::string& needle) {
    const Status st = gpu::topk_launch(p, d.workspace.get(), ws, nullptr);
    BOOST_TEST((st.code == code), st.message);
    BOOST_TEST(st.message.find(needle) != std::string::npos, "'" << st.message << "' lacks '" << needle << "'");
  };
  const std::size_t ws = d.workspace.size();
  gpu::TopkParams p = d.params;
  p.k = 0;
  expect(p, ws, Errc::unsupported, "supported: dtype in {f32, bf16, f16}");
  p = d.params;
  p.k = 4096;
  expect(p, ws, Errc::unsupported, "k = 4096");
  p = d.params;
  p.blocks_per_row = 65;
  expect(p, ws, Errc::unsupported, "blocks_per_row = 65");
  p = d.params;
  p.row_stride = c.cols - 1;
  expect(p, ws, Errc::bad_input, "row_stride");
  p = d.params;
  p.logits = nullptr;
  expect(p, ws, Errc::bad_input, "logits");
  p = d.params;
  p.seq_lens = nullptr;
  expect(p, ws, Errc::bad_input, "seq_lens");
  p = d.params;
  p.out = nullptr;
  expect(p, ws, Errc::bad_input, "out");
  p = d.params;
  p.batch = 1;
  expect(p, ws, Errc::bad_input, "seq_lens too short");
  p = d.params;
  expect(p, ws - 1, Errc::bad_input, "workspace_bytes");
  p = d.params;
  p.blocks_per_row = 0;
  p.sm_count = 0;
  expect(p, ws, Errc::bad_input, "sm_count");
  DSV4_CUDA_REQUIRE(cudaDeviceSynchronize());
}

BOOST_AUTO_TEST_CASE(random_configurations_many, *boost::unit_test::label("long")) {
  const std::uint64_t s = test::base_seed(777);
  std::mt19937_64 rng(s);
  int failures = 0;
  for (int i = 0; i < 20000 && failures < 5; ++i) {
    TopkCase c = random_case(rng, 300000);
    c.name = "random #" + std::to_string(i);
    if (!check_gpu(c, static_cast<int>(rng() % 65), s)) ++failures;
  }
}
