#include "sim/calibrate.hpp"

#include "reference/status.hpp"
#include "sim/predict.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

namespace dsv4::sim {

std::vector<BenchPoint> parse_bench_json(const nlohmann::json& doc, const std::string& name) {
  if (!doc.is_object() || doc.value("schema", std::string()) != "dsv4lab-bench")
    raise(Errc::bad_input, "'" + name + "' is not a bench JSON (schema \"dsv4lab-bench\" expected)");
  if (!doc.contains("results") || !doc.at("results").is_array())
    raise(Errc::bad_input, "'" + name + "' has no 'results' array");
  const nlohmann::json dev = doc.value("device", nlohmann::json::object());
  std::vector<BenchPoint> out;
  const auto& results = doc.at("results");
  for (std::size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    const std::string where = "'" + name + "' results[" + std::to_string(i) + "]";
    if (!r.is_object() || !r.contains("op") || !r.contains("median_us") || !r.at("median_us").is_number())
      raise(Errc::bad_input, where + " lacks op or a numeric median_us");
    BenchPoint p;
    p.file = name;
    p.device = dev.value("name", std::string("unknown"));
    p.sm_count = dev.value("sm_count", 0);
    p.copy_GBps = dev.value("copy_bandwidth_GBps", 0.0);
    p.op = r.at("op").get<std::string>();
    p.impl = r.value("impl", std::string("default"));
    p.params = r.value("params", nlohmann::json::object());
    // Fields some benches report next to params: top-k's blocks_per_row (the rule's choice) and the
    // compressor's total output rows ("windows"; the model's windows key is per request).
    if (r.contains("blocks_per_row") && r.at("blocks_per_row").is_number() && !p.params.contains("blocks_per_row"))
      p.params["blocks_per_row"] = r.at("blocks_per_row");
    if (p.op == "compress" && r.contains("windows") && r.at("windows").is_number() && !p.params.contains("windows") &&
        p.params.contains("batch") && p.params.at("batch").is_number() && p.params.at("batch").get<double>() > 0)
      p.params["windows"] = r.at("windows").get<double>() / p.params.at("batch").get<double>();
    p.median_us = r.at("median_us").get<double>();
    p.bytes = r.value("bytes", 0.0);
    if (!(p.median_us > 0)) raise(Errc::bad_input, where + " has median_us <= 0");
    if (p.sm_count <= 0) raise(Errc::bad_input, "'" + name + "' device.sm_count missing or <= 0");
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<BenchPoint> read_bench_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) raise(Errc::io, "cannot open bench JSON '" + path + "'");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const std::exception& e) {
    raise(Errc::bad_input, "'" + path + "' is not valid JSON: " + e.what());
  }
  return parse_bench_json(j, path);
}

namespace {

/// Solve the square system M x = v by Gaussian elimination with partial pivoting; false if singular.
bool solve(std::vector<std::vector<double>> M, std::vector<double> v, std::vector<double>& x) {
  const std::size_t n = v.size();
  for (std::size_t c = 0; c < n; ++c) {
    std::size_t piv = c;
    for (std::size_t r = c + 1; r < n; ++r)
      if (std::fabs(M[r][c]) > std::fabs(M[piv][c])) piv = r;
    if (std::fabs(M[piv][c]) < 1e-12) return false;
    std::swap(M[c], M[piv]);
    std::swap(v[c], v[piv]);
    for (std::size_t r = c + 1; r < n; ++r) {
      const double f = M[r][c] / M[c][c];
      for (std::size_t k = c; k < n; ++k) M[r][k] -= f * M[c][k];
      v[r] -= f * v[c];
    }
  }
  x.assign(n, 0.0);
  for (std::size_t i = n; i-- > 0;) {
    double s = v[i];
    for (std::size_t k = i + 1; k < n; ++k) s -= M[i][k] * x[k];
    x[i] = s / M[i][i];
  }
  return true;
}

double loss_of(const std::vector<std::vector<double>>& A, const std::vector<double>& b, const std::vector<double>& x) {
  double l = 0;
  for (std::size_t i = 0; i < A.size(); ++i) {
    double p = 0;
    for (std::size_t k = 0; k < x.size(); ++k) p += A[i][k] * x[k];
    l += (p - b[i]) * (p - b[i]);
  }
  return l;
}

}  // namespace

