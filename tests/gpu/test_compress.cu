// GPU compressor == reference, bit for bit: every row of the GPU config table (both head
// dims), random NN, batch and lengths, chunked prefills and decode steps on a paged state
// with shuffled block ids and output rows with gaps (rows not emitted must stay untouched);
// CUDA-graph capture + replay of a decode step; grid-stride correctness with a small
// max_tokens; invalid requests skipped without faults; launcher errors; the kernels'
// branch-free step math (gpu/compress_step.hpp) == compress_math on the device.
#define BOOST_TEST_MODULE gpu_compress
#include <boost/test/unit_test.hpp>

#include "gpu/compress.cuh"
#include "gpu/compress_step.hpp"
#include "compress_step_probe.hpp"
#include "gpu_test_util.hpp"
#include "reference/compress.hpp"
#include "test_util.hpp"
#include "reference/compress_fixtures.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <sstream>
#include <vector>

using namespace dsv4;

namespace {

using test::Bytes;
using test::get;
using test::put;

std::vector<CompressConfig> gpu_table() {
  std::vector<CompressConfig> v;
  for (int hd : gpu::kCompressGpuHeadDims) {
#define DSV4_TEST_ROW(CR, NRW, KV, ST, OUT) \
  {                                         \
    CompressConfig c;                       \
    c.head_dim = hd;                        \
    c.compress_ratio = CR;                  \
    c.warps = NRW;                          \
    c.kv_dtype = Dtype::KV;                 \
    c.state_dtype = Dtype::ST;              \
    c.out_dtype = Dtype::OUT;               \
    v.push_back(c);                         \
  }
    DSV4_COMPRESS_GPU_CONFIGS(DSV4_TEST_ROW)
#undef DSV4_TEST_ROW
  }
  return v;
}

/// First differing element of two equally sized byte arrays viewed as `d` (or -1).
std::int64_t first_diff(const Bytes& a, const Bytes& b, std::size_t elem) {
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return static_cast<std::int64_t>(i / elem);
  return -1;
}

/// One configuration's host reference state and device state, advanced call by call.
struct Case {
  CompressConfig c;
  int batch;
  int pages;
  std::mt19937_64 rng;
  std::uint64_t seed;
  CompressStateBuffer ref;
  test::DeviceBuffer<unsigned char> dkv, dscore;
  test::DeviceBuffer<std::int32_t> dtable;
  std::vector<float> ape;
  test::DeviceBuffer<float> dape;
  std::vector<int> len;
  int calls = 0;
  int vec = 0;  // vector_width of the next launches (0: the rule's)

  static std::vector<std::int32_t> ids(int n, std::uint64_t seed) {
    std::vector<std::int32_t> v(n);
    std::iota(v.begin(), v.end(), 0);
    std::mt19937_64 r(seed);
    std::shuffle(v.begin(), v.end(), r);
    return v;
  }

  Case(const CompressConfig& cfg, int b, int pages_per_request, std::uint64_t s)
      : c(cfg), batch(b), pages(pages_per_request), rng(s), seed(s), ref(cfg, b, pages_per_request, ids(b * pages_per_request, s)),
        len(b, 0) {
    dkv.upload(ref.kv_bytes());
    dscore.upload(ref.score_bytes());
    dtable.upload(ref.block_table());
    std::uniform_real_distribution<float> ap(-1.0f, 1.0f);
    ape.resize(static_cast<std::size_t>(c.compress_ratio) * c.state_dim());
    for (float& a : ape) a = ap(rng);
    dape.upload(ape);
  }

  CompressState dstate() {
    CompressState s;
    s.state_kv = dkv.get();
    s.state_score = dscore.get();
    s.block_table = dtable.get();
    s.num_blocks = ref.num_blocks();
    s.max_blocks = ref.max_blocks();
    return s;
  }

  /// Decode-step parameters on this case's ape and state, with vector_width = vec.
  gpu::CompressDecodeParams decode_params(const void* kvs, const std::int32_t* kv_len, const std::int32_t* off,
                                          void* out, std::uint8_t* empty) {
    gpu::CompressDecodeParams p;
    p.config = c;
    p.batch = batch;
    p.kv_score = kvs;
    p.ape = dape.get();
    p.kv_len = kv_len;
    p.out_offsets = off;
    p.out = out;
    p.empty = empty;
    p.state = dstate();
    p.vector_width = vec;
    return p;
  }

