// Cost model of the online-softmax KV compressor (DESIGN §3.1), decode and prefill.
// Grid: (window slots, HD / 64 head blocks, requests); each CTA stores its tokens into the state
// and reduces each emitted window over its candidates sequentially (CR candidates split
// over NRW warps when CR = 128; 8 candidates, A then B half, when CR = 4), one dependent
// DRAM load per step.
#pragma once

#include "sim/cost/model.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace dsv4::sim {

struct CompressShape {
  double batch = 0;       ///< requests
  double NN = 1;          ///< tokens per request in this launch (decode: next_n; prefill: chunk)
  double HD = 512;        ///< head dim
  double CR = 128;        ///< compress ratio (4 overlap, 128)
  std::string mode = "decode";  ///< decode | prefill
  double kv_bytes = 2;     ///< kv_score dtype bytes (bf16 default)
  double state_bytes = 4;  ///< state dtype bytes (fp32 default)
  double out_bytes = 2;    ///< output dtype bytes (bf16 default)
  double windows = -1;     ///< windows emitted per request; < 0 = expected value NN / CR
  double warps = 0;        ///< NRW partitions per window (1, or 4 for CR 128); 0 = the bench's (4 for CR 128, else 1)
};

/// From bench params {batch, NN, HD, CR, mode} plus optional kv_dtype, state_dtype, out_dtype,
/// windows; extra keys ignored.
CompressShape compress_shape(const nlohmann::json& params);

/// SD = 2*HD (CR 4) or HD; bytes = batch*NN*2*SD*(kv + state) [read input, store state]
/// + batch*windows*(candidates*HD*2*state + HD*out) [reduce, write];
/// ctas = batch x slots x HD/64 with slots = max(1, ceil(NN / CR)) (the kernel's grid at V = 2;
/// a grid of at most one such block per SM runs the V = 1 kernel, twice the blocks of half the
/// columns, with the same steps per thread: still one wave, so the model's time is the same
/// and the fitted per-step cost covers both);
/// units = recurrence steps per thread = ceil(windows / slots) x candidates / NRW; one stage
/// whose occupancy is the kernel's: 5 blocks/SM for NRW = 4 (register cap), 16 for NRW = 1.
KernelWork compress_work(const CompressShape& s);

/// Per-unit default 0.17 us: one exposed ~300-cycle DRAM latency per serial step at 1.755 GHz
/// (TensorRT-LLM PR #14124 description, compressor-notes).
KernelConstants compress_default_constants(const GpuSpec& gpu);

}  // namespace dsv4::sim
