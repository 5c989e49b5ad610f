#include "validation/report.hpp"

#include "reference/status.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace dsv4::validation {

namespace fs = std::filesystem;

namespace {

// JSON has no inf/NaN: write them as strings so the file stays valid and explicit.
ojson num_json(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  return x;
}

std::string fmt(double x, const char* f = "%.6g") {
  char buf[48];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

std::string hex32(std::uint32_t u) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", u);
  return buf;
}

ojson pos_json(const Position& p, std::span<const std::size_t> shape) {
  if (!p.valid()) return nullptr;
  ojson j;
  j["step"] = p.step;
  j["index"] = p.flat;
  j["at"] = format_position(p, shape);
  return j;
}

}  // namespace

// ---- comparisons ----------------------------------------------------------------------

ojson to_json(const FloatMetrics& m, std::span<const std::size_t> shape) {
  std::vector<std::size_t> rows_shape(shape.begin(), shape.end());
  if (!rows_shape.empty()) rows_shape.pop_back();
  ojson j;
  j["elements"] = m.elements;
  j["rows"] = m.rows;
  j["mismatches"] = m.mismatches;
  ojson first = pos_json(m.first_mismatch, shape);
  if (!first.is_null()) {
    first["got"] = hex32(m.first_got_bits);
    first["want"] = hex32(m.first_want_bits);
  }
  j["first_mismatch"] = first;
  ojson worst = pos_json(m.worst_mismatch, shape);
  if (!worst.is_null()) {
    worst["got"] = hex32(m.worst_got_bits);
    worst["want"] = hex32(m.worst_want_bits);
  }
  j["worst_mismatch"] = worst;
  j["max_abs"] = num_json(m.max_abs);
  j["max_abs_at"] = pos_json(m.max_abs_at, shape);
  j["max_rel"] = num_json(m.max_rel);
  j["max_rel_at"] = pos_json(m.max_rel_at, shape);
  j["max_ulp"] = m.max_ulp;
  ojson hist = ojson::object();
  for (std::size_t i = 0; i < kUlpBins.size(); ++i) hist[kUlpBins[i]] = m.ulp_hist[i];
  j["ulp_hist"] = hist;
  j["nonfinite_got"] = m.nonfinite_got;
  j["nonfinite_mismatches"] = m.nonfinite_mismatches;
  j["first_nonfinite_mismatch"] = pos_json(m.first_nonfinite_mismatch, shape);
  j["tol_violations"] = m.tol_violations;
  j["first_tol_violation"] = pos_json(m.first_tol_violation, shape);
  j["cos_min"] = num_json(m.cos_min);
  j["cos_min_at"] = pos_json(m.cos_min_at, rows_shape);
  j["cos_mean"] = num_json(m.cos_mean());
  ojson ch = ojson::object();
  for (std::size_t i = 0; i < kCosBins.size(); ++i) ch[kCosBins[i]] = m.cos_hist[i];
  j["cos_hist"] = ch;
  return j;
}

ojson to_json(const TopkMetrics& m) {
  auto row = [](const Position& p) -> ojson {
    if (!p.valid()) return nullptr;
    return ojson{{"step", p.step}, {"row", p.flat}};
  };
  ojson j;
  j["rows"] = m.rows;
  j["exact_rows"] = m.exact_rows;
  j["set_rows"] = m.set_rows;
  j["tie_rows"] = m.tie_rows;
  j["tie_checked"] = m.tie_checked;
  j["invalid_rows"] = m.invalid_rows;
  j["recall_min"] = num_json(m.recall_min);
  j["recall_mean"] = num_json(m.recall_mean());
  j["first_exact_fail"] = row(m.first_exact_fail);
  j["first_set_fail"] = row(m.first_set_fail);
  ojson tie = row(m.first_tie_fail);
  if (!tie.is_null()) tie["detail"] = m.first_tie_detail;
  j["first_tie_fail"] = tie;
  ojson inv = row(m.first_invalid);
  if (!inv.is_null()) inv["detail"] = m.first_invalid_detail;
  j["first_invalid"] = inv;
  return j;
}

