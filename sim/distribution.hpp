// Batch distributions of KV lengths for `simulate`: the production-like mix, a uniform range,
// or the lengths of a trace (a text/JSON list; the CLI may also pass seq_lens it read from an
// HDF5 trace). Sampling is a pure function of (seed, stream, index): the same seed gives the
// same batches whatever the thread count.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsv4::sim {

struct Distribution {
  std::string spec;               ///< as given: "prod", "uniform:LO-HI", "trace:FILE"
  std::vector<int> values;        ///< discrete support (prod, trace)
  std::vector<double> cumulative; ///< cumulative weights of `values`
  int lo = 0, hi = 0;             ///< uniform integer range [lo, hi] when values is empty

  /// One length from the generator state (advances it).
  int sample(std::uint64_t& state) const;
};

/// The production-like mix (FlashInfer PR #3379 benchmark): lengths 4096, 8192, 16384, 32768,
/// 65536, 131072 with weights 35, 20, 15, 12, 10, 8.
Distribution prod_distribution();

/// Parse --dist: "prod", "uniform:LO-HI" (1 <= LO <= HI) or "trace:FILE". Throws bad_input
/// naming the option.
Distribution parse_distribution(const std::string& spec);

/// Equal-weight distribution over the given lengths (e.g. seq_lens of a trace).
Distribution distribution_from_lengths(const std::string& spec, const std::vector<int>& lengths);

/// Lengths from a file: a JSON array of integers, a JSON object with "seq_lens" (array, possibly
/// nested), or whitespace/comma separated integers. Throws io / bad_input naming the file.
std::vector<int> read_lengths_file(const std::string& path);

/// splitmix64 step; the generator every sampler uses.
std::uint64_t splitmix64(std::uint64_t& state);

/// Seed of the stream for (seed, a, b): independent streams per batch size and sample.
std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t a, std::uint64_t b);

}  // namespace dsv4::sim
