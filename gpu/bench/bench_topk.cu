// Benchmark of the indexer top-k kernel on the issue's grid: rows {1, 16, 64, 256} x cols
// {16384, 65536, 131072, 262144} x K {512, 2048} x {f32, bf16}, N_r = cols (next_n 1,
// ratio 1), logits uniform in [-4, 4) from bench_util's generator (the same values
// peer_topk.py gives torch.topk). Each shape is first checked against topk_reference.
//
// usage: bench_topk [--out bench_topk.json] [--quick] [--blocks-per-row N] [--only LABEL]
//                   [--dist uniform|ascending|descending|ties]
//   --quick: rows {1, 64}, cols {131072}; --blocks-per-row: override the rule (0 = rule);
//   --only: the shapes whose label ("ROWSxCOLS kK DTYPE", e.g. "1x131072 k2048 f32") starts so;
//   --dist: the logits of each row (default uniform, the peer's inputs): ascending or
//   descending in the column (the same values sorted: every later item beats the earlier
//   ones, or none does), or ties (uniform rounded to 1/8: 64 distinct values, long tie runs).
//   A non-uniform run records "dist" in each result's params.
#include "gpu/bench/bench_util.cuh"
#include "gpu/topk.cuh"
#include "reference/topk.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

using namespace dsv4;

namespace {

constexpr std::uint64_t kSeed = 20261121;

struct Shape {
  std::int64_t rows, cols;
  int k;
  LogitDtype dtype;
};

const char* const kDists[] = {"uniform", "ascending", "descending", "ties"};

/// Reshapes uniform logits (rows of `cols`) to the distribution `dist` (one of kDists).
void shape_logits(std::vector<float>& v, std::int64_t cols, const std::string& dist) {
  for (std::size_t r = 0; r < v.size(); r += static_cast<std::size_t>(cols)) {
    const auto b = v.begin() + static_cast<std::ptrdiff_t>(r), e = b + static_cast<std::ptrdiff_t>(cols);
    if (dist == "ascending") std::sort(b, e);
    if (dist == "descending") std::sort(b, e, [](float x, float y) { return x > y; });
    if (dist == "ties")
      for (auto it = b; it != e; ++it) *it = std::floor(*it * 8.0f) / 8.0f;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path = "bench_topk.json";
  bool quick = false;
  int bp_override = 0;
  std::string only, dist = "uniform";
  for (int i = 1; i < argc; ++i) {
    if ((!std::strcmp(argv[i], "--out") || !std::strcmp(argv[i], "--json")) && i + 1 < argc) out_path = argv[++i];
    else if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--blocks-per-row") && i + 1 < argc) bp_override = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else if (!std::strcmp(argv[i], "--dist") && i + 1 < argc) dist = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: %s [--out|--json FILE] [--quick] [--blocks-per-row N] [--only LABEL] "
                   "[--dist uniform|ascending|descending|ties]\n",
                   argv[0]);
      return 2;
    }
  }
  if (std::find(std::begin(kDists), std::end(kDists), dist) == std::end(kDists)) {
    std::fprintf(stderr, "bench_topk: --dist %s: expected uniform, ascending, descending or ties\n", dist.c_str());
    return 2;
  }
  cudaStream_t stream;
  DSV4_BENCH_CHECK(cudaStreamCreate(&stream));
  const nlohmann::json device = bench::device_json(stream);
  const double copy = device["copy_bandwidth_GBps"].get<double>();
  const int sms = device["sm_count"].get<int>();
  bench::print_device(device);

  std::vector<Shape> shapes;
  const std::vector<std::int64_t> rows_list = quick ? std::vector<std::int64_t>{1, 64} : std::vector<std::int64_t>{1, 16, 64, 256};
  const std::vector<std::int64_t> cols_list =
      quick ? std::vector<std::int64_t>{131072} : std::vector<std::int64_t>{16384, 65536, 131072, 262144};
  for (LogitDtype dt : {LogitDtype::f32, LogitDtype::bf16})
    for (std::int64_t r : rows_list)
      for (std::int64_t c : cols_list)
        for (int k : {512, 2048})
          if (bench::selected(std::to_string(r) + "x" + std::to_string(c) + " k" + std::to_string(k) + " " + to_string(dt), only))
            shapes.push_back({r, c, k, dt});
  if (shapes.empty()) {
    std::fprintf(stderr, "bench_topk: no shape's label starts with \"%s\"\n", only.c_str());
    return 2;
  }