ojson to_json(const FloatRule& r) {
  ojson j;
  j["check"] = r.bitwise ? "bitwise" : "tolerance";
  if (!r.bitwise) {
    j["atol"] = r.tol.atol;
    j["rtol"] = r.tol.rtol;
    j["cos_min"] = r.cos_min;
    j["cos_mean"] = r.cos_mean;
  }
  j["nonfinite_placement"] = "must match";
  return j;
}

ojson to_json(const TopkRule& r) {
  ojson j;
  j["check"] = to_string(r.check);
  if (r.check == TopkCheck::recall) j["recall_min"] = r.recall_min;
  return j;
}

FloatComparison::FloatComparison(std::string dataset, std::string got, std::string want, FloatRule rule,
                                 std::vector<std::size_t> step_shape, Grid grid)
    : rule_(rule), shape_(std::move(step_shape)), grid_(grid) {
  c_.dataset = std::move(dataset);
  c_.got = std::move(got);
  c_.want = std::move(want);
  c_.kind = "float";
  c_.rule = to_json(rule_);
  c_.per_step = ojson::array();
}

void FloatComparison::record(std::int64_t step, const FloatMetrics& m) {
  ojson s;
  s["step"] = step;
  s["pass"] = evaluate(rule_, m, shape_).empty();
  s["mismatches"] = m.mismatches;
  s["max_ulp"] = m.max_ulp;
  s["max_abs"] = num_json(m.max_abs);
  s["cos_min"] = num_json(m.cos_min);
  s["nonfinite_mismatches"] = m.nonfinite_mismatches;
  c_.per_step.push_back(std::move(s));
  total_.merge(m);
  any_ = true;
}

void FloatComparison::add(std::int64_t step, std::span<const float> got, std::span<const float> want) {
  const std::size_t row = shape_.empty() ? got.size() : shape_.back();
  record(step, compare_float(step, got, want, std::max<std::size_t>(row, 1), rule_.tol, grid_));
}

void FloatComparison::add(std::int64_t step, std::span<const float> got, std::span<const double> want) {
  const std::size_t row = shape_.empty() ? got.size() : shape_.back();
  record(step, compare_float(step, got, want, std::max<std::size_t>(row, 1), rule_.tol, grid_));
}

Comparison FloatComparison::finish(std::string note) const {
  Comparison c = c_;
  c.metrics = to_json(total_, shape_);
  c.metrics["step_shape"] = shape_;
  c.metrics["ulp_unit"] = grid_ == Grid::bf16 ? "bfloat16" : "float32";
  c.failures = evaluate(rule_, total_, shape_);
  if (!any_) c.failures.push_back("no steps were compared");
  c.note = std::move(note);
  return c;
}

TopkComparison::TopkComparison(std::string dataset, std::string got, std::string want, TopkRule rule)
    : rule_(rule) {
  c_.dataset = std::move(dataset);
  c_.got = std::move(got);
  c_.want = std::move(want);
  c_.kind = "topk";
  c_.rule = to_json(rule_);
  c_.per_step = ojson::array();
}

void TopkComparison::add(std::int64_t step, std::span<const std::int32_t> got, std::span<const std::int32_t> want,
                         std::size_t rows, std::size_t k, const TopkLogits* logits,
                         std::span<const std::int64_t> row_ids) {
  const TopkMetrics m = compare_topk(step, got, want, rows, k, logits, row_ids);
  ojson s;
  s["step"] = step;
  s["pass"] = evaluate(rule_, m).empty();
  s["rows"] = m.rows;
  s["exact_rows"] = m.exact_rows;
  s["tie_rows"] = m.tie_rows;
  s["recall_min"] = num_json(m.recall_min);
  s["recall_mean"] = num_json(m.recall_mean());
  c_.per_step.push_back(std::move(s));
  total_.merge(m);
  any_ = true;
}

Comparison TopkComparison::finish(std::string note) const {
  Comparison c = c_;
  c.metrics = to_json(total_);
  c.failures = evaluate(rule_, total_);
  if (!any_) c.failures.push_back("no steps were compared");
  c.note = std::move(note);
  return c;
}

// ---- report -----------------------------------------------------------------------------

bool GroupReport::pass() const {
  return std::all_of(comparisons.begin(), comparisons.end(), [](const Comparison& c) { return c.pass(); });
}

bool Report::pass() const {
  return std::all_of(groups.begin(), groups.end(), [](const GroupReport& g) { return g.pass(); });
}

