// dsv4lab calibrate: fit the cost-model constants of each kernel from bench JSON (sim/calibrate.hpp).
#include "cli/registry.hpp"
#include "sim/calibrate.hpp"

#include <cstdio>
#include <memory>

namespace {

struct CalibrateCliOptions {
  std::vector<std::string> files;
  dsv4::sim::CalibrateOptions opts;
  std::string json;
};

int calibrate_main(const CalibrateCliOptions& o) {
  std::vector<dsv4::sim::BenchPoint> pts;
  for (const auto& f : o.files) {
    auto v = dsv4::sim::read_bench_file(f);
    pts.insert(pts.end(), v.begin(), v.end());
  }
  const auto r = dsv4::sim::calibrate(pts, o.opts);
  if (o.json != "-") std::fputs(dsv4::sim::calibrate_table(r, o.opts).c_str(), stdout);
  if (!o.json.empty()) dsv4::cli::emit_json(o.json, dsv4::sim::calibrate_json(r, o.opts, o.files).dump(2));
  return 0;
}

const dsv4::cli::Register reg{70, [](CLI::App& root) -> dsv4::cli::RunFn {
  auto* sub = root.add_subcommand("calibrate", "Fit cost-model constants from bench JSON; report held-out error");
  auto o = std::make_shared<CalibrateCliOptions>();
  sub->add_option("files", o->files, "bench JSON files (schema dsv4lab-bench)")->required();
  sub->add_option("--holdout", o->opts.holdout_share, "share of each kernel's points held out")->capture_default_str();
  sub->add_option("--goal", o->opts.goal_mape, "held-out MAPE goal reported per kernel")->capture_default_str();
  dsv4::cli::add_json_option(*sub, o->json);
  return [o] { return calibrate_main(*o); };
}};

}  // namespace
