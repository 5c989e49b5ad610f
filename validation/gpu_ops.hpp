// Running the CUDA kernels on host data for replay: copy a step's inputs to the device,
// launch, copy the outputs back. Built only with CUDA (DSV4LAB_HAVE_CUDA); without it
// gpu_probe() says so and GpuRunner's calls throw Errc::unsupported.
#pragma once

#include "reference/compress.hpp"
#include "reference/lse_merge.hpp"
#include "reference/topk.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace dsv4::validation {

struct GpuInfo {
  bool available = false;
  std::string name;  ///< device name, e.g. "NVIDIA H100 80GB HBM3"
  int sm_count = 0;
  std::string why;   ///< why it is not available
};

/// Is a GPU usable (kernels built and a device present)? Never throws.
GpuInfo gpu_probe();

/// Owns device buffers (grown on demand, reused across steps) and one stream.
class GpuRunner {
 public:
  GpuRunner();
  ~GpuRunner();
  GpuRunner(const GpuRunner&) = delete;
  GpuRunner& operator=(const GpuRunner&) = delete;

  /// Top-k of a host problem (logits, seq_lens on the host); out host [rows, k].
  /// Returns the kernel time in microseconds (event-timed) when `measure`, else 0.
  double topk(const TopkProblem& p, std::int32_t* out, bool measure = false);
  /// LSE merge of a host problem (dense or packed); v_out host [tokens, heads, D] in
  /// p.v_dtype, lse_out host [tokens, heads]. Returns the kernel time when `measure`.
  double merge(const MergeProblem& p, void* v_out, float* lse_out, bool measure = false);
  /// Does the GPU compressor support this configuration?
  static bool compress_supported(const CompressConfig& config);
  /// Compressor decode step on host data: `state` holds host buffers (state_kv, state_score
  /// [num_blocks, page, SD], block_table [batch, max_blocks]); they are uploaded, the kernel
  /// stores the step's tokens and emits windows, and the updated state is copied back into
  /// them. out host [step.out_rows, HD] out_dtype. Returns the kernel time when `measure`.
  double compress_decode(const CompressConfig& config, const CompressStep& step, const CompressState& state,
                         void* out, bool measure = false);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dsv4::validation