std::vector<std::string> Report::failures() const {
  std::vector<std::string> out;
  for (const auto& g : groups)
    for (const auto& c : g.comparisons)
      for (const auto& f : c.failures) out.push_back(g.group + ": " + c.name() + ": " + f);
  return out;
}

ojson to_json(const Provenance& p) {
  ojson j;
  j["version"] = p.version;
  j["git_commit"] = p.git_commit;
  j["build_type"] = p.build_type;
  j["build_flags"] = p.build_flags;
  j["cxx_compiler"] = p.cxx_compiler;
  j["cuda_compiler"] = p.cuda_compiler.empty() ? ojson(nullptr) : ojson(p.cuda_compiler);
  j["gpu"] = p.gpu;
  j["trace"] = p.trace;
  j["trace_sha256"] = p.trace_sha256;
  j["seeds"] = p.seeds;
  j["command"] = p.command;
  return j;
}

ojson to_json(const Report& r) {
  ojson j;
  j["schema"] = kReportSchema;
  j["version"] = kReportVersion;
  std::size_t total = 0, failed = 0;
  for (const auto& g : r.groups)
    for (const auto& c : g.comparisons) {
      ++total;
      failed += !c.pass();
    }
  ojson summary;
  summary["pass"] = r.pass();
  summary["groups"] = r.groups.size();
  summary["comparisons"] = total;
  summary["failed"] = failed;
  summary["failures"] = r.failures();
  j["summary"] = summary;
  j["device"] = r.device;
  j["options"] = r.options;
  j["provenance"] = to_json(r.provenance);
  ojson groups = ojson::array();
  for (const auto& g : r.groups) {
    ojson gj;
    gj["group"] = g.group;
    gj["op"] = g.op;
    gj["steps"] = g.steps;
    gj["pass"] = g.pass();
    gj["config"] = g.config;
    gj["schedule"] = g.schedule;
    gj["timing"] = g.timing;
    gj["notes"] = g.notes;
    ojson cs = ojson::array();
    for (const auto& c : g.comparisons) {
      ojson cj;
      cj["name"] = c.name();
      cj["dataset"] = c.dataset;
      cj["got"] = c.got;
      cj["want"] = c.want;
      cj["kind"] = c.kind;
      cj["pass"] = c.pass();
      cj["rule"] = c.rule;
      cj["failures"] = c.failures;
      cj["note"] = c.note;
      cj["metrics"] = c.metrics;
      cj["per_step"] = c.per_step;
      cs.push_back(std::move(cj));
    }
    gj["comparisons"] = std::move(cs);
    groups.push_back(std::move(gj));
  }
  j["groups"] = std::move(groups);
  j["simulation"] = r.simulation;
  j["notes"] = r.notes;
  return j;
}

