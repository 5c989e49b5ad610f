#include "sim/cost/compress.hpp"

#include "reference/status.hpp"
#include "sim/cost/params.hpp"

#include <algorithm>
#include <cmath>

namespace dsv4::sim {

namespace {
constexpr double kCompressChunk = 64;        // gpu/compress.cu kChunk: head elements per block (32 lanes x 2)
// gpu/compress.cu, NRW = 4: groups of 4 candidates need 70-90 registers (84-86 with bf16 kv and
// f32 state), so 5 blocks of 128 threads fit an SM (the launch bounds ask for 4).
constexpr int kCompressBlocksPerSmNrw4 = 5;
constexpr int kCompressBlocksPerSmNrw1 = 16; // gpu/compress.cu: __launch_bounds__(32, 16) for NRW = 1
}  // namespace

CompressShape compress_shape(const nlohmann::json& p) {
  CompressShape s;
  s.batch = param_number(p, "batch", 0, true);
  s.NN = param_number(p, "NN", 1, true);
  s.HD = param_number(p, "HD", 512, true);
  s.CR = param_number(p, "CR", 128, true);
  const std::string mode = param_string(p, "mode");
  if (!mode.empty()) s.mode = mode;
  if (s.mode != "decode" && s.mode != "prefill")
    raise(Errc::bad_input, "compress params 'mode' must be decode or prefill, got '" + s.mode + "'");
  if (s.CR != 4 && s.CR != 128) raise(Errc::bad_input, "compress params 'CR' must be 4 or 128");
  if (s.batch < 0 || s.NN < 1 || s.HD < 1) raise(Errc::bad_input, "compress params: batch >= 0, NN >= 1, HD >= 1");
  s.kv_bytes = dtype_bytes(param_string(p, "kv_dtype"), 2, "compress params 'kv_dtype'");
  s.state_bytes = dtype_bytes(param_string(p, "state_dtype"), 4, "compress params 'state_dtype'");
  s.out_bytes = dtype_bytes(param_string(p, "out_dtype"), 2, "compress params 'out_dtype'");
  s.windows = param_number(p, "windows", -1);
  s.warps = param_number(p, "warps", 0);
  if (s.warps != 0 && !(s.warps == 1 || (s.warps == 4 && s.CR == 128)))
    raise(Errc::bad_input, "compress params 'warps' (NRW) must be 1, or 4 with CR = 128");
  return s;
}

KernelWork compress_work(const CompressShape& s) {
  const double SD = s.CR == 4 ? 2 * s.HD : s.HD;
  const double windows = s.windows >= 0 ? s.windows : (s.mode == "prefill" ? std::floor(s.NN / s.CR) : s.NN / s.CR);
  const double candidates = s.CR == 4 ? 8 : s.CR;
  const double nrw = s.warps > 0 ? s.warps : (s.CR == 128 ? 4 : 1);
  // Grid (window slots, HD / 64, batch) (gpu/compress.cu); slots = ceil(tokens / CR), >= 1.
  const double head_blocks = std::max(1.0, std::ceil(s.HD / kCompressChunk));
  const double slots = std::max(1.0, std::ceil(s.NN / s.CR));
  KernelWork w;
  w.bytes = s.batch * s.NN * 2 * SD * (s.kv_bytes + s.state_bytes) +
            s.batch * windows * (candidates * s.HD * 2 * s.state_bytes + s.HD * s.out_bytes);
  w.ctas = s.batch * slots * head_blocks;
  // Each thread runs the in-order recurrence over its partition's candidates: CR / NRW steps
  // per window (8 for CR = 4: both halves), for the windows of its slot.
  w.cta_units = std::ceil(windows / slots) * candidates / nrw;
  w.n_stages = 1;
  w.stages[0] = {w.ctas, nrw > 1 ? kCompressBlocksPerSmNrw4 : kCompressBlocksPerSmNrw1, w.cta_units, 0.0};
  return w;
}

KernelConstants compress_default_constants(const GpuSpec& gpu) {
  return spec_constants(gpu, 300.0 / 1755.0, kCompressBlocksPerSmNrw4,
                        "300 cycles / 1.755 GHz per dependent step (TensorRT-LLM PR #14124, compressor-notes); "
                        "CTAs per SM from the kernel's registers (5 for NRW = 4, 16 for NRW = 1)");
}

}  // namespace dsv4::sim
