#include "validation/diagnose.hpp"

#include "reference/compress.hpp"
#include "reference/numerics/numerics.hpp"
#include "reference/status.hpp"
#include "traces/trace.hpp"

#include <cstdio>
#include <sstream>

namespace dsv4::validation {

namespace {

std::string value_text(float v) {
  if (num::is_nan(v)) return "nan";
  if (num::is_inf(v)) return num::sign_bit(v) ? "-inf" : "inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

void diagnose_merge(const trace::TraceReader& r, const trace::GroupInfo& info, const DiagnoseOptions& opt,
                    std::vector<Finding>& out) {
  const auto mg = r.merge(info.name);
  const auto& cfg = mg.config();
  const std::uint64_t steps =
      opt.max_steps >= 0 ? std::min<std::uint64_t>(mg.steps(), static_cast<std::uint64_t>(opt.max_steps)) : mg.steps();
  const std::size_t nv = static_cast<std::size_t>(cfg.tokens * cfg.heads * cfg.head_dim);
  std::vector<unsigned char> v(nv * (cfg.v_dtype == trace::DType::bf16 ? 2 : 4));
  std::vector<float> lse(static_cast<std::size_t>(cfg.tokens * cfg.heads));
  for (std::uint64_t s = 0; s < steps; ++s) {
    const auto st = mg.read_step(s);
    MergeProblem p;
    p.v_partial = st.v_partial.data();
    p.v_dtype = cfg.v_dtype == trace::DType::bf16 ? VDtype::bf16 : VDtype::f32;
    p.lse_partial = st.lse_partial.data();
    p.splits = static_cast<std::int64_t>(cfg.splits);
    p.tokens = static_cast<std::int64_t>(cfg.tokens);
    p.heads = static_cast<std::int64_t>(cfg.heads);
    p.D = static_cast<std::int64_t>(cfg.head_dim);
    p.num_splits = st.num_splits ? st.num_splits->data() : nullptr;
    p.sink = cfg.sink ? cfg.sink->data() : nullptr;
    p.policy = opt.policy;
    p.lse_includes_sink = opt.lse_includes_sink;
    if (cfg.scopes.size() == cfg.splits) p.scope_names = cfg.scopes;
    std::vector<MergeDiagnostic> diags;
    merge_reference(p, v.data(), lse.data(), &diags);
    for (const auto& d : diags)
      out.push_back(Finding{info.path, static_cast<std::int64_t>(s), d.token, d.head, d.scope, d.value, d.op, d.cause,
                            d.avoided_by});
  }
}

Dtype cdtype(trace::DType t) { return t == trace::DType::bf16 ? Dtype::bf16 : Dtype::f32; }

void diagnose_compressor(const trace::TraceReader& r, const trace::GroupInfo& info, const DiagnoseOptions& opt,
                         std::vector<Finding>& out) {
  // The captured outputs (when present) are scanned for non-finite values; the compressor
  // reference never produces one from finite state, and a -inf score only zeroes a weight.
  const auto cg = r.compressor(info.name);
  const auto& cfg = cg.config();
  if (!cfg.has_out) return;
  const std::uint64_t steps =
      opt.max_steps >= 0 ? std::min<std::uint64_t>(cg.steps(), static_cast<std::uint64_t>(opt.max_steps)) : cg.steps();
  CompressConfig cc;
  cc.head_dim = cfg.head_dim;
  cc.compress_ratio = cfg.compress_ratio;
  cc.tokens_per_step = cfg.next_n;
  const auto hd = static_cast<std::size_t>(cfg.head_dim);
  const auto max_out = static_cast<std::size_t>(cfg.max_outputs());
  for (std::uint64_t s = 0; s < steps; ++s) {
    const auto st = cg.read_step(s);
    if (!st.out) continue;
    const auto offsets = compress_output_offsets(cc, static_cast<int>(cfg.batch), st.kv_len.data());
    const bool bf16 = cdtype(st.out->dtype) == Dtype::bf16;
    for (std::uint64_t b = 0; b < cfg.batch; ++b)
      for (std::int32_t w = 0; w < offsets[b + 1] - offsets[b]; ++w)
        for (std::size_t d = 0; d < hd; ++d) {
          const std::size_t i = (b * max_out + static_cast<std::size_t>(w)) * hd + d;
          const float x = bf16 ? num::bf16_to_float(st.out->view<std::uint16_t>()[i]) : st.out->view<float>()[i];
          if (num::is_finite(x)) continue;
          const std::int64_t window = (st.kv_len[b] - cfg.next_n) / cfg.compress_ratio + w;
          out.push_back(Finding{info.path, static_cast<std::int64_t>(s), offsets[b] + w, static_cast<std::int64_t>(d),
                                "window " + std::to_string(window) + " of request " + std::to_string(b), x,
                                "captured output",
                                "the captured compressor output holds a non-finite value (a NaN or +inf score or kv "
                                "in the window; -inf scores alone give weight 0)",
                                ""});
        }
  }
}

}  // namespace

std::vector<Finding> diagnose_trace(const std::string& trace_path, const DiagnoseOptions& opt) {
  trace::TraceReader r(trace_path);
  std::vector<Finding> out;
  for (const auto& info : r.groups()) {
    if (info.kind == trace::GroupKind::merge) diagnose_merge(r, info, opt, out);
    if (info.kind == trace::GroupKind::compressor) diagnose_compressor(r, info, opt, out);
  }
  return out;
}

nlohmann::ordered_json findings_json(const std::vector<Finding>& f) {
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  for (const auto& x : f) {
    nlohmann::ordered_json j;
    j["group"] = x.group;
    j["step"] = x.step;
    j["token"] = x.token;
    j["head"] = x.head;
    j["scope"] = x.scope;
    j["value"] = value_text(x.value);
    j["op"] = x.op;
    j["cause"] = x.cause;
    j["avoided_by"] = x.avoided_by;
    arr.push_back(std::move(j));
  }
  nlohmann::ordered_json j;
  j["findings"] = std::move(arr);
  return j;
}

std::string findings_text(const std::vector<Finding>& f) {
  std::ostringstream o;
  if (f.empty()) return "no non-finite outputs\n";
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-18s %5s %6s %5s %-12s %-6s %-12s %s\n", "group", "step", "token", "head", "scope",
                "value", "op", "avoided by");
  o << buf;
  for (const auto& x : f) {
    std::snprintf(buf, sizeof buf, "%-18s %5lld %6lld %5lld %-12s %-6s %-12s %s\n", x.group.c_str(),
                  static_cast<long long>(x.step), static_cast<long long>(x.token), static_cast<long long>(x.head),
                  x.scope.c_str(), value_text(x.value).c_str(), x.op.c_str(),
                  x.avoided_by.empty() ? "-" : x.avoided_by.c_str());
    o << buf << "    " << x.cause << "\n";
  }
  o << f.size() << " findings\n";
  return o.str();
}

}  // namespace dsv4::validation
