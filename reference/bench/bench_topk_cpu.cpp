// Throughput of topk_reference on the CPU. One row at a time runs on one core (the
// reference parallelises over rows only), so "1 row" points give the per-core rate the
// issue asks for (>= 100 M fp32 elements/s at 131072 columns, K = 2048); the multi-row
// points show the whole machine (DSV4LAB_THREADS threads).
//
// usage: bench_topk_cpu [--out bench_topk_cpu.json] [--reps N]
#include "reference/parallel.hpp"
#include "reference/topk.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

using namespace dsv4;

namespace {

/// CPU time of the calling thread in seconds (immune to other processes sharing the core).
double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double median_s(const std::vector<double>& v) {
  std::vector<double> s = v;
  std::sort(s.begin(), s.end());
  return s[s.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path = "bench_topk_cpu.json";
  int reps = 15;
  for (int i = 1; i < argc; ++i) {
    if ((!std::strcmp(argv[i], "--out") || !std::strcmp(argv[i], "--json")) && i + 1 < argc) out_path = argv[++i];
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: %s [--out|--json FILE] [--reps N]\n", argv[0]);
      return 2;
    }
  }
  struct Point {
    std::int64_t rows, cols;
    int k;
    LogitDtype dtype;
  };
  const std::vector<Point> points = {
      {1, 131072, 2048, LogitDtype::f32},  {1, 131072, 512, LogitDtype::f32}, {1, 131072, 2048, LogitDtype::bf16},
      {1, 262144, 2048, LogitDtype::f32},  {1, 16384, 2048, LogitDtype::f32}, {64, 131072, 2048, LogitDtype::f32},
  };
  nlohmann::json results = nlohmann::json::array();
  std::mt19937_64 rng(20261121);
  std::uniform_real_distribution<float> uni(-4.0f, 4.0f);
  for (const Point& pt : points) {
    const std::size_t n = static_cast<std::size_t>(pt.rows * pt.cols);
    std::vector<std::uint8_t> logits(n * static_cast<std::size_t>(element_bytes(pt.dtype)));
    for (std::size_t i = 0; i < n; ++i) {
      const float v = uni(rng);
      if (pt.dtype == LogitDtype::f32) {
        std::memcpy(logits.data() + 4 * i, &v, 4);
      } else {
        const std::uint16_t h = num::float_to_bf16(v);
        std::memcpy(logits.data() + 2 * i, &h, 2);
      }
    }
    const std::vector<std::int32_t> seq_lens(static_cast<std::size_t>(pt.rows), static_cast<std::int32_t>(pt.cols));
    std::vector<std::int32_t> out(static_cast<std::size_t>(pt.rows) * pt.k);
    TopkProblem p;
    p.logits = logits.data();
    p.dtype = pt.dtype;
    p.rows = pt.rows;
    p.cols = pt.cols;
    p.row_stride = pt.cols;
    p.seq_lens = seq_lens.data();
    p.batch = pt.rows;
    p.k = pt.k;
    topk_reference(p, out.data());  // warm-up
    std::vector<double> t, cpu;
    for (int r = 0; r < reps; ++r) {
      const double c0 = thread_cpu_s();
      const auto a = std::chrono::steady_clock::now();
      topk_reference(p, out.data());
      const auto b = std::chrono::steady_clock::now();
      cpu.push_back(thread_cpu_s() - c0);
      t.push_back(std::chrono::duration<double>(b - a).count());
    }
    const double s = median_s(t);
    // One row runs on this thread: its CPU time is the per-core cost even on a busy machine.
    const double cpu_s = pt.rows == 1 ? median_s(cpu) : 0.0;
    const unsigned threads = pt.rows == 1 ? 1u : std::min<unsigned>(worker_threads(), static_cast<unsigned>(pt.rows));
    const double eps = static_cast<double>(n) / s;
    results.push_back({{"op", "topk"},
                       {"impl", "topk_reference"},
                       {"params", {{"rows", pt.rows}, {"cols", pt.cols}, {"k", pt.k}, {"dtype", to_string(pt.dtype)}}},
                       {"median_us", s * 1e6},
                       {"threads", threads},
                       {"elements_per_s", eps},
                       {"elements_per_s_per_core", eps / threads}});
    if (pt.rows == 1) {
      results.back()["thread_cpu_us"] = cpu_s * 1e6;
      results.back()["elements_per_cpu_s"] = static_cast<double>(n) / cpu_s;
    }
    std::printf("rows %3lld cols %6lld k %4d %-4s threads %2u  %9.1f us  %7.1f M elem/s  %7.1f M elem/s/core",
                static_cast<long long>(pt.rows), static_cast<long long>(pt.cols), pt.k, to_string(pt.dtype), threads,
                s * 1e6, eps / 1e6, eps / threads / 1e6);
    if (pt.rows == 1) std::printf("  (thread CPU %.1f us: %.1f M elem per CPU-second)", cpu_s * 1e6, static_cast<double>(n) / cpu_s / 1e6);
    std::printf("\n");
  }
  std::ofstream f(out_path);
  f << nlohmann::json{{"schema", "dsv4lab-bench"}, {"version", 1}, {"op", "topk"}, {"device", {{"name", "cpu"}}},
                      {"results", results}}
           .dump(2)
    << '\n';
  if (!f) {
    std::fprintf(stderr, "cannot write %s\n", out_path.c_str());
    return 2;
  }
  std::printf("wrote %s\n", out_path.c_str());
  return 0;
}
