// Predicted time of each op for a shape on a GPU: the entry point reports and the demo call.
// One table lists the modelled ops; bench "params" objects (gpu/bench) are the shape format,
// so calibration and prediction read shapes the same way.
#pragma once

#include "sim/cost/compress.hpp"
#include "sim/cost/lse_merge.hpp"
#include "sim/cost/model.hpp"
#include "sim/cost/topk.hpp"
#include "sim/gpu_specs.hpp"

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace dsv4::sim {

/// One modelled op: bench params -> kernel features, and the default constants on a GPU.
struct OpModel {
  std::string op;          ///< "topk", "lse_merge", "compress"
  std::string params_doc;  ///< the params keys it reads
  KernelWork (*work)(const nlohmann::json& params);
  KernelConstants (*defaults)(const GpuSpec& gpu);
};

/// The table of modelled ops (fixed order).
const std::vector<OpModel>& op_models();

/// Look up an op; throws bad_input listing the supported ops.
const OpModel& op_model(const std::string& op);

/// Fitted constants by kernel key: kernel_key(...) (preferred), "op/impl" or "op".
using ConstantsTable = std::map<std::string, KernelConstants>;

/// Kernel key of a measurement: "op/impl", plus "[k=v,...]" for the string-valued params other
/// than dtype (they select a kernel variant: compress mode=decode|prefill, lse_merge merge=two_way|
/// n_way and l2=hot|cold), so each variant is fitted on its own.
std::string kernel_key(const std::string& op, const std::string& impl, const nlohmann::json& params);

struct Prediction {
  double us = 0;
  KernelWork work;
  KernelConstants constants;
};

/// Predicted time of one launch of `op` with bench-style `params` on `gpu`. Constants come from
/// `table` (kernel_key, then "op/impl", then "op") when given and present, else the op's defaults.
Prediction predict(const GpuSpec& gpu, const std::string& op, const nlohmann::json& params,
                   const ConstantsTable* table = nullptr, const std::string& impl = "");

double predict_topk_us(const GpuSpec& gpu, const TopkShape& s, const KernelConstants* c = nullptr);
double predict_lse_merge_us(const GpuSpec& gpu, const LseMergeShape& s, const KernelConstants* c = nullptr);
double predict_compress_us(const GpuSpec& gpu, const CompressShape& s, const KernelConstants* c = nullptr);

/// Load a ConstantsTable from the JSON `calibrate` writes ({"kernels": [{"kernel", "constants"}]}).
ConstantsTable load_constants(const nlohmann::json& calibration);
nlohmann::json constants_json(const KernelConstants& c);

}  // namespace dsv4::sim
