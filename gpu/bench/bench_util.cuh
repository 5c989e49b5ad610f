// Shared benchmark harness: deterministic inputs (identical in gpu/bench/bench_inputs.py),
// event timing with warm-up and median, L2-defeating input rotation, the measured copy
// bandwidth, and the JSON every bench writes (schema "dsv4lab-bench", read by `calibrate`
// and by gpu/bench/compare.py, which adds the peer's times and the ratios).
#pragma once

#include "gpu/port.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace dsv4::bench {

#define DSV4_BENCH_CHECK(expr)                                                             \
  do {                                                                                     \
    const cudaError_t e_ = (expr);                                                         \
    if (e_ != cudaSuccess) {                                                               \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
      std::exit(3);                                                                        \
    }                                                                                      \
  } while (0)

/// splitmix64 of (seed, i): the input generator shared with bench_inputs.py.
inline std::uint64_t mix(std::uint64_t seed, std::uint64_t i) {
  std::uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Uniform float in [0, 1) with 24 random bits: (mix >> 40) * 2^-24. Exact in numpy too.
inline float uniform01(std::uint64_t seed, std::uint64_t i) {
  return static_cast<float>(mix(seed, i) >> 40) * (1.0f / 16777216.0f);
}

/// Fill v[i] = lo + (hi - lo) * uniform01(seed, i) (float arithmetic, same in numpy float32).
inline void fill_uniform(std::vector<float>& v, std::uint64_t seed, float lo, float hi) {
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = lo + (hi - lo) * uniform01(seed, i);
}

/// Spins until release[0] is nonzero; after about 2 * 10^9 clocks (a second) it gives up and
/// sets gave_up.
static __global__ void hold_kernel(const volatile int* release, int* gave_up) {
  const long long start = clock64();
  while (release[0] == 0) {
    if (clock64() - start > 2000000000LL) {
      *gave_up = 1;
      return;
    }
  }
}

/// A kernel that holds `stream` until the host has enqueued everything behind it, so that the
/// timed launches run back to back on the GPU instead of at the pace the host submits them.
/// Flags in mapped pinned memory: [0] release (host -> device), [1] gave up (device -> host).
class StreamHold {
 public:
  StreamHold() {
    DSV4_BENCH_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&flags_), 2 * sizeof(int), cudaHostAllocMapped));
    DSV4_BENCH_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&dev_), flags_, 0));
  }
  ~StreamHold() { cudaFreeHost(flags_); }
  StreamHold(const StreamHold&) = delete;
  StreamHold& operator=(const StreamHold&) = delete;
  void arm(cudaStream_t stream) {
    flags_[0] = flags_[1] = 0;
    hold_kernel<<<1, 1, 0, stream>>>(dev_, dev_ + 1);
    DSV4_BENCH_CHECK(cudaGetLastError());
  }
  void release() { static_cast<volatile int*>(flags_)[0] = 1; }
  /// After synchronisation: the hold ran out before release (the launch queue filled up).
  bool gave_up() const { return static_cast<const volatile int*>(flags_)[1] != 0; }

 private:
  int* flags_ = nullptr;
  int* dev_ = nullptr;
};

