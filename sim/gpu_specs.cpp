#include "sim/gpu_specs.hpp"

#include "reference/status.hpp"

#include <algorithm>
#include <cctype>

namespace dsv4::sim {

namespace {

// Measured on an H100 SXM (copy kernel of gpu/bench/bench_util.cuh, 1 GiB buffers,
// read + write bytes): 3.0 TB/s, i.e. 0.896 of the 3.35 TB/s datasheet peak. GPUs we have
// not measured get datasheet peak x this ratio ("derived") until their bench JSON exists.
constexpr double kH100CopyMeasured = 3000.0;
constexpr double kH100Peak = 3350.0;
constexpr double kCopyOverPeak = kH100CopyMeasured / kH100Peak;

// Floor of a small kernel (launch + one DRAM round trip + completion), event-timed:
// 3 us is the order seen for empty and tiny kernels timed with events on Hopper; not
// yet measured by dsv4lab, so an estimate that `calibrate` replaces per kernel.
constexpr double kLaunchEstimateUs = 3.0;

// Per-SM streaming cap: bytes in flight per SM over DRAM latency (Little's law),
// ~64 KiB / ~0.65 us ~ 100 GB/s on Hopper. An estimate, no measurement yet; it decides how
// much a batch that fills few SMs gains from splitting the KV.
constexpr double kSmCapEstimate = 100.0;

std::vector<GpuSpec> make_specs() {
  std::vector<GpuSpec> v;
  {
    GpuSpec g;
    g.key = "h100";
    g.name = "NVIDIA H100 SXM5 80GB";
    g.sm_count = 132;
    g.warp_size = 32;
    g.copy_bandwidth_GBps = kH100CopyMeasured;
    g.peak_bandwidth_GBps = kH100Peak;
    g.l2_bytes = 50.0 * 1024 * 1024;
    g.launch_us = kLaunchEstimateUs;
    g.sm_bandwidth_cap_GBps = kSmCapEstimate;
    g.clock_GHz = 1.98;
    g.sources = {
        {"sm_count", "measured: cudaDeviceProp.multiProcessorCount on an H100 SXM (132; datasheet agrees)"},
        {"copy_bandwidth_GBps", "measured: 3.0 TB/s device copy on an H100 SXM (bench_util copy_bandwidth_GBps)"},
        {"peak_bandwidth_GBps", "datasheet: H100 SXM 3.35 TB/s HBM3"},
        {"l2_bytes", "measured: cudaDevAttrL2CacheSize on an H100 SXM (50 MB; datasheet agrees)"},
        {"launch_us", "estimate: small-kernel event-timed floor on Hopper; replaced by calibrate"},
        {"sm_bandwidth_cap_GBps", "estimate: Little's law, ~64 KiB in flight / ~0.65 us DRAM latency"},
        {"clock_GHz", "datasheet: H100 SXM max boost 1980 MHz"},
    };
    v.push_back(g);
  }
  {
    GpuSpec g;
    g.key = "h200";
    g.name = "NVIDIA H200 SXM 141GB";
    g.sm_count = 132;
    g.warp_size = 32;
    g.peak_bandwidth_GBps = 4800.0;
    g.copy_bandwidth_GBps = g.peak_bandwidth_GBps * kCopyOverPeak;
    g.l2_bytes = 50.0 * 1024 * 1024;
    g.launch_us = kLaunchEstimateUs;
    g.sm_bandwidth_cap_GBps = kSmCapEstimate;
    g.clock_GHz = 1.98;
    g.sources = {
        {"sm_count", "datasheet: H200 SXM, same GH100 configuration as H100 SXM (132 SMs)"},
        {"copy_bandwidth_GBps", "derived: datasheet peak x 0.896 (H100 measured copy / H100 peak)"},
        {"peak_bandwidth_GBps", "datasheet: H200 4.8 TB/s HBM3e"},
        {"l2_bytes", "datasheet: 50 MB (GH100)"},
        {"launch_us", "estimate: as H100"},
        {"sm_bandwidth_cap_GBps", "estimate: as H100"},
        {"clock_GHz", "datasheet: 1980 MHz boost"},
    };
    v.push_back(g);
  }
  {
    GpuSpec g;
    g.key = "b200";
    g.name = "NVIDIA B200";
    g.sm_count = 148;
    g.warp_size = 32;
    g.peak_bandwidth_GBps = 8000.0;
    g.copy_bandwidth_GBps = g.peak_bandwidth_GBps * kCopyOverPeak;
    g.l2_bytes = 126.0 * 1024 * 1024;
    g.launch_us = kLaunchEstimateUs;
    g.sm_bandwidth_cap_GBps = 1.5 * kSmCapEstimate;
    g.clock_GHz = 1.965;
    g.sources = {
        {"sm_count", "datasheet: B200, 148 SMs enabled"},
        {"copy_bandwidth_GBps", "derived: datasheet peak x 0.896 (H100 measured copy / H100 peak)"},
        {"peak_bandwidth_GBps", "datasheet: B200 8 TB/s HBM3e"},
        {"l2_bytes", "public figure: 126 MB L2 (two dies), not measured by dsv4lab"},
        {"launch_us", "estimate: as H100"},
        {"sm_bandwidth_cap_GBps", "estimate: H100 estimate x 1.5 (larger TMA / memory pipeline), unmeasured"},
        {"clock_GHz", "public figure, unmeasured"},
    };
    v.push_back(g);
  }
  {
    GpuSpec g;
    g.key = "mi355x";
    g.name = "AMD Instinct MI355X";
    g.sm_count = 256;
    g.warp_size = 64;
    g.peak_bandwidth_GBps = 8000.0;
    g.copy_bandwidth_GBps = g.peak_bandwidth_GBps * kCopyOverPeak;
    g.l2_bytes = 32.0 * 1024 * 1024;
    g.launch_us = kLaunchEstimateUs;
    g.sm_bandwidth_cap_GBps = kSmCapEstimate;
    g.clock_GHz = 2.4;
    g.sources = {
        {"sm_count", "datasheet: MI355X, 256 CUs"},
        {"copy_bandwidth_GBps", "derived: datasheet peak x 0.896 (the H100 ratio; AMD unmeasured)"},
        {"peak_bandwidth_GBps", "datasheet: MI355X 8 TB/s HBM3E"},
        {"l2_bytes", "datasheet: 4 MB L2 per XCD x 8 (the 256 MB Infinity Cache is not modelled)"},
        {"launch_us", "estimate: as H100, unmeasured on ROCm"},
        {"sm_bandwidth_cap_GBps", "estimate: as H100, unmeasured"},
        {"clock_GHz", "datasheet: 2.4 GHz peak engine clock"},
    };
    v.push_back(g);
  }
  return v;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

const std::vector<GpuSpec>& gpu_specs() {
  static const std::vector<GpuSpec> specs = make_specs();
  return specs;
}

std::string supported_gpus() {
  std::string s;
  for (const auto& g : gpu_specs()) s += (s.empty() ? "" : ", ") + g.key;
  return s;
}

const GpuSpec& gpu_spec(const std::string& key) {
  const std::string k = lower(key);
  for (const auto& g : gpu_specs())
    if (g.key == k) return g;
  raise(Errc::bad_input, "unknown GPU '" + key + "' (--gpu); supported: " + supported_gpus());
}

}  // namespace dsv4::sim
