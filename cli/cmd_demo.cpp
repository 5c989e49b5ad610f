// dsv4lab demo: what the README's main-job command runs.
#include "cli/registry.hpp"
#include "validation/numerics_check.hpp"

#include <cstdio>
#include <memory>

namespace {

struct DemoOptions {
  std::string out = "dsv4lab-demo";
};

int demo_main(const DemoOptions&) {
  std::printf("numerics core accuracy vs float64 (every 4099th float bit pattern):\n");
  std::printf("  %-6s %12s %8s\n", "fn", "inputs", "max ulp");
  bool ok = true;
  for (const auto& a : dsv4::validation::numerics_accuracy()) {
    std::printf("  %-6s %12llu %8u\n", a.name.c_str(), static_cast<unsigned long long>(a.inputs), a.max_ulp);
    ok = ok && a.max_ulp <= 1;
  }
  std::printf("demo: produced the numerics accuracy table above (%s)\n", ok ? "all within 1 ulp" : "BOUND EXCEEDED");
  return ok ? 0 : 1;
}

const dsv4::cli::Register reg{90, [](CLI::App& root) -> dsv4::cli::RunFn {
  auto* sub = root.add_subcommand("demo", "Run the main job on the embedded default trace and write a report");
  auto opts = std::make_shared<DemoOptions>();
  sub->add_option("--out", opts->out, "report folder")->capture_default_str();
  return [opts] { return demo_main(*opts); };
}};

}  // namespace