  nlohmann::json results = nlohmann::json::array();
  bool all_ok = true;
  for (const Shape& s : shapes) {
    const std::size_t n = static_cast<std::size_t>(s.rows * s.cols);
    const std::size_t esize = static_cast<std::size_t>(element_bytes(s.dtype));
    std::vector<float> values(n);
    bench::fill_uniform(values, kSeed, -4.0f, 4.0f);
    shape_logits(values, s.cols, dist);
    std::vector<std::uint8_t> host(n * esize);
    if (s.dtype == LogitDtype::f32) {
      std::memcpy(host.data(), values.data(), n * 4);
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint16_t h = num::float_to_bf16(values[i]);
        std::memcpy(host.data() + 2 * i, &h, 2);
      }
    }
    const int copies = bench::rotation_count(host.size());
    std::vector<void*> logits(static_cast<std::size_t>(copies));
    for (auto& p : logits) {
      DSV4_BENCH_CHECK(cudaMalloc(&p, host.size()));
      DSV4_BENCH_CHECK(cudaMemcpy(p, host.data(), host.size(), cudaMemcpyHostToDevice));
    }
    const std::vector<std::int32_t> seq_lens(static_cast<std::size_t>(s.rows), static_cast<std::int32_t>(s.cols));
    std::int32_t *d_seq = nullptr, *d_out = nullptr;
    DSV4_BENCH_CHECK(cudaMalloc(&d_seq, seq_lens.size() * 4));
    DSV4_BENCH_CHECK(cudaMemcpy(d_seq, seq_lens.data(), seq_lens.size() * 4, cudaMemcpyHostToDevice));
    DSV4_BENCH_CHECK(cudaMalloc(&d_out, static_cast<std::size_t>(s.rows) * s.k * 4));
    // Workspace sized once, before timing.
    const std::size_t ws_bytes = gpu::topk_workspace_bytes(s.rows, s.cols, s.k, bp_override);
    void* ws = nullptr;
    if (ws_bytes) DSV4_BENCH_CHECK(cudaMalloc(&ws, ws_bytes));

    gpu::TopkParams p;
    p.logits = logits[0];
    p.dtype = s.dtype;
    p.rows = s.rows;
    p.cols = s.cols;
    p.row_stride = s.cols;
    p.seq_lens = d_seq;
    p.batch = s.rows;
    p.next_n = 1;
    p.compress_ratio = 1;
    p.k = s.k;
    p.out = d_out;
    p.blocks_per_row = bp_override;
    p.sm_count = sms;

    // Correctness of this very shape first.
    check(gpu::topk_launch(p, ws, ws_bytes, stream));
    DSV4_BENCH_CHECK(cudaStreamSynchronize(stream));
    std::vector<std::int32_t> got(static_cast<std::size_t>(s.rows) * s.k), want(got.size());
    DSV4_BENCH_CHECK(cudaMemcpy(got.data(), d_out, got.size() * 4, cudaMemcpyDeviceToHost));
    TopkProblem prob;
    prob.logits = host.data();
    prob.dtype = s.dtype;
    prob.rows = s.rows;
    prob.cols = s.cols;
    prob.row_stride = s.cols;
    prob.seq_lens = seq_lens.data();
    prob.batch = s.rows;
    prob.k = s.k;
    topk_reference(prob, want.data());
    const bool ok = got == want;
    all_ok = all_ok && ok;

    const double us = bench::median_us(
        [&](int iter) {
          p.logits = logits[static_cast<std::size_t>(iter % copies)];
          check(gpu::topk_launch(p, ws, ws_bytes, stream));
        },
        stream);
    const double bytes = static_cast<double>(host.size()) + static_cast<double>(s.rows) * s.k * 4.0;
    nlohmann::json params = {{"rows", s.rows}, {"cols", s.cols}, {"k", s.k}, {"dtype", to_string(s.dtype)}};
    if (dist != "uniform") params["dist"] = dist;
    nlohmann::json r = bench::result_json("topk", "dsv4lab", params, us, bytes, copy);
    r["blocks_per_row"] = bp_override > 0 ? bp_override : gpu::topk_blocks_per_row_rule(s.rows, s.cols, sms);
    r["matches_reference"] = ok;
    results.push_back(r);
    std::printf("rows %4lld cols %6lld k %4d %-4s bp %2d  %9.2f us  %7.0f GB/s  %5.1f%% copy  %s\n",
                static_cast<long long>(s.rows), static_cast<long long>(s.cols), s.k, to_string(s.dtype),
                r["blocks_per_row"].get<int>(), us, r["bandwidth_GBps"].get<double>(),
                100.0 * r["fraction_of_copy"].get<double>(), ok ? "ok" : "MISMATCH vs reference");
    std::fflush(stdout);

    for (void* q : logits) cudaFree(q);
    cudaFree(d_seq);
    cudaFree(d_out);
    if (ws) cudaFree(ws);
  }
  bench::write_json(out_path, {{"schema", "dsv4lab-bench"}, {"version", 1}, {"op", "topk"}, {"device", device},
                               {"results", results}});
  std::printf("wrote %s\n", out_path.c_str());
  cudaStreamDestroy(stream);
  return all_ok ? 0 : 1;
}
