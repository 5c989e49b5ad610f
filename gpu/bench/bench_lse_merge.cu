// LSE merge benchmark: two-way merge at (tokens, heads, D) in {(64, 128, 512),
// (1024, 128, 512), (8192, 16, 128)} and N-way combine with 8 and 32 splits, fp32 and bf16.
// L2-cold by default (input/output copies rotated past 2x L2); the 64 x 128 x 512 two-way
// merge is also timed L2-hot (one copy: the partials the attention kernel just wrote).
// Inputs are those of gpu/bench/peer_lse_merge.py (same seeds, bench_inputs.py).
//
// usage: bench_lse_merge [--out|--json FILE] [--iters N] [--only LABEL]   (default out: bench_lse_merge.json)
//   --only: the points whose label ("MERGE SPLITS TOKENSxHEADSxD DTYPE L2") starts so.
#include "gpu/bench/bench_util.cuh"
#include "gpu/lse_merge.cuh"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace dsv4;

namespace {

struct Point {
  const char* merge;  // "two_way" or "n_way"
  int splits;
  int tokens, heads, D;
  VDtype dt;
  const char* l2;     // "cold" or "hot"
};

/// "MERGE SPLITS TOKENSxHEADSxD DTYPE L2", e.g. "two_way 2 64x128x512 bf16 hot" (for --only).
std::string label(const Point& pt) {
  return std::string(pt.merge) + " " + std::to_string(pt.splits) + " " + std::to_string(pt.tokens) + "x" +
         std::to_string(pt.heads) + "x" + std::to_string(pt.D) + " " + to_string(pt.dt) + " " + pt.l2;
}

nlohmann::json run_point(const Point& pt, double copy_GBps, int iters, cudaStream_t stream) {
  const std::size_t rows = static_cast<std::size_t>(pt.tokens) * pt.heads;
  const std::size_t n_in = rows * pt.splits * pt.D, n_out = rows * pt.D;
  const std::size_t es = vdtype_bytes(pt.dt);
  const std::size_t in_bytes = n_in * es + rows * pt.splits * 4, out_bytes = n_out * es + rows * 4;
  // Inputs: v = uniform(-1, 1) (seed 1), lse = uniform(-4, 4) (seed 2); bf16 by RNE.
  std::vector<float> v(n_in), lse(rows * pt.splits);
  bench::fill_uniform(v, 1, -1.0f, 1.0f);
  bench::fill_uniform(lse, 2, -4.0f, 4.0f);
  std::vector<std::uint16_t> v16;
  if (pt.dt == VDtype::bf16) {
    v16.resize(n_in);
    for (std::size_t i = 0; i < n_in; ++i) v16[i] = num::float_to_bf16(v[i]);
    std::vector<float>().swap(v);
  }
  const int copies = std::string(pt.l2) == "hot" ? 1 : bench::rotation_count(in_bytes + out_bytes);
  std::vector<void*> dv(copies), dl(copies), dvo(copies), dlo(copies);
  for (int c = 0; c < copies; ++c) {
    DSV4_BENCH_CHECK(cudaMalloc(&dv[c], n_in * es));
    DSV4_BENCH_CHECK(cudaMalloc(&dl[c], rows * pt.splits * 4));
    DSV4_BENCH_CHECK(cudaMalloc(&dvo[c], n_out * es));
    DSV4_BENCH_CHECK(cudaMalloc(&dlo[c], rows * 4));
    DSV4_BENCH_CHECK(cudaMemcpy(dv[c], pt.dt == VDtype::f32 ? static_cast<const void*>(v.data()) : v16.data(),
                                n_in * es, cudaMemcpyHostToDevice));
    DSV4_BENCH_CHECK(cudaMemcpy(dl[c], lse.data(), rows * pt.splits * 4, cudaMemcpyHostToDevice));
  }
  int sms = 0;
  DSV4_BENCH_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  std::vector<gpu::MergeParams> params(copies);
  for (int c = 0; c < copies; ++c) {
    gpu::MergeParams& p = params[c];
    p.sm_count = sms;
    p.v_partial = dv[c];
    p.lse_partial = static_cast<const float*>(dl[c]);
    p.v_out = dvo[c];
    p.lse_out = static_cast<float*>(dlo[c]);
    p.splits = pt.splits;
    p.tokens = pt.tokens;
    p.heads = pt.heads;
    p.D = pt.D;
    p.v_dtype = pt.dt;
  }
  const std::size_t ws = gpu::merge_workspace_bytes(params[0]);  // sized once, before timing
  void* workspace = nullptr;
  if (ws) DSV4_BENCH_CHECK(cudaMalloc(&workspace, ws));
  const double us = bench::median_us(
      [&](int i) {
        const Status s = gpu::merge_launch(params[i % copies], workspace, ws, stream);
        if (!s.ok()) {
          std::fprintf(stderr, "merge_launch: %s\n", s.message.c_str());
          std::exit(3);
        }
      },
      stream, 10, iters);
  for (int c = 0; c < copies; ++c) {
    cudaFree(dv[c]);
    cudaFree(dl[c]);
    cudaFree(dvo[c]);
    cudaFree(dlo[c]);
  }
  if (workspace) cudaFree(workspace);
  const nlohmann::json key = {{"merge", pt.merge}, {"splits", pt.splits}, {"tokens", pt.tokens}, {"heads", pt.heads},
                              {"D", pt.D},         {"dtype", to_string(pt.dt)}, {"l2", pt.l2}};
  nlohmann::json r = bench::result_json("lse_merge", "dsv4lab", key, us, static_cast<double>(in_bytes + out_bytes), copy_GBps);
  r["rotated_copies"] = copies;
  std::printf("%-8s splits %3d  %5d x %4d x %4d  %-4s  L2 %-4s  %9.2f us  %7.0f GB/s  %5.1f%% of copy\n", pt.merge,
              pt.splits, pt.tokens, pt.heads, pt.D, to_string(pt.dt), pt.l2, us,
              r["bandwidth_GBps"].get<double>(), 100.0 * r["fraction_of_copy"].get<double>());
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out = "bench_lse_merge.json";
  int iters = 100;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if ((!std::strcmp(argv[i], "--out") || !std::strcmp(argv[i], "--json")) && i + 1 < argc) out = argv[++i];
    else if (!std::strcmp(argv[i], "--iters") && i + 1 < argc) iters = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--out|--json FILE] [--iters N] [--only LABEL]\n", argv[0]);
      return 2;
    }
  }
  cudaStream_t stream;
  DSV4_BENCH_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  nlohmann::json j = {{"schema", "dsv4lab-bench"}, {"version", 1}, {"op", "lse_merge"}, {"device", bench::device_json(stream)}};
  const double copy = j["device"]["copy_bandwidth_GBps"].get<double>();
  bench::print_device(j["device"]);
  std::vector<Point> points;
  for (VDtype dt : {VDtype::f32, VDtype::bf16}) {
    points.push_back({"two_way", 2, 64, 128, 512, dt, "cold"});
    points.push_back({"two_way", 2, 64, 128, 512, dt, "hot"});
    points.push_back({"two_way", 2, 1024, 128, 512, dt, "cold"});
    points.push_back({"two_way", 2, 8192, 16, 128, dt, "cold"});
    for (int s : {8, 32}) {
      points.push_back({"n_way", s, 64, 128, 512, dt, "cold"});
      points.push_back({"n_way", s, 8192, 16, 128, dt, "cold"});
    }
  }
  nlohmann::json results = nlohmann::json::array();
  for (const Point& pt : points)
    if (bench::selected(label(pt), only)) results.push_back(run_point(pt, copy, iters, stream));
  if (results.empty()) {
    std::fprintf(stderr, "bench_lse_merge: no point's label starts with \"%s\"\n", only.c_str());
    return 2;
  }
  j["results"] = results;
  bench::write_json(out, j);
  std::printf("wrote %s\n", out.c_str());
  cudaStreamDestroy(stream);
  return 0;
}
