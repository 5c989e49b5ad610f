// GPU specifications the cost model runs on (DESIGN §7). Each figure records where it comes
// from: "measured" (a measurement file or a run on that GPU), "datasheet" (vendor figure),
// "derived" (computed from other figures, formula given) or "estimate" (no measurement yet;
// `dsv4lab calibrate` replaces it with a fitted value).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace dsv4::sim {

struct GpuSpec {
  std::string key;              ///< CLI name: h100, h200, b200, mi355x
  std::string name;             ///< marketing name
  int sm_count = 0;             ///< SMs (NVIDIA) or CUs (AMD)
  int warp_size = 32;           ///< 32 (NVIDIA) or 64 (AMD wave64)
  double copy_bandwidth_GBps = 0;  ///< device-to-device copy, read + write bytes per second / 1e9
  double peak_bandwidth_GBps = 0;  ///< DRAM peak from the datasheet
  double l2_bytes = 0;             ///< last-level on-chip cache the kernels share (L2)
  double launch_us = 0;            ///< floor of a small kernel, launch to completion, event-timed
  double sm_bandwidth_cap_GBps = 0;  ///< most one SM can stream when few SMs are busy
  double clock_GHz = 0;              ///< boost clock
  /// Provenance of each field above: field name -> "measured: ...", "datasheet: ...", ...
  std::map<std::string, std::string> sources;
};

/// The built-in GPUs, in a fixed order (h100, h200, b200, mi355x).
const std::vector<GpuSpec>& gpu_specs();

/// Look up a GPU by key (case-insensitive). Throws dsv4::Error(bad_input) naming the
/// supported keys when unknown.
const GpuSpec& gpu_spec(const std::string& key);

/// "h100, h200, b200, mi355x".
std::string supported_gpus();

}  // namespace dsv4::sim
