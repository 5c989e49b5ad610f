// Benchmark of the compressor kernels. Decode: batch {16, 64, 128, 256} x NN {1, 4} x HD
// {128, 512} x CR {4, 128}; prefill: CR {4, 128} x HD 512 x (batch 1, 8192 tokens) and
// (batch 8, 65536 tokens each). kv_score bf16, state f32, output bf16; NRW = 4 for CR = 128
// (1 for CR = 4). In decode every request emits exactly one window (kv_len a multiple of CR),
// so the whole window is read: the worst step. Inputs come from bench_util's generator, the
// same values gpu/bench/peer_compress.py gives PyTorch. Each decode shape and the 8k
// prefills are first checked bit for bit against the reference.
//
// params keys: {batch, NN, HD, CR, mode}; for prefill NN is the tokens per request.
// bytes: kv_score read + state written + old state candidates read + output written (+ ape).
//
// usage: bench_compress [--out FILE | --json FILE] [--quick] [--only LABEL] [--vec V]
//   --quick: batch {16, 256}, no 64k prefill.
//   --only: the shapes whose label ("MODE CRx HDx NNx bx", e.g. "decode CR128 HD512 NN4 b16") starts so.
//   --vec: 1 or 2 elements per thread at every shape (default: the launch's rule,
//          gpu::compress_vector_width_rule); the schedule field names the V that ran.
#include "gpu/bench/bench_util.cuh"
#include "gpu/compress.cuh"
#include "reference/compress.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace dsv4;

namespace {

constexpr std::uint64_t kSeed = 20261121;
// Seeds of the four input arrays (peer_compress.py uses the same).
constexpr std::uint64_t kSeedApe = kSeed + 1, kSeedKvScore = kSeed + 2, kSeedStateKv = kSeed + 3,
                        kSeedStateScore = kSeed + 4;

struct Shape {
  bool prefill;
  int batch, nn, hd, cr;
};

CompressConfig config_of(const Shape& s) {
  CompressConfig c;
  c.head_dim = s.hd;
  c.compress_ratio = s.cr;
  c.tokens_per_step = s.prefill ? 1 : s.nn;
  c.kv_dtype = Dtype::bf16;
  c.state_dtype = Dtype::f32;
  c.out_dtype = Dtype::bf16;
  c.warps = s.cr == 128 ? 4 : 1;
  c.page_size = s.cr == 4 ? 64 : 128;
  return c;
}

/// kv_len of request b: decode: a multiple of CR (so the step emits one window), at least
/// 2 CR (CR = 4: 64 + 4 (b % 8); CR = 128: 128 (2 + b % 2)); prefill: the chunk length.
int kv_len_of(const Shape& s, int b) {
  if (s.prefill) return s.nn;
  return s.cr == 4 ? 64 + 4 * (b % 8) : 128 * (2 + b % 2);
}

std::vector<std::uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<std::uint16_t> h(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) h[i] = num::float_to_bf16(v[i]);
  return h;
}

