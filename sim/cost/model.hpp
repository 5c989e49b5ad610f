// The per-kernel cost model of DESIGN §7:
//
//   t = launch floor + bytes / effective bandwidth + waves x per-CTA work,
//   waves = ceil(ctas / (sm_count x ctas_per_sm)).
//
// An op describes one launch by its KernelWork (bytes moved, CTAs, serial work units of one
// CTA, in units the op defines); a KernelConstants holds the three fitted constants of one
// kernel on one GPU. The form is linear in (launch_us, 1/bandwidth, cta_us_per_unit), which
// is what `calibrate` fits. More bytes never make it faster; more SMs never make it slower.
#pragma once

#include <string>

namespace dsv4::sim {

struct GpuSpec;

/// Features of one kernel launch.
struct KernelWork {
  double bytes = 0;      ///< DRAM bytes read + written
  double ctas = 0;       ///< CTAs (thread blocks) launched
  double cta_units = 0;  ///< serial work of one CTA, in the op's unit (e.g. columns scanned)
};

/// Constants of one kernel on one GPU; `source` says where they come from.
struct KernelConstants {
  double launch_us = 0;        ///< floor: launch + completion of an empty-ish kernel
  double bandwidth_GBps = 0;   ///< effective DRAM bandwidth for this kernel's bytes
  double cta_us_per_unit = 0;  ///< microseconds per work unit of one CTA
  int ctas_per_sm = 1;         ///< resident CTAs per SM (wave size = sm_count x ctas_per_sm)
  std::string source;          ///< "defaults: ..." or "calibrated: FILE ..."
};

/// ceil(ctas / (sm_count * ctas_per_sm)); 0 CTAs -> 0 waves.
double waves(double ctas, int sm_count, int ctas_per_sm);

/// Predicted kernel time in microseconds.
double kernel_time_us(const KernelConstants& c, const KernelWork& w, int sm_count);

/// Constants from a GPU spec alone: launch floor and copy bandwidth of the spec,
/// the op's per-unit cost (cited by the caller), `ctas_per_sm`.
KernelConstants spec_constants(const GpuSpec& gpu, double cta_us_per_unit, int ctas_per_sm,
                               const std::string& unit_source);

}  // namespace dsv4::sim