std::vector<double> nnls_small(const std::vector<std::vector<double>>& A, const std::vector<double>& b, double* loss) {
  const std::size_t m = A.empty() ? 0 : A[0].size();
  if (m > 4) raise(Errc::internal, "nnls_small: more than 4 unknowns");
  // Column scaling for conditioning.
  std::vector<double> scale(m, 0.0);
  for (const auto& row : A)
    for (std::size_t k = 0; k < m; ++k) scale[k] = std::max(scale[k], std::fabs(row[k]));
  std::vector<double> best(m, 0.0);
  double best_loss = loss_of(A, b, best);
  for (unsigned mask = 1; mask < (1u << m); ++mask) {
    std::vector<std::size_t> cols;
    for (std::size_t k = 0; k < m; ++k)
      if ((mask >> k) & 1u && scale[k] > 0) cols.push_back(k);
    if (cols.empty()) continue;
    const std::size_t n = cols.size();
    std::vector<std::vector<double>> M(n, std::vector<double>(n, 0.0));
    std::vector<double> v(n, 0.0);
    for (std::size_t i = 0; i < A.size(); ++i)
      for (std::size_t r = 0; r < n; ++r) {
        const double ar = A[i][cols[r]] / scale[cols[r]];
        v[r] += ar * b[i];
        for (std::size_t c = 0; c < n; ++c) M[r][c] += ar * A[i][cols[c]] / scale[cols[c]];
      }
    std::vector<double> y;
    if (!solve(M, v, y)) continue;
    if (std::any_of(y.begin(), y.end(), [](double t) { return t < 0; })) continue;
    std::vector<double> x(m, 0.0);
    for (std::size_t r = 0; r < n; ++r) x[cols[r]] = y[r] / scale[cols[r]];
    const double l = loss_of(A, b, x);
    if (l < best_loss * (1 - 1e-12)) {
      best_loss = l;
      best = x;
    }
  }
  if (loss) *loss = best_loss;
  return best;
}

namespace {

std::string key_of(const nlohmann::json& params, double median) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "|%.17g", median);
  return params.dump() + buf;
}

struct Features {
  double bytes_k = 0;  // bytes / 1e3: its coefficient is 1 / bandwidth_GBps (us)
  KernelWork work;
};

}  // namespace

