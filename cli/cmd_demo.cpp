// dsv4lab demo: what the README's main-job command runs. Replays the embedded default trace
// on the best device present (the GPU kernels when a GPU is there, else the CPU reference
// and oracle), runs the split-heuristic simulator, writes the report folder and prints a
// short summary; the last line is the report path.
#include "cli/registry.hpp"
#include "sim/distribution.hpp"
#include "sim/simulate.hpp"
#include "traces/trace.hpp"
#include "validation/replay.hpp"
#include "validation/report.hpp"

#include <cstdio>
#include <filesystem>
#include <memory>

namespace {

struct DemoOptions {
  std::string out = "dsv4lab-demo";
  std::string trace;
  std::string gpu_model = "h100";
  bool no_plots = false;
};

// The simulator's best split heuristic per batch size on the production length mix.
nlohmann::ordered_json run_simulation(const std::string& gpu) {
  dsv4::sim::SimConfig cfg;
  cfg.gpu = gpu;
  cfg.samples = 200;
  const auto dist = dsv4::sim::prod_distribution();
  const auto res = dsv4::sim::simulate(cfg, dist);
  nlohmann::ordered_json j;
  j["what"] = "split-KV heuristics on the production length mix (dsv4lab simulate, " + std::to_string(cfg.samples) +
              " sampled batches per size, seed " + std::to_string(cfg.seed) + ")";
  j["gpu"] = gpu;
  nlohmann::ordered_json best = nlohmann::ordered_json::array();
  for (const auto& b : res.best) best.push_back({{"batch", b.batch}, {"heuristic", b.heuristic}, {"mean_us", b.mean_us}});
  j["best"] = best;
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const auto& r : res.rows)
    rows.push_back({{"batch", r.batch}, {"heuristic", r.heuristic}, {"mean_us", r.mean_us}, {"p99_us", r.p99_us}});
  j["rows"] = rows;
  return j;
}

int demo_main(const DemoOptions& o) {
  using namespace dsv4::validation;
  const std::string trace = o.trace.empty() ? dsv4::trace::default_trace_path() : o.trace;
  ReplayOptions ro;
  ro.device = "auto";
  ro.gpu_model = o.gpu_model;
  Report rep = replay_trace(trace, ro);
  rep.provenance.command = current_command_line();
  try {
    rep.simulation = run_simulation(o.gpu_model);
  } catch (const std::exception& e) {
    rep.notes.push_back(std::string("simulator not run: ") + e.what());
  }
  WriteOptions wo;
  wo.plots = !o.no_plots;
  const WriteResult w = write_report(rep, o.out, wo);
  std::fputs(summary_table(rep).c_str(), stdout);
  if (!rep.simulation.is_null()) {
    std::printf("best split heuristic per batch (%s, predicted):", o.gpu_model.c_str());
    for (const auto& b : rep.simulation["best"])
      std::printf(" B=%d %s %.1f us;", b["batch"].get<int>(), b["heuristic"].get<std::string>().c_str(),
                  b["mean_us"].get<double>());
    std::printf("\n");
  }
  if (!w.plot_note.empty()) std::printf("plots: %s\n", w.plot_note.c_str());
  std::printf("%s\n", std::filesystem::absolute(w.html).lexically_normal().string().c_str());
  return rep.pass() ? 0 : 1;
}

const dsv4::cli::Register reg{90, [](CLI::App& root) -> dsv4::cli::RunFn {
  auto* sub = root.add_subcommand("demo", "Replay the embedded default trace, simulate, write a report (main job)");
  auto opts = std::make_shared<DemoOptions>();
  sub->add_option("--out", opts->out, "report folder")->capture_default_str();
  sub->add_option("--trace", opts->trace, "trace to use instead of the embedded default");
  sub->add_option("--gpu-model", opts->gpu_model, "GPU of the cost model and simulator")->capture_default_str();
  sub->add_flag("--no-plots", opts->no_plots, "do not run plots.py");
  return [opts] { return demo_main(*opts); };
}};

}  // namespace
