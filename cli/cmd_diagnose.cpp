// dsv4lab diagnose: every non-finite merge output row (and captured compressor output) with
// the operation and input it came from, and the policy that would avoid it.
#include "cli/registry.hpp"
#include "validation/diagnose.hpp"

#include <cstdio>
#include <memory>

namespace {

struct DiagnoseCli {
  std::string trace;
  std::string json;
  std::string policy = "strict";
  dsv4::validation::DiagnoseOptions opt;
};

int diagnose_main(DiagnoseCli& c) {
  using namespace dsv4::validation;
  c.opt.policy = dsv4::parse_lse_policy(c.policy);
  const auto findings = diagnose_trace(c.trace, c.opt);
  if (!c.json.empty()) {
    dsv4::cli::emit_json(c.json, findings_json(findings).dump(2));
    if (c.json == "-") return 0;
  }
  std::fputs(findings_text(findings).c_str(), stdout);
  return 0;
}

const dsv4::cli::Register reg{40, [](CLI::App& root) -> dsv4::cli::RunFn {
  auto* sub = root.add_subcommand("diagnose", "Find non-finite LSE / outputs in a trace and name their origin");
  auto c = std::make_shared<DiagnoseCli>();
  sub->add_option("trace", c->trace, "trace file (HDF5)")->required();
  sub->add_option("--policy", c->policy, "LSE policy: strict or fa2_empty")->capture_default_str();
  sub->add_flag("--lse-includes-sink", c->opt.lse_includes_sink, "merged lse includes the sink");
  sub->add_option("--max-steps", c->opt.max_steps, "scan only the first N steps of each group");
  dsv4::cli::add_json_option(*sub, c->json);
  return [c] { return diagnose_main(*c); };
}};

}  // namespace
