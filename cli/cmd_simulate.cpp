// dsv4lab simulate: what-if runs of the split heuristics on a batch distribution (sim/simulate.hpp).
#include "cli/registry.hpp"
#include "reference/status.hpp"
#include "sim/simulate.hpp"
#include "traces/trace.hpp"
#include "validation/report.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

namespace {

namespace fs = std::filesystem;
using namespace dsv4;

struct SimulateOptions {
  sim::SimConfig cfg;
  std::string dist = "prod";
  std::string batches = "16,64,256";
  std::string heuristics;
  std::string sweep;
  std::string json;
  std::string plot;
  std::string constants;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ','))
    if (!tok.empty()) out.push_back(tok);
  return out;
}

bool is_hdf5(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  in.read(magic, 8);
  return in.gcount() == 8 && std::string(magic, 8) == std::string("\x89HDF\r\n\x1a\n", 8);
}

/// seq_lens of every step of every indexer group of an HDF5 trace (the sim library stays HDF5-free).
std::vector<int> trace_seq_lens(const std::string& path) {
  trace::TraceReader r(path);
  std::vector<int> lens;
  for (const auto& g : r.groups(trace::GroupKind::indexer)) {
    auto ix = r.indexer(g.name);
    for (std::uint64_t s = 0; s < ix.steps(); ++s)
      for (auto l : ix.read_step(s).seq_lens) lens.push_back(static_cast<int>(l));
  }
  if (lens.empty()) raise(Errc::bad_input, "trace '" + path + "' has no indexer seq_lens (--dist trace:FILE)");
  return lens;
}

std::string find_plot_script() {
  if (const char* p = std::getenv("DSV4LAB_SOURCE_DIR")) {
    const fs::path s = fs::path(p) / "sim" / "plot_simulate.py";
    if (fs::exists(s)) return s.string();
  }
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path d = exe.parent_path(); !d.empty() && d != d.root_path(); d = d.parent_path()) {
      const fs::path s = d / "sim" / "plot_simulate.py";
      if (fs::exists(s)) return s.string();
    }
  }
  return {};
}

int simulate_main(SimulateOptions& o) {
  sim::SimConfig& cfg = o.cfg;
  sim::gpu_spec(cfg.gpu);  // validates --gpu early
  cfg.batches.clear();
  for (const auto& b : split_list(o.batches)) {
    try {
      std::size_t used = 0;
      cfg.batches.push_back(std::stoi(b, &used));
      if (used != b.size()) throw std::invalid_argument(b);
    } catch (const std::exception&) {
      raise(Errc::bad_input, "--batch: '" + b + "' is not an integer");
    }
  }
  cfg.heuristics = split_list(o.heuristics);
  for (const auto& h : cfg.heuristics) sim::heuristic(h);
  if (!o.sweep.empty()) cfg.sweep = sim::parse_sweep(o.sweep);
  if (!o.constants.empty()) {
    std::ifstream in(o.constants);
    if (!in) raise(Errc::io, "cannot open --constants '" + o.constants + "'");
    nlohmann::json j;
    try {
      in >> j;
    } catch (const std::exception& e) {
      raise(Errc::bad_input, "--constants '" + o.constants + "' is not valid JSON: " + e.what());
    }
    cfg.constants = sim::load_constants(j);
  }
  sim::Distribution dist;
  if (o.dist.rfind("trace:", 0) == 0 && is_hdf5(o.dist.substr(6)))
    dist = sim::distribution_from_lengths(o.dist, trace_seq_lens(o.dist.substr(6)));
  else
    dist = sim::parse_distribution(o.dist);

  const sim::SimResult r = sim::simulate(cfg, dist);
  const nlohmann::json j = sim::simulate_json(cfg, dist, r);
  if (o.json != "-") std::fputs(sim::simulate_table(cfg, dist, r).c_str(), stdout);
  if (!o.json.empty()) cli::emit_json(o.json, j.dump(2));
  if (!o.plot.empty()) {
    fs::create_directories(o.plot);
    const std::string data = (fs::path(o.plot) / "simulate.json").string();
    cli::emit_json(data, j.dump(2));
    const std::string script = find_plot_script();
    if (script.empty()) {
      std::fprintf(stderr, "simulate: wrote %s; sim/plot_simulate.py not found (set DSV4LAB_SOURCE_DIR) to draw plots\n",
                   data.c_str());
      return 0;
    }
    const std::string cmd = "'" + validation::plot_python() + "' '" + script + "' '" + data + "' '" + o.plot + "'";
    if (std::system(cmd.c_str()) != 0) raise(Errc::io, "plotting failed: " + cmd);
  }
  return 0;
}

const dsv4::cli::Register reg{50, [](CLI::App& root) -> dsv4::cli::RunFn {
  auto* sub = root.add_subcommand("simulate", "What-if simulation of split-KV heuristics with the cost model");
  auto o = std::make_shared<SimulateOptions>();
  sub->add_option("--gpu", o->cfg.gpu, "GPU: " + sim::supported_gpus())->capture_default_str();
  sub->add_option("--dist", o->dist, "KV lengths: prod | uniform:LO-HI | trace:FILE (HDF5 trace, JSON or text list)")
      ->capture_default_str();
  sub->add_option("--batch", o->batches, "comma-separated batch sizes")->capture_default_str();
  sub->add_option("--heuristics", o->heuristics, "comma-separated subset of: " + sim::heuristic_names());
  std::string sweep_help = "vary one parameter, param=lo:hi:step; params:";
  for (const auto& p : sim::sweep_params()) sweep_help += " " + p.name;
  sub->add_option("--sweep", o->sweep, sweep_help);
  sub->add_option("--seed", o->cfg.seed, "sampling seed")->capture_default_str();
  sub->add_option("--samples", o->cfg.samples, "batches sampled per batch size")->capture_default_str();
  sub->add_option("--heads", o->cfg.model.q_heads, "query heads per KV head on one rank")->capture_default_str();
  sub->add_option("--kv-bytes-per-token", o->cfg.model.kv_bytes_per_token, "KV bytes per token")->capture_default_str();
  sub->add_option("--page-size", o->cfg.model.page_size, "KV page size (tokens)")->capture_default_str();
  sub->add_option("--topk", o->cfg.model.topk, "sparse attention tokens per request (0 = dense)")->capture_default_str();
  sub->add_option("--constants", o->constants, "calibration JSON (from calibrate) for 'attention' / 'lse_merge'");
  sub->add_option("--plot", o->plot, "write simulate.json and PNG plots into this folder");
  dsv4::cli::add_json_option(*sub, o->json);
  return [o] { return simulate_main(*o); };
}};

}  // namespace