CalibrateResult calibrate(const std::vector<BenchPoint>& points, const CalibrateOptions& opts) {
  if (opts.holdout_share < 0 || opts.holdout_share >= 1) raise(Errc::bad_input, "--holdout must be in [0, 1)");
  CalibrateResult res;
  std::map<std::pair<std::string, std::string>, std::vector<const BenchPoint*>> groups;  // (device, op/impl)
  std::map<std::string, std::string> skipped;
  for (const auto& p : points) {
    const std::string kernel = kernel_key(p.op, p.impl, p.params);
    const bool known = std::any_of(op_models().begin(), op_models().end(), [&](const OpModel& m) { return m.op == p.op; });
    if (!known) {
      skipped[kernel] = "no cost model for op '" + p.op + "'";
      continue;
    }
    groups[{p.device, kernel}].push_back(&p);
  }
  for (const auto& [k, why] : skipped) res.skipped.push_back(k + ": " + why);

  for (auto& [gk, pts] : groups) {
    std::sort(pts.begin(), pts.end(), [](const BenchPoint* a, const BenchPoint* b) {
      return key_of(a->params, a->median_us) < key_of(b->params, b->median_us);
    });
    const OpModel& model = op_model(pts.front()->op);
    KernelFit fit;
    fit.kernel = gk.second;
    fit.device = gk.first;
    fit.op = pts.front()->op;
    fit.impl = pts.front()->impl;
    fit.sm_count = pts.front()->sm_count;
    fit.copy_GBps = pts.front()->copy_GBps;
    const std::size_t n = pts.size();
    // Hold out every k-th point (k = round(1 / share)), starting at k / 2, when at least 2k points.
    std::vector<bool> hold(n, false);
    if (opts.holdout_share > 0) {
      const std::size_t k = static_cast<std::size_t>(std::max(2.0, std::round(1.0 / opts.holdout_share)));
      if (n >= 2 * k)
        for (std::size_t i = k / 2; i < n; i += k) hold[i] = true;
    }
    std::vector<Features> f(n);
    double ratio_sum = 0;
    int ratio_n = 0;
    for (std::size_t i = 0; i < n; ++i) {
      KernelWork w;
      try {
        w = model.work(pts[i]->params);
      } catch (const Error& e) {
        raise(e.code(), "'" + pts[i]->file + "' " + fit.kernel + " params " + pts[i]->params.dump() + ": " + e.what());
      }
      f[i] = {w.bytes / 1e3, w};
      if (pts[i]->bytes > 0) {
        ratio_sum += w.bytes / pts[i]->bytes;
        ++ratio_n;
      }
    }
    fit.model_over_bench_bytes = ratio_n ? ratio_sum / ratio_n : 0.0;
    // Ops that give their launch stages carry their own occupancy: ctas_per_sm is not fitted
    // (recorded as 0); the others choose it by fit loss.
    const bool staged = std::all_of(f.begin(), f.end(), [](const Features& q) { return q.work.n_stages > 0; });
    const bool has_aux = std::any_of(f.begin(), f.end(), [&](const Features& q) {
      double aux = 0;
      serial_units(q.work, fit.sm_count, 1, &aux);
      return aux > 0;
    });
    double best_loss = -1;
    for (int cps : {1, 2, 4, 8, 16}) {
      if (staged && cps != 1) break;
      std::vector<std::vector<double>> A;
      std::vector<double> b;
      for (std::size_t i = 0; i < n; ++i) {
        if (hold[i]) continue;
        const double y = pts[i]->median_us;
        double aux = 0;
        const double wv = serial_units(f[i].work, fit.sm_count, cps, &aux);
        std::vector<double> row{f[i].work.launches / y, f[i].bytes_k / y, wv / y};
        if (has_aux) row.push_back(aux / y);
        A.push_back(std::move(row));
        b.push_back(1.0);
      }
      double loss = 0;
      const std::vector<double> x = nnls_small(A, b, &loss);
      if (best_loss < 0 || loss < best_loss * (1 - 1e-9)) {
        best_loss = loss;
        fit.constants.launch_us = x[0];
        fit.constants.bandwidth_GBps = x[1] > 0 ? 1.0 / x[1] : 0.0;
        fit.constants.cta_us_per_unit = x[2];
        fit.constants.aux_us_per_unit = has_aux ? x[3] : 0.0;
        fit.constants.ctas_per_sm = staged ? 0 : cps;
      }
    }
    fit.constants.source = "calibrated: " + fit.device + ", " + std::to_string(n) + " points of " + fit.kernel;
    double sf = 0, sh = 0;
    for (std::size_t i = 0; i < n; ++i) {
      FitPoint fp{pts[i]->params, pts[i]->median_us, kernel_time_us(fit.constants, f[i].work, fit.sm_count), hold[i]};
      const double e = std::fabs(fp.rel_error());
      if (hold[i]) {
        ++fit.n_holdout;
        sh += e;
      } else {
        ++fit.n_fit;
        sf += e;
      }
      fit.points.push_back(std::move(fp));
    }
    fit.mape_fit = fit.n_fit ? sf / fit.n_fit : 0.0;
    fit.mape_holdout = fit.n_holdout ? sh / fit.n_holdout : 0.0;
    res.kernels.push_back(std::move(fit));
  }
  return res;
}

namespace {

const FitPoint* worst(const KernelFit& k, bool holdout) {
  const FitPoint* w = nullptr;
  for (const auto& p : k.points)
    if (p.holdout == holdout && (!w || std::fabs(p.rel_error()) > std::fabs(w->rel_error()))) w = &p;
  return w;
}

nlohmann::json point_json(const FitPoint* p) {
  if (!p) return nullptr;
  return {{"params", p->params}, {"measured_us", p->measured_us}, {"predicted_us", p->predicted_us},
          {"rel_error", p->rel_error()}};
}

}  // namespace