  Bytes random_rows(std::int64_t rows) {
    const int sd = c.state_dim();
    // Scores: 3% -inf, 0.05% NaN with a payload; kv: 0.05% NaN with a payload (CPU and GPU
    // NaN payload rules differ: outputs must still match bit for bit).
    std::uniform_real_distribution<float> kv(-2.0f, 2.0f), sc(-8.0f, 8.0f), u(0.0f, 1.0f);
    Bytes b(static_cast<std::size_t>(rows) * 2 * sd * size_of(c.kv_dtype));
    for (std::int64_t r = 0; r < rows; ++r)
      for (int col = 0; col < sd; ++col) {
        const float x = u(rng), y = u(rng);
        put(b, c.kv_dtype, r * 2 * sd + col, y < 0.0005f ? num::from_bits(0xffb00001u) : kv(rng));
        put(b, c.kv_dtype, r * 2 * sd + sd + col,
            x < 0.03f ? num::neg_inf() : x < 0.0305f ? num::from_bits(0x7fa0beefu) : sc(rng));
      }
    return b;
  }

  /// One call (decode when n is nullptr: NN tokens each) on both sides; compares outputs
  /// (whole buffers, poisoned alike), empty masks and state bytes.
  void call(const std::vector<int>* n, bool gaps, int max_tokens_override = -1) {
    ++calls;
    const bool decode = n == nullptr;
    std::vector<std::int32_t> cu(batch + 1, 0), kv_len(batch), off(batch + 1, 0);
    for (int b = 0; b < batch; ++b) {
      const int nb = decode ? c.tokens_per_step : (*n)[b];
      cu[b + 1] = cu[b] + nb;
      kv_len[b] = len[b] + nb;
      off[b + 1] = off[b] + static_cast<std::int32_t>(compress_windows(c.compress_ratio, kv_len[b], nb)) +
                   (gaps ? static_cast<std::int32_t>(rng() % 2) : 0);
    }
    const std::int64_t rows = std::max<std::int64_t>(off[batch], 1);
    const Bytes kvs = random_rows(std::max(cu[batch], 1));
    Bytes out_ref(static_cast<std::size_t>(rows) * c.head_dim * size_of(c.out_dtype), 0xA5);
    std::vector<std::uint8_t> empty_ref(static_cast<std::size_t>(rows) * c.head_dim, 0xA5);

    CompressStep s{batch, kvs.data(), cu[batch], decode ? nullptr : cu.data(), ape.data(), kv_len.data(), off.data(),
                   off[batch]};
    if (decode)
      (void)compress_decode_reference(c, s, ref.view(), out_ref.data(), empty_ref.data());
    else
      (void)compress_prefill_reference(c, s, ref.view(), out_ref.data(), empty_ref.data());

    test::DeviceBuffer<unsigned char> dkvs, dout;
    test::DeviceBuffer<std::int32_t> dcu, dlen, doff;
    test::DeviceBuffer<std::uint8_t> dempty;
    dkvs.upload(kvs);
    dcu.upload(cu);
    dlen.upload(kv_len);
    doff.upload(off);
    dout.resize(out_ref.size());
    dout.fill_bytes(0xA5);
    dempty.resize(empty_ref.size());
    dempty.fill_bytes(0xA5);
    if (decode) {
      const gpu::CompressDecodeParams p = decode_params(dkvs.get(), dlen.get(), doff.get(), dout.get(), dempty.get());
      DSV4_STATUS_REQUIRE(gpu::compress_decode_launch(p, nullptr));
    } else {
      gpu::CompressPrefillParams p;
      p.config = c;
      p.batch = batch;
      p.kv_score = dkvs.get();
      p.cu_seq_lens = dcu.get();
      p.max_tokens = max_tokens_override >= 0 ? max_tokens_override : *std::max_element(n->begin(), n->end());
      p.ape = dape.get();
      p.kv_len = dlen.get();
      p.out_offsets = doff.get();
      p.out = dout.get();
      p.empty = dempty.get();
      p.state = dstate();
      p.vector_width = vec;
      DSV4_STATUS_REQUIRE(gpu::compress_prefill_launch(p, nullptr));
    }
    DSV4_CUDA_REQUIRE(cudaDeviceSynchronize());
    const std::string where = c.to_string() + " batch " + std::to_string(batch) + " seed " + std::to_string(seed) +
                              " call " + std::to_string(calls) + (decode ? " (decode" : " (prefill") + ", V " +
                              std::to_string(vec) + ")";
    const Bytes out_gpu = dout.download();
    const std::int64_t bad = first_diff(out_gpu, out_ref, size_of(c.out_dtype));
    if (bad >= 0)
      BOOST_FAIL(where << ": output differs at row " << bad / c.head_dim << " element " << bad % c.head_dim
                       << ": gpu " << test::hex(get(out_gpu, c.out_dtype, bad)) << " reference "
                       << test::hex(get(out_ref, c.out_dtype, bad)));
    const auto empty_gpu = dempty.download();
    BOOST_REQUIRE_MESSAGE(empty_gpu == empty_ref, where << ": empty mask differs");
    const std::int64_t bad_kv = first_diff(dkv.download(), ref.kv_bytes(), size_of(c.state_dtype));
    const std::int64_t bad_sc = first_diff(dscore.download(), ref.score_bytes(), size_of(c.state_dtype));
    BOOST_REQUIRE_MESSAGE(bad_kv < 0 && bad_sc < 0, where << ": state differs (kv element " << bad_kv
                                                          << ", score element " << bad_sc << ")");
    len.assign(kv_len.begin(), kv_len.end());
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(whole_table_bitwise_vs_reference) {
  const std::uint64_t base = test::base_seed();
  const int reps = test::seed_count(1);
  // Under compute-sanitizer (DSV4LAB_SANITIZER set) every third row: each CR / NRW / dtype
  // value still appears, at a third of the cost.
  const int stride = std::getenv("DSV4LAB_SANITIZER") ? 3 : 1;
  int i = 0;
  for (int rep = 0; rep < reps; ++rep)
    for (CompressConfig c : gpu_table()) {
      ++i;
      if ((i - 1) % stride != 0) continue;
      const std::uint64_t seed = base + 7919 * rep + i;
      std::mt19937_64 r(seed);
      c.tokens_per_step = 1 + static_cast<int>(r() % 8);
      c.page_size = c.compress_ratio * (1 + static_cast<int>(r() % 2));
      const int batch = 1 + static_cast<int>(r() % 6);
      const int chunk_max = 2 * c.compress_ratio + 5;
      const int max_len = 2 * chunk_max + 3 * c.tokens_per_step;
      Case k(c, batch, max_len / c.page_size + 1, seed);
      auto chunk = [&] {
        std::vector<int> n(batch);
        for (int& x : n) x = static_cast<int>(r() % (chunk_max + 1));
        return n;
      };
      const std::vector<int> n1 = chunk(), n2 = chunk();
      // Both kernels (V = 1 and 2) in prefill and decode, each reading the state the other
      // wrote; the last call by the launch's rule (V = 1 at these small grids).
      k.vec = 1;
      k.call(&n1, false);
      k.vec = 2;
      k.call(nullptr, true);
      k.vec = 1;
      k.call(nullptr, false);
      k.vec = 2;
      k.call(&n2, true);
      k.vec = 0;
      k.call(nullptr, true);
    }
}

BOOST_AUTO_TEST_CASE(prefill_grid_smaller_than_the_chunk) {
  // max_tokens is only a grid-size hint: a too-small value still stores every token and
  // emits every window (grid-stride loops). Long prefill at CR = 4 and CR = 128.
  for (int cr : {4, 128})
    for (int vec : {1, 2}) {
      CompressConfig c;
      c.head_dim = 128;
      c.compress_ratio = cr;
      c.warps = cr == 128 ? 4 : 1;
      c.page_size = cr == 4 ? 64 : 256;
      const int batch = 3;
      Case k(c, batch, 2000 / c.page_size + 2, test::base_seed() + cr);
      k.vec = vec;
      const std::vector<int> n = {1999, 0, 1031};
      k.call(&n, true, 1);
      k.call(nullptr, true);
    }
}

BOOST_AUTO_TEST_CASE(graph_capture_and_replay) {
  // A decode step captured once into a CUDA graph and replayed 40 times; between replays
  // the host rewrites kv_score, kv_len and out_offsets in place (pointers stay the same).
  // Both kernels: V = 1 (the rule's at this batch) and V = 2.
  for (int cr : {4, 128})
    for (int vec : {1, 2}) {
      CompressConfig c;
      c.head_dim = 512;
      c.compress_ratio = cr;
      c.tokens_per_step = cr == 4 ? 3 : 4;
      c.warps = cr == 128 ? 4 : 1;
      c.page_size = cr;
      const int batch = 16, steps = 40;
      std::mt19937_64 r(test::base_seed() + 100 + cr);
      std::vector<int> len0(batch);
      for (int& l : len0) l = static_cast<int>(r() % (2 * cr));
      const int max_len = 2 * cr + steps * c.tokens_per_step;
      Case k(c, batch, max_len / c.page_size + 1, test::base_seed() + 200 + cr);
      k.call(&len0, false);  // initial prefill

      const int sd = c.state_dim();
      const std::int64_t max_rows = static_cast<std::int64_t>(batch) * ((c.tokens_per_step + cr - 1) / cr + 1);
      test::DeviceBuffer<unsigned char> dkvs(static_cast<std::size_t>(batch) * c.tokens_per_step * 2 * sd *
                                             size_of(c.kv_dtype));
      test::DeviceBuffer<std::int32_t> dlen(batch), doff(batch + 1);
      test::DeviceBuffer<unsigned char> dout(static_cast<std::size_t>(max_rows) * c.head_dim * size_of(c.out_dtype));
      test::DeviceBuffer<std::uint8_t> dempty(static_cast<std::size_t>(max_rows) * c.head_dim);
      k.vec = vec;
      const gpu::CompressDecodeParams p = k.decode_params(dkvs.get(), dlen.get(), doff.get(), dout.get(), dempty.get());
      BOOST_TEST(gpu::compress_vector_width(p) == vec);

      cudaStream_t stream;
      DSV4_CUDA_REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
      cudaGraph_t graph;
      cudaGraphExec_t exec;
      DSV4_CUDA_REQUIRE(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
      const Status st = gpu::compress_decode_launch(p, stream);
      DSV4_CUDA_REQUIRE(cudaStreamEndCapture(stream, &graph));
      DSV4_STATUS_REQUIRE(st);
      DSV4_CUDA_REQUIRE(cudaGraphInstantiate(&exec, graph, 0));

      int emitted = 0;
      for (int s = 0; s < steps; ++s) {
        std::vector<std::int32_t> kv_len(batch);
        for (int b = 0; b < batch; ++b) kv_len[b] = k.len[b] + c.tokens_per_step;
        const auto off = compress_output_offsets(c, batch, kv_len.data());
        const Bytes kvs = k.random_rows(static_cast<std::int64_t>(batch) * c.tokens_per_step);
        Bytes out_ref(dout.size(), 0x5A);
        std::vector<std::uint8_t> empty_ref(dempty.size(), 0x5A);
        CompressStep step{batch, kvs.data(), static_cast<std::int64_t>(batch) * c.tokens_per_step, nullptr,
                          k.ape.data(), kv_len.data(), off.data(), max_rows};
        (void)compress_decode_reference(c, step, k.ref.view(), out_ref.data(), empty_ref.data());
        emitted += off[batch];

        DSV4_CUDA_REQUIRE(cudaMemcpy(dkvs.get(), kvs.data(), kvs.size(), cudaMemcpyHostToDevice));
        DSV4_CUDA_REQUIRE(cudaMemcpy(dlen.get(), kv_len.data(), kv_len.size() * 4, cudaMemcpyHostToDevice));
        DSV4_CUDA_REQUIRE(cudaMemcpy(doff.get(), off.data(), off.size() * 4, cudaMemcpyHostToDevice));
        dout.fill_bytes(0x5A);
        dempty.fill_bytes(0x5A);
        DSV4_CUDA_REQUIRE(cudaGraphLaunch(exec, stream));
        DSV4_CUDA_REQUIRE(cudaStreamSynchronize(stream));
        const Bytes out_gpu = dout.download();
        const std::int64_t bad = first_diff(out_gpu, out_ref, size_of(c.out_dtype));
        const std::string where =
            "CR " + std::to_string(cr) + " V " + std::to_string(vec) + " replay " + std::to_string(s);
        BOOST_REQUIRE_MESSAGE(bad < 0, where << ": output differs at element " << bad);
        BOOST_REQUIRE_MESSAGE(dempty.download() == empty_ref, where << ": empty mask differs");
        BOOST_REQUIRE_MESSAGE(k.dkv.download() == k.ref.kv_bytes() && k.dscore.download() == k.ref.score_bytes(),
                              where << ": state differs");
        k.len.assign(kv_len.begin(), kv_len.end());
      }
      BOOST_TEST(emitted >= batch);  // every request emitted at least one window
      cudaGraphExecDestroy(exec);
      cudaGraphDestroy(graph);
      cudaStreamDestroy(stream);
    }
}

BOOST_AUTO_TEST_CASE(invalid_requests_are_skipped_without_faults) {
  // kv_len < NN: request skipped (no store, no output). A block id outside the state: its
  // stores are dropped and a window reading it gives NaN, never a fault (run under
  // compute-sanitizer). Request 0 stays valid and must match the reference.
  CompressConfig c;
  c.head_dim = 128;
  c.compress_ratio = 4;
  c.tokens_per_step = 4;
  c.page_size = 4;
  const int batch = 3, pages = 4;
  Case k(c, batch, pages, test::base_seed() + 5);
  const std::vector<int> n0 = {8, 8, 8};
  k.call(&n0, false);
  const Bytes kv_before = k.dkv.download();

  std::vector<std::int32_t> table = k.ref.block_table();
  table[2 * pages + 1] = -5;       // request 2, page 1: read by its window's A half (positions 4..7)
  table[2 * pages + 2] = 1 << 20;  // request 2, page 2: written by this step (the B half comes from kv_score)
  test::DeviceBuffer<std::int32_t> dtable;
  dtable.upload(table);
  std::vector<std::int32_t> kv_len = {12, 3, 12}, off = {0, 1, 1, 2};
  const Bytes kvs = k.random_rows(batch * 4);
  test::DeviceBuffer<unsigned char> dkvs, dout;
  test::DeviceBuffer<std::int32_t> dlen, doff;
  dkvs.upload(kvs);
  dlen.upload(kv_len);
  doff.upload(off);
  dout.resize(2 * c.head_dim * 2);
  dout.fill_bytes(0xA5);
  gpu::CompressDecodeParams p = k.decode_params(dkvs.get(), dlen.get(), doff.get(), dout.get(), nullptr);
  p.state.block_table = dtable.get();
  DSV4_STATUS_REQUIRE(gpu::compress_decode_launch(p, nullptr));
  DSV4_CUDA_REQUIRE(cudaDeviceSynchronize());
  const Bytes out = dout.download();
  // Request 2's window (row 1): its A half sits on the bad page: NaN everywhere.
  for (int d = 0; d < c.head_dim; ++d) BOOST_TEST(num::is_nan(get(out, c.out_dtype, c.head_dim + d)), "d " << d);
  // Request 1 (kv_len 3 < NN 4) wrote nothing: its pages are unchanged.
  const Bytes kv_after = k.dkv.download();
  const int sd = c.state_dim();
  for (int page = 0; page < pages; ++page) {
    const std::int64_t block = k.ref.block_table()[1 * pages + page];
    const std::size_t bytes = static_cast<std::size_t>(c.page_size) * sd * size_of(c.state_dtype);
    BOOST_TEST(std::memcmp(kv_after.data() + block * bytes, kv_before.data() + block * bytes, bytes) == 0,
               "request 1 page " << page);
  }
  // Request 0 is valid: compare its row with the reference run on request 0 alone.
  CompressState st = k.ref.view();
  std::vector<std::int32_t> len0 = {12}, off0 = {0, 1};
  CompressStep s{1, kvs.data(), 4, nullptr, k.ape.data(), len0.data(), off0.data(), 1};
  Bytes ref_out(c.head_dim * 2);
  (void)compress_decode_reference(c, s, st, ref_out.data());
  BOOST_TEST(std::memcmp(ref_out.data(), out.data(), ref_out.size()) == 0);
}

BOOST_AUTO_TEST_CASE(vector_width_rule) {
  // V = 1 while the V = 2 grid has at most one block per SM.
  BOOST_TEST(gpu::compress_vector_width_rule(1, 132) == 1);
  BOOST_TEST(gpu::compress_vector_width_rule(132, 132) == 1);
  BOOST_TEST(gpu::compress_vector_width_rule(133, 132) == 2);
  BOOST_TEST(gpu::compress_vector_width_rule(512, 132) == 2);
  // Decode CR 128 NN 4 HD 512: 8 blocks a request (one window slot, 8 chunks of 64).
  gpu::CompressDecodeParams p;
  p.config.head_dim = 512;
  p.config.compress_ratio = 128;
  p.config.warps = 4;
  p.config.tokens_per_step = 4;
  p.batch = 16;  // 128 blocks
  BOOST_TEST(gpu::compress_vector_width(p) == 1);
  p.batch = 17;  // 136 blocks
  BOOST_TEST(gpu::compress_vector_width(p) == 2);
  p.sm_count = 144;
  BOOST_TEST(gpu::compress_vector_width(p) == 1);
  p.vector_width = 2;
  BOOST_TEST(gpu::compress_vector_width(p) == 2);
  // Prefill: max_tokens sets the window slots (CR 4, 40 tokens: 10 slots, HD 128: 2 chunks).
  gpu::CompressPrefillParams q;
  q.config.head_dim = 128;
  q.config.compress_ratio = 4;
  q.batch = 7;
  q.max_tokens = 40;  // 140 blocks
  BOOST_TEST(gpu::compress_vector_width(q) == 2);
  q.batch = 6;  // 120 blocks
  BOOST_TEST(gpu::compress_vector_width(q) == 1);
}

BOOST_AUTO_TEST_CASE(launcher_errors) {
  CompressConfig c;
  c.head_dim = 256;
  gpu::CompressDecodeParams p;
  p.config = c;
  p.batch = 1;
  const Status s = gpu::compress_decode_launch(p, nullptr);
  BOOST_TEST((s.code == Errc::unsupported));
  BOOST_TEST(s.message.find("supported: HD in {128, 512}") != std::string::npos, s.message);
  BOOST_TEST(s.message.find("(128, 4, bf16, f32, bf16)") != std::string::npos, s.message);
  p.config.head_dim = 512;
  p.config.page_size = 100;
  const Status s2 = gpu::compress_decode_launch(p, nullptr);
  BOOST_TEST((s2.code == Errc::bad_input));
  BOOST_TEST(s2.message.find("page_size 100") != std::string::npos, s2.message);
  p.config.page_size = 128;
  const Status s3 = gpu::compress_decode_launch(p, nullptr);
  BOOST_TEST((s3.code == Errc::bad_input));
  BOOST_TEST(s3.message.find("must not be null") != std::string::npos, s3.message);
  p.vector_width = 3;
  const Status s4 = gpu::compress_decode_launch(p, nullptr);
  BOOST_TEST((s4.code == Errc::bad_input));
  BOOST_TEST(s4.message.find("vector_width 3") != std::string::npos, s4.message);
  BOOST_TEST(gpu::compress_vector_width(p) == -1);
  p.vector_width = 0;
  p.sm_count = -1;
  const Status s5 = gpu::compress_decode_launch(p, nullptr);
  BOOST_TEST((s5.code == Errc::bad_input));
  BOOST_TEST(s5.message.find("sm_count -1") != std::string::npos, s5.message);
  p.sm_count = 0;
  p.batch = 0;
  DSV4_STATUS_REQUIRE(gpu::compress_decode_launch(p, nullptr));  // nothing to do
  BOOST_TEST(gpu::compress_gpu_supports(p.config));
  p.config.warps = 4;
  p.config.compress_ratio = 4;
  BOOST_TEST(!gpu::compress_gpu_supports(p.config));
}

namespace {

/// Bit pattern i of `count` (a power of two) spread over all floats: every exponent and
/// sign, varied low bits.
DSV4_HD std::uint32_t spread(std::uint32_t i, std::uint32_t count) {
  const std::uint32_t stride = static_cast<std::uint32_t>((std::uint64_t{1} << 32) / count);
  return i * stride + ((i * 7u) & (stride - 1u));
}

__global__ void fast_exp_kernel(std::uint32_t count, float* out) {
  const std::uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const std::uint32_t u = spread(i, count);
  out[i] = num::exp(num::from_bits(u));
}

__global__ void fast_weights_kernel(int count, const float* m, const float* s, float* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= count) return;
  test::step_probe<true>(m[i], s[i], out + static_cast<std::int64_t>(i) * 9);
}

}  // namespace

BOOST_AUTO_TEST_CASE(branch_free_math_equals_compress_math_on_device) {
  // exp on 2^22 bit patterns spread over the whole float range (2^16 under compute-sanitizer).
  const std::uint32_t count = std::getenv("DSV4LAB_SANITIZER") ? 1u << 16 : 1u << 22;
  test::DeviceBuffer<float> dexp(count);
  fast_exp_kernel<<<(count + 255) / 256, 256>>>(count, dexp.get());
  DSV4_CUDA_REQUIRE(cudaGetLastError());
  const std::vector<float> e = dexp.download();
  for (std::uint32_t i = 0; i < count; ++i) {
    const float x = num::from_bits(spread(i, count));
    if (num::bits(e[i]) != num::bits(num::exp(x)))
      BOOST_FAIL("exp(" << test::hex(x) << "): device " << test::hex(e[i]) << " reference " << test::hex(num::exp(x)));
  }
  // weights / step / fold on every pair of special values and on random pairs (seeded).
  const std::uint64_t seed = test::base_seed() + 77;
  std::mt19937_64 rng(seed);
  std::vector<float> vals = test::step_probe_specials();
  std::uniform_real_distribution<float> d(-150.0f, 150.0f);
  for (int i = 0; i < 40; ++i) vals.push_back(d(rng));
  std::vector<float> m, s;
  for (float a : vals)
    for (float b : vals) m.push_back(a), s.push_back(b);
  for (int i = 0; i < (1 << 18); ++i) {
    const float a = (i & 1) ? d(rng) : num::from_bits(static_cast<std::uint32_t>(rng()));
    m.push_back(a);
    s.push_back((i & 2) ? a + std::uniform_real_distribution<float>(-100.0f, 100.0f)(rng)
                        : num::from_bits(static_cast<std::uint32_t>(rng())));
  }
  const int n = static_cast<int>(m.size());
  test::DeviceBuffer<float> dm, ds, dout(static_cast<std::size_t>(n) * 9);
  dm.upload(m);
  ds.upload(s);
  fast_weights_kernel<<<(n + 255) / 256, 256>>>(n, dm.get(), ds.get(), dout.get());
  DSV4_CUDA_REQUIRE(cudaGetLastError());
  const std::vector<float> got = dout.download();
  for (int i = 0; i < n; ++i) {
    float want[9];
    test::step_probe<false>(m[i], s[i], want);
    // Intermediate accumulators are not canonicalised (only stored outputs are), so a NaN
    // produced by arithmetic carries the hardware's payload: compare under num::same_bits.
    for (int j = 0; j < 9; ++j)
      if (!num::same_bits(got[static_cast<std::size_t>(i) * 9 + j], want[j]))
        BOOST_FAIL("seed " << seed << " m " << test::hex(m[i]) << " s " << test::hex(s[i]) << " output " << j
                           << ": device " << test::hex(got[static_cast<std::size_t>(i) * 9 + j]) << " reference "
                           << test::hex(want[j]));
  }
}
