#include "validation/replay.hpp"

#include "reference/compress.hpp"
#include "reference/numerics/numerics.hpp"
#include "reference/parallel.hpp"
#include "reference/status.hpp"
#include "reference/topk.hpp"
#include "sim/predict.hpp"
#include "traces/trace.hpp"
#include "validation/gpu_ops.hpp"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>

namespace dsv4::validation {

namespace {

using trace::Array;
using trace::DType;

// ---- helpers ------------------------------------------------------------------------------

std::vector<std::size_t> to_shape(std::initializer_list<std::uint64_t> dims) {
  std::vector<std::size_t> s;
  for (auto d : dims) s.push_back(static_cast<std::size_t>(d));
  return s;
}

/// Float values of an f32 / bf16 / f16 array (exact upcast).
std::vector<float> to_float(const Array& a) {
  std::vector<float> out(static_cast<std::size_t>(a.size()));
  switch (a.dtype) {
    case DType::f32: {
      auto v = a.view<float>();
      std::copy(v.begin(), v.end(), out.begin());
      break;
    }
    case DType::bf16: {
      auto v = a.view<std::uint16_t>();
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = num::bf16_to_float(v[i]);
      break;
    }
    case DType::f16: {
      auto v = a.view<std::uint16_t>();
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = num::fp16_to_float(v[i]);
      break;
    }
    default: raise(Errc::internal, "to_float: not a float array");
  }
  return out;
}

/// Float values of a buffer of `n` elements stored as f32 or bf16 (the reference outputs).
std::vector<float> bytes_to_float(const void* p, std::size_t n, bool bf16) {
  std::vector<float> out(n);
  if (bf16) {
    const auto* u = static_cast<const std::uint16_t*>(p);
    for (std::size_t i = 0; i < n; ++i) out[i] = num::bf16_to_float(u[i]);
  } else {
    const auto* f = static_cast<const float*>(p);
    std::copy(f, f + n, out.begin());
  }
  return out;
}

FloatRule tolerance_rule(const ReplayOptions& o, const std::string& dtype) {
  FloatRule r = float_rule_tolerance(dtype);
  if (o.atol) r.tol.atol = *o.atol;
  if (o.rtol) r.tol.rtol = *o.rtol;
  if (o.cos_min) r.cos_min = *o.cos_min;
  if (o.cos_mean) r.cos_mean = *o.cos_mean;
  return r;
}

ojson attrs_json(const trace::Attributes& a) {
  ojson j = ojson::object();
  for (const auto& [k, v] : a) {
    if (k.rfind("planted_", 0) == 0) continue;  // coordinates lists: too long for the config
    j[k] = trace::to_string(v);
  }
  return j;
}

class Progress {
 public:
  Progress(bool on, std::string group, std::uint64_t steps) : on_(on), group_(std::move(group)), steps_(steps) {}
  void step(std::uint64_t s) {
    if (!on_) return;
    const std::uint64_t every = std::max<std::uint64_t>(1, steps_ / 10);
    if (s + 1 == steps_ || (s + 1) % every == 0)
      std::fprintf(stderr, "replay: %s: step %llu/%llu\n", group_.c_str(), static_cast<unsigned long long>(s + 1),
                   static_cast<unsigned long long>(steps_));
  }