/// Time `launch` (which enqueues on `stream`) with CUDA events: `warmup` untimed calls,
/// then `iters` calls each between its own pair of events, all enqueued behind a StreamHold
/// and released together, so that each pair measures one call's GPU time as in a decode loop
/// or a graph replay: the host's launch overhead is not counted, even for kernels shorter
/// than it. Returns the median in microseconds. DSV4LAB_BENCH_TIMING=paced times without the
/// hold (the method before 2026-11-21, under which a kernel shorter than the host's
/// submission time measures that time instead).
inline double median_us(const std::function<void(int iter)>& launch, cudaStream_t stream, int warmup = 10,
                        int iters = 100) {
  static StreamHold hold;
  const char* timing = std::getenv("DSV4LAB_BENCH_TIMING");
  const bool paced = timing && std::string(timing) == "paced";
  for (int i = 0; i < warmup; ++i) launch(i);
  DSV4_BENCH_CHECK(cudaStreamSynchronize(stream));
  std::vector<cudaEvent_t> ev(2 * static_cast<std::size_t>(iters));
  for (auto& e : ev) DSV4_BENCH_CHECK(cudaEventCreate(&e));
  if (!paced) hold.arm(stream);
  for (int i = 0; i < iters; ++i) {
    DSV4_BENCH_CHECK(cudaEventRecord(ev[2 * i], stream));
    launch(warmup + i);
    DSV4_BENCH_CHECK(cudaEventRecord(ev[2 * i + 1], stream));
  }
  if (!paced) hold.release();
  DSV4_BENCH_CHECK(cudaStreamSynchronize(stream));
  if (!paced && hold.gave_up())
    std::fprintf(stderr, "warning: the stream hold ran out before %d timed launches were enqueued; their times include host gaps\n",
                 iters);
  DSV4_BENCH_CHECK(cudaGetLastError());
  std::vector<double> t(static_cast<std::size_t>(iters));
  for (int i = 0; i < iters; ++i) {
    float ms = 0;
    DSV4_BENCH_CHECK(cudaEventElapsedTime(&ms, ev[2 * i], ev[2 * i + 1]));
    t[i] = ms * 1e3;
  }
  for (auto& e : ev) cudaEventDestroy(e);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

/// Number of input copies to rotate through so that their total exceeds twice the L2.
inline int rotation_count(std::size_t bytes_per_copy) {
  int dev = 0, l2 = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev);
  const std::size_t need = 2 * static_cast<std::size_t>(l2);
  return static_cast<int>(std::clamp<std::size_t>(need / std::max<std::size_t>(bytes_per_copy, 1) + 1, 1, 64));
}

/// Device-to-device copy bandwidth in GB/s (bytes read + bytes written), 1 GiB buffers.
inline double copy_bandwidth_GBps(cudaStream_t stream) {
  const std::size_t bytes = std::size_t(1) << 30;
  void *src = nullptr, *dst = nullptr;
  DSV4_BENCH_CHECK(cudaMalloc(&src, bytes));
  DSV4_BENCH_CHECK(cudaMalloc(&dst, bytes));
  DSV4_BENCH_CHECK(cudaMemset(src, 1, bytes));
  const double us = median_us([&](int) { cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream); },
                              stream, 3, 20);
  cudaFree(src);
  cudaFree(dst);
  return 2.0 * static_cast<double>(bytes) / (us * 1e-6) / 1e9;
}

static __global__ void empty_kernel() {}

/// Median event-timed duration of an empty kernel, measured like every bench point: the part
/// of any measured time that is the GPU's launch and event overhead, not kernel work.
inline double launch_floor_us(cudaStream_t stream) {
  return median_us([&](int) { empty_kernel<<<1, 32, 0, stream>>>(); }, stream);
}

/// Whether a point with this label runs: `only` empty, or a prefix of the label.
inline bool selected(const std::string& label, const std::string& only) { return label.rfind(only, 0) == 0; }

/// Header of the bench JSON: device name, SM count, L2 bytes, measured copy bandwidth and
/// launch floor.
inline nlohmann::json device_json(cudaStream_t stream) {
  int dev = 0;
  cudaDeviceProp p{};
  DSV4_BENCH_CHECK(cudaGetDevice(&dev));
  DSV4_BENCH_CHECK(cudaGetDeviceProperties(&p, dev));
  return {{"name", p.name},
          {"sm_count", p.multiProcessorCount},
          {"l2_bytes", p.l2CacheSize},
          {"copy_bandwidth_GBps", copy_bandwidth_GBps(stream)},
          {"launch_floor_us", launch_floor_us(stream)}};
}

/// The bench's first line: device name, measured copy bandwidth and launch floor.
inline void print_device(const nlohmann::json& device) {
  std::printf("device %s, copy %.0f GB/s, launch floor %.2f us\n", device["name"].get<std::string>().c_str(),
              device["copy_bandwidth_GBps"].get<double>(), device["launch_floor_us"].get<double>());
}

/// One measured point: `params` identifies the shape (the same keys the peer script
/// writes), `bytes` is the minimum traffic (each input read once, each output written once).
inline nlohmann::json result_json(const std::string& op, const std::string& impl, nlohmann::json params,
                                  double median, double bytes, double copy_GBps) {
  const double bw = bytes / (median * 1e-6) / 1e9;
  return {{"op", op},           {"impl", impl},        {"params", std::move(params)},
          {"median_us", median}, {"bytes", bytes},     {"bandwidth_GBps", bw},
          {"fraction_of_copy", bw / copy_GBps}};
}

inline void write_json(const std::string& path, const nlohmann::json& j) {
  std::ofstream f(path);
  f << j.dump(2) << '\n';
  if (!f) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(2);
  }
}

}  // namespace dsv4::bench