template <class T>
T* device_copy(const std::vector<T>& h) {
  T* p = nullptr;
  DSV4_BENCH_CHECK(cudaMalloc(&p, h.size() * sizeof(T)));
  DSV4_BENCH_CHECK(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path = "bench_compress.json";
  bool quick = false;
  std::string only;
  int vec = 0;
  for (int i = 1; i < argc; ++i) {
    if ((!std::strcmp(argv[i], "--out") || !std::strcmp(argv[i], "--json")) && i + 1 < argc) out_path = argv[++i];
    else if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else if (!std::strcmp(argv[i], "--vec") && i + 1 < argc && (vec = std::atoi(argv[i + 1])) >= 1 && vec <= 2) ++i;
    else {
      std::fprintf(stderr, "usage: %s [--out FILE | --json FILE] [--quick] [--only LABEL] [--vec 1|2]\n", argv[0]);
      return 2;
    }
  }
  cudaStream_t stream;
  DSV4_BENCH_CHECK(cudaStreamCreate(&stream));
  const nlohmann::json device = bench::device_json(stream);
  const double copy = device["copy_bandwidth_GBps"].get<double>();
  bench::print_device(device);
  const int sms = device["sm_count"].get<int>();

  std::vector<Shape> shapes;
  const std::vector<int> batches = quick ? std::vector<int>{16, 256} : std::vector<int>{16, 64, 128, 256};
  for (int cr : {4, 128})
    for (int hd : {128, 512})
      for (int nn : {1, 4})
        for (int b : batches) shapes.push_back({false, b, nn, hd, cr});
  for (int cr : {4, 128}) {
    shapes.push_back({true, 1, 8192, 512, cr});
    if (!quick) shapes.push_back({true, 8, 65536, 512, cr});
  }
  std::erase_if(shapes, [&](const Shape& s) {
    return !bench::selected(std::string(s.prefill ? "prefill" : "decode") + " CR" + std::to_string(s.cr) + " HD" +
                                std::to_string(s.hd) + " NN" + std::to_string(s.nn) + " b" + std::to_string(s.batch),
                            only);
  });
  if (shapes.empty()) {
    std::fprintf(stderr, "bench_compress: no shape's label starts with \"%s\"\n", only.c_str());
    return 2;
  }

  nlohmann::json results = nlohmann::json::array();
  bool all_ok = true;
  for (const Shape& s : shapes) {
    const CompressConfig c = config_of(s);
    const int sd = c.state_dim();
    const int tokens_per_request = s.nn;  // decode NN or prefill chunk
    std::vector<std::int32_t> kv_len(s.batch), cu(s.batch + 1, 0);
    int max_len = 0;
    for (int b = 0; b < s.batch; ++b) {
      kv_len[b] = kv_len_of(s, b);
      cu[b + 1] = cu[b] + tokens_per_request;
      max_len = std::max(max_len, kv_len[b]);
    }
    const int pages = max_len / c.page_size + 1;
    const std::int64_t blocks = static_cast<std::int64_t>(s.batch) * pages;
    const std::int64_t state_elems = blocks * c.page_size * sd;
    const auto off = compress_output_offsets(c, s.batch, kv_len.data(), s.prefill ? cu.data() : nullptr);
    const std::int64_t out_rows = off[s.batch];

    // Host inputs. Prefill: one request's chunk, repeated for every request.
    std::vector<float> ape(static_cast<std::size_t>(c.compress_ratio) * sd);
    bench::fill_uniform(ape, kSeedApe, -1.0f, 1.0f);
    // kv_score: decode: fill_uniform over all [batch * NN, 2 SD]; prefill: one request's
    // [tokens, 2 SD] repeated for every request (keeps the 64k inputs cheap to generate).
    std::vector<float> rows(static_cast<std::size_t>(s.prefill ? tokens_per_request : s.batch * tokens_per_request) * 2 * sd);
    bench::fill_uniform(rows, kSeedKvScore, -2.0f, 2.0f);
    std::vector<std::uint16_t> kvs = to_bf16(rows);
    rows = std::vector<float>();
    if (s.prefill) {
      const std::size_t one = kvs.size();
      kvs.resize(one * s.batch);
      for (int b = 1; b < s.batch; ++b) std::memcpy(kvs.data() + one * b, kvs.data(), one * 2);
    }
    std::vector<float> st_kv(static_cast<std::size_t>(state_elems)), st_sc(static_cast<std::size_t>(state_elems));
    if (!s.prefill) {  // prefill starts from an empty request: the old state is never read
      bench::fill_uniform(st_kv, kSeedStateKv, -2.0f, 2.0f);
      bench::fill_uniform(st_sc, kSeedStateScore, -2.0f, 2.0f);
    }

    // Minimum traffic of one launch.
    double bytes = static_cast<double>(ape.size()) * 4.0 + static_cast<double>(kvs.size()) * 2.0 +
                   static_cast<double>(s.batch) * tokens_per_request * sd * 2.0 * 4.0 +
                   static_cast<double>(out_rows) * c.head_dim * 2.0;
    for (int b = 0; b < s.batch; ++b) {
      const int start = kv_len[b] - tokens_per_request;
      for (int k = start / c.compress_ratio; k < kv_len[b] / c.compress_ratio; ++k) {
        int old = 0;
        if (c.compress_ratio == 4) {
          for (int p = 4 * k - 4; p < 4 * k + 4; ++p) old += (p >= 0 && p < start) ? 1 : 0;
        } else {
          for (int p = 128 * k; p < 128 * k + 128; ++p) old += p < start ? 1 : 0;
        }
        bytes += static_cast<double>(old) * c.head_dim * 2.0 * 4.0;
      }
    }

    // Device copies rotated so the working set exceeds twice the L2.
    const std::size_t state_bytes = static_cast<std::size_t>(state_elems) * 4;
    const int copies = bench::rotation_count(static_cast<std::size_t>(bytes));
    std::vector<float*> d_kv(copies), d_sc(copies);
    std::vector<std::uint16_t*> d_in(copies);
    std::vector<std::int32_t*> d_table(copies);
    std::vector<std::int32_t> table(static_cast<std::size_t>(blocks));
    for (std::int64_t i = 0; i < blocks; ++i) table[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i);
    for (int r = 0; r < copies; ++r) {
      DSV4_BENCH_CHECK(cudaMalloc(&d_kv[r], state_bytes));
      DSV4_BENCH_CHECK(cudaMalloc(&d_sc[r], state_bytes));
      DSV4_BENCH_CHECK(cudaMemcpy(d_kv[r], st_kv.data(), state_bytes, cudaMemcpyHostToDevice));
      DSV4_BENCH_CHECK(cudaMemcpy(d_sc[r], st_sc.data(), state_bytes, cudaMemcpyHostToDevice));
      d_in[r] = device_copy(kvs);
      d_table[r] = device_copy(table);
    }
    float* d_ape = device_copy(ape);
    std::int32_t* d_len = device_copy(kv_len);
    std::int32_t* d_cu = device_copy(cu);
    std::int32_t* d_off = device_copy(off);
    void* d_out = nullptr;
    const std::size_t out_bytes = static_cast<std::size_t>(std::max<std::int64_t>(out_rows, 1)) * c.head_dim * 2;
    DSV4_BENCH_CHECK(cudaMalloc(&d_out, out_bytes));

    CompressState dstate;
    dstate.num_blocks = blocks;
    dstate.max_blocks = pages;
    gpu::CompressDecodeParams dp;
    gpu::CompressPrefillParams pp;
    auto launch = [&](int r) {
      dstate.state_kv = d_kv[r];
      dstate.state_score = d_sc[r];
      dstate.block_table = d_table[r];
      if (s.prefill) {
        pp.config = c;
        pp.batch = s.batch;
        pp.kv_score = d_in[r];
        pp.cu_seq_lens = d_cu;
        pp.max_tokens = tokens_per_request;
        pp.ape = d_ape;
        pp.kv_len = d_len;
        pp.out_offsets = d_off;
        pp.out = d_out;
        pp.state = dstate;
        pp.sm_count = sms;
        pp.vector_width = vec;
        check(gpu::compress_prefill_launch(pp, stream));
      } else {
        dp.config = c;
        dp.batch = s.batch;
        dp.kv_score = d_in[r];
        dp.ape = d_ape;
        dp.kv_len = d_len;
        dp.out_offsets = d_off;
        dp.out = d_out;
        dp.state = dstate;
        dp.sm_count = sms;
        dp.vector_width = vec;
        check(gpu::compress_decode_launch(dp, stream));
      }
    };

    // Correctness of this shape (not for the 64k prefill: the CPU reference would dominate the run).
    bool checked = false, ok = true;
    if (!s.prefill || s.nn <= 8192) {
      launch(0);
      DSV4_BENCH_CHECK(cudaStreamSynchronize(stream));
      std::vector<std::uint16_t> got(out_bytes / 2), want(out_bytes / 2, 0);
      DSV4_BENCH_CHECK(cudaMemcpy(got.data(), d_out, out_bytes, cudaMemcpyDeviceToHost));
      CompressStateBuffer ref(c, s.batch, pages);
      std::memcpy(ref.kv_bytes().data(), st_kv.data(), state_bytes);
      std::memcpy(ref.score_bytes().data(), st_sc.data(), state_bytes);
      CompressStep step{s.batch, kvs.data(), static_cast<std::int64_t>(s.batch) * tokens_per_request,
                        s.prefill ? cu.data() : nullptr, ape.data(), kv_len.data(), off.data(), out_rows};
      if (s.prefill)
        (void)compress_prefill_reference(c, step, ref.view(), want.data());
      else
        (void)compress_decode_reference(c, step, ref.view(), want.data());
      checked = true;
      ok = out_rows == 0 || std::memcmp(got.data(), want.data(), static_cast<std::size_t>(out_rows) * c.head_dim * 2) == 0;
      all_ok = all_ok && ok;
    }

    const double us = bench::median_us([&](int iter) { launch(iter % copies); }, stream, 10, s.prefill ? 30 : 100);
    nlohmann::json params = {{"batch", s.batch}, {"NN", s.nn}, {"HD", s.hd}, {"CR", s.cr},
                             {"mode", s.prefill ? "prefill" : "decode"}};
    nlohmann::json r = bench::result_json("compress", "dsv4lab", params, us, bytes, copy);
    r["config"] = c.to_string();
    num::Schedule sched = c.schedule();
    sched.vector_width = s.prefill ? gpu::compress_vector_width(pp) : gpu::compress_vector_width(dp);
    r["schedule"] = sched.to_string();
    r["windows"] = out_rows;
    r["checked"] = checked;
    r["matches_reference"] = ok;
    results.push_back(r);
    std::printf("%-7s batch %3d NN %5d HD %3d CR %3d V %d  %9.2f us  %7.0f GB/s  %5.1f%% copy  %s\n",
                s.prefill ? "prefill" : "decode", s.batch, s.nn, s.hd, s.cr, sched.vector_width, us,
                r["bandwidth_GBps"].get<double>(), 100.0 * r["fraction_of_copy"].get<double>(),
                !checked ? "(not checked)" : ok ? "ok" : "MISMATCH vs reference");
    std::fflush(stdout);

    for (int q = 0; q < copies; ++q) {
      cudaFree(d_kv[q]);
      cudaFree(d_sc[q]);
      cudaFree(d_in[q]);
      cudaFree(d_table[q]);
    }
    cudaFree(d_ape);
    cudaFree(d_len);
    cudaFree(d_cu);
    cudaFree(d_off);
    cudaFree(d_out);
  }
  bench::write_json(out_path, {{"schema", "dsv4lab-bench"}, {"version", 1}, {"op", "compress"}, {"device", device},
                               {"results", results}});
  std::printf("wrote %s\n", out_path.c_str());
  cudaStreamDestroy(stream);
  return all_ok ? 0 : 1;
}