namespace {

std::string metric_summary(const Comparison& c) {
  const auto& m = c.metrics;
  auto d = [&](const char* k) { return m.contains(k) && m[k].is_number() ? m[k].get<double>() : 0.0; };
  auto u = [&](const char* k) { return m.contains(k) ? m[k].get<std::uint64_t>() : 0ull; };
  if (c.kind == "topk") {
    const std::string rows = std::to_string(u("rows"));
    return "exact " + std::to_string(u("exact_rows")) + "/" + rows + ", set " + std::to_string(u("set_rows")) + "/" +
           rows + ", tie " + std::to_string(u("tie_rows")) + "/" + rows + ", recall min " + fmt(d("recall_min")) +
           " mean " + fmt(d("recall_mean"));
  }
  return "mismatches " + std::to_string(u("mismatches")) + "/" + std::to_string(u("elements")) + ", max ulp " +
         std::to_string(u("max_ulp")) + ", max |d| " + fmt(d("max_abs")) + ", max rel " + fmt(d("max_rel")) +
         ", cos min " + fmt(d("cos_min"), "%.9f") + ", non-finite mismatches " +
         std::to_string(u("nonfinite_mismatches"));
}

std::string rule_summary(const ojson& rule) {
  std::string s = rule.value("check", std::string("?"));
  if (rule.contains("atol"))
    s += " (atol " + fmt(rule["atol"].get<double>()) + ", rtol " + fmt(rule["rtol"].get<double>()) + ", cos >= " +
         fmt(rule["cos_min"].get<double>()) + ", mean >= " + fmt(rule["cos_mean"].get<double>()) + ")";
  if (rule.contains("recall_min")) s += " >= " + fmt(rule["recall_min"].get<double>());
  return s;
}

std::string md_cell(std::string s) {
  std::string out;
  for (char ch : s) out += ch == '|' ? std::string("\\|") : std::string(1, ch);
  return out;
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += ch;
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> provenance_rows(const Provenance& p) {
  std::string seeds;
  for (std::size_t i = 0; i < p.seeds.size(); ++i) seeds += (i ? ", " : "") + std::to_string(p.seeds[i]);
  return {{"dsv4lab", p.version},
          {"git commit", p.git_commit},
          {"build", p.build_type},
          {"build flags", p.build_flags},
          {"C++ compiler", p.cxx_compiler},
          {"CUDA compiler", p.cuda_compiler.empty() ? "not built" : p.cuda_compiler},
          {"GPU", p.gpu},
          {"trace", p.trace},
          {"trace SHA-256", p.trace_sha256},
          {"seeds", seeds.empty() ? "-" : seeds},
          {"command", p.command}};
}

std::string timing_text(const ojson& t) {
  if (t.is_null()) return "-";
  std::string s;
  if (t.contains("predicted_us") && t["predicted_us"].is_number())
    s += "predicted " + fmt(t["predicted_us"].get<double>(), "%.2f") + " us";
  if (t.contains("measured_us") && t["measured_us"].is_number())
    s += (s.empty() ? "" : ", ") + std::string("measured ") + fmt(t["measured_us"].get<double>(), "%.2f") + " us";
  return s.empty() ? "-" : s;
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  if (!out) raise(Errc::io, "cannot write '" + p.string() + "'");
  out << text;
  if (!out) raise(Errc::io, "write failed: '" + p.string() + "'");
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) raise(Errc::io, "cannot read '" + p.string() + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string markdown(const Report& r, const std::vector<fs::path>& plots, const std::string& plot_note) {
  std::ostringstream o;
  std::size_t total = 0, failed = 0;
  for (const auto& g : r.groups)
    for (const auto& c : g.comparisons) {
      ++total;
      failed += !c.pass();
    }
  o << "# dsv4lab parity report\n\n";
  o << "**Result: " << (r.pass() ? "PASS" : "FAIL") << "** — " << total << " comparisons in " << r.groups.size()
    << " groups, " << failed << " failed. Device: " << r.device << ".\n\n";
  if (!r.failures().empty()) {
    o << "## Failed rules\n\n";
    for (const auto& f : r.failures()) o << "- " << f << "\n";
    o << "\n";
  }
  o << "## Comparisons\n\n";
  o << "| group | op | steps | comparison | rule | result | metrics | time |\n";
  o << "|---|---|---|---|---|---|---|---|\n";
  for (const auto& g : r.groups)
    for (const auto& c : g.comparisons)
      o << "| " << md_cell(g.group) << " | " << g.op << " | " << g.steps << " | " << md_cell(c.name()) << " | "
        << md_cell(rule_summary(c.rule)) << " | " << (c.pass() ? "pass" : "**FAIL**") << " | "
        << md_cell(metric_summary(c)) << " | " << md_cell(timing_text(g.timing)) << " |\n";
  o << "\n";
  for (const auto& g : r.groups) {
    o << "### " << g.group << " (" << g.op << ")\n\n";
    o << "- config: `" << g.config.dump() << "`\n";
    if (!g.schedule.empty()) o << "- schedule: `" << g.schedule << "`\n";
    for (const auto& n : g.notes) o << "- " << n << "\n";
    for (const auto& c : g.comparisons)
      if (!c.note.empty()) o << "- " << c.name() << ": " << c.note << "\n";
    o << "\n";
  }
  if (!r.notes.empty()) {
    o << "## Notes\n\n";
    for (const auto& n : r.notes) o << "- " << n << "\n";
    o << "\n";
  }
  if (!r.simulation.is_null()) o << "## Simulation\n\n```json\n" << r.simulation.dump(2) << "\n```\n\n";
  o << "## Plots\n\n";
  if (plots.empty()) o << "(no plots: " << plot_note << ")\n";
  for (const auto& p : plots) o << "![" << p.stem().string() << "](" << p.filename().string() << ")\n";
  o << "\n## Provenance\n\n| field | value |\n|---|---|\n";
  for (const auto& [k, v] : provenance_rows(r.provenance)) o << "| " << k << " | `" << md_cell(v) << "` |\n";
  o << "\nReproduce: `" << r.provenance.command << "`\n";
  return o.str();
}

std::string html(const Report& r, const fs::path& dir, const std::vector<fs::path>& plots,
                 const std::string& plot_note) {
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>dsv4lab parity report</title>\n"
       "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}"
       "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left;vertical-align:top;font-size:90%}"
       "th{background:#eee}.pass{color:#060}.fail{color:#b00;font-weight:bold}code{font-size:90%}"
       "img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}</style></head><body>\n";
  o << "<h1>dsv4lab parity report</h1>\n<p>Result: <span class=\"" << (r.pass() ? "pass\">PASS" : "fail\">FAIL")
    << "</span>. Device: " << html_escape(r.device) << ".</p>\n";
  const auto fails = r.failures();
  if (!fails.empty()) {
    o << "<h2>Failed rules</h2>\n<ul>\n";
    for (const auto& f : fails) o << "<li>" << html_escape(f) << "</li>\n";
    o << "</ul>\n";
  }
  o << "<h2>Comparisons</h2>\n<table><tr><th>group</th><th>op</th><th>steps</th><th>comparison</th><th>rule</th>"
       "<th>result</th><th>metrics</th><th>time</th></tr>\n";
  for (const auto& g : r.groups)
    for (const auto& c : g.comparisons)
      o << "<tr><td>" << html_escape(g.group) << "</td><td>" << html_escape(g.op) << "</td><td>" << g.steps
        << "</td><td>" << html_escape(c.name()) << "</td><td>" << html_escape(rule_summary(c.rule))
        << "</td><td class=\"" << (c.pass() ? "pass\">pass" : "fail\">FAIL") << "</td><td>"
        << html_escape(metric_summary(c)) << (c.note.empty() ? "" : "<br><i>" + html_escape(c.note) + "</i>")
        << "</td><td>" << html_escape(timing_text(g.timing)) << "</td></tr>\n";
  o << "</table>\n";
  for (const auto& g : r.groups) {
    o << "<h3>" << html_escape(g.group) << " (" << html_escape(g.op) << ")</h3>\n<ul><li>config: <code>"
      << html_escape(g.config.dump()) << "</code></li>\n";
    if (!g.schedule.empty()) o << "<li>schedule: <code>" << html_escape(g.schedule) << "</code></li>\n";
    for (const auto& n : g.notes) o << "<li>" << html_escape(n) << "</li>\n";
    o << "</ul>\n";
  }
  if (!r.notes.empty()) {
    o << "<h2>Notes</h2>\n<ul>\n";
    for (const auto& n : r.notes) o << "<li>" << html_escape(n) << "</li>\n";
    o << "</ul>\n";
  }
  if (!r.simulation.is_null()) o << "<h2>Simulation</h2>\n<pre>" << html_escape(r.simulation.dump(2)) << "</pre>\n";
  o << "<h2>Plots</h2>\n";
  if (plots.empty()) o << "<p>(no plots: " << html_escape(plot_note) << ")</p>\n";
  for (const auto& p : plots)
    o << "<figure><img alt=\"" << html_escape(p.stem().string()) << "\" src=\"data:image/png;base64,"
      << base64(read_file(dir / p.filename())) << "\"><figcaption>" << html_escape(p.stem().string())
      << "</figcaption></figure>\n";
  o << "<h2>Provenance</h2>\n<table>\n";
  for (const auto& [k, v] : provenance_rows(r.provenance))
    o << "<tr><th>" << html_escape(k) << "</th><td><code>" << html_escape(v) << "</code></td></tr>\n";
  o << "</table>\n<p>Reproduce: <code>" << html_escape(r.provenance.command) << "</code></p>\n</body></html>\n";
  return o.str();
}

// Run `argv` with stdout sent to stderr; returns the exit status (or -1 when it could not start).
int run_process(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, 2, 1);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string find_python(const WriteOptions& opt) {
  if (!opt.python.empty()) return opt.python;
  return plot_python();
}

std::string find_plots_script(const WriteOptions& opt) {
  if (!opt.plots_script.empty()) return opt.plots_script;
  if (const char* p = std::getenv("DSV4LAB_PLOTS"); p && *p) return p;
#ifdef DSV4LAB_PLOTS_SCRIPT
  return DSV4LAB_PLOTS_SCRIPT;
#else
  return "validation/plots.py";
#endif
}

}  // namespace

std::string plot_python() {
  if (const char* p = std::getenv("DSV4LAB_PYTHON"); p && *p) return p;
  static const std::string found = [] {
    std::vector<std::string> candidates;
#ifdef DSV4LAB_CONFIGURED_PYTHON
    candidates.emplace_back(DSV4LAB_CONFIGURED_PYTHON);  // the one the build scripts chose
#endif
    candidates.emplace_back("/usr/bin/python3");
    candidates.emplace_back("python3");
    for (const auto& py : candidates) {
      const std::string probe = "'" + py + "' -c 'import matplotlib' >/dev/null 2>&1";
      if (std::system(probe.c_str()) == 0) return py;
    }
    return std::string("python3");
  }();
  return found;
}

std::string to_markdown(const Report& r) { return markdown(r, {}, "not drawn"); }

std::string summary_table(const Report& r) {
  std::size_t wg = 5, wc = 10;
  for (const auto& g : r.groups) {
    wg = std::max(wg, g.group.size());
    for (const auto& c : g.comparisons) wc = std::max(wc, c.name().size());
  }
  std::ostringstream o;
  auto pad = [](std::string s, std::size_t w) { return s + std::string(w > s.size() ? w - s.size() : 0, ' '); };
  o << pad("group", wg) << "  " << pad("comparison", wc) << "  result  metrics\n";
  std::size_t total = 0, failed = 0;
  for (const auto& g : r.groups)
    for (const auto& c : g.comparisons) {
      ++total;
      failed += !c.pass();
      o << pad(g.group, wg) << "  " << pad(c.name(), wc) << "  " << (c.pass() ? "pass  " : "FAIL  ") << "  "
        << metric_summary(c) << "\n";
    }
  for (const auto& g : r.groups)
    if (!g.timing.is_null()) o << pad(g.group, wg) << "  time: " << timing_text(g.timing) << "\n";
  o << (r.pass() ? "PASS" : "FAIL") << ": " << total - failed << "/" << total << " comparisons pass in "
    << r.groups.size() << " groups (device " << r.device << ")\n";
  return o.str();
}

std::string base64(std::string_view bytes) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16) |
                            (std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8) |
                            std::uint32_t{static_cast<unsigned char>(bytes[i + 2])};
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += tbl[v & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t v = std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16;
    if (rest == 2) v |= std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8;
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += rest == 2 ? tbl[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

WriteResult write_report(const Report& r, const fs::path& dir, const WriteOptions& opt) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) raise(Errc::io, "cannot create report folder '" + dir.string() + "': " + ec.message());
  WriteResult res;
  res.json = dir / "report.json";
  res.markdown = dir / "report.md";
  res.html = dir / "report.html";
  write_file(res.json, to_json(r).dump(2) + "\n");
  // Plots: remove the previous run's, then draw from report.json.
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const auto name = e.path().filename().string();
    if (name.rfind("plot_", 0) == 0 && e.path().extension() == ".png") fs::remove(e.path(), ec);
  }
  if (!opt.plots) {
    res.plot_note = "plots disabled";
  } else {
    const std::string script = find_plots_script(opt);
    if (!fs::exists(script)) {
      res.plot_note = "validation/plots.py not found (set DSV4LAB_PLOTS)";
    } else {
      const int rc = run_process({find_python(opt), script, dir.string()});
      if (rc == 77) res.plot_note = "matplotlib is not installed";
      else if (rc != 0) res.plot_note = "plots.py failed (exit " + std::to_string(rc) + ")";
    }
  }
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const auto name = e.path().filename().string();
    if (name.rfind("plot_", 0) == 0 && e.path().extension() == ".png") res.plots.push_back(e.path().filename());
  }
  std::sort(res.plots.begin(), res.plots.end());
  if (res.plots.empty() && res.plot_note.empty()) res.plot_note = "nothing to plot";
  write_file(res.markdown, markdown(r, res.plots, res.plot_note));
  write_file(res.html, html(r, dir, res.plots, res.plot_note));
  return res;
}

}  // namespace dsv4::validation