 private:
  bool on_;
  std::string group_;
  std::uint64_t steps_;
};

struct Context {
  const ReplayOptions& opt;
  GpuRunner* gpu = nullptr;
  trace::TraceWriter* out = nullptr;
  const sim::GpuSpec* spec = nullptr;
};

std::uint64_t steps_to_run(const ReplayOptions& o, std::uint64_t steps) {
  return o.max_steps >= 0 ? std::min<std::uint64_t>(steps, static_cast<std::uint64_t>(o.max_steps)) : steps;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

ojson timing_json(std::optional<double> predicted, const std::vector<double>& measured) {
  if (!predicted && measured.empty()) return nullptr;
  ojson t;
  if (predicted) t["predicted_us"] = *predicted;
  if (!measured.empty()) t["measured_us"] = median(measured);
  return t;
}

template <class F>
std::optional<double> try_predict(const Context& c, F f) {
  if (!c.spec) return std::nullopt;
  try {
    return f(*c.spec);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// ---- indexer top-k --------------------------------------------------------------------------

LogitDtype logit_dtype(DType t) {
  switch (t) {
    case DType::f32: return LogitDtype::f32;
    case DType::bf16: return LogitDtype::bf16;
    case DType::f16: return LogitDtype::f16;
    default: raise(Errc::bad_input, "indexer logits must be float32, bfloat16 or float16");
  }
}

GroupReport replay_indexer(const Context& c, const trace::TraceReader& r, const trace::GroupInfo& info) {
  const auto ix = r.indexer(info.name);
  const auto& cfg = ix.config();
  const std::uint64_t rows = cfg.rows(), cols = cfg.cols;
  const auto k = static_cast<std::size_t>(cfg.k);
  const std::uint64_t steps = steps_to_run(c.opt, ix.steps());
  GroupReport g;
  g.group = info.path;
  g.op = "topk";
  g.steps = static_cast<std::int64_t>(steps);
  g.config = attrs_json(info.attrs);
  g.config["rows"] = rows;
  g.config["cols"] = cols;
  g.config["batch"] = cfg.batch;
  g.config["logits_dtype"] = trace::to_string(cfg.logit_dtype);
  g.schedule = "reference: radix threshold search on 32-bit order keys + index-order compaction; oracle: full sort";

  // Oracle rows: whole requests spread over the batch.
  std::vector<std::uint64_t> oracle_requests;
  if (c.opt.oracle_rows < 0 || static_cast<std::uint64_t>(c.opt.oracle_rows) >= rows) {
    for (std::uint64_t b = 0; b < cfg.batch; ++b) oracle_requests.push_back(b);
  } else if (c.opt.oracle_rows > 0) {
    const std::uint64_t nn = static_cast<std::uint64_t>(cfg.next_n);
    const std::uint64_t nreq = std::min<std::uint64_t>(cfg.batch, (static_cast<std::uint64_t>(c.opt.oracle_rows) + nn - 1) / nn);
    for (std::uint64_t i = 0; i < nreq; ++i) oracle_requests.push_back(i * cfg.batch / nreq);
  }
  const bool oracle_all = oracle_requests.size() == cfg.batch;
  std::vector<std::int64_t> oracle_row_ids;
  for (auto b : oracle_requests)
    for (int t = 0; t < cfg.next_n; ++t) oracle_row_ids.push_back(static_cast<std::int64_t>(b) * cfg.next_n + t);
  const std::size_t orows = oracle_row_ids.size();
  std::string oracle_note = oracle_all ? "oracle on every row"
                                       : "oracle on " + std::to_string(orows) + " of " + std::to_string(rows) +
                                             " rows per step (--oracle-rows; -1 for all)";

  TopkComparison ref_oracle("topk", "reference", "oracle", TopkRule{TopkCheck::exact, 1.0});
  TopkComparison gpu_ref("topk", "gpu", "reference", TopkRule{TopkCheck::exact, 1.0});
  const TopkRule cap_rule{c.opt.topk_captured, c.opt.recall_min};
  TopkComparison cap_ref("topk", "captured", "reference", cap_rule);
  TopkComparison cap_oracle("topk", "captured", "oracle", cap_rule);
  bool any_gpu = false, any_cap = false;
  std::vector<double> measured;

  trace::StepDataset save_ref, save_oracle, save_gpu;
  if (c.out) {
    c.out->mirror_group(info);
    save_ref = c.out->step_dataset(info.path, "topk_reference", DType::i32, {rows, k});
    if (oracle_all) save_oracle = c.out->step_dataset(info.path, "topk_oracle", DType::i32, {rows, k});
    if (c.gpu) save_gpu = c.out->step_dataset(info.path, "topk_gpu", DType::i32, {rows, k});
  }

  Progress prog(c.opt.progress, info.path, steps);
  std::vector<std::int32_t> ref(rows * k), gpu_out, oracle(orows * k), sub_ref(orows * k), sub_cap(orows * k);
  std::vector<float> sub_logits(orows * cols);
  std::vector<std::int64_t> valid(rows), sub_valid(orows);
  for (std::uint64_t s = 0; s < steps; ++s) {
    const auto st = ix.read_step(s);
    const auto step = static_cast<std::int64_t>(s);
    TopkProblem p;
    p.logits = st.logits.data();
    p.dtype = logit_dtype(st.logits.dtype);
    p.rows = static_cast<std::int64_t>(rows);
    p.cols = static_cast<std::int64_t>(cols);
    p.row_stride = static_cast<std::int64_t>(cols);
    p.seq_lens = st.seq_lens.data();
    p.batch = static_cast<std::int64_t>(cfg.batch);
    p.next_n = cfg.next_n;
    p.compress_ratio = cfg.compress_ratio;
    p.k = cfg.k;
    topk_reference(p, ref.data());
    for (std::uint64_t row = 0; row < rows; ++row) valid[row] = topk_row_length(p, static_cast<std::int64_t>(row));
    // Upcast logits for the tie-aware check (a view for fp32).
    std::vector<float> upcast;
    std::span<const float> values;
    if (st.logits.dtype == DType::f32) {
      values = st.logits.view<float>();
    } else {
      upcast = to_float(st.logits);
      values = upcast;
    }
    const TopkLogits lg{values, static_cast<std::size_t>(cols), valid};
    if (c.out) save_ref.append(std::span<const std::int32_t>(ref));

    // Oracle on the selected requests (each request's rows are contiguous).
    if (orows > 0) {
      // The oracle is sequential: run the selected requests in parallel, one call each.
      parallel_for(oracle_requests.size(), [&](std::size_t i0, std::size_t i1) {
        for (std::size_t i = i0; i < i1; ++i) {
          const std::uint64_t b = oracle_requests[i];
          TopkProblem q = p;
          const std::uint64_t first_row = b * static_cast<std::uint64_t>(cfg.next_n);
          const std::size_t elem = static_cast<std::size_t>(element_bytes(p.dtype));
          q.logits = static_cast<const unsigned char*>(st.logits.data()) + first_row * cols * elem;
          q.rows = cfg.next_n;
          q.seq_lens = st.seq_lens.data() + b;
          q.batch = 1;
          topk_oracle(q, oracle.data() + i * static_cast<std::size_t>(cfg.next_n) * k);
        }
      });
      for (std::size_t i = 0; i < orows; ++i) {
        const auto row = static_cast<std::size_t>(oracle_row_ids[i]);
        std::copy_n(ref.begin() + static_cast<std::ptrdiff_t>(row * k), k, sub_ref.begin() + static_cast<std::ptrdiff_t>(i * k));
        std::copy_n(values.begin() + static_cast<std::ptrdiff_t>(row * cols), cols,
                    sub_logits.begin() + static_cast<std::ptrdiff_t>(i * cols));
        sub_valid[i] = valid[row];
        if (st.topk)
          std::copy_n(st.topk->begin() + static_cast<std::ptrdiff_t>(row * k), k,
                      sub_cap.begin() + static_cast<std::ptrdiff_t>(i * k));
      }
      const TopkLogits sub_lg{sub_logits, static_cast<std::size_t>(cols), sub_valid};
      ref_oracle.add(step, sub_ref, oracle, orows, k, &sub_lg, oracle_row_ids);
      if (st.topk) cap_oracle.add(step, sub_cap, oracle, orows, k, &sub_lg, oracle_row_ids);
      if (c.out && oracle_all) save_oracle.append(std::span<const std::int32_t>(oracle));
    }
    if (c.gpu) {
      gpu_out.assign(rows * k, 0);
      const double us = c.gpu->topk(p, gpu_out.data(), c.opt.measure);
      if (c.opt.measure) measured.push_back(us);
      gpu_ref.add(step, gpu_out, ref, rows, k, &lg);
      any_gpu = true;
      if (c.out) save_gpu.append(std::span<const std::int32_t>(gpu_out));
    }
    if (st.topk) {
      cap_ref.add(step, *st.topk, ref, rows, k, &lg);
      any_cap = true;
    }
    prog.step(s);
  }
  if (orows > 0) g.comparisons.push_back(ref_oracle.finish(oracle_note));
  if (any_gpu) g.comparisons.push_back(gpu_ref.finish());
  if (any_cap) {
    g.comparisons.push_back(cap_ref.finish());
    if (orows > 0) g.comparisons.push_back(cap_oracle.finish(oracle_note));
  }
  if (!cfg.has_topk) g.notes.push_back("no captured top-k in the trace");
  const auto predicted = try_predict(c, [&](const sim::GpuSpec& gs) {
    sim::TopkShape sh;
    sh.rows = static_cast<double>(rows);
    sh.cols = static_cast<double>(cols);
    sh.k = static_cast<double>(k);
    sh.elem_bytes = static_cast<double>(element_bytes(logit_dtype(cfg.logit_dtype)));
    return sim::predict_topk_us(gs, sh);
  });
  g.timing = timing_json(predicted, measured);
  return g;
}

// ---- LSE merge ------------------------------------------------------------------------------

GroupReport replay_merge(const Context& c, const trace::TraceReader& r, const trace::GroupInfo& info) {
  const auto mg = r.merge(info.name);
  const auto& cfg = mg.config();
  const std::uint64_t steps = steps_to_run(c.opt, mg.steps());
  const bool bf16 = cfg.v_dtype == DType::bf16;
  const std::string vdt = trace::to_string(cfg.v_dtype);
  GroupReport g;
  g.group = info.path;
  g.op = "merge";
  g.steps = static_cast<std::int64_t>(steps);
  g.config = attrs_json(info.attrs);
  g.config["splits"] = cfg.splits;
  g.config["tokens"] = cfg.tokens;
  g.config["heads"] = cfg.heads;
  g.config["D"] = cfg.head_dim;
  g.config["v_dtype"] = vdt;
  g.config["sink"] = cfg.sink.has_value();
  g.config["policy"] = to_string(c.opt.policy);
  g.schedule = "per element: sequential weights and fma in input order (no parallel schedule)";
  const auto vshape = to_shape({cfg.tokens, cfg.heads, cfg.head_dim});
  const auto lshape = to_shape({cfg.tokens, cfg.heads});
  const FloatRule vtol = tolerance_rule(c.opt, vdt), ltol = tolerance_rule(c.opt, "float32");
  const FloatRule bit = float_rule_vs_reference();
  const Grid vg = grid_of(vdt);
  FloatComparison v_ro("v", "reference", "oracle", vtol, vshape, vg), l_ro("lse", "reference", "oracle", ltol, lshape);
  FloatComparison v_gr("v", "gpu", "reference", bit, vshape, vg), l_gr("lse", "gpu", "reference", bit, lshape);
  FloatComparison v_cr("v", "captured", "reference", vtol, vshape, vg), l_cr("lse", "captured", "reference", ltol, lshape);
  FloatComparison v_co("v", "captured", "oracle", vtol, vshape, vg), l_co("lse", "captured", "oracle", ltol, lshape);
  bool any_gpu = false, any_v = false, any_l = false;
  std::uint64_t nonfinite_rows = 0;
  std::vector<double> measured;

  trace::StepDataset sv_ref, sl_ref, sv_or, sl_or, sv_gpu, sl_gpu;
  if (c.out) {
    c.out->mirror_group(info);
    const std::vector<std::uint64_t> vs{cfg.tokens, cfg.heads, cfg.head_dim}, ls{cfg.tokens, cfg.heads};
    sv_ref = c.out->step_dataset(info.path, "v_reference", cfg.v_dtype, vs);
    sl_ref = c.out->step_dataset(info.path, "lse_reference", DType::f32, ls);
    sv_or = c.out->step_dataset(info.path, "v_oracle", DType::f32, vs);
    sl_or = c.out->step_dataset(info.path, "lse_oracle", DType::f32, ls);
    if (c.gpu) {
      sv_gpu = c.out->step_dataset(info.path, "v_gpu", cfg.v_dtype, vs);
      sl_gpu = c.out->step_dataset(info.path, "lse_gpu", DType::f32, ls);
    }
  }

  const std::size_t nv = static_cast<std::size_t>(cfg.tokens * cfg.heads * cfg.head_dim);
  const std::size_t nl = static_cast<std::size_t>(cfg.tokens * cfg.heads);
  const std::vector<std::uint64_t> vstep{cfg.tokens, cfg.heads, cfg.head_dim};
  Progress prog(c.opt.progress, info.path, steps);
  for (std::uint64_t s = 0; s < steps; ++s) {
    const auto st = mg.read_step(s);
    const auto step = static_cast<std::int64_t>(s);
    MergeProblem p;
    p.v_partial = st.v_partial.data();
    p.v_dtype = bf16 ? VDtype::bf16 : VDtype::f32;
    p.lse_partial = st.lse_partial.data();
    p.splits = static_cast<std::int64_t>(cfg.splits);
    p.tokens = static_cast<std::int64_t>(cfg.tokens);
    p.heads = static_cast<std::int64_t>(cfg.heads);
    p.D = static_cast<std::int64_t>(cfg.head_dim);
    p.num_splits = st.num_splits ? st.num_splits->data() : nullptr;
    p.sink = cfg.sink ? cfg.sink->data() : nullptr;
    p.policy = c.opt.policy;
    p.lse_includes_sink = c.opt.lse_includes_sink;
    if (cfg.scopes.size() == cfg.splits) p.scope_names = cfg.scopes;
    Array ref_v(cfg.v_dtype, vstep);
    std::vector<float> ref_l(nl);
    std::vector<MergeDiagnostic> diags;
    merge_reference(p, ref_v.data(), ref_l.data(), &diags);
    nonfinite_rows += diags.size();
    std::vector<double> or_v(nv), or_l(nl);
    merge_oracle(p, or_v.data(), or_l.data());
    const std::vector<float> ref_vf = bytes_to_float(ref_v.data(), nv, bf16);
    v_ro.add(step, ref_vf, or_v);
    l_ro.add(step, ref_l, or_l);
    if (c.gpu) {
      Array gv(cfg.v_dtype, vstep);
      std::vector<float> gl(nl);
      const double us = c.gpu->merge(p, gv.data(), gl.data(), c.opt.measure);
      if (c.opt.measure) measured.push_back(us);
      v_gr.add(step, bytes_to_float(gv.data(), nv, bf16), ref_vf);
      l_gr.add(step, gl, ref_l);
      any_gpu = true;
      if (c.out) {
        sv_gpu.append(gv);
        sl_gpu.append(std::span<const float>(gl));
      }
    }
    if (st.v) {
      const auto cv = to_float(*st.v);
      v_cr.add(step, cv, ref_vf);
      v_co.add(step, cv, or_v);
      any_v = true;
    }
    if (st.lse) {
      l_cr.add(step, *st.lse, ref_l);
      l_co.add(step, *st.lse, or_l);
      any_l = true;
    }
    if (c.out) {
      sv_ref.append(ref_v);
      sl_ref.append(std::span<const float>(ref_l));
      std::vector<float> f(nv);
      for (std::size_t i = 0; i < nv; ++i) f[i] = static_cast<float>(or_v[i]);
      sv_or.append(std::span<const float>(f));
      std::vector<float> fl(nl);
      for (std::size_t i = 0; i < nl; ++i) fl[i] = static_cast<float>(or_l[i]);
      sl_or.append(std::span<const float>(fl));
    }
    prog.step(s);
  }
  g.comparisons.push_back(v_ro.finish());
  g.comparisons.push_back(l_ro.finish());
  if (any_gpu) {
    g.comparisons.push_back(v_gr.finish());
    g.comparisons.push_back(l_gr.finish());
  }
  if (any_v) {
    g.comparisons.push_back(v_cr.finish());
    g.comparisons.push_back(v_co.finish());
  }
  if (any_l) {
    g.comparisons.push_back(l_cr.finish());
    g.comparisons.push_back(l_co.finish());
  }
  if (nonfinite_rows > 0)
    g.notes.push_back(std::to_string(nonfinite_rows) + " output rows are non-finite under policy " +
                      to_string(c.opt.policy) + " (dsv4lab diagnose names their origin)");
  const auto predicted = try_predict(c, [&](const sim::GpuSpec& gs) {
    sim::LseMergeShape sh;
    sh.tokens = static_cast<double>(cfg.tokens);
    sh.heads = static_cast<double>(cfg.heads);
    sh.D = static_cast<double>(cfg.head_dim);
    sh.splits = static_cast<double>(cfg.splits);
    sh.elem_bytes = bf16 ? 2 : 4;
    return sim::predict_lse_merge_us(gs, sh);
  });
  g.timing = timing_json(predicted, measured);
  return g;
}

// ---- compressor -----------------------------------------------------------------------------

Dtype compress_dtype(DType t, const char* what) {
  if (t == DType::f32) return Dtype::f32;
  if (t == DType::bf16) return Dtype::bf16;
  raise(Errc::bad_input, std::string("compressor ") + what + " must be float32 or bfloat16");
}

/// Paged state holding just the positions a step reads and writes: per request, the pages
/// that overlap [state_base, kv_len) get their own block; every other page maps to block 0,
/// which nothing reads or writes.
struct StepState {
  std::vector<unsigned char> kv, score;
  std::vector<std::int32_t> table;
  CompressState view;
  int page = 128;
  std::size_t row_bytes = 0;

  StepState(const CompressConfig& cc, const trace::CompressorStep& st, std::uint64_t batch, std::uint64_t W) {
    page = cc.page_size;
    const auto sd = static_cast<std::size_t>(cc.state_dim());
    row_bytes = sd * size_of(cc.state_dtype);
    int max_blocks = 1;
    for (std::uint64_t b = 0; b < batch; ++b) max_blocks = std::max(max_blocks, (st.kv_len[b] - 1) / page + 1);
    table.assign(batch * static_cast<std::uint64_t>(max_blocks), 0);
    std::int32_t next = 1;
    for (std::uint64_t b = 0; b < batch; ++b) {
      const int first = st.state_base[b] / page, last = (st.kv_len[b] - 1) / page;
      for (int pg = first; pg <= last; ++pg) table[b * static_cast<std::uint64_t>(max_blocks) + static_cast<std::uint64_t>(pg)] = next++;
    }
    const std::size_t block_bytes = static_cast<std::size_t>(page) * row_bytes;
    kv.assign(static_cast<std::size_t>(next) * block_bytes, 0);
    score.assign(static_cast<std::size_t>(next) * block_bytes, 0);
    // Copy the prior state: rows j of the window = positions state_base + j < kv_len - NN.
    const auto* skv = static_cast<const unsigned char*>(st.state_kv.data());
    const auto* ssc = static_cast<const unsigned char*>(st.state_score.data());
    for (std::uint64_t b = 0; b < batch; ++b) {
      const std::int64_t prior_end = st.kv_len[b] - cc.tokens_per_step;
      for (std::uint64_t j = 0; j < W; ++j) {
        const std::int64_t pos = st.state_base[b] + static_cast<std::int64_t>(j);
        if (pos >= prior_end) break;
        const std::size_t src = (b * W + j) * row_bytes;
        std::copy_n(skv + src, row_bytes, kv.data() + offset(b, max_blocks, pos));
        std::copy_n(ssc + src, row_bytes, score.data() + offset(b, max_blocks, pos));
      }
    }
    view.state_kv = kv.data();
    view.state_score = score.data();
    view.block_table = table.data();
    view.num_blocks = next;
    view.max_blocks = max_blocks;
  }
  std::size_t offset(std::uint64_t b, int max_blocks, std::int64_t pos) const {
    const auto blk = static_cast<std::size_t>(table[b * static_cast<std::uint64_t>(max_blocks) + static_cast<std::uint64_t>(pos / page)]);
    return (blk * static_cast<std::size_t>(page) + static_cast<std::size_t>(pos % page)) * row_bytes;
  }
  /// The stored rows of positions kv_len - NN + t, as floats [tokens, SD].
  std::vector<float> stores(const std::vector<unsigned char>& buf, const std::vector<std::int32_t>& kv_len, int nn,
                            std::size_t sd, bool bf16) const {
    const std::uint64_t batch = kv_len.size();
    std::vector<float> out(batch * static_cast<std::size_t>(nn) * sd);
    for (std::uint64_t b = 0; b < batch; ++b)
      for (int t = 0; t < nn; ++t) {
        const std::int64_t pos = kv_len[b] - nn + t;
        const auto f = bytes_to_float(buf.data() + offset(b, view.max_blocks, pos), sd, bf16);
        std::copy(f.begin(), f.end(), out.begin() + static_cast<std::ptrdiff_t>((b * static_cast<std::uint64_t>(nn) + static_cast<std::uint64_t>(t)) * sd));
      }
    return out;
  }
};

GroupReport replay_compressor(const Context& c, const trace::TraceReader& r, const trace::GroupInfo& info) {
  const auto cg = r.compressor(info.name);
  const auto& cfg = cg.config();
  const std::uint64_t steps = steps_to_run(c.opt, cg.steps());
  CompressConfig cc;
  cc.head_dim = cfg.head_dim;
  cc.compress_ratio = cfg.compress_ratio;
  cc.tokens_per_step = cfg.next_n;
  cc.kv_dtype = compress_dtype(cfg.kv_dtype, "kv_dtype");
  cc.state_dtype = compress_dtype(cfg.state_dtype, "state_dtype");
  cc.out_dtype = compress_dtype(cfg.out_dtype, "out_dtype");
  cc.warps = (c.opt.compress_warps == 4 && cfg.compress_ratio == 128) ? 4 : 1;
  cc.page_size = 128;
  const std::uint64_t batch = cfg.batch, W = static_cast<std::uint64_t>(cfg.state_window());
  const auto hd = static_cast<std::size_t>(cfg.head_dim), sd = static_cast<std::size_t>(cfg.state_dim());
  const auto max_out = static_cast<std::size_t>(cfg.max_outputs());
  const bool out_bf16 = cc.out_dtype == Dtype::bf16, st_bf16 = cc.state_dtype == Dtype::bf16;
  GroupReport g;
  g.group = info.path;
  g.op = "compress";
  g.steps = static_cast<std::int64_t>(steps);
  g.config = attrs_json(info.attrs);
  g.config["batch"] = batch;
  g.config["reference"] = cc.to_string();
  g.schedule = cc.schedule().to_string();
  const std::string odt = trace::to_string(cfg.out_dtype), sdt = trace::to_string(cfg.state_dtype);
  const FloatRule otol = tolerance_rule(c.opt, odt), stol = tolerance_rule(c.opt, sdt);
  // Output rows vary per step (windows emitted): positions are [output row, d] of the step.
  const Grid og = grid_of(odt), sg = grid_of(sdt);
  FloatComparison o_ro("out", "reference", "oracle", otol, {1, hd}, og);
  FloatComparison o_cr("out", "captured", "reference", otol, {1, hd}, og);
  FloatComparison o_co("out", "captured", "oracle", otol, {1, hd}, og);
  const auto nshape = to_shape({batch * static_cast<std::uint64_t>(cfg.next_n), sd});
  FloatComparison kv_cr("new_state_kv", "captured", "reference", stol, nshape, sg);
  FloatComparison sc_cr("new_state_score", "captured", "reference", stol, nshape, sg);
  const FloatRule bit = float_rule_vs_reference();
  FloatComparison o_gr("out", "gpu", "reference", bit, {1, hd}, og);
  FloatComparison kv_gr("new_state_kv", "gpu", "reference", bit, nshape, sg);
  FloatComparison sc_gr("new_state_score", "gpu", "reference", bit, nshape, sg);
  const bool use_gpu = c.gpu && GpuRunner::compress_supported(cc);
  std::vector<double> measured;
  bool any_out = false, any_cap = false, any_state = false, any_gpu = false;
  std::uint64_t windows = 0, empty_windows = 0;

  trace::StepDataset s_ref, s_or;
  if (c.out) {
    c.out->mirror_group(info);
    s_ref = c.out->step_dataset(info.path, "out_reference", cfg.out_dtype, {batch, max_out, hd});
    s_or = c.out->step_dataset(info.path, "out_oracle", DType::f32, {batch, max_out, hd});
  }
  Progress prog(c.opt.progress, info.path, steps);
  for (std::uint64_t s = 0; s < steps; ++s) {
    const auto st = cg.read_step(s);
    const auto step = static_cast<std::int64_t>(s);
    const auto offsets = compress_output_offsets(cc, static_cast<int>(batch), st.kv_len.data());
    const auto out_rows = static_cast<std::size_t>(offsets[batch]);
    CompressStep cs;
    cs.batch = static_cast<int>(batch);
    cs.kv_score = st.kv_score.data();
    cs.tokens = static_cast<std::int64_t>(batch * static_cast<std::uint64_t>(cfg.next_n));
    cs.ape = cfg.ape.data();
    cs.kv_len = st.kv_len.data();
    cs.out_offsets = offsets.data();
    cs.out_rows = static_cast<std::int64_t>(out_rows);
    StepState ref_state(cc, st, batch, W), or_state(cc, st, batch, W);
    std::vector<unsigned char> ref_out(std::max<std::size_t>(out_rows * hd * size_of(cc.out_dtype), 1));
    const CompressReport rep = compress_decode_reference(cc, cs, ref_state.view, ref_out.data());
    windows += static_cast<std::uint64_t>(rep.windows);
    empty_windows += rep.empty.size();
    std::vector<double> or_out(std::max<std::size_t>(out_rows * hd, 1));
    compress_oracle(cc, cs, or_state.view, or_out.data());
    const auto ref_f = bytes_to_float(ref_out.data(), out_rows * hd, out_bf16);
    const std::span<const double> or_span(or_out.data(), out_rows * hd);
    if (out_rows > 0) {
      o_ro.add(step, ref_f, or_span);
      any_out = true;
    }
    if (st.out && out_rows > 0) {
      // Gather request b's c-th emitted window from [batch, max_out, HD] into row offsets[b] + c.
      const auto all = to_float(*st.out);
      std::vector<float> cap(out_rows * hd);
      for (std::uint64_t b = 0; b < batch; ++b)
        for (std::int32_t w = 0; w < offsets[b + 1] - offsets[b]; ++w)
          std::copy_n(all.begin() + static_cast<std::ptrdiff_t>((b * max_out + static_cast<std::size_t>(w)) * hd), hd,
                      cap.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(offsets[b] + w) * hd));
      o_cr.add(step, cap, ref_f);
      o_co.add(step, cap, or_span);
      any_cap = true;
    }
    if (use_gpu) {
      StepState gpu_state(cc, st, batch, W);
      std::vector<unsigned char> gpu_out(ref_out.size());
      const double us = c.gpu->compress_decode(cc, cs, gpu_state.view, gpu_out.data(), c.opt.measure);
      if (c.opt.measure) measured.push_back(us);
      if (out_rows > 0) o_gr.add(step, bytes_to_float(gpu_out.data(), out_rows * hd, out_bf16), ref_f);
      kv_gr.add(step, gpu_state.stores(gpu_state.kv, st.kv_len, cfg.next_n, sd, st_bf16),
                ref_state.stores(ref_state.kv, st.kv_len, cfg.next_n, sd, st_bf16));
      sc_gr.add(step, gpu_state.stores(gpu_state.score, st.kv_len, cfg.next_n, sd, st_bf16),
                ref_state.stores(ref_state.score, st.kv_len, cfg.next_n, sd, st_bf16));
      any_gpu = true;
    }
    if (st.new_state_kv && st.new_state_score) {
      kv_cr.add(step, to_float(*st.new_state_kv), ref_state.stores(ref_state.kv, st.kv_len, cfg.next_n, sd, st_bf16));
      sc_cr.add(step, to_float(*st.new_state_score),
                ref_state.stores(ref_state.score, st.kv_len, cfg.next_n, sd, st_bf16));
      any_state = true;
    }
    if (c.out) {
      Array a(cfg.out_dtype, {batch, max_out, hd});
      std::vector<float> o(batch * max_out * hd, 0.0f);
      const std::size_t eb = size_of(cc.out_dtype);
      for (std::uint64_t b = 0; b < batch; ++b)
        for (std::int32_t w = 0; w < offsets[b + 1] - offsets[b]; ++w) {
          const std::size_t src = static_cast<std::size_t>(offsets[b] + w) * hd, dst = (b * max_out + static_cast<std::size_t>(w)) * hd;
          std::copy_n(ref_out.data() + src * eb, hd * eb, static_cast<unsigned char*>(a.data()) + dst * eb);
          for (std::size_t d = 0; d < hd; ++d) o[dst + d] = static_cast<float>(or_out[src + d]);
        }
      s_ref.append(a);
      s_or.append(std::span<const float>(o));
    }
    prog.step(s);
  }
  if (any_out) g.comparisons.push_back(o_ro.finish("positions are [output row of the step, d]"));
  if (any_gpu) {
    if (any_out) g.comparisons.push_back(o_gr.finish());
    g.comparisons.push_back(kv_gr.finish());
    g.comparisons.push_back(sc_gr.finish());
  }
  if (any_cap) {
    g.comparisons.push_back(o_cr.finish());
    g.comparisons.push_back(o_co.finish());
  }
  if (any_state) {
    g.comparisons.push_back(kv_cr.finish());
    g.comparisons.push_back(sc_cr.finish());
  }
  g.notes.push_back(std::to_string(windows) + " windows emitted, " + std::to_string(empty_windows) +
                    " with elements that saw no finite score (output 0)");
  if (c.gpu && !use_gpu) g.notes.push_back("the GPU compressor does not support " + cc.to_string() + ": reference and oracle only");
  const auto predicted = try_predict(c, [&](const sim::GpuSpec& gs) {
    sim::CompressShape sh;
    sh.batch = static_cast<double>(batch);
    sh.NN = cfg.next_n;
    sh.HD = cfg.head_dim;
    sh.CR = cfg.compress_ratio;
    sh.kv_bytes = static_cast<double>(size_of(cc.kv_dtype));
    sh.state_bytes = static_cast<double>(size_of(cc.state_dtype));
    sh.out_bytes = static_cast<double>(size_of(cc.out_dtype));
    return sim::predict_compress_us(gs, sh);
  });
  g.timing = timing_json(predicted, measured);
  return g;
}

}  // namespace

std::string canonical_op(const std::string& op) {
  if (op == "indexer" || op == "topk") return "indexer";
  if (op == "merge" || op == "lse_merge") return "merge";
  if (op == "compressor" || op == "compress") return "compressor";
  raise(Errc::bad_input, "--ops: unknown op '" + op + "' (supported: indexer, merge, compressor)");
}

Report replay_trace(const std::string& trace_path, const ReplayOptions& opt) {
  if (opt.device != "auto" && opt.device != "cpu" && opt.device != "cuda")
    raise(Errc::bad_input, "--device: unknown device '" + opt.device + "' (supported: auto, cpu, cuda)");
  if (opt.compress_warps != 1 && opt.compress_warps != 4)
    raise(Errc::bad_input, "--compress-warps must be 1 or 4");
  std::vector<std::string> ops;
  for (const auto& o : opt.ops) ops.push_back(canonical_op(o));
  auto wanted = [&](const char* op) { return ops.empty() || std::find(ops.begin(), ops.end(), op) != ops.end(); };

  trace::TraceReader reader(trace_path);
  Report rep;
  rep.provenance = build_provenance();
  rep.provenance.trace = trace_path;
  rep.provenance.trace_sha256 = sha256_file(trace_path);
  if (reader.provenance().seed) rep.provenance.seeds.push_back(*reader.provenance().seed);

  std::unique_ptr<GpuRunner> gpu;
  if (opt.device != "cpu") {
    const GpuInfo gi = gpu_probe();
    if (gi.available) {
      gpu = std::make_unique<GpuRunner>();
      rep.provenance.gpu = gi.name;
      rep.device = "cuda";
    } else if (opt.device == "cuda") {
      raise(Errc::unsupported, "--device cuda: " + gi.why);
    } else {
      rep.notes.push_back("GPU kernels not run: " + gi.why);
    }
  }

  rep.options["device"] = opt.device;
  rep.options["ops"] = ops;
  rep.options["oracle_rows"] = opt.oracle_rows;
  rep.options["policy"] = to_string(opt.policy);
  rep.options["lse_includes_sink"] = opt.lse_includes_sink;
  rep.options["compress_warps"] = opt.compress_warps;
  rep.options["atol"] = opt.atol ? ojson(*opt.atol) : ojson(nullptr);
  rep.options["rtol"] = opt.rtol ? ojson(*opt.rtol) : ojson(nullptr);
  rep.options["cos_min"] = opt.cos_min ? ojson(*opt.cos_min) : ojson(nullptr);
  rep.options["cos_mean"] = opt.cos_mean ? ojson(*opt.cos_mean) : ojson(nullptr);
  rep.options["topk_captured"] = to_string(opt.topk_captured);
  if (opt.topk_captured == TopkCheck::recall) rep.options["recall_min"] = opt.recall_min;
  rep.options["max_steps"] = opt.max_steps;
  rep.options["cost_model_gpu"] = opt.gpu_model;

  std::optional<trace::TraceWriter> writer;
  if (!opt.save_outputs.empty()) {
    trace::Provenance p = reader.provenance();
    p.producer = "dsv4lab " + rep.provenance.version + " replay";
    writer.emplace(opt.save_outputs, p);
  }
  Context ctx{opt, gpu.get(), writer ? &*writer : nullptr, nullptr};
  if (!opt.gpu_model.empty()) ctx.spec = &sim::gpu_spec(opt.gpu_model);

  for (const auto& info : reader.groups()) {
    switch (info.kind) {
      case trace::GroupKind::indexer:
        if (wanted("indexer")) rep.groups.push_back(replay_indexer(ctx, reader, info));
        break;
      case trace::GroupKind::merge:
        if (wanted("merge")) rep.groups.push_back(replay_merge(ctx, reader, info));
        break;
      case trace::GroupKind::compressor:
        if (wanted("compressor")) rep.groups.push_back(replay_compressor(ctx, reader, info));
        break;
    }
  }
  if (writer) writer->close();
  if (rep.groups.empty()) rep.notes.push_back("no groups replayed (check --ops)");
  if (ctx.spec) rep.notes.push_back("predicted times: dsv4lab cost model on " + ctx.spec->name + " (default constants)");
  return rep;
}

}  // namespace dsv4::validation
