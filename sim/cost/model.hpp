// The per-kernel cost model of DESIGN §7:
//
//   t = launches x launch floor + bytes / effective bandwidth + waves x per-CTA work
//       [+ aux units x aux cost],   waves = ceil(ctas / (sm_count x ctas_per_sm)).
// An op whose occupancy is known from its kernels (launch bounds, registers) gives the
// critical path (sum of waves x units over its launches) itself in KernelWork::serial_units.
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
  double launches = 1;   ///< kernel launches on the critical path (each pays launch_us)
  /// Launch stages whose occupancy the op knows from its kernels (launch bounds, registers):
  /// when n_stages > 0 they replace (ctas, cta_units, fitted ctas_per_sm), and the serial
  /// work is sum over stages of waves(ctas, SMs, ctas_per_sm) x units (x cta_us_per_unit)
  /// plus waves x aux_units (x aux_us_per_unit).
  struct Stage {
    double ctas = 0;
    int ctas_per_sm = 1;
    double units = 0;
    double aux_units = 0;
  };
  Stage stages[2];
  int n_stages = 0;
};

/// Constants of one kernel on one GPU; `source` says where they come from.
struct KernelConstants {
  double launch_us = 0;        ///< floor: launch + completion of an empty-ish kernel
  double bandwidth_GBps = 0;   ///< effective DRAM bandwidth for this kernel's bytes
  double cta_us_per_unit = 0;  ///< microseconds per work unit of one CTA
  double aux_us_per_unit = 0;  ///< microseconds per aux unit (0 for ops without one)
  int ctas_per_sm = 1;         ///< resident CTAs per SM (wave size = sm_count x ctas_per_sm)
  std::string source;          ///< "defaults: ..." or "calibrated: FILE ..."
};

/// ceil(ctas / (sm_count * ctas_per_sm)); 0 CTAs -> 0 waves.
double waves(double ctas, int sm_count, int ctas_per_sm);

/// Critical-path units of w: sum over its stages of waves x units (or, without stages,
/// waves(ctas, SMs, ctas_per_sm) x cta_units); `aux` gets the same sum of aux units.
double serial_units(const KernelWork& w, int sm_count, int ctas_per_sm, double* aux = nullptr);

/// Predicted kernel time in microseconds.
double kernel_time_us(const KernelConstants& c, const KernelWork& w, int sm_count);

/// Constants from a GPU spec alone: launch floor and copy bandwidth of the spec,
/// the op's per-unit cost (cited by the caller), `ctas_per_sm`.
KernelConstants spec_constants(const GpuSpec& gpu, double cta_us_per_unit, int ctas_per_sm,
                               const std::string& unit_source);

}  // namespace dsv4::sim
