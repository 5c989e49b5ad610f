// dsv4lab inspect: groups, shapes, dtypes, steps, attributes and provenance of a trace;
// --verify reads every step (all data checks); --dump prints one step of one dataset.
#include "cli/registry.hpp"
#include "traces/trace.hpp"

#include <cstdio>
#include <memory>

namespace {

struct InspectCli {
  std::string file;
  std::string json;
  bool verify = false;
  bool outputs = false;
  std::string dump;
  std::uint64_t step = 0;
};

int inspect_main(const InspectCli& c) {
  const std::string path = c.file.empty() ? dsv4::trace::default_trace_path() : c.file;
  const dsv4::trace::TraceReader r(path, c.outputs ? dsv4::trace::ReadMode::outputs : dsv4::trace::ReadMode::trace);
  if (!c.dump.empty()) {
    std::puts(dsv4::trace::dump_json(r, c.dump, c.step).c_str());
    return 0;
  }
  std::uint64_t steps = 0;
  if (c.verify) steps = dsv4::trace::verify_all(r);
  if (!c.json.empty()) {
    dsv4::cli::emit_json(c.json, dsv4::trace::describe_json(r));
    if (c.json == "-") return 0;
  }
  std::fputs(dsv4::trace::describe(r).c_str(), stdout);
  if (c.verify) std::printf("\nverify: read %llu group-steps, all checks passed\n", static_cast<unsigned long long>(steps));
  return 0;
}

const dsv4::cli::Register reg{20, [](CLI::App& root) -> dsv4::cli::RunFn {
  auto* sub = root.add_subcommand("inspect", "Show groups, shapes, dtypes, steps, attributes and provenance of a trace");
  auto c = std::make_shared<InspectCli>();
  sub->add_option("file", c->file, "trace file (default: the embedded default trace)");
  sub->add_flag("--verify", c->verify, "read every step of every group (all data checks)");
  sub->add_flag("--outputs", c->outputs, "the file holds replay --save-outputs datasets (groups not validated)");
  sub->add_option("--dump", c->dump, "print one step of a dataset as JSON, e.g. /indexer/L00/logits");
  sub->add_option("--step", c->step, "step for --dump")->capture_default_str();
  dsv4::cli::add_json_option(*sub, c->json);
  return [c] { return inspect_main(*c); };
}};

}  // namespace
