// dsv4lab inspect: groups, shapes, dtypes, steps, attributes and provenance of a trace.
#include "cli/registry.hpp"
#include "traces/trace.hpp"

#include <cstdio>
#include <memory>

namespace {

struct InspectCli {
  std::string file;
  std::string json;
};

int inspect_main(const InspectCli& c) {
  const std::string path = c.file.empty() ? dsv4::trace::default_trace_path() : c.file;
  const dsv4::trace::TraceReader r(path);
  if (!c.json.empty()) {
    dsv4::cli::emit_json(c.json, dsv4::trace::describe_json(r));
    if (c.json == "-") return 0;
  }
  std::fputs(dsv4::trace::describe(r).c_str(), stdout);
  return 0;
}

const dsv4::cli::Register reg{20, [](CLI::App& root) -> dsv4::cli::RunFn {
  auto* sub = root.add_subcommand("inspect", "Show groups, shapes, dtypes, steps, attributes and provenance of a trace");
  auto c = std::make_shared<InspectCli>();
  sub->add_option("file", c->file, "trace file (default: the embedded default trace)");
  dsv4::cli::add_json_option(*sub, c->json);
  return [c] { return inspect_main(*c); };
}};

}  // namespace
