// Trace I/O throughput: write and stream-read an indexer group (fp32 logits [rows, cols] per
// step), uncompressed and shuffle+gzip(1), with incompressible (random bits) and realistic
// (beta logits, as synth writes them) data. Reports MB/s of array payload (1 MB = 1e6 bytes);
// writes include the final flush and close. Reads usually come from the page cache (the file
// was just written): they measure the library, not the disk.
//
//   bench_trace_io [--rows 64] [--cols 32768] [--steps 32] [--dir /tmp] [--json out.json]
#include "traces/trace.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <unistd.h>

using namespace dsv4::trace;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Result {
  std::string data, storage;
  double write_MBps = 0, read_MBps = 0, file_MB = 0, payload_MB = 0;
};

Result run(const std::string& path, bool compress, bool realistic, std::uint64_t rows, std::uint64_t cols, int steps) {
  IndexerConfig cfg;
  cfg.k = 512;
  cfg.compress_ratio = 1;
  cfg.next_n = 1;
  cfg.batch = rows;
  cfg.cols = cols;
  std::vector<Array> inputs;  // two distinct steps, alternated (generation stays out of the timing)
  std::mt19937_64 g(42);
  std::gamma_distribution<double> ga(11.96, 1.0), gb(29.0, 1.0);  // V4-Pro moderate beta
  for (int i = 0; i < 2; ++i) {
    Array a(DType::f32, {rows, cols});
    auto v = a.view<float>();
    for (auto& x : v) {
      if (realistic) {
        const double p = ga(g), q = gb(g);
        x = static_cast<float>(-6.15 + 14.6 * p / (p + q));
      } else {
        std::uint32_t u = static_cast<std::uint32_t>(g());
        std::memcpy(&x, &u, 4);
      }
    }
    inputs.push_back(std::move(a));
  }
  std::vector<std::int32_t> lens(rows, static_cast<std::int32_t>(cols));
  Provenance prov;
  prov.producer = "bench_trace_io";
  prov.model = "bench";
  const double payload = static_cast<double>(rows * cols * 4) * steps;

  auto t0 = std::chrono::steady_clock::now();
  {
    TraceWriter w(path, prov, WriteOptions{compress, 1});
    IndexerWriter iw = w.add_indexer("L00", cfg);
    for (int s = 0; s < steps; ++s) {
      IndexerStep st;
      st.logits = inputs[static_cast<std::size_t>(s % 2)];
      st.seq_lens = lens;
      iw.append(st);
    }
    w.close();
  }
  const double tw = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  double checksum = 0;
  {
    TraceReader r(path);
    auto ix = r.indexer("L00");
    for (std::uint64_t s = 0; s < ix.steps(); ++s) {
      const IndexerStep st = ix.read_step(s);
      checksum += static_cast<double>(st.logits.view<float>()[s]);
    }
  }
  const double tr = seconds_since(t0);
  if (checksum == 12345.678) std::puts("");  // keep the reads
  Result res;
  res.data = realistic ? "beta logits" : "random bits";
  res.storage = compress ? "shuffle+gzip(1)" : "uncompressed";
  res.payload_MB = payload / 1e6;
  res.write_MBps = payload / 1e6 / tw;
  res.read_MBps = payload / 1e6 / tr;
  res.file_MB = static_cast<double>(std::filesystem::file_size(path)) / 1e6;
  std::filesystem::remove(path);
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t rows = 64, cols = 32768;
  int steps = 32;
  std::string dir = std::filesystem::temp_directory_path().string(), json;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--rows") rows = std::stoull(argv[i + 1]);
    else if (a == "--cols") cols = std::stoull(argv[i + 1]);
    else if (a == "--steps") steps = std::stoi(argv[i + 1]);
    else if (a == "--dir") dir = argv[i + 1];
    else if (a == "--json") json = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  const std::string path = dir + "/dsv4lab-bench-io-" + std::to_string(::getpid()) + ".h5";
  nlohmann::ordered_json out;
  out["schema"] = "dsv4lab-bench";
  out["version"] = 1;
  out["op"] = "trace_io";
  out["results"] = nlohmann::ordered_json::array();
  std::printf("trace I/O: %llu rows x %llu cols fp32 x %d steps (%.1f MB payload), one step per chunk\n",
              static_cast<unsigned long long>(rows), static_cast<unsigned long long>(cols), steps,
              static_cast<double>(rows * cols * 4) * steps / 1e6);
  std::printf("  %-12s %-16s %12s %12s %10s\n", "data", "storage", "write MB/s", "read MB/s", "file MB");
  try {
    for (bool realistic : {false, true}) {
      for (bool compress : {false, true}) {
        const Result r = run(path, compress, realistic, rows, cols, steps);
        std::printf("  %-12s %-16s %12.0f %12.0f %10.1f\n", r.data.c_str(), r.storage.c_str(), r.write_MBps, r.read_MBps, r.file_MB);
        out["results"].push_back({{"impl", "dsv4lab"},
                                  {"params", {{"data", r.data}, {"storage", r.storage}, {"rows", rows}, {"cols", cols}, {"steps", steps}}},
                                  {"write_MBps", r.write_MBps},
                                  {"read_MBps", r.read_MBps},
                                  {"payload_MB", r.payload_MB},
                                  {"file_MB", r.file_MB}});
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_trace_io: %s\n", e.what());
    return 3;
  }
  if (!json.empty()) {
    std::ofstream f(json);
    f << out.dump(2) << "\n";
  }
  return 0;
}
