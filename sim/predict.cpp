#include "sim/predict.hpp"

#include "reference/status.hpp"

namespace dsv4::sim {

namespace {

KernelWork topk_from_json(const nlohmann::json& p) { return topk_work(topk_shape(p)); }
KernelWork merge_from_json(const nlohmann::json& p) { return lse_merge_work(lse_merge_shape(p)); }
KernelWork compress_from_json(const nlohmann::json& p) { return compress_work(compress_shape(p)); }

}  // namespace

const std::vector<OpModel>& op_models() {
  static const std::vector<OpModel> table = {
      {"topk", "rows, cols, k, dtype, blocks_per_row", &topk_from_json, &topk_default_constants},
      {"lse_merge", "tokens, heads, D, splits, dtype", &merge_from_json, &lse_merge_default_constants},
      {"compress", "batch, NN, HD, CR, mode [, kv_dtype, state_dtype, out_dtype, windows]", &compress_from_json,
       &compress_default_constants},
  };
  return table;
}

const OpModel& op_model(const std::string& op) {
  std::string names;
  for (const auto& m : op_models()) {
    if (m.op == op) return m;
    names += (names.empty() ? "" : ", ") + m.op;
  }
  raise(Errc::bad_input, "no cost model for op '" + op + "'; supported: " + names);
}

Prediction predict(const GpuSpec& gpu, const std::string& op, const nlohmann::json& params,
                   const ConstantsTable* table, const std::string& impl) {
  const OpModel& m = op_model(op);
  Prediction p;
  p.work = m.work(params);
  p.constants = m.defaults(gpu);
  if (table) {
    auto it = impl.empty() ? table->end() : table->find(kernel_key(op, impl, params));
    if (it == table->end() && !impl.empty()) it = table->find(op + "/" + impl);
    if (it == table->end()) it = table->find(op);
    if (it != table->end()) p.constants = it->second;
  }
  p.us = kernel_time_us(p.constants, p.work, gpu.sm_count);
  return p;
}

std::string kernel_key(const std::string& op, const std::string& impl, const nlohmann::json& params) {
  std::string variant;
  if (params.is_object())
    for (const auto& [k, v] : params.items())  // object keys iterate sorted
      if (v.is_string() && k != "dtype") variant += (variant.empty() ? "" : ",") + k + "=" + v.get<std::string>();
  return op + "/" + impl + (variant.empty() ? "" : "[" + variant + "]");
}

double predict_topk_us(const GpuSpec& gpu, const TopkShape& s, const KernelConstants* c) {
  const KernelConstants k = c ? *c : topk_default_constants(gpu);
  return kernel_time_us(k, topk_work(s), gpu.sm_count);
}

double predict_lse_merge_us(const GpuSpec& gpu, const LseMergeShape& s, const KernelConstants* c) {
  const KernelConstants k = c ? *c : lse_merge_default_constants(gpu);
  return kernel_time_us(k, lse_merge_work(s), gpu.sm_count);
}

double predict_compress_us(const GpuSpec& gpu, const CompressShape& s, const KernelConstants* c) {
  const KernelConstants k = c ? *c : compress_default_constants(gpu);
  return kernel_time_us(k, compress_work(s), gpu.sm_count);
}

nlohmann::json constants_json(const KernelConstants& c) {
  return {{"launch_us", c.launch_us},
          {"bandwidth_GBps", c.bandwidth_GBps},
          {"cta_us_per_unit", c.cta_us_per_unit},
          {"aux_us_per_unit", c.aux_us_per_unit},
          {"ctas_per_sm", c.ctas_per_sm},
          {"source", c.source}};
}

ConstantsTable load_constants(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("kernels") || !j.at("kernels").is_array())
    raise(Errc::bad_input, "calibration JSON lacks a 'kernels' array");
  ConstantsTable t;
  for (const auto& k : j.at("kernels")) {
    if (!k.contains("kernel") || !k.contains("constants")) raise(Errc::bad_input, "calibration entry lacks kernel/constants");
    const auto& c = k.at("constants");
    KernelConstants kc;
    kc.launch_us = c.value("launch_us", 0.0);
    kc.bandwidth_GBps = c.value("bandwidth_GBps", 0.0);
    kc.cta_us_per_unit = c.value("cta_us_per_unit", 0.0);
    kc.aux_us_per_unit = c.value("aux_us_per_unit", 0.0);
    kc.ctas_per_sm = c.value("ctas_per_sm", 1);
    kc.source = c.value("source", std::string("calibrated"));
    t[k.at("kernel").get<std::string>()] = kc;
    // Also reachable by the op name alone (first kernel of that op wins), e.g. "lse_merge".
    if (k.contains("op") && k.at("op").is_string()) {
      const std::string op = k.at("op").get<std::string>();
      t.emplace(op, kc);
      if (k.contains("impl") && k.at("impl").is_string()) t.emplace(op + "/" + k.at("impl").get<std::string>(), kc);
    }
  }
  return t;
}

}  // namespace dsv4::sim
