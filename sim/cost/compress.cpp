#include "sim/cost/compress.hpp"

#include "reference/status.hpp"
#include "sim/cost/params.hpp"

#include <algorithm>
#include <cmath>

namespace dsv4::sim {

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
  return s;
}

KernelWork compress_work(const CompressShape& s) {
  const double SD = s.CR == 4 ? 2 * s.HD : s.HD;
  const double windows = s.windows >= 0 ? s.windows : (s.mode == "prefill" ? std::floor(s.NN / s.CR) : s.NN / s.CR);
  const double candidates = s.CR == 4 ? 8 : s.CR;
  const double nrw = (s.CR == 128 && s.NN <= 4) ? 4 : 1;
  const double head_blocks = std::max(1.0, std::ceil(s.HD / 128.0));
  KernelWork w;
  w.bytes = s.batch * s.NN * 2 * SD * (s.kv_bytes + s.state_bytes) +
            s.batch * windows * (candidates * s.HD * 2 * s.state_bytes + s.HD * s.out_bytes);
  if (s.mode == "prefill") {
    // one CTA per (request, window), at least one per request to persist the remainder
    w.ctas = s.batch * std::max(1.0, std::ceil(windows)) * head_blocks;
    w.cta_units = (windows > 0 ? 1.0 : 0.0) * candidates / nrw;
  } else {
    w.ctas = s.batch * head_blocks;
    w.cta_units = windows * candidates / nrw;
  }
  return w;
}

KernelConstants compress_default_constants(const GpuSpec& gpu) {
  return spec_constants(gpu, 300.0 / 1755.0, 4,
                        "300 cycles / 1.755 GHz per dependent step (TensorRT-LLM PR #14124, compressor-notes); "
                        "4 CTAs per SM (assumption)");
}

}  // namespace dsv4::sim