nlohmann::json calibrate_json(const CalibrateResult& r, const CalibrateOptions& opts, const std::vector<std::string>& inputs) {
  nlohmann::json j;
  j["schema"] = "dsv4lab-calibration";
  j["version"] = 1;
  j["inputs"] = inputs;
  j["holdout_share"] = opts.holdout_share;
  j["goal_mape_holdout"] = opts.goal_mape;
  nlohmann::json ks = nlohmann::json::array();
  for (const auto& k : r.kernels) {
    nlohmann::json pts = nlohmann::json::array();
    for (const auto& p : k.points) {
      nlohmann::json o = point_json(&p);
      o["holdout"] = p.holdout;
      pts.push_back(o);
    }
    ks.push_back({{"kernel", k.kernel},
                  {"op", k.op},
                  {"impl", k.impl},
                  {"device", {{"name", k.device}, {"sm_count", k.sm_count}, {"copy_bandwidth_GBps", k.copy_GBps}}},
                  {"constants", constants_json(k.constants)},
                  {"n_fit", k.n_fit},
                  {"n_holdout", k.n_holdout},
                  {"mape_fit", k.mape_fit},
                  {"mape_holdout", k.n_holdout ? nlohmann::json(k.mape_holdout) : nlohmann::json(nullptr)},
                  {"worst_fit", point_json(worst(k, false))},
                  {"worst_holdout", point_json(worst(k, true))},
                  {"meets_goal", k.n_holdout ? nlohmann::json(k.mape_holdout <= opts.goal_mape) : nlohmann::json(nullptr)},
                  {"model_over_bench_bytes", k.model_over_bench_bytes},
                  {"points", pts}});
  }
  j["kernels"] = ks;
  j["skipped"] = r.skipped;
  return j;
}

std::string calibrate_table(const CalibrateResult& r, const CalibrateOptions& opts) {
  std::string s;
  char buf[512];
  std::snprintf(buf, sizeof buf, "%-28s %5s %5s %9s %10s %11s %10s %4s %9s %9s %9s\n", "kernel", "fit", "held", "launch_us",
                "bw_GBps", "us/unit", "us/aux", "cps", "MAPE fit", "MAPE held", "worst");
  s += buf;
  for (const auto& k : r.kernels) {
    const FitPoint* w = worst(k, k.n_holdout > 0);
    char held[32] = "-";
    if (k.n_holdout) std::snprintf(held, sizeof held, "%.1f%%", 100 * k.mape_holdout);
    std::snprintf(buf, sizeof buf, "%-28s %5d %5d %9.3f %10.1f %11.4g %10.4g %4d %8.1f%% %9s %8.1f%%\n", k.kernel.c_str(),
                  k.n_fit, k.n_holdout, k.constants.launch_us, k.constants.bandwidth_GBps, k.constants.cta_us_per_unit,
                  k.constants.aux_us_per_unit,
                  k.constants.ctas_per_sm, 100 * k.mape_fit, held, w ? 100 * std::fabs(w->rel_error()) : 0.0);
    s += buf;
    if (w) {
      std::snprintf(buf, sizeof buf, "    worst %s: measured %.3f us, predicted %.3f us, params %s\n",
                    k.n_holdout ? "held-out" : "fit", w->measured_us, w->predicted_us, w->params.dump().c_str());
      s += buf;
    }
  }
  for (const auto& sk : r.skipped) s += "skipped " + sk + "\n";
  if (std::any_of(r.kernels.begin(), r.kernels.end(), [](const KernelFit& k) { return k.constants.ctas_per_sm == 0; }))
    s += "cps 0: CTAs per SM from the kernels' launch bounds (per launch stage, sim/cost/*.hpp)\n";
  std::snprintf(buf, sizeof buf, "held-out share %.2f; goal: held-out MAPE <= %.0f%%; device(s):", opts.holdout_share,
                100 * opts.goal_mape);
  s += buf;
  std::string last;
  for (const auto& k : r.kernels)
    if (k.device != last) s += " " + (last = k.device);
  s += "\n";
  return s;
}

}  // namespace dsv4::sim
